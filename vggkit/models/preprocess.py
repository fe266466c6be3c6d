"""The preprocessing record a checkpoint's weights expect, and applying it.

A record is ``{'mean': [r, g, b], 'std': [r, g, b], 'bgr': bool}`` on the
0-255 scale in RGB order: ``normalised = (x - mean) / std`` per RGB channel,
then the channels are reversed if ``bgr`` (Caffe's released VGG models).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

#: ImageNet's mean pixel, RGB, 0-255: the one vggkit subtracts by default (Sect. 2)
IMAGENET_MEAN = (123.68, 116.779, 103.939)
#: torchvision's and timm's ImageNet mean and std of [0, 1] pixels, scaled to 0-255
IMAGENET_MEAN_TORCHVISION = (123.675, 116.28, 103.53)
IMAGENET_STD_TORCHVISION = (58.395, 57.12, 57.375)

#: ours (Sect. 2: "subtract the mean RGB value"), ImageNet's mean pixel
DEFAULT_PREPROCESS: dict[str, Any] = {"mean": list(IMAGENET_MEAN),
                                      "std": [1.0, 1.0, 1.0], "bgr": False}
#: torchvision and timm: ImageNet mean/std of [0, 1] pixels, scaled to 0-255
TORCHVISION_PREPROCESS: dict[str, Any] = {"mean": list(IMAGENET_MEAN_TORCHVISION),
                                          "std": list(IMAGENET_STD_TORCHVISION), "bgr": False}
#: Caffe's released VGG-16/19: BGR input, mean pixel subtracted, 0-255
CAFFE_PREPROCESS: dict[str, Any] = {"mean": list(IMAGENET_MEAN),
                                    "std": [1.0, 1.0, 1.0], "bgr": True}


def check_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A validated copy of ``record``; raises ``ValueError`` naming the bad field."""
    out = {"mean": list(record.get("mean", DEFAULT_PREPROCESS["mean"])),
           "std": list(record.get("std", [1.0, 1.0, 1.0])),
           "bgr": bool(record.get("bgr", False))}
    for key in ("mean", "std"):
        if len(out[key]) != 3:
            raise ValueError(f"preprocess record field '{key}' must have 3 values (R, G, B), "
                             f"got {out[key]}")
    if any(float(s) == 0 for s in out["std"]):
        raise ValueError(f"preprocess record 'std' must not contain 0, got {out['std']}")
    return out


def normalize(x: Tensor, record: Mapping[str, Any] | None = None) -> Tensor:
    """Normalise RGB images N x 3 x H x W (uint8 or float, 0-255) per ``record``.

    Returns a new float tensor (the input's float dtype, else float32),
    BGR-ordered when the record says so.
    """
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return normalize_(x.to(dtype, copy=True), record)


def normalize_(x: Tensor, record: Mapping[str, Any] | None = None) -> Tensor:
    """:func:`normalize` of float images ``x``, in place.

    Returns ``x`` itself, or a channel-reversed copy of it when the record
    says BGR. The division is skipped when every std is 1 (vggkit's own and
    Caffe's records): ``x / 1`` is ``x`` exactly, so the bytes are those of
    :func:`normalize`, one pass over the pixels fewer.
    """
    rec = check_record(record if record is not None else DEFAULT_PREPROCESS)
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"normalize expects RGB images ...x3xHxW, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"normalize_ works in place on float images, got {x.dtype}; "
                         "use normalize")
    x.sub_(_per_channel(rec["mean"], x))
    if any(float(s) != 1 for s in rec["std"]):
        x.div_(_per_channel(rec["std"], x))
    return x.flip(-3) if rec["bgr"] else x


def _per_channel(values: list, like: Tensor) -> Tensor:
    """RGB ``values`` as a 3 x 1 x 1 tensor of ``like``'s dtype and device."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(3, 1, 1)
