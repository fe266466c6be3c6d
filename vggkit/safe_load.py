"""Safe, checked checkpoint loading for torch >= 2.6 with mmengine 0.10.x.

Three guarantees, for every checkpoint vggkit reads:

* **No code runs.** Since torch 2.6 ``torch.load`` defaults to
  ``weights_only=True`` and mmengine 0.10.7 calls it without the argument, so
  ``Runner.resume`` fails on the ``HistoryBuffer`` objects of mmengine's own
  message hub. Rather than loading with ``weights_only=False`` (which runs
  arbitrary code from a checkpoint), we allow-list exactly the types that
  mmengine checkpoints hold (:func:`install`, run by ``import vggkit``).
* **A damaged file is one clear error.** :func:`torch_load` inspects the file
  (size, zip layout, the CRC-32 of its pickle) and raises a
  :class:`CheckpointError` that names it and says what is wrong: empty,
  truncated, not a torch checkpoint, damaged, or holding code.
* **Damaged weights do not load silently.** Every checkpoint vggkit writes
  records a sha256 per tensor (:func:`state_dict_sha256`) in
  ``meta['state_dict_sha256']``; :func:`load_verified` checks it and names
  the first tensor whose bytes changed. Files without the record (torchvision
  or timm state dicts, older vggkit checkpoints) load as before, with one
  :class:`UnverifiedCheckpointWarning` per file.

mmengine's runner (``--resume``, ``load_from``) loads through the same code
once :func:`register_mmengine_loader` has run (the engine's checkpoint hook
module does it on import).
"""
from __future__ import annotations

import collections
import hashlib
import os
import pickle
import struct
import warnings
import zipfile
import zlib
from typing import Any, Mapping, Optional

import numpy as np
import torch

from vggkit.errors import UserError

#: meta key of the per-tensor content hashes, and of the recipe they follow
HASH_KEY = "state_dict_sha256"
HASH_FORMAT_KEY = "state_dict_sha256_format"
#: sha256 over f"{dtype}:{shape}:" (e.g. "torch.float32:64,3,3,3:") then the raw bytes
HASH_FORMAT = "vggkit/1 sha256(dtype:shape:bytes)"
#: what to do about a damaged file, whoever wrote it
_REPLACE = ("replace it with an intact copy (re-download it, re-convert it, or resume from an "
            "earlier checkpoint)")
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used: the message names it and says why."""


class UnsafeCheckpointError(CheckpointError, RuntimeError):
    """A checkpoint holds objects outside the allow-list (possibly code)."""


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint records no content hash, so its weights cannot be verified."""


# -- the allow-list ----------------------------------------------------------------
def _numpy_globals() -> list[Any]:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed core
    found: list[Any] = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    # numpy pickles a dtype by its class, e.g. numpy.dtypes.Float64DType
    found += [type(np.dtype(t)) for t in (
        np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
        np.uint8, np.bool_)]
    return found


def _history_buffer_getattr(obj: Any, name: Any) -> Any:
    """The one use of ``getattr`` in mmengine checkpoints, and nothing else.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods (``min``,
    ``max``, ...) as ``getattr(HistoryBuffer, 'min')``. A general ``getattr``
    would let a pickle walk from any allowed object to ``os.system``, so the
    allow-list maps the pickled name to this restricted version instead.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if (obj is HistoryBuffer and isinstance(name, str) and not name.startswith("_")
            and callable(vars(HistoryBuffer).get(name))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"refusing getattr({obj!r}, {name!r}) in a checkpoint: only HistoryBuffer's "
        "statistics methods may be looked up")


def safe_globals() -> list[Any]:
    """The types mmengine writes into checkpoints (message hub, meta, optimiser)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, collections.OrderedDict, collections.defaultdict, *_numpy_globals(),
            (_history_buffer_getattr, "__builtin__.getattr"),
            (_history_buffer_getattr, "builtins.getattr")]


def install() -> None:
    """Allow-list mmengine's checkpoint types for ``weights_only`` loading."""
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(safe_globals())


# -- what is wrong with a file (inspected, not guessed from torch's message) --------
def _head(path: str, size: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _zip_problem(path: str, size: int) -> Optional[CheckpointError]:
    """Why a file that starts like a zip archive is not a readable torch checkpoint."""
    where = f"checkpoint '{path}'"
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        # the directory sits at the end of a zip: without it the file was cut short
        return CheckpointError(f"{where} is truncated ({size} bytes; its zip directory at the "
                               f"end is missing): it was not written or copied completely; "
                               f"{_REPLACE}")
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.rsplit("/", 1)[-1] == "data.pkl"]
        if not pickles:
            if any("/data/" in n or n.endswith(("/byteorder", "/version")) for n in names):
                return CheckpointError(f"{where} is damaged (its zip directory lists no "
                                       f"data.pkl); {_REPLACE}")
            return CheckpointError(f"{where} is not a torch checkpoint (a zip archive without "
                                   f"torch's data.pkl, holding e.g. {names[:3]}); pass the "
                                   ".pth file written by torch.save or vggkit")
        return _pickle_crc_problem(archive, pickles[0], where)


def _pickle_crc_problem(archive: zipfile.ZipFile, name: str, where: str
                        ) -> Optional[CheckpointError]:
    """A damaged ``data.pkl`` (zipfile checks its CRC-32 while reading it)."""
    if archive.getinfo(name).CRC == 0:
        return None  # written with torch.serialization.set_crc32_options(False)
    try:
        archive.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error):
        return CheckpointError(f"{where} is damaged: its pickled structure (data.pkl) fails its "
                               f"CRC-32 check; {_REPLACE}")
    return None


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c in "\t\r\n" for c in text)
    return printable >= 0.95 * max(1, len(text))


def _foreign_kind(head: bytes) -> str:
    """What a file that is no torch checkpoint looks like, with the fix."""
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights; fetch them with `git lfs pull`"
    if len(head) > 8 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 0:
        return ("a safetensors file; convert it with tools/convert_weights.py "
                "--src {torchvision,timm,mmpretrain} FILE.safetensors OUT.pth")
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file; decompress it first"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (Keras weights?); vggkit reads torch checkpoints"
    if _looks_like_text(head):
        first = head.decode("utf-8", errors="replace").splitlines()[0][:40]
        return f"a text file starting {first!r}; pass the .pth file written by torch.save"
    return f"a file starting with bytes {head[:8]!r}; pass the .pth file written by torch.save"


def inspect_file(path: str) -> Optional[CheckpointError]:
    """What is wrong with ``path`` as a torch checkpoint, if its layout shows it.

    Cheap (reads the zip directory and the pickle, not the tensors). Returns
    None when the file looks like a torch checkpoint, zip or legacy format.
    """
    size = os.path.getsize(path)
    if size == 0:
        return CheckpointError(f"checkpoint '{path}' is empty (0 bytes): it was never written "
                               f"completely; {_REPLACE}")
    head = _head(path)
    if head.startswith(_ZIP_MAGIC) or (size < len(_ZIP_MAGIC) and _ZIP_MAGIC.startswith(head)):
        return _zip_problem(path, size)
    if head.startswith(b"\x80"):  # a pickle: torch's legacy (pre-1.6) format
        return None
    return CheckpointError(f"'{path}' is not a torch checkpoint: it is {_foreign_kind(head)}")


def _torch_reason(exc: BaseException) -> str:
    """The informative part of torch's (long) message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker in ("WeightsUnpickler error:", "from a trusted source."):
        text = text.split(marker, 1)[-1]
    text = text.split(" Check the documentation")[0].split(" This is an internal miniz")[0]
    return text.strip()[:300]


def _load_failure(path: str, exc: BaseException) -> CheckpointError:
    """The error for a ``torch.load`` failure of a file :func:`inspect_file` passed."""
    reason = _torch_reason(exc)
    refused = "Weights only load failed" in str(exc) and not reason.startswith(
        "Unsupported operand")  # an unknown opcode is garbage, not a refused object
    if refused:
        return UnsafeCheckpointError(
            f"refusing to load checkpoint '{path}': it contains objects that are not weights "
            f"({reason}), and loading it could run code. If you trust it, extract its state_dict "
            "in a sandbox (torch.load(..., weights_only=False)) and save that with "
            "vggkit.models.save_checkpoint; vggkit never loads with weights_only=False.")
    return CheckpointError(f"checkpoint '{path}' is damaged ({type(exc).__name__}: {reason}); "
                           f"{_REPLACE}")


def torch_load(path: str, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True`` and one clear error per bad file.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        CheckpointError: empty, truncated, damaged or not a torch checkpoint.
        UnsafeCheckpointError: the file holds objects that are not weights.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    problem = inspect_file(path)
    if problem is not None:
        raise problem
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (MemoryError, OSError):
        raise  # not the file's fault, or already naming it (permissions, a directory)
    except Exception as exc:  # noqa: BLE001 - every other failure is the file's content
        raise _load_failure(path, exc) from exc


# -- content hashes ----------------------------------------------------------------
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
                              f"recorded sha256 list but missing from its state_dict; {_REPLACE}")
    extra = [k for k in tensors if k not in recorded]
    if extra:
        raise CheckpointError(f"checkpoint '{path}' is damaged: tensor '{extra[0]}' has no "
                              "recorded sha256 (the state_dict was changed after it was saved); "
                              f"{_REPLACE}, or re-save it with vggkit.models.save_checkpoint")


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
                f"after it was written; {_REPLACE}")


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


def load_verified(path: str, map_location: Any = "cpu", notice: bool = True,
                  mmap: bool = False) -> Any:
    """:func:`torch_load` plus :func:`verify_loaded`: the way vggkit reads a checkpoint."""
    obj = torch_load(path, map_location=map_location, mmap=mmap)
    verify_loaded(obj, path, notice=notice)
    return obj


def check_checkpoint_file(path: str) -> None:
    """Fail early, with the same error a full load would give, if ``path`` is unusable.

    Loads the file memory-mapped (the tensors are read once, for the hash,
    not copied), so the later real load finds it verified and in the page cache.
    """
    mmap = _head(path, 4) == _ZIP_MAGIC if os.path.isfile(path) else False
    load_verified(path, mmap=mmap)


# -- mmengine's runner -------------------------------------------------------------
def load_from_vggkit(filename: str, map_location: Any = None) -> Any:
    """mmengine's local checkpoint loader, through :func:`load_verified`.

    (mmengine logs the name after ``load_from_``: "Loads checkpoint by vggkit backend".)
    """
    filename = os.path.expanduser(filename)
    return load_verified(filename, map_location=map_location)


def register_mmengine_loader() -> None:
    """Make mmengine's runner (resume, ``load_from``) load local files like vggkit does."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes="", loader=load_from_vggkit, force=True)


install()
