"""Safe checkpoint loading for torch >= 2.6 with mmengine 0.10.x.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True`` and mmengine
0.10.7 calls it without the argument, so ``Runner.resume`` fails on the
``HistoryBuffer`` objects of mmengine's own message hub. Rather than loading
with ``weights_only=False`` (which runs arbitrary code from a checkpoint), we
allow-list exactly the types that mmengine checkpoints hold. This module is
imported by ``import vggkit``.
"""
from __future__ import annotations

import collections
import pickle
from typing import Any

import numpy as np
import torch


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
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(safe_globals())


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allow-list (possibly code)."""


def torch_load(path: str, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` and an error that names the file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint '{path}' does not exist") from None
    except Exception as exc:  # torch raises UnpicklingError for refused globals
        if "Weights only load failed" in str(exc) or "Unsupported global" in str(exc):
            # torch's message is long; keep the part after 'WeightsUnpickler error:'
            text = " ".join(str(exc).split())
            reason = text.split("WeightsUnpickler error:", 1)[-1].split(" Check the documentation")[0]
            raise UnsafeCheckpointError(
                f"refusing to load '{path}': it contains objects that are not weights "
                f"({reason.strip()[:500]}). Loading it could run code. "
                "If you trust and need it, convert it with tools/convert_weights.py in a "
                "sandbox; vggkit never loads with weights_only=False.") from None
        raise


install()
