"""Atomic, byte-reproducible writers of the arrays and JSON a feature store is made of.

Each file is written to a temporary name in its directory and renamed into place
(:mod:`vggkit.fileio`), so a killed run leaves only whole files; the store
(:mod:`vggkit.features.store`) decides what goes where.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import numpy as np

from vggkit.fileio import atomic_write, atomic_write_bytes, atomic_write_json


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    atomic_write_json(path, obj, indent=1, sort_keys=True)


def npy_bytes(array: np.ndarray) -> bytes:
    """The bytes ``np.save`` writes for ``array`` (no pickles)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_npy(path: str, array: np.ndarray) -> None:
    """``np.save`` atomically (no pickles)."""
    atomic_write_bytes(path, npy_bytes(array))


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` ``np.load`` reads, written atomically and byte-reproducibly.

    ``np.savez`` stamps the current time into the zip; a fixed stamp makes the
    same arrays give the same bytes.
    """
    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(arrays[name]), allow_pickle=False)
    atomic_write(path, write)


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
