"""Content hashes of checkpoint weights: a sha256 per tensor, recorded when vggkit saves
(``meta['state_dict_sha256']``) and checked when it loads, naming the first tensor whose
bytes changed. Files without the record load with one warning per file.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any, Mapping, Optional

import torch

from vggkit.checkpoint_diagnosis import REPLACE, CheckpointError

#: meta key of the per-tensor content hashes, and of the recipe they follow
HASH_KEY = "state_dict_sha256"
HASH_FORMAT_KEY = "state_dict_sha256_format"
#: sha256 over f"{dtype}:{shape}:" (e.g. "torch.float32:64,3,3,3:") then the raw bytes
HASH_FORMAT = "vggkit/1 sha256(dtype:shape:bytes)"


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint records no content hash, so its weights cannot be verified."""


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of ``f"{dtype}:{shape}:"`` followed by the tensor's bytes in memory order.

    Works for every dtype (bf16 and fp16 included: the bytes are viewed as
    uint8) without copying a contiguous CPU tensor.
    """
    t = tensor.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.resolve_conj().resolve_neg().cpu().contiguous()
    digest = hashlib.sha256(f"{t.dtype}:{','.join(map(str, t.shape))}:".encode())
    if t.numel():
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def state_dict_sha256(state_dict: Mapping[str, Any]) -> dict[str, str]:
    """``{key: tensor_sha256}`` of every tensor of ``state_dict`` (keys as given)."""
    return {k: tensor_sha256(v) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def with_content_hash(meta: Mapping[str, Any], state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` plus the content hash of ``state_dict`` (replacing any earlier one)."""
    return {**meta, HASH_KEY: state_dict_sha256(state_dict), HASH_FORMAT_KEY: HASH_FORMAT}


def _short(digest: str) -> str:
    return f"{digest[:12]}..."


def _check_keys(state_dict: Mapping[str, Any], recorded: Mapping[str, str], path: str) -> None:
    tensors = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor)]
    missing = [k for k in recorded if k not in state_dict]
    if missing:
        raise CheckpointError(f"checkpoint '{path}' is damaged: tensor '{missing[0]}' is in its "
                              f"recorded sha256 list but missing from its state_dict; {REPLACE}")
    extra = [k for k in tensors if k not in recorded]
    if extra:
        raise CheckpointError(f"checkpoint '{path}' is damaged: tensor '{extra[0]}' has no "
                              "recorded sha256 (the state_dict was changed after it was saved); "
                              f"{REPLACE}, or re-save it with vggkit.models.save_checkpoint")


def verify_state_dict(state_dict: Mapping[str, Any], recorded: Mapping[str, str],
                      path: str) -> None:
    """Raise :class:`CheckpointError` naming the first tensor whose bytes changed."""
    _check_keys(state_dict, recorded, path)
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue
        now = tensor_sha256(value)
        if now != recorded[key]:
            raise CheckpointError(
                f"checkpoint '{path}' is damaged: tensor '{key}' does not match its recorded "
                f"sha256 (recorded {_short(recorded[key])}, now {_short(now)}); the file changed "
                f"after it was written; {REPLACE}")


# files verified (or reported unverifiable) in this process, by identity and version
_VERIFIED: set[tuple] = set()
_NOTIFIED: set[str] = set()


def _file_id(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _notice_once(path: str, message: str) -> None:
    real = os.path.realpath(path)
    if real in _NOTIFIED:
        return
    _NOTIFIED.add(real)
    warnings.warn(message, UnverifiedCheckpointWarning, stacklevel=3)


def _state_and_meta(obj: Any) -> tuple[Optional[Mapping[str, Any]], Mapping[str, Any]]:
    """``(state_dict, meta)`` of a loaded checkpoint; state_dict None if it has none."""
    if not isinstance(obj, Mapping):
        return None, {}
    if isinstance(obj.get("state_dict"), Mapping):
        meta = obj.get("meta")
        return obj["state_dict"], meta if isinstance(meta, Mapping) else {}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    return None, {}


def verify_loaded(obj: Any, path: str, notice: bool = True) -> None:
    """Check a loaded checkpoint against its recorded content hash.

    Args:
        obj: what :func:`torch_load` returned for ``path``.
        notice: warn (once per file and process) when there is no hash.

    Raises:
        CheckpointError: a tensor differs from, or is missing from, the record.
    """
    state_dict, meta = _state_and_meta(obj)
    if state_dict is None:
        return  # not weights (read_checkpoint says so)
    recorded = meta.get(HASH_KEY)
    if not isinstance(recorded, Mapping):
        if notice:
            _notice_once(path, f"checkpoint '{path}' records no content hash; its weights cannot "
                               "be verified (re-save it with vggkit to add one)")
        return
    if meta.get(HASH_FORMAT_KEY, HASH_FORMAT) != HASH_FORMAT:
        if notice:
            _notice_once(path, f"checkpoint '{path}' records its content hash as "
                               f"{meta[HASH_FORMAT_KEY]!r}, unknown to this vggkit; its weights "
                               "are not verified (upgrade vggkit)")
        return
    identity = _file_id(path)
    if identity in _VERIFIED:
        return  # this very file was verified already (e.g. by the resume pre-check)
    verify_state_dict(state_dict, recorded, path)
    _VERIFIED.add(identity)
