"""Safe, checked checkpoint loading for torch >= 2.6 with mmengine 0.10.x.

Three guarantees, for every checkpoint vggkit reads:

* **No code runs.** Since torch 2.6 ``torch.load`` defaults to
  ``weights_only=True`` and mmengine 0.10.7 calls it without the argument, so
  ``Runner.resume`` fails on the ``HistoryBuffer`` objects of mmengine's own
  message hub. Rather than loading with ``weights_only=False`` (which runs
  arbitrary code from a checkpoint), we allow-list exactly the types that
  mmengine checkpoints hold (:func:`install`, run by ``import vggkit``).
  That allow-list, :func:`torch_load` and :func:`load_verified` are this module.
* **A damaged file is one clear error.** :func:`torch_load` inspects the file
  first (:mod:`vggkit.checkpoint_diagnosis`) and raises a
  :class:`CheckpointError` that names it and says what is wrong: empty,
  truncated, not a torch checkpoint, damaged, or holding code.
* **Damaged weights do not load silently.** Every checkpoint vggkit writes
  records a sha256 per tensor (:mod:`vggkit.content_hash`) in
  ``meta['state_dict_sha256']``; :func:`load_verified` checks it and names
  the first tensor whose bytes changed. Files without the record (torchvision
  or timm state dicts, older vggkit checkpoints) load as before, with one
  :class:`UnverifiedCheckpointWarning` per file.

mmengine's runner (``--resume``, ``load_from``) loads through the same code
(:func:`vggkit.engine.hooks.checkpoint.register_mmengine_loader`, run when that
module is imported).
"""
from __future__ import annotations

import collections
import os
import pickle
from typing import Any

import numpy as np
import torch

# the diagnosis and the content hash were written here: their names stay importable
from vggkit.checkpoint_diagnosis import (REPLACE, ZIP_MAGIC, CheckpointError,  # noqa: F401
                                         UnsafeCheckpointError, inspect_file, load_failure,
                                         read_head)
from vggkit.content_hash import (_VERIFIED, HASH_FORMAT, HASH_FORMAT_KEY,  # noqa: F401
                                 HASH_KEY, UnverifiedCheckpointWarning, state_dict_sha256,
                                 tensor_sha256, verify_loaded, verify_state_dict,
                                 with_content_hash)


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
        raise load_failure(path, exc) from exc


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
    mmap = read_head(path, 4) == ZIP_MAGIC if os.path.isfile(path) else False
    load_verified(path, mmap=mmap)


install()
