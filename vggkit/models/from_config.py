"""A VGG built from an mmengine config's ``model`` and loaded from a checkpoint.

Shared by the evaluation and feature-extraction tools, which both take
``CONFIG CKPT`` pairs: the config says which net (``build_vgg`` arguments),
the checkpoint holds its weights and the preprocessing they expect.
"""
from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Mapping, Optional

from vggkit.models.io import load_checkpoint, read_checkpoint
from vggkit.models.vgg import VGG

def build_hints() -> dict[str, Any]:
    """The type of each argument of ``build_vgg`` (:mod:`vggkit.factory`), what a config's
    ``model.vgg`` holds: VGG's own, ``num_classes`` None (the data's count), ``weights``."""
    hints = {k: v for k, v in typing.get_type_hints(VGG.__init__).items() if k != "return"}
    return {**hints, "num_classes": Optional[int], "weights": Optional[str]}


# keys of an mmengine model dict that are not build_vgg arguments
_NOT_VGG = {"type", "data_preprocessor", "init_cfg", "train_cfg", "test_cfg"}


def vgg_kwargs(model_cfg: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """``build_vgg`` arguments from ``cfg.model``.

    Accepted shapes: ``dict(type='VGGClassifier', vgg=dict(arch=...))`` (the
    engine's classifier), ``dict(..., backbone=dict(arch=...))``, or the
    arguments at the top level (``dict(type='VGG', arch=...)``).
    """
    cfg = dict(model_cfg)
    inner = cfg.get("vgg") or cfg.get("backbone")
    kwargs = dict(inner) if inner is not None else {k: v for k, v in cfg.items() if k not in _NOT_VGG}
    kwargs.pop("type", None)
    if "arch" not in kwargs:
        raise ValueError(f"{source}: cannot find the VGG arguments in cfg.model (looked for "
                         "model.vgg.arch, model.backbone.arch and model.arch)")
    accepted = set(build_hints())
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    check_vgg_arguments(kwargs, f"{source}: model.vgg")
    return kwargs


def _fits(value: Any, hint: Any) -> bool:
    """``value`` is of the annotated type ``hint`` (True when the hint is not a plain one)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint in (int, float):  # an int is a float's value too; a bool is neither here
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(
            value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    return True


def check_vgg_arguments(kwargs: Mapping[str, Any], where: str = "model.vgg") -> None:
    """Refuse ``build_vgg(**kwargs)`` arguments it does not take or of the wrong type.

    A bad value would otherwise fail as a TypeError deep inside the model.

    Raises:
        ValueError: naming ``where.key``, the value and the nearest argument.
    """
    hints = build_hints()
    for key, value in kwargs.items():
        if key not in hints:
            close = difflib.get_close_matches(key, list(hints), n=1)
            raise ValueError(f"{where}.{key}: build_vgg has no argument '{key}'"
                             + (f"; did you mean '{where}.{close[0]}'?" if close else
                                f"; its arguments: {', '.join(hints)}"))
        if not _fits(value, hints[key]):
            raise ValueError(f"{where}.{key}={value!r} must be of type "
                             f"{getattr(hints[key], '__name__', hints[key])}")


def checkpoint_num_classes(checkpoint: str) -> int:
    """fc8's number of outputs in ``checkpoint`` (for configs that leave num_classes None)."""
    state_dict, meta = read_checkpoint(checkpoint)
    if meta.get("num_classes"):
        return int(meta["num_classes"])
    if "head.fc8.weight" not in state_dict:
        raise ValueError(f"config leaves num_classes None and checkpoint '{checkpoint}' has no "
                         "head.fc8.weight to read it from; set model.vgg.num_classes")
    return int(state_dict["head.fc8.weight"].shape[0])


def build_from_config(config: Any, checkpoint: str, source: str = "config"
                      ) -> tuple[VGG, dict[str, Any], dict[str, Any]]:
    """``(model in eval mode, checkpoint meta, build_vgg kwargs)`` of a config and checkpoint.

    ``config`` is an mmengine Config (or a dict) with a ``model`` section.
    """
    if "model" not in config:
        raise ValueError(f"{source} has no 'model' section; expected model=dict(vgg=dict(arch=...))")
    kwargs = vgg_kwargs(config["model"], source)
    if kwargs.get("num_classes") is None:  # configs may leave it to the dataset
        kwargs["num_classes"] = checkpoint_num_classes(checkpoint)
    # the checkpoint overwrites every weight: skip initialisation (and any init checkpoint)
    # the checkpoint is the weights: a config's published 'weights' would only be overwritten
    model = VGG(**{**{k: v for k, v in kwargs.items() if k != "weights"}, "init": "none"})
    meta = load_checkpoint(model, checkpoint)
    return model.eval(), meta, kwargs
