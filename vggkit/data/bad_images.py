"""Book-keeping of skipped (unreadable, truncated, bomb) image files.

With ``bad_images='skip'`` a dataset replaces a bad sample by another and calls
:func:`record`, which

1. logs the file's name at once (mmengine's current logger, else a
   ``warnings.warn``), in whichever process decoded it: a dataloader worker's
   log line reaches the terminal even though its memory is not shared;
2. remembers it in this process, under the split being loaded (``train``,
   ``val``: see :func:`set_split`);
3. appends ``path<TAB>reason`` to ``bad_images.<split>.tsv`` in the directory
   named by the environment variable ``VGGKIT_BAD_IMAGE_DIR`` when it is set
   (see :func:`set_log_dir`). Workers inherit the variable, and a line below
   ``PIPE_BUF`` bytes written with ``O_APPEND`` is atomic, so the main process
   can aggregate what every worker skipped.

Counts are of distinct files: a file read again (a retry, a replacement that
is itself bad) is one bad image. The engine's hook calls :func:`summary` for
each split at the end of its epoch (it merges the in-process record with the
shared files: best effort, since a worker may still be writing) and
:func:`reset` of that split to start its next epoch afresh.
"""
from __future__ import annotations

import os
import threading
import warnings
from typing import Any

ENV_DIR = "VGGKIT_BAD_IMAGE_DIR"
#: the split (``train``, ``val``) whose data are being loaded; set by the engine's hook
#: before each epoch, so dataloader workers forked for that epoch inherit it
ENV_SPLIT = "VGGKIT_BAD_IMAGE_SPLIT"
FILE_NAME = "bad_images.tsv"

POLICIES = ("skip", "strict")

_LOCK = threading.Lock()
_REASONS: dict[tuple[str, str], str] = {}  # (split, path) -> reason


def check_policy(policy: str) -> str:
    """Validate a ``bad_images=`` value."""
    if policy not in POLICIES:
        raise ValueError(f"bad_images must be one of {POLICIES}, got {policy!r}")
    return policy


def set_log_dir(directory: str | os.PathLike | None) -> None:
    """Share skipped files across processes via ``directory/bad_images*.tsv``.

    Call it in the main process before the dataloader workers start (they
    inherit the environment); ``None`` turns sharing off.
    """
    if directory is None:
        os.environ.pop(ENV_DIR, None)
        return
    os.makedirs(directory, exist_ok=True)
    os.environ[ENV_DIR] = os.path.abspath(os.fspath(directory))


def set_split(split: str | None) -> None:
    """Tag what is skipped from now on (in this process and workers it forks) with ``split``."""
    if split:
        os.environ[ENV_SPLIT] = split
    else:
        os.environ.pop(ENV_SPLIT, None)


def _split(split: str | None) -> str:
    return os.environ.get(ENV_SPLIT, "") if split is None else split


def _shared_file(directory: str, split: str) -> str:
    # one file per split, so resetting one split never rewrites another's lines
    return os.path.join(directory, f"bad_images.{split}.tsv" if split else FILE_NAME)


def record(path: str, reason: str, split: str | None = None) -> None:
    """Log and remember (if sharing is on, append) one skipped file of ``split``.

    ``split`` defaults to the one :func:`set_split` chose. A file skipped again
    (a retry, a later sample replaced by it) is logged again but counted once.
    """
    split = _split(split)
    with _LOCK:
        _REASONS[(split, path)] = reason
    message = f"vggkit: skipped bad image '{path}' ({reason})"
    _log(message)
    directory = os.environ.get(ENV_DIR)
    if directory:
        line = f"{path}\t{reason}".replace("\n", " ")[:3000] + "\n"
        fd = os.open(_shared_file(directory, split), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     0o644)
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)


def _log(message: str) -> None:
    from mmengine.logging import MMLogger
    # A runner (or tool) created a logger: use it, so the line lands in the
    # run's log file; otherwise a plain warning, visible in any script.
    if MMLogger._instance_dict:
        MMLogger.get_current_instance().warning(message)
    else:
        warnings.warn(message, stacklevel=3)


def _shared_files(directory: str | None, split: str | None) -> list[tuple[str, str]]:
    """``(split, file)`` of every shared file of ``split`` (None: all splits)."""
    if not directory or not os.path.isdir(directory):
        return []
    out = []
    for name in sorted(os.listdir(directory)):
        if name == FILE_NAME:
            found = ""
        elif name.startswith("bad_images.") and name.endswith(".tsv"):
            found = name[len("bad_images."):-len(".tsv")]
        else:
            continue
        if split is None or found == split:
            out.append((found, os.path.join(directory, name)))
    return out


def summary(split: str | None = None) -> dict[str, Any]:
    """Distinct files skipped so far: ``{'count': n_files, 'files': {path: reason}}``.

    ``split``: only that split's files (None: every split's). Merges this
    process's record with the shared files of all workers.
    """
    with _LOCK:
        reasons = {path: r for (s, path), r in _REASONS.items() if split is None or s == split}
    for _, shared in _shared_files(os.environ.get(ENV_DIR), split):
        with open(shared, encoding="utf-8", errors="replace") as f:
            for line in f:
                path, _, reason = line.rstrip("\n").partition("\t")
                reasons.setdefault(path, reason)
    return {"count": len(reasons), "files": dict(sorted(reasons.items()))}


def format_summary(info: dict[str, Any] | None = None, limit: int = 20,
                   split: str | None = None) -> str:
    """One human line (plus up to ``limit`` file names) for the epoch-end log."""
    info = summary(split) if info is None else info
    where = f" in {split}" if split else ""
    if not info["count"]:
        return f"vggkit: no bad images skipped{where}"
    files = list(info["files"].items())
    lines = [f"vggkit: skipped {info['count']} bad image(s){where}:"]
    lines += [f"  {p}: {r}" for p, r in files[:limit]]
    if len(files) > limit:
        lines.append(f"  ... and {len(files) - limit} more")
    return "\n".join(lines)


def reset(split: str | None = None) -> None:
    """Forget the skipped files of ``split`` (None: all), here and in the shared files."""
    with _LOCK:
        for key in [k for k in _REASONS if split is None or k[0] == split]:
            del _REASONS[key]
    for _, shared in _shared_files(os.environ.get(ENV_DIR), split):
        try:
            os.remove(shared)
        except FileNotFoundError:
            pass
