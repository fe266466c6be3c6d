"""Converters of published VGG weights to vggkit's layout and back.

Each converter describes the other library's layout as a table of
``(our key, their key, their shape)`` built from a vggkit model of the same
configuration, so conversion is a renaming plus a reshape (FC weights are
flattened convs) and export is the exact inverse. The configuration (A-E,
batch norm, classes, widths) is inferred from the weights unless given.

Layouts:

* torchvision ``VGG``: ``features.N`` (as ours), ``classifier.{0,3,6}`` Linear.
* timm ``VGG``: ``features.N``, ``pre_logits.fc1`` (7x7 conv), ``pre_logits.fc2``
  (1x1 conv), ``head.fc`` Linear.
* mmpretrain ``VGG`` backbone: ``backbone.features.{j}.conv`` / ``.bn`` where j
  counts ConvModules and pools, ``backbone.classifier.{0,3,6}`` Linear.
* Caffe: see :mod:`vggkit.models.caffe`.

Integrity: an imported checkpoint records the sha256 of the file it was
converted from (``meta['source_file']``, ``meta['source_sha256']``; compare
with the publisher's checksum) and, like every checkpoint vggkit writes, the
sha256 of each of its tensors (:func:`vggkit.models.io.save_checkpoint`).
Exported files are in the other library's layout, which has no place for
(and no reader of) vggkit's content hash, so they carry none; a bare state
dict of torchvision or timm has no meta at all.
"""
from __future__ import annotations

import abc
import math
import os
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from vggkit.safe_load import HASH_FORMAT_KEY, HASH_KEY
from vggkit.fileio import atomic_torch_save
from vggkit.models.archs import CONFIGS
from vggkit.models.io import read_checkpoint, save_checkpoint
from vggkit.models.preprocess import TORCHVISION_PREPROCESS
from vggkit.models.vgg import VGG, scaled

Table = list[tuple[str, str, tuple[int, ...]]]


class ConversionError(ValueError):
    """Weights that do not fit the layout or configuration they are said to have."""


def load_state_dict_file(path: str) -> dict[str, Tensor]:
    """A state dict from ``.pth``/``.pt``/``.bin`` (safely) or ``.safetensors``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file '{path}' does not exist")
    if path.endswith(".safetensors"):
        return _load_safetensors(path)
    from vggkit.safe_load import load_verified
    # published weights record no content hash: the converted file records the source's sha256
    obj = load_verified(path, notice=False)
    for key in ("state_dict", "model", "state_dict_ema"):  # mmpretrain, timm train ckpts
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ConversionError(f"'{path}' holds no state_dict of tensors (got {type(obj).__name__})")
    return dict(obj)


def _load_safetensors(path: str) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from vggkit.safe_load import CheckpointError
    try:
        return dict(load_file(path))
    except SafetensorError as exc:
        raise CheckpointError(f"weights file '{path}' is not a readable safetensors file ({exc}); "
                              "replace it with an intact copy") from exc


def source_record(path: str) -> dict[str, str]:
    """``{'source_file', 'source_sha256'}`` of the file weights are converted from."""
    from vggkit.fileio import file_sha256
    return {"source_file": os.path.basename(path), "source_sha256": file_sha256(path)}


class WeightConverter(abc.ABC):
    """Base class: subclasses give ``name``, ``preprocess`` and :meth:`table`."""

    name: ClassVar[str] = ""
    preprocess: ClassVar[dict[str, Any]] = TORCHVISION_PREPROCESS
    #: their keys of the first conv weight and of fc6, fc7, fc8 weights
    first_conv: ClassVar[str] = "features.0.weight"
    fc_keys: ClassVar[tuple[str, str, str]] = ("", "", "")

    @abc.abstractmethod
    def table(self, model: VGG) -> Table:
        """(our key, their key, reshape) rows mapping ``model``'s weights to this layout."""

    # -- the layout ----------------------------------------------------------------
    def read(self, path: str) -> dict[str, Tensor]:
        """Their state dict from a file."""
        return load_state_dict_file(path)

    def write(self, state_dict: dict[str, Tensor], path: str, meta: Mapping[str, Any]) -> None:
        """Write their state dict (a bare state dict by default) atomically."""
        atomic_torch_save(path, state_dict)

    # -- configuration -------------------------------------------------------------
    def head_config(self, theirs: Mapping[str, Tensor]) -> dict[str, Any]:
        """num_classes, fc_width, width_mult, input_size, batch_norm from their shapes."""
        missing = [k for k in (self.first_conv, *self.fc_keys) if k not in theirs]
        if missing:
            raise ConversionError(f"these are not {self.name} VGG weights: keys {missing} are "
                                  f"missing (found e.g. {list(theirs)[:4]})")
        fc6, fc7, fc8 = (theirs[k] for k in self.fc_keys)
        width_mult = theirs[self.first_conv].shape[0] / 64
        last = scaled(512, width_mult)
        k = math.isqrt(fc6.numel() // fc6.shape[0] // last)
        return {"num_classes": fc8.shape[0], "fc_width": fc7.shape[0], "width_mult": width_mult,
                "input_size": 32 * k,
                "batch_norm": any(key.endswith("running_mean") for key in theirs)}

    def fit(self, theirs: Mapping[str, Tensor], arch: str | None = None
            ) -> tuple[VGG, Table, dict[str, Any]]:
        """The configuration whose layout ``theirs`` has: ``(model on meta, table, config)``."""
        config = self.head_config(theirs)
        candidates = [arch] if arch else [a for a in CONFIGS if a != "A-LRN"]
        problems = []
        for candidate in candidates:
            with torch.device("meta"):
                model = VGG(candidate, init="none", **config)
            table = self.table(model)
            problem = _mismatch(table, theirs)
            if problem is None:
                return model, table, {"arch": model.arch, **config}
            problems.append(f"{candidate}: {problem}")
        raise ConversionError(f"the {self.name} weights fit no VGG configuration "
                              f"({config}): " + "; ".join(problems))

    # -- the two directions --------------------------------------------------------
    def convert(self, src: str | Mapping[str, Tensor], arch: str | None = None
                ) -> dict[str, Tensor]:
        """Their weights (a path or a state dict) -> our state dict."""
        return self.convert_with_meta(src, arch)[0]

    def convert_with_meta(self, src: str | Mapping[str, Tensor], arch: str | None = None
                          ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Their weights -> ``(our state dict, meta)`` (meta per the checkpoint format).

        From a file, meta records its name and sha256 (:func:`source_record`).
        """
        theirs = self.read(src) if isinstance(src, str) else dict(src)
        model, table, config = self.fit(theirs, arch)
        own = model.state_dict()
        ours = {o: theirs[t].reshape(own[o].shape).clone() for o, t, _ in table}
        meta = {**config, "source": self.name, "preprocess": dict(self.preprocess)}
        if isinstance(src, str):
            meta.update(source_record(src))
        return ours, meta

    def export(self, ours: Mapping[str, Tensor], model: VGG | None = None,
               arch: str | None = None) -> dict[str, Tensor]:
        """Our state dict -> theirs (exact: only renaming and reshaping)."""
        if model is None:
            if arch is None:
                raise ConversionError("export needs the model or its arch")
            model = _model_for(ours, arch)
        out = {}
        for o, t, shape in self.table(model):
            if o not in ours:
                raise ConversionError(f"cannot export to {self.name}: our key '{o}' is missing")
            out[t] = ours[o].reshape(shape).contiguous().clone()
        return out


def _model_for(ours: Mapping[str, Tensor], arch: str) -> VGG:
    """A meta-device VGG with the shapes of our state dict ``ours``."""
    fc6, fc7, fc8 = (ours[f"head.fc{i}.weight"] for i in (6, 7, 8))
    width_mult = ours["features.0.weight"].shape[0] / 64
    with torch.device("meta"):
        return VGG(arch, fc8.shape[0], init="none", fc_width=fc7.shape[0],
                         width_mult=width_mult, input_size=32 * fc6.shape[-1],
                         batch_norm=any(k.endswith("running_mean") for k in ours))


def _mismatch(table: Table, theirs: Mapping[str, Tensor]) -> str | None:
    """Why ``theirs`` does not have ``table``'s layout, or None if it does."""
    expected = {t: shape for _, t, shape in table}
    missing = [k for k in expected if k not in theirs]
    extra = [k for k in theirs if k not in expected]
    if missing or extra:
        return f"missing keys {missing[:3]}, unexpected keys {extra[:3]}"
    for key, shape in expected.items():
        if tuple(theirs[key].shape) != tuple(shape):
            return f"'{key}' has shape {tuple(theirs[key].shape)}, expected {tuple(shape)}"
    return None


def _linear_head(model: VGG, names: tuple[str, str, str]) -> Table:
    """fc6-fc8 as ``nn.Linear`` weights (flattened convs) under ``names``."""
    table = []
    for ours, theirs in zip(("fc6", "fc7", "fc8"), names):
        conv = getattr(model.head, ours)
        table.append((f"head.{ours}.weight", f"{theirs}.weight",
                      (conv.out_channels, conv.weight[0].numel())))
        table.append((f"head.{ours}.bias", f"{theirs}.bias", (conv.out_channels,)))
    return table


def _same_features(model: VGG) -> Table:
    return [(k, k, tuple(v.shape)) for k, v in model.state_dict().items()
            if k.startswith("features.")]


class TorchvisionConverter(WeightConverter):
    """torchvision ``vgg11`` ... ``vgg19_bn`` state dicts."""

    name = "torchvision"
    fc_keys = ("classifier.0.weight", "classifier.3.weight", "classifier.6.weight")

    def table(self, model: VGG) -> Table:
        return _same_features(model) + _linear_head(
            model, ("classifier.0", "classifier.3", "classifier.6"))


class TimmConverter(WeightConverter):
    """timm ``vgg11`` ... ``vgg19_bn``: head as ``pre_logits`` convs + ``head.fc``."""

    name = "timm"
    fc_keys = ("pre_logits.fc1.weight", "pre_logits.fc2.weight", "head.fc.weight")

    def table(self, model: VGG) -> Table:
        own = model.state_dict()
        convs = [(f"head.{o}.{p}", f"pre_logits.{t}.{p}", tuple(own[f"head.{o}.{p}"].shape))
                 for o, t in (("fc6", "fc1"), ("fc7", "fc2")) for p in ("weight", "bias")]
        fc8 = _linear_head(model, ("", "", "head.fc"))[4:]
        return _same_features(model) + convs + fc8


class MMPretrainConverter(WeightConverter):
    """mmpretrain ``VGG`` backbone with its built-in classifier (``num_classes > 0``)."""

    name = "mmpretrain"
    first_conv = "backbone.features.0.conv.weight"
    fc_keys = ("backbone.classifier.0.weight", "backbone.classifier.3.weight",
               "backbone.classifier.6.weight")

    def table(self, model: VGG) -> Table:
        own = model.state_dict()
        table, j = [], -1
        for i, layer in enumerate(model.features):
            # mmpretrain's ConvModule holds conv, bn and relu under one index j;
            # each pool takes an index of its own
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                j += 1
            part = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn"}.get(type(layer), "")
            for key, value in own.items():
                if part and key.startswith(f"features.{i}."):
                    table.append((key, f"backbone.features.{j}.{part}.{key.split('.')[-1]}",
                                  tuple(value.shape)))
        return table + _linear_head(model, ("backbone.classifier.0", "backbone.classifier.3",
                                            "backbone.classifier.6"))

    def write(self, state_dict: dict[str, Tensor], path: str, meta: Mapping[str, Any]) -> None:
        # mmpretrain/mmengine checkpoints keep weights under 'state_dict'
        atomic_torch_save(path, {"state_dict": state_dict, "meta": {"vggkit": dict(meta)}})


def get_converter(name: str, **kwargs: Any) -> WeightConverter:
    """The converter registered as ``name`` (via the plugins' WEIGHT_CONVERTERS)."""
    from vggkit.registry import WEIGHT_CONVERTERS
    cls = WEIGHT_CONVERTERS.get(name)
    if cls is None:
        raise ConversionError(f"no weight converter '{name}'; known: "
                              f"{', '.join(WEIGHT_CONVERTERS.known_names())}")
    return cls(**kwargs)


def import_weights(src: str, path: str, out: str, arch: str | None = None,
                   to_rgb: bool = False) -> dict[str, Any]:
    """Convert ``path`` (``src`` layout) to a vggkit checkpoint ``out``; returns meta.

    The checkpoint records ``path``'s sha256 (``meta['source_sha256']``) and
    the sha256 of each converted tensor (``meta['state_dict_sha256']``).
    """
    converter = get_converter(src, **({"to_rgb": True} if to_rgb else {}))
    state_dict, meta = converter.convert_with_meta(path, arch)
    save_checkpoint(out, state_dict, meta)
    return meta


def export_weights(dst: str, path: str, out: str) -> dict[str, Any]:
    """Write vggkit checkpoint ``path`` in ``dst``'s layout to ``out``; returns meta."""
    state_dict, meta = read_checkpoint(path)
    arch = meta.get("arch")
    if arch is None:
        raise ConversionError(f"checkpoint '{path}' records no meta['arch']; cannot export it")
    model = _model_for(state_dict, arch)
    converter = get_converter(dst)
    theirs = converter.export(state_dict, model)
    # our content hash names our keys: it would not describe the exported file
    kept = {k: v for k, v in meta.items() if k not in (HASH_KEY, HASH_FORMAT_KEY)}
    converter.write(theirs, out, {**kept, "conv_names": list(model.conv_names)})
    return meta
