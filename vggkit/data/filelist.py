"""Scanning a class-per-folder image tree once, with an on-disk cache.

A 1.28M-file ImageNet tree takes minutes to walk on network storage, so the
list is cached and reused while the tree is unchanged. "Unchanged" is judged
by the modification time of every *directory* scanned (adding, removing or
renaming a file changes its directory's mtime) and the presence of each class
folder: a thousand ``stat`` calls instead of a million directory entries.

The cache lives in the data root (``.vggkit_filelist.<key>.json.gz``) when the
root is writable, else in ``$XDG_CACHE_HOME/vggkit/filelists`` (default
``~/.cache``), keyed by the absolute root path, the classes and the extensions.
It is written atomically (temporary file + ``os.replace``).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from typing import Sequence

from vggkit.fileio import atomic_write

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
                  ".gif")
CACHE_VERSION = 1

__all__ = ["IMG_EXTENSIONS", "list_class_dirs", "scan_tree"]


def list_class_dirs(root: str) -> list[str]:
    """Sorted names of the sub-directories of ``root`` (hidden ones excluded)."""
    with os.scandir(root) as it:
        return sorted(e.name for e in it if e.is_dir(follow_symlinks=True)
                      and not e.name.startswith("."))


def _walk(directory: str, extensions: tuple[str, ...], mtimes: dict[str, int],
          root: str) -> list[str]:
    """Relative paths of the images under ``directory``, recursively, sorted."""
    files: list[str] = []
    rel = os.path.relpath(directory, root)
    mtimes[rel] = os.stat(directory).st_mtime_ns
    subdirs = []
    with os.scandir(directory) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=True):
                subdirs.append(entry.path)
            elif entry.name.lower().endswith(extensions):
                files.append(os.path.join(rel, entry.name))
    files.sort()
    for sub in sorted(subdirs):
        files.extend(_walk(sub, extensions, mtimes, root))
    return files


def _cache_paths(root: str, key: str) -> list[str]:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = f".vggkit_filelist.{key}.json.gz"
    return [os.path.join(root, name), os.path.join(base, "vggkit", "filelists", name[1:])]


def _load_cache(path: str, root: str) -> list[list] | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            cached = json.load(f)
    except (OSError, ValueError, EOFError):
        return None
    if cached.get("version") != CACHE_VERSION or cached.get("root") != root:
        return None
    mtimes = cached["mtimes"]
    for rel, mtime in mtimes.items():
        try:
            if os.stat(os.path.join(root, rel)).st_mtime_ns != mtime:
                return None
        except OSError:
            return None
    # a class folder that was missing at scan time and exists now
    if any(c not in mtimes and os.path.isdir(os.path.join(root, c)) for c in cached["classes"]):
        return None
    return cached["samples"]


def _save_cache(path: str, payload: dict) -> bool:
    def write(tmp: str) -> None:
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            json.dump(payload, f)
    try:
        atomic_write(path, write)
        return True
    except OSError:  # read-only root: the caller tries the user cache dir
        return False


def scan_tree(root: str, classes: Sequence[str], extensions: Sequence[str] = IMG_EXTENSIONS,
              cache: bool = True) -> list[tuple[str, int]]:
    """``[(relative path, class index)]`` of every image in ``root/<class>/**``.

    Args:
        root: directory holding one sub-directory per class.
        classes: class directory names; index = position in this list.
        extensions: lower-case file suffixes counted as images.
        cache: reuse / write the cached list (see the module docstring).
    """
    root = os.path.abspath(root)
    exts = tuple(e.lower() for e in extensions)
    key = hashlib.sha1(json.dumps([root, list(classes), exts]).encode()).hexdigest()[:16]
    paths = _cache_paths(root, key)
    if cache:
        for path in paths:
            samples = _load_cache(path, root)
            if samples is not None:
                return [(rel, int(label)) for rel, label in samples]
    mtimes: dict[str, int] = {}
    samples: list[tuple[str, int]] = []
    from tqdm import tqdm
    for label, name in enumerate(tqdm(classes, desc=f"scanning {root}", unit="class",
                                      disable=len(classes) < 50, leave=False)):
        class_dir = os.path.join(root, name)
        if not os.path.isdir(class_dir):
            continue
        samples.extend((rel, label) for rel in _walk(class_dir, exts, mtimes, root))
    if cache:
        payload = {"version": CACHE_VERSION, "root": root, "classes": list(classes),
                   "mtimes": mtimes, "samples": samples}
        for path in paths:
            if _save_cache(path, payload):
                break
    return samples
