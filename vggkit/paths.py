"""Where vggkit keeps what it caches: one root, the same sub-folders whatever sets it.

The root is ``$VGGKIT_CACHE``, else ``$XDG_CACHE_HOME/vggkit`` (default
``~/.cache/vggkit``); every kind of cached data has its folder under it --
``weights/`` (converted checkpoints and downloads), ``autotune/`` (measured
backend choices), ``filelists/`` (folder scans of read-only data roots),
``outputs/`` (which user-named output files vggkit wrote, see :mod:`vggkit.fileio`),
``digits-v1/`` (the demo's data) -- so ``VGGKIT_CACHE=~/.cache/vggkit`` names
the very folders the default uses.
"""
from __future__ import annotations

import os
from pathlib import Path

#: the sub-folders of the root, by kind (the folder's name)
KINDS = ("weights", "autotune", "filelists", "outputs", "digits-v1", "digits10-v1", "loc-digits-v1")


def cache_root() -> Path:
    """``$VGGKIT_CACHE``, else ``$XDG_CACHE_HOME/vggkit`` (``~/.cache/vggkit``)."""
    if os.environ.get("VGGKIT_CACHE"):
        return Path(os.environ["VGGKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vggkit"


def cache_dir(kind: str) -> Path:
    """The folder of ``kind`` (one of :data:`KINDS`) under :func:`cache_root`; not created."""
    if kind not in KINDS:  # a typo would scatter files next to the real folders
        raise ValueError(f"unknown cache kind {kind!r}; known: {', '.join(KINDS)}")
    return cache_root() / kind
