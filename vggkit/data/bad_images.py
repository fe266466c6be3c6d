"""Book-keeping of skipped (unreadable, truncated, bomb) image files.

With ``bad_images='skip'`` a dataset replaces a bad sample by another and calls
:func:`record`, which

1. logs the file's name at once (mmengine's current logger, else a
   ``warnings.warn``), in whichever process decoded it: a dataloader worker's
   log line reaches the terminal even though its memory is not shared;
2. counts it in this process;
3. appends ``path<TAB>reason`` to ``bad_images.tsv`` in the directory named by
   the environment variable ``VGGKIT_BAD_IMAGE_DIR`` when it is set (see
   :func:`set_log_dir`). Workers inherit the variable, and a line below
   ``PIPE_BUF`` bytes written with ``O_APPEND`` is atomic, so the main process
   can aggregate what every worker skipped.

The engine's hook calls :func:`summary` at each epoch end (it merges the
in-process counter with the shared file: best effort, since a worker may still
be writing) and :func:`reset` to start the next epoch afresh.
"""
from __future__ import annotations

import os
import threading
import warnings
from collections import Counter
from typing import Any

ENV_DIR = "VGGKIT_BAD_IMAGE_DIR"
FILE_NAME = "bad_images.tsv"

POLICIES = ("skip", "strict")

_LOCK = threading.Lock()
_COUNTS: Counter[str] = Counter()
_REASONS: dict[str, str] = {}


def check_policy(policy: str) -> str:
    """Validate a ``bad_images=`` value."""
    if policy not in POLICIES:
        raise ValueError(f"bad_images must be one of {POLICIES}, got {policy!r}")
    return policy


def set_log_dir(directory: str | os.PathLike | None) -> None:
    """Share skipped files across processes via ``directory/bad_images.tsv``.

    Call it in the main process before the dataloader workers start (they
    inherit the environment); ``None`` turns sharing off.
    """
    if directory is None:
        os.environ.pop(ENV_DIR, None)
        return
    os.makedirs(directory, exist_ok=True)
    os.environ[ENV_DIR] = os.path.abspath(os.fspath(directory))


def record(path: str, reason: str) -> None:
    """Count, log and (if sharing is on) append one skipped file."""
    with _LOCK:
        _COUNTS[path] += 1
        _REASONS[path] = reason
    message = f"vggkit: skipped bad image '{path}' ({reason})"
    _log(message)
    directory = os.environ.get(ENV_DIR)
    if directory:
        line = f"{path}\t{reason}".replace("\n", " ")[:3000] + "\n"
        fd = os.open(os.path.join(directory, FILE_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
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


def summary() -> dict[str, Any]:
    """Skipped files so far: ``{'count': n_skips, 'files': {path: reason}}``.

    Merges this process's counter with the shared file of all workers.
    """
    with _LOCK:
        counts = Counter(_COUNTS)
        reasons = dict(_REASONS)
    directory = os.environ.get(ENV_DIR)
    shared = os.path.join(directory, FILE_NAME) if directory else None
    if shared and os.path.exists(shared):
        shared_counts: Counter[str] = Counter()
        with open(shared, encoding="utf-8", errors="replace") as f:
            for line in f:
                path, _, reason = line.rstrip("\n").partition("\t")
                shared_counts[path] += 1
                reasons.setdefault(path, reason)
        # the file holds this process's records too: take the larger count
        for path, n in shared_counts.items():
            counts[path] = max(counts[path], n)
    return {"count": sum(counts.values()), "files": {p: reasons[p] for p in sorted(counts)}}


def format_summary(info: dict[str, Any] | None = None, limit: int = 20) -> str:
    """One human line (plus up to ``limit`` file names) for the epoch-end log."""
    info = summary() if info is None else info
    if not info["count"]:
        return "vggkit: no bad images skipped"
    files = list(info["files"].items())
    lines = [f"vggkit: skipped {info['count']} bad image(s) in {len(files)} file(s):"]
    lines += [f"  {p}: {r}" for p, r in files[:limit]]
    if len(files) > limit:
        lines.append(f"  ... and {len(files) - limit} more")
    return "\n".join(lines)


def reset() -> None:
    """Forget the counts (in this process and the shared file)."""
    with _LOCK:
        _COUNTS.clear()
        _REASONS.clear()
    directory = os.environ.get(ENV_DIR)
    if directory:
        try:
            os.remove(os.path.join(directory, FILE_NAME))
        except FileNotFoundError:
            pass
