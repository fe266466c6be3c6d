"""Caffe ``.caffemodel`` weights (the paper's released VGG-16/19) without Caffe.

A ``.caffemodel`` is a serialised ``caffe.NetParameter`` protobuf. We need only
this subset of ``caffe.proto`` (field numbers as upstream)::

    message BlobShape { repeated int64 dim = 1 [packed = true]; }
    message BlobProto {
      optional BlobShape shape = 7;
      repeated float data = 5 [packed = true];
      repeated double double_data = 8 [packed = true];
      optional int32 num = 1; optional int32 channels = 2;      // legacy 4-D shape
      optional int32 height = 3; optional int32 width = 4;
    }
    message LayerParameter   { optional string name = 1; optional string type = 2;
                               repeated BlobProto blobs = 7; }
    message V1LayerParameter { optional string name = 4; optional LayerType type = 5;
                               repeated BlobProto blobs = 6; }   // CONVOLUTION = 4, INNER_PRODUCT = 14
    message NetParameter     { optional string name = 1;
                               repeated LayerParameter layer = 100;
                               repeated V1LayerParameter layers = 2; }

It is decoded by a minimal wire-format reader: packed float arrays become numpy
views of the file's bytes (the 528 MB VGG-16 file parses in about a second),
and no ``protoc`` or Caffe is needed. The released models are V1 (``layers``).

Caffe's VGG expects BGR input: conv1_1's input channels are B, G, R. The
converter records ``preprocess['bgr'] = True`` and leaves the weights as they
are; ``to_rgb=True`` (``--to-rgb``) reverses conv1_1's input channels instead
and records ``bgr=False``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

from vggkit.fileio import atomic_write_bytes
from vggkit.models.converters import ConversionError, Table, WeightConverter
from vggkit.models.preprocess import CAFFE_PREPROCESS
from vggkit.models.vgg import VGG

V1_TYPES = {4: "Convolution", 14: "InnerProduct"}
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclass
class CaffeLayer:
    """One layer of a ``.caffemodel``: name, type and parameter blobs."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


# -- wire format -------------------------------------------------------------------
def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)``; length-delimited values stay views."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _BYTES:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == _FIXED32:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == _FIXED64:
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _blob(buf: memoryview) -> np.ndarray:
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    shape: list[int] | None = None
    chunks: list[np.ndarray] = []
    for number, wire, value in _fields(buf):
        if number in legacy and wire == _VARINT:
            legacy[number] = value
        elif number == 7:  # BlobShape
            shape = []
            for n, w, v in _fields(value):
                if n == 1 and w == _BYTES:  # packed dims
                    sub, p = [], 0
                    while p < len(v):
                        d, p = _varint(v, p)
                        sub.append(d)
                    shape += sub
                elif n == 1:
                    shape.append(v)
        elif number == 5:  # float data, packed or not
            chunks.append(np.frombuffer(value, dtype="<f4"))
        elif number == 8:
            chunks.append(np.frombuffer(value, dtype="<f8").astype(np.float32))
    data = np.concatenate(chunks) if len(chunks) != 1 else chunks[0]
    if shape is None:
        shape = [legacy[1], legacy[2], legacy[3], legacy[4]]
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def _layer(buf: memoryview, v1: bool) -> CaffeLayer:
    name_no, type_no, blobs_no = (4, 5, 6) if v1 else (1, 2, 7)
    layer = CaffeLayer("", "")
    for number, _, value in _fields(buf):
        if number == name_no:
            layer.name = bytes(value).decode("utf-8")
        elif number == type_no:
            layer.type = V1_TYPES.get(value, f"V1:{value}") if v1 else bytes(value).decode()
        elif number == blobs_no:
            layer.blobs.append(_blob(value))
    return layer


def read_caffemodel(path: str) -> list[CaffeLayer]:
    """The layers of a ``.caffemodel`` (V1 ``layers`` or current ``layer``)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"caffemodel '{path}' does not exist")
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    try:
        layers = [_layer(value, v1=number == 2) for number, wire, value in _fields(buf)
                  if number in (2, 100) and wire == _BYTES]
    except (ValueError, IndexError) as exc:
        raise ConversionError(f"'{path}' is not a readable .caffemodel (NetParameter): {exc}"
                              ) from None
    if not layers:
        raise ConversionError(f"'{path}' holds no Caffe layers; is it a .caffemodel?")
    return layers


# -- writing (export) --------------------------------------------------------------
def _key(number: int, wire: int) -> bytes:
    return _enc_varint(number << 3 | wire)


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _enc_bytes(number: int, payload: bytes) -> bytes:
    return _key(number, _BYTES) + _enc_varint(len(payload)) + payload


def _enc_blob(array: np.ndarray) -> bytes:
    dims = b"".join(_enc_varint(d) for d in array.shape)
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return _enc_bytes(7, _enc_bytes(1, dims)) + _enc_bytes(5, data)


def write_caffemodel(path: str, layers: list[CaffeLayer], name: str = "VGG") -> None:
    """Write ``layers`` as a current-format ``NetParameter`` (atomically)."""
    body = [_enc_bytes(1, name.encode())]
    for layer in layers:
        payload = _enc_bytes(1, layer.name.encode()) + _enc_bytes(2, layer.type.encode())
        payload += b"".join(_enc_bytes(7, _enc_blob(b)) for b in layer.blobs)
        body.append(_enc_bytes(100, payload))
    atomic_write_bytes(path, b"".join(body))


# -- the converter -----------------------------------------------------------------
class CaffeConverter(WeightConverter):
    """``.caffemodel`` files: convs in order -> conv1_1 ..., InnerProducts -> fc6-fc8.

    Args:
        to_rgb: reverse conv1_1's input channels so the net takes RGB
            (records ``bgr=False``); by default the BGR weights are kept as is.
    """

    name = "caffe"
    preprocess = CAFFE_PREPROCESS
    first_conv = "conv.0.weight"
    fc_keys = ("fc.0.weight", "fc.1.weight", "fc.2.weight")

    def __init__(self, to_rgb: bool = False) -> None:
        self.to_rgb = to_rgb

    def read(self, path: str) -> dict[str, Tensor]:
        """Weights keyed by order: ``conv.{k}.weight``, ``fc.{k}.bias``, ..."""
        out: dict[str, Tensor] = {}
        counts = {"Convolution": 0, "InnerProduct": 0}
        for layer in read_caffemodel(path):
            if not layer.blobs:
                continue
            if layer.type not in counts:
                raise ConversionError(f"'{path}' layer '{layer.name}' of type {layer.type} has "
                                      "parameters; only Convolution and InnerProduct are "
                                      "supported (VGG has no others)")
            kind = "conv" if layer.type == "Convolution" else "fc"
            k = counts[layer.type]
            counts[layer.type] += 1
            weight = torch.from_numpy(layer.blobs[0].copy())
            if kind == "fc" and weight.ndim == 4:  # legacy (1, 1, out, in)
                weight = weight.reshape(weight.shape[-2], weight.shape[-1])
            out[f"{kind}.{k}.weight"] = weight
            if len(layer.blobs) > 1:
                out[f"{kind}.{k}.bias"] = torch.from_numpy(layer.blobs[1].copy()).flatten()
        return out

    def table(self, model: VGG) -> Table:
        own = model.state_dict()
        table = []
        for k, index in enumerate(model.conv_names.values()):
            for part in ("weight", "bias"):
                key = f"features.{index}.{part}"
                table.append((key, f"conv.{k}.{part}", tuple(own[key].shape)))
        for k, fc in enumerate(("fc6", "fc7", "fc8")):
            weight = own[f"head.{fc}.weight"]
            table.append((f"head.{fc}.weight", f"fc.{k}.weight", (weight.shape[0], weight[0].numel())))
            table.append((f"head.{fc}.bias", f"fc.{k}.bias", (weight.shape[0],)))
        return table

    def convert_with_meta(self, src: str | Mapping[str, Tensor], arch: str | None = None
                          ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        ours, meta = super().convert_with_meta(src, arch)
        if self.to_rgb:
            ours["features.0.weight"] = ours["features.0.weight"].flip(1).contiguous()
            meta["preprocess"] = {**meta["preprocess"], "bgr": False}
        return ours, meta

    def write(self, state_dict: dict[str, Tensor], path: str, meta: Mapping[str, Any]) -> None:
        """Write a ``.caffemodel`` whose layer names match the released prototxts."""
        if meta.get("batch_norm"):
            raise ConversionError("Caffe export supports VGG without batch norm only")
        names = [*meta["conv_names"], "fc6", "fc7", "fc8"]
        layers = []
        for k, name in enumerate(names):
            kind = "conv" if k < len(meta["conv_names"]) else "fc"
            j = k if kind == "conv" else k - len(meta["conv_names"])
            blobs = [state_dict[f"{kind}.{j}.{p}"].numpy() for p in ("weight", "bias")]
            layers.append(CaffeLayer(name, "Convolution" if kind == "conv" else "InnerProduct",
                                     blobs))
        write_caffemodel(path, layers, name=f"VGG_{meta.get('arch', '')}")
