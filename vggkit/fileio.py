"""Atomic file writes: the one place vggkit writes a file that must never be half there.

Every writer here writes to a temporary file in the target's directory,
fsyncs it, then ``os.replace``s it over the target -- the rename is atomic on
POSIX, so a reader (or a resumed run) sees the old file or the new one, never
a truncated one; a failed write leaves the old file and no temporary. The
new file gets the permissions ``open()`` would give (0666 & ~umask), not
``mkstemp``'s 0600.

It is also where vggkit remembers which user-named outputs it wrote: an
output path a command checked with :func:`claim_output` is recorded, once
written, under ``$VGGKIT_CACHE/outputs/``, so that a later run may replace
that file and no other (:func:`written_by_vggkit`).
"""
from __future__ import annotations

import hashlib
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

#: outputs this process may write over, as claimed by :func:`claim_output`
_CLAIMED: set[str] = set()


def claim_output(path: PathLike) -> None:
    """Mark ``path`` as an output this run writes, so that writing it is remembered.

    Raises:
        FileExistsError: a file is at ``path`` that vggkit did not write, or that
            changed since it did: vggkit never overwrites a file it did not write.
    """
    real = os.path.realpath(path)
    if os.path.isfile(real) and not written_by_vggkit(real):
        raise FileExistsError(
            f"'{path}' exists and was not written by vggkit (or changed since): vggkit "
            "never overwrites a file it did not write; remove it or choose another path")
    _CLAIMED.add(real)


def file_sha256(path: PathLike, chunk: int = 1 << 22) -> str:
    """The hex SHA-256 of a file, read in chunks of ``chunk`` bytes (constant memory).

    Not hashlib's ``file_digest``: that needs Python 3.11 and vggkit supports 3.10.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def written_by_vggkit(path: PathLike) -> bool:
    """``path`` is as vggkit last wrote it (same size and modification time)."""
    real = os.path.realpath(path)
    try:
        with open(_journal_entry(real), encoding="utf-8") as f:
            entry = json.load(f)
        stat = os.stat(real)
    except (OSError, ValueError):
        return False
    return (isinstance(entry, dict) and entry.get("path") == real
            and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns)


def _journal_entry(real: str) -> Path:
    from vggkit import paths
    return paths.cache_dir("outputs") / (hashlib.sha256(real.encode()).hexdigest()[:32] + ".json")


def _remember(path: Path) -> None:
    real = os.path.realpath(path)
    if real not in _CLAIMED:
        return  # a store's shard, a checkpoint...: not a path the user named
    stat = os.stat(real)
    try:  # the journal is a convenience: an unwritable cache must not fail the output
        atomic_write_json(_journal_entry(real), {"path": real, "size": stat.st_size,
                                                 "mtime_ns": stat.st_mtime_ns})
    except OSError:
        pass


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
    _remember(path)


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
