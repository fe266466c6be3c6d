"""Reading, loading and writing VGG checkpoints (ours and converted ones), safely.

Everything goes through :func:`vggkit.safe_load.load_verified`
(``weights_only=True``): a checkpoint never runs code, a damaged file is one
error naming it, and the per-tensor sha256 that :func:`save_checkpoint`
records in ``meta['state_dict_sha256']`` is checked on every read.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Mapping

from torch import Tensor, nn

from vggkit.safe_load import CheckpointError, load_verified, with_content_hash
from vggkit.fileio import atomic_torch_save
from vggkit.models.preprocess import DEFAULT_PREPROCESS

#: prefixes stripped from state_dict keys: the engine's VGGClassifier holds the
#: net as ``self.vgg``; DistributedDataParallel adds ``module.``
PREFIXES = ("module.", "vgg.")


def _strip(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = dict(state_dict)
    for prefix in PREFIXES:
        if any(k.startswith(prefix) for k in out):
            # keys outside the prefix (e.g. the data preprocessor's) are not the net's
            out = {k[len(prefix):]: v for k, v in out.items() if k.startswith(prefix)}
    return out


def read_checkpoint(path: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a vggkit, mmengine runner or converted checkpoint.

    A bare state_dict (a mapping of tensors) is accepted with empty meta.

    Raises:
        CheckpointError: the file is damaged (a tensor differs from its
            recorded sha256, ...), holds code, or holds no state_dict.
    """
    obj = load_verified(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state_dict, meta = obj["state_dict"], dict(obj.get("meta") or {})
    elif isinstance(obj, Mapping) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        state_dict, meta = obj, {}
    else:
        raise CheckpointError(f"checkpoint '{path}' holds neither {{'state_dict': ...}} nor a "
                         f"state_dict of tensors (got {type(obj).__name__}); is it a vggkit "
                         "checkpoint? Convert published weights with tools/convert_weights.py")
    return _strip(state_dict), meta


def _foreign_layout(state_dict: Mapping[str, Tensor]) -> str | None:
    """The source whose key layout ``state_dict`` has, if it is not ours."""
    if "classifier.0.weight" in state_dict:
        return "torchvision"
    if "pre_logits.fc1.weight" in state_dict:
        return "timm"
    if any(k.startswith("backbone.") for k in state_dict):
        return "mmpretrain"
    return None


def _describe_model(model: nn.Module) -> str:
    return (f"arch={getattr(model, 'arch', '?')}, batch_norm={getattr(model, 'batch_norm', '?')}, "
            f"num_classes={getattr(model, 'num_classes', '?')}")


def _check_fits(model: nn.Module, state_dict: Mapping[str, Tensor], meta: Mapping[str, Any],
                path: str, strict: bool) -> list[str]:
    """Raise if the checkpoint cannot load into ``model``; else the keys to skip.

    With ``strict=False`` a tensor of another shape (fc8 of another class
    count, the usual fine-tuning case) is skipped, keeping the model's own, as
    missing and unexpected keys are; ``strict=True`` refuses it.
    """
    source = _foreign_layout(state_dict)
    if source is not None:
        raise ValueError(
            f"checkpoint '{path}' has {source}'s key layout, not vggkit's; convert it first: "
            f"tools/convert_weights.py --src {source} {path} OUT.pth")
    own = model.state_dict()
    mismatched = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    wrong = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
             for k in mismatched]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    recorded = {k: meta[k] for k in ("arch", "batch_norm", "num_classes") if k in meta}
    hint = (f" The checkpoint records {recorded}; the model has {_describe_model(model)}."
            " Build the model to match, e.g. build_vgg(arch, num_classes=...).")
    if wrong and strict:
        raise ValueError(f"checkpoint '{path}' does not fit the model: "
                         + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else "") + "." + hint
                         + " (strict=False keeps the model's own tensors of another shape)")
    if strict and (missing or unexpected):
        raise ValueError(f"checkpoint '{path}' does not fit the model: missing keys "
                         f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected keys "
                         f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}." + hint
                         + " (strict=False ignores missing/unexpected keys)")
    arch = meta.get("arch")
    if arch is not None and hasattr(model, "arch"):
        from vggkit.models.archs import resolve_arch
        config, bn = resolve_arch(arch)
        bn = bool(meta.get("batch_norm", bn))
        if (config, bn) != (model.arch, model.batch_norm):
            raise ValueError(f"checkpoint '{path}' is for arch {config} (batch_norm={bn}) but "
                             f"the model is {_describe_model(model)}." + hint)
    return mismatched


def load_checkpoint(model: nn.Module, path: str, strict: bool = True) -> dict[str, Any]:
    """Load a vggkit, runner or converted checkpoint into ``model`` (a VGG).

    Keys prefixed ``vgg.`` (the engine's classifier) or ``module.`` are accepted.
    ``strict=False`` skips missing and unexpected keys and tensors of another
    shape (a warning names each), e.g. fc8 of weights for other classes.

    Returns:
        The checkpoint's meta; ``meta['preprocess']`` is the recorded
        preprocessing, else :data:`DEFAULT_PREPROCESS`.

    Raises:
        ValueError: naming the file and the shapes when arch or (with strict) classes differ.
        CheckpointError: (a ValueError) the file is damaged or holds no weights.
    """
    net = getattr(model, "vgg", model) if not hasattr(model, "features") else model
    state_dict, meta = read_checkpoint(path)
    for key in _check_fits(net, state_dict, meta, path, strict):
        warnings.warn(f"load_checkpoint(strict=False): '{key}' of '{path}' has shape "
                      f"{tuple(state_dict.pop(key).shape)}, the model's "
                      f"{tuple(net.state_dict()[key].shape)}: kept the model's", stacklevel=2)
    net.load_state_dict(state_dict, strict=strict)
    meta.setdefault("preprocess", copy.deepcopy(DEFAULT_PREPROCESS))
    return meta


def save_checkpoint(path: str, state_dict: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
    """Write ``{'state_dict', 'meta'}`` atomically (temp file in the same directory).

    ``meta['state_dict_sha256']`` gets the content hash of ``state_dict`` as
    written (any hash already in ``meta`` is replaced), which every read checks.
    """
    state_dict = dict(state_dict)
    atomic_torch_save(path, {"state_dict": state_dict,
                             "meta": with_content_hash(meta, state_dict)})
