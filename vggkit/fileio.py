"""Atomic file writes: the one place vggkit writes a file that must never be half there.

Every writer here writes to a temporary file in the target's directory,
fsyncs it, then ``os.replace``s it over the target -- the rename is atomic on
POSIX, so a reader (or a resumed run) sees the old file or the new one, never
a truncated one; a failed write leaves the old file and no temporary. The
new file gets the permissions ``open()`` would give (0666 & ~umask), not
``mkstemp``'s 0600.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

PathLike = Union[str, os.PathLike]


def _file_mode() -> int:
    # mkstemp creates 0600; give the file what open() would have: 0666 & ~umask
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then move it into place.

    ``write`` gets the temporary file's path (it may open it, memory-map it,
    or hand it to ``torch.save`` ...). Missing parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, _MODE)
        finally:
            os.close(fd)
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_write(path, write)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: PathLike, obj: Any, *, indent: int | None = 2,
                      sort_keys: bool = False, default: Callable[[Any], Any] | None = None) -> None:
    """Write ``obj`` as JSON (plus a final newline) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys,
                                       default=default) + "\n")


def atomic_torch_save(path: PathLike, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch  # keep `import vggkit.fileio` free of torch
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_savefig(path: PathLike, fig: Any, **kwargs: Any) -> None:
    """``fig.savefig`` to ``path`` atomically; the format follows ``path``'s extension."""
    fmt = kwargs.pop("format", None) or Path(path).suffix.lstrip(".") or None
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def _fsync_path(path: str) -> None:
    # writers close their file; reopen to flush the data to disk before the rename
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # makes the rename itself durable; not supported everywhere (e.g. Windows)
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
