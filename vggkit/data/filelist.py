"""Scanning a class-per-folder image tree once, with an on-disk cache.

A 1.28M-file ImageNet tree takes minutes to walk on network storage, so the
list is cached and reused while the tree is unchanged. "Unchanged" is judged
by the modification time of every *directory* scanned (adding, removing or
renaming a file changes its directory's mtime) and the presence of each class
folder: a thousand ``stat`` calls instead of a million directory entries.

The cache lives in the data root (``.vggkit_filelist.<key>.json.gz``) when the
root is writable, else in ``filelists/`` of the cache root (``$VGGKIT_CACHE``,
default ``~/.cache/vggkit``; :mod:`vggkit.paths`), keyed by the absolute root path, the classes and the extensions.
It is written atomically (temporary file + ``os.replace``).

:func:`scan_image_folder` is the one folder scan of every tool: training and
testing (:mod:`vggkit.data.datasets`), and the transfer tasks that ``vggkit
extract`` and ``vggkit transfer`` list images with, so they all see the same
files: every image under a class folder, sub-folders included. Images it
leaves out (directly in a root of class folders) are named in a warning.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

from vggkit import paths
from vggkit.fileio import atomic_write

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
                  ".gif")
CACHE_VERSION = 1

__all__ = ["FolderScan", "IMG_EXTENSIONS", "list_class_dirs", "scan_image_folder", "scan_tree",
           "top_images"]


def list_class_dirs(root: str) -> list[str]:
    """Sorted names of the sub-directories of ``root`` (hidden ones excluded)."""
    with os.scandir(root) as it:
        return sorted(e.name for e in it if e.is_dir(follow_symlinks=True)
                      and not e.name.startswith("."))


def top_images(folder: str, extensions: Sequence[str] = IMG_EXTENSIONS) -> list[str]:
    """Sorted names of the image files directly in ``folder`` (hidden ones excluded)."""
    exts = tuple(e.lower() for e in extensions)
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if not e.name.startswith(".")
                      and e.name.lower().endswith(exts) and e.is_file(follow_symlinks=True))


def _walk(directory: str, extensions: tuple[str, ...], mtimes: dict[str, int],
          root: str) -> list[str]:
    """Relative paths of the images under ``directory``, recursively, sorted."""
    files: list[str] = []
    rel = os.path.relpath(directory, root)
    rel = "" if rel == os.curdir else rel  # the root itself: paths are bare file names
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
    name = f".vggkit_filelist.{key}.json.gz"
    return [os.path.join(root, name), os.fspath(paths.cache_dir("filelists") / name[1:])]


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


@dataclass
class FolderScan:
    """The images of a folder, as :func:`scan_image_folder` found them.

    Attributes:
        root: the absolute folder.
        classes: class names, index order of ``samples``' labels.
        samples: ``(path relative to root, class index)`` per image, class by class.
        flat: the images lie directly in ``root`` and form one class named after it.
    """

    root: str
    classes: list[str]
    samples: list[tuple[str, int]]
    flat: bool = False


def scan_image_folder(root: str, classes: Sequence[str] | None = None, *,
                      class_filter: Callable[[str], bool] | None = None,
                      allow_flat: bool = False, extensions: Sequence[str] = IMG_EXTENSIONS,
                      cache: bool = True) -> FolderScan:
    """Every image of ``root/<class>/**`` (sub-folders included), or of a flat ``root``.

    Args:
        root: a folder of class folders (or, with ``allow_flat``, of images).
        classes: class folder names in index order; default the sorted
            sub-folders of ``root`` that ``class_filter`` accepts.
        allow_flat: a folder with images directly in it is one class named
            after it, holding every image under it, sub-folders included.
        extensions, cache: as :func:`scan_tree` (a flat folder is not cached:
            its cache file would change the very directory it validates).

    Images nothing takes (directly in a root of class folders) are left out
    with a warning naming them, and so is a flat folder's sub-folders' being
    read as part of its one class, so that no tool drops or merges files silently.
    """
    root = os.path.abspath(root)
    exts = tuple(e.lower() for e in extensions)
    loose = top_images(root, exts)
    if allow_flat and loose and classes is None:
        samples = [(rel, 0) for rel in _walk(root, exts, {}, root)]
        nested = len(samples) - len(loose)
        if nested:
            warnings.warn(
                f"folder '{root}' has {len(loose)} images directly in it and {nested} in its "
                f"sub-folders: all {len(samples)} are one class, "
                f"'{os.path.basename(root)}'; to label them by folder, move the "
                f"{len(loose)} top-level images into class folders", stacklevel=2)
        return FolderScan(root, [os.path.basename(root)], samples, flat=True)
    if classes is None:
        classes = [c for c in list_class_dirs(root) if class_filter is None or class_filter(c)]
    samples = scan_tree(root, classes, exts, cache)
    if loose:
        warnings.warn(
            f"{len(loose)} images directly in '{root}' (e.g. '{loose[0]}') belong to no class "
            "folder and are left out; move them into a class folder to use them", stacklevel=2)
    return FolderScan(root, list(classes), samples)
