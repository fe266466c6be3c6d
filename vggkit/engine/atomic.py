"""An mmengine file backend whose writes are atomic (:mod:`vggkit.fileio`).

mmengine saves checkpoints through ``backend.put(bytes, path)``, whose local
backend opens the final path and writes into it: a crash (SIGKILL, power,
full disk) leaves a truncated ``epoch_N.pth`` that the next ``--resume`` picks
up. This backend writes through :func:`vggkit.fileio.atomic_write_bytes`
instead (tmp file in the same directory, fsync, ``os.replace``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from vggkit.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["BACKEND_NAME", "AtomicLocalBackend", "atomic_write_bytes", "atomic_write_text"]

BACKEND_NAME = "vggkit_atomic_local"


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend with atomic ``put``/``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = "utf-8") -> None:
        atomic_write_text(filepath, obj, encoding)


# force=True: re-importing (e.g. after a plugin reload) must not fail
register_backend(BACKEND_NAME, AtomicLocalBackend, force=True)
