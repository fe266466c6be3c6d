"""Datasets: ImageNet (folder tree or list file) and a generic image folder.

Both are mmengine ``BaseDataset`` subclasses (``lazy_init`` works: class names
are known at construction, the file list is read on ``full_init``).
``get_data_info(i)`` gives ``img_path`` (absolute) and ``gt_label`` (int);
``metainfo['classes']`` holds the class names.

Bad images: ``bad_images='skip'`` (default) replaces a sample whose file fails
to decode by the next index (deterministic, so runs repeat exactly), and
records the file in :mod:`vggkit.data.bad_images` (logged by name at once,
summarised per epoch by the engine). ``'strict'`` raises the
:class:`~vggkit.data.io.BadImageError` naming the file. The same holds in
test mode (a replaced validation sample is counted twice; the log says which).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from mmengine.dataset import BaseDataset

from vggkit.data import bad_images as bad_images_log
from vggkit.data.filelist import IMG_EXTENSIONS, list_class_dirs, scan_image_folder
from vggkit.data.io import BadImageError

__all__ = ["DatasetLayoutError", "ImageFolder", "ImageNet", "IMAGENET_LAYOUT",
           "IMAGE_FOLDER_LAYOUT"]

IMAGE_FOLDER_LAYOUT = """\
  DATA_ROOT/
    <class_a>/xxx.jpg
    <class_a>/more/yyy.png     (sub-folders allowed)
    <class_b>/zzz.jpeg"""

IMAGENET_LAYOUT = """\
  DATA_ROOT/
    train/n01440764/n01440764_10026.JPEG   (one folder per synset, 1000 synsets)
    val/n01440764/ILSVRC2012_val_00000293.JPEG   (folder layout)
  or, for a list file (the ILSVRC val layout):
    val/ILSVRC2012_val_00000001.JPEG
    meta/val.txt   lines 'ILSVRC2012_val_00000001.JPEG 65' (index into sorted synsets)
                   or 'ILSVRC2012_val_00000001.JPEG n01751748' (synset)
  class indices are the sorted synset folder names of train/ (or classes=...)"""


class DatasetLayoutError(FileNotFoundError):
    """A data root that is missing or not laid out as the dataset expects."""


def read_classes(classes: str | Sequence[str]) -> list[str]:
    if isinstance(classes, (str, os.PathLike)):
        with open(classes, encoding="utf-8") as f:
            return [line.split()[0] for line in f if line.strip()]
    return [str(c) for c in classes]


class ImageDatasetBase(BaseDataset):
    """Shared bad-image policy and sample replacement."""

    def __init__(self, *, bad_images: str = "skip", pipeline: Sequence[Any] = (),
                 **kwargs: Any) -> None:
        self.bad_images = bad_images_log.check_policy(bad_images)
        # Built from vggkit's registry (which falls back to mmengine/mmcv's),
        # so pipelines work outside a runner whose default_scope is 'vggkit'.
        from vggkit.registry import TRANSFORMS
        pipeline = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(pipeline=pipeline, **kwargs)

    def prepare_data(self, idx: int) -> Any:
        try:
            return super().prepare_data(idx)
        except BadImageError as exc:
            if self.bad_images == "strict":
                raise
            bad_images_log.record(exc.path, exc.reason)
            return None

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        n = len(self)
        for attempt in range(min(self.max_refetch, n) + 1):
            data = self.prepare_data((idx + attempt) % n)
            if data is not None:
                return data
        raise RuntimeError(f"{type(self).__name__}: {attempt + 1} consecutive samples from index "
                           f"{idx} could not be loaded; see the skipped files logged above")


def _check_root(root: str, layout: str, what: str) -> None:
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"{what} directory '{root}' does not exist; expected layout:\n"
                                 f"{layout}")


class ImageFolder(ImageDatasetBase):
    """Any ``DATA_ROOT/<class>/**/<image>`` tree; class index = sorted folder name.

    Args:
        data_root: the folder of class folders.
        classes: class names (or a file with one per line) fixing the index
            order; default the sorted sub-folder names.
        extensions: image suffixes; default :data:`IMG_EXTENSIONS`.
        cache: cache the scanned file list (see :mod:`vggkit.data.filelist`).
        bad_images: 'skip' or 'strict' (see the module docstring).
        **kwargs: ``BaseDataset``'s (pipeline, test_mode, lazy_init, indices...).
    """

    def __init__(self, data_root: str, classes: str | Sequence[str] | None = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS, cache: bool = True,
                 bad_images: str = "skip", **kwargs: Any) -> None:
        root = os.path.abspath(os.path.expanduser(os.fspath(data_root)))
        _check_root(root, IMAGE_FOLDER_LAYOUT, "image folder")
        self.extensions = tuple(extensions)
        self.cache = cache
        names = read_classes(classes) if classes is not None else list_class_dirs(root)
        if not names:
            raise DatasetLayoutError(f"image folder '{root}' has no class sub-folders; expected "
                                     f"layout:\n{IMAGE_FOLDER_LAYOUT}")
        metainfo = dict(kwargs.pop("metainfo", None) or {}, classes=tuple(names))
        super().__init__(data_root=root, metainfo=metainfo, bad_images=bad_images, **kwargs)

    def load_data_list(self) -> list[dict]:
        root, classes = self.data_root, list(self.metainfo["classes"])
        samples = scan_image_folder(root, classes, extensions=self.extensions,
                                    cache=self.cache).samples
        if not samples:
            raise DatasetLayoutError(f"no images ({', '.join(self.extensions)}) found under "
                                     f"'{root}'; expected layout:\n{IMAGE_FOLDER_LAYOUT}")
        return [{"img_path": os.path.join(root, rel), "gt_label": label}
                for rel, label in samples]


class ImageNet(ImageDatasetBase):
    """ILSVRC-2012 as a synset folder tree or a ``path label`` list file.

    Both layouts share one class index: the sorted synset folders of
    ``DATA_ROOT/train`` (or ``classes``), so a list-file val set scores a
    folder-trained model correctly.

    Args:
        data_root: the ImageNet root (see :data:`IMAGENET_LAYOUT`).
        split: 'train' or 'val' (any sub-folder name works).
        ann_file: list file, relative to ``data_root`` or absolute; its image
            paths are relative to ``data_root/split``. Default: the folder
            tree if ``data_root/split`` has sub-folders, else
            ``meta/<split>.txt`` if it exists.
        classes: synset names (or a file, one per line, e.g. synsets.txt)
            fixing the index order; default sorted folders of ``train/``.
        cache, bad_images, **kwargs: as :class:`ImageFolder`.
    """

    def __init__(self, data_root: str, split: str = "train", ann_file: str | None = None,
                 classes: str | Sequence[str] | None = None, cache: bool = True,
                 bad_images: str = "skip", **kwargs: Any) -> None:
        root = os.path.abspath(os.path.expanduser(os.fspath(data_root)))
        _check_root(root, IMAGENET_LAYOUT, "ImageNet data root")
        self.split, self.cache = split, cache
        self.split_dir = os.path.join(root, split)
        if ann_file is None and not (os.path.isdir(self.split_dir)
                                     and list_class_dirs(self.split_dir)):
            default = os.path.join(root, "meta", f"{split}.txt")
            if not os.path.isfile(default):
                raise DatasetLayoutError(
                    f"ImageNet split '{split}': neither synset folders in '{self.split_dir}' nor "
                    f"a list file '{default}'; expected layout:\n{IMAGENET_LAYOUT}")
            ann_file = default
        self.list_file = None if ann_file is None else os.path.join(root, ann_file)
        if self.list_file is not None and not os.path.isfile(self.list_file):
            raise DatasetLayoutError(f"ImageNet list file '{self.list_file}' not found; expected "
                                     f"layout:\n{IMAGENET_LAYOUT}")
        names = self._classes(root, classes)
        metainfo = dict(kwargs.pop("metainfo", None) or {}, classes=tuple(names))
        super().__init__(data_root=root, metainfo=metainfo, bad_images=bad_images, **kwargs)

    def _classes(self, root: str, classes: str | Sequence[str] | None) -> list[str]:
        if classes is not None:
            return read_classes(classes)
        train = os.path.join(root, "train")
        if os.path.isdir(train) and list_class_dirs(train):
            return list_class_dirs(train)
        if self.list_file is None:  # folder layout without train/: its own folders
            return list_class_dirs(self.split_dir)
        labels = [label for _, label in self._read_list()]
        if all(label.isdigit() for label in labels):
            return [str(i) for i in range(max(int(label) for label in labels) + 1)]
        return sorted(set(labels))

    def _read_list(self) -> list[tuple[str, str]]:
        pairs = []
        with open(self.list_file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2:
                    raise ValueError(f"{self.list_file}:{n}: expected 'path label', got {line!r}")
                pairs.append((parts[0], parts[1]))
        return pairs

    def load_data_list(self) -> list[dict]:
        classes = list(self.metainfo["classes"])
        if self.list_file is None:
            unknown = sorted(set(list_class_dirs(self.split_dir)) - set(classes))
            if unknown:
                raise DatasetLayoutError(
                    f"'{self.split_dir}' has folders {unknown[:5]} that are not classes of "
                    f"'{os.path.join(self.data_root, 'train')}'; every split must use the same "
                    "synsets")
            samples = scan_image_folder(self.split_dir, classes, cache=self.cache).samples
            return [{"img_path": os.path.join(self.split_dir, rel), "gt_label": label}
                    for rel, label in samples]
        index = {name: i for i, name in enumerate(classes)}
        base = self.split_dir if os.path.isdir(self.split_dir) else self.data_root
        data = []
        for path, label in self._read_list():
            if label.isdigit():
                gt = int(label)
                if gt >= len(classes):
                    raise ValueError(f"{self.list_file}: label {gt} of '{path}' is out of range "
                                     f"for {len(classes)} classes")
            elif label in index:
                gt = index[label]
            else:
                raise ValueError(f"{self.list_file}: label '{label}' of '{path}' is not a known "
                                 "synset (classes come from the sorted folders of train/)")
            data.append({"img_path": os.path.join(base, path), "gt_label": gt})
        if not data:
            raise DatasetLayoutError(f"ImageNet list file '{self.list_file}' has no entries")
        return data
