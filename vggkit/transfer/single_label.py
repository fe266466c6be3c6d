"""Single-label tasks: class folders, per-class random splits, class recall.

:class:`SingleLabelTask` holds what Caltech-101/256 and any image folder share:
a scan of ``<root>/<class>/<image>`` folders and seeded per-class splits of
``n_train`` training and up to ``n_test`` test images. :class:`ImageFolderTask`
is the core task any user's own data set works with.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from vggkit.transfer.metrics import accuracy, confusion_matrix, mean_class_recall, per_class_recall
from vggkit.transfer.task import (IMAGE_EXTENSIONS, Split, TaskData, TaskLayoutError,
                                  TransferTask, check_min_per_class)


def list_images(folder: str) -> list[str]:
    """Image files directly in ``folder`` (sorted, hidden files skipped)."""
    return sorted(f for f in os.listdir(folder)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, f)))


def scan_class_folders(root: str, layout: str, *, class_filter: Callable[[str], bool] | None = None,
                       subset: str = "") -> TaskData:
    """One class per sub-folder of ``root``; ids are ``<class>/<file>``.

    Raises:
        TaskLayoutError: ``root`` is missing or holds no class folder with images.
    """
    if not os.path.isdir(root):
        raise TaskLayoutError(f"data root {root} does not exist; expected layout: {layout}")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                     and not d.startswith(".") and (class_filter is None or class_filter(d)))
    ids, paths, labels = [], [], []
    for c, name in enumerate(classes):
        for f in list_images(os.path.join(root, name)):
            ids.append(f"{name}/{f}")
            paths.append(os.path.join(root, name, f))
            labels.append(c)
    if not ids:
        raise TaskLayoutError(f"no images found under {root}; expected layout: {layout}")
    return TaskData(ids=ids, paths=paths, labels=np.asarray(labels, dtype=np.int64),
                    classes=classes, subsets=[subset] * len(ids), root=root)


class SingleLabelTask(TransferTask):
    """Class folders, ``n_splits`` seeded splits of ``n_train`` / up to ``n_test`` per class.

    Args:
        n_train: training images per class (an int), or None to use ``train_fraction``.
        n_test: maximum test images per class (None: all the rest).
        train_fraction: fraction of each class used for training when ``n_train`` is None.
    """

    multilabel = False
    metric_name = "mean_class_recall"
    layout = "<root>/<class>/<image>.jpg"

    def __init__(self, n_train: int | None = None, n_test: int | None = None,
                 train_fraction: float = 0.5) -> None:
        self.n_train, self.n_test, self.train_fraction = n_train, n_test, float(train_fraction)
        if n_train is None and not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")

    def class_root(self, data_root: str) -> str:
        """The folder holding the class folders."""
        return data_root

    def scan(self, data_root: str) -> TaskData:
        data = scan_class_folders(self.class_root(data_root), self.layout)
        counts = np.bincount(data.labels, minlength=len(data.classes))
        need = (self.n_train if self.n_train is not None else 1) + 1
        check_min_per_class(counts, data.classes, need,
                            f"task '{self.name}' ({self.n_train or 'a fraction'} training + "
                            "at least 1 test image per class)", data.root)
        return data

    def splits(self, data: TaskData, n_splits: int | None = None, seed: int = 0) -> list[Split]:
        n_splits = self.default_splits if n_splits is None else int(n_splits)
        labels = np.asarray(data.labels)
        counts = np.bincount(labels, minlength=len(data.classes))
        if self.n_train is not None:
            check_min_per_class(counts, data.classes, self.n_train + 1,
                                f"task '{self.name}' ({self.n_train} training + at least 1 test "
                                "image per class)", data.root)
        out = []
        for s in range(n_splits):
            split_seed = seed + s
            # one generator per split so split k is the same whatever n_splits is
            rng = np.random.default_rng(split_seed)
            train, test = [], []
            for c in range(len(data.classes)):
                idx = rng.permutation(np.flatnonzero(labels == c))
                k = self.n_train if self.n_train is not None else max(
                    1, min(len(idx) - 1, int(round(self.train_fraction * len(idx)))))
                train.append(idx[:k])
                rest = idx[k:]
                test.append(rest if self.n_test is None else rest[:self.n_test])
            out.append(Split(name=f"split{s}", train=np.sort(np.concatenate(train)),
                             test=np.sort(np.concatenate(test)), seed=split_seed,
                             info={"n_train": self.n_train, "n_test": self.n_test}))
        return out

    def evaluate(self, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        scores = np.asarray(scores)
        cm = confusion_matrix(scores.argmax(1), labels, scores.shape[1])
        return {"mean_class_recall": mean_class_recall(cm), "accuracy": accuracy(cm),
                "per_class": [float(v) for v in per_class_recall(cm)],
                "confusion_matrix": cm.tolist()}


class ImageFolderTask(SingleLabelTask):
    """Any image folder ``<root>/<class>/<image>``: the core task, no plugin needed.

    Args:
        n_train: training images per class; default None = ``train_fraction`` of each class.
        n_test: maximum test images per class (default all the rest).
        train_fraction: training share of each class when ``n_train`` is None (default 0.5).
        metric: headline metric, 'mean_class_recall' (default) or 'accuracy'.
        splits: default number of random splits.
    """

    name = "imagefolder"
    default_aggregate = "avg"
    default_scales = (256, 384, 512)

    def __init__(self, n_train: int | None = None, n_test: int | None = None,
                 train_fraction: float = 0.5, metric: str = "mean_class_recall",
                 splits: int = 1) -> None:
        super().__init__(n_train, n_test, train_fraction)
        if metric not in ("mean_class_recall", "accuracy"):
            raise ValueError(f"metric must be 'mean_class_recall' or 'accuracy', got '{metric}'")
        self.metric_name = metric
        self.default_splits = int(splits)


class FolderTask(TransferTask):
    """Features of any folder of images, with or without class sub-folders (extraction only).

    With class sub-folders it lists them like ``imagefolder``; a flat folder is
    one class named after the folder (ids are file names; when images lie
    directly in the folder, its sub-folders are not read). It has no transfer
    protocol: train SVMs on class folders with the ``imagefolder`` task.
    """

    name = "folder"
    default_aggregate = "avg"  # the paper's VOC setting: Q = 256, 384, 512 averaged
    default_scales = (256, 384, 512)
    layout = "<root>/<image>.jpg, or <root>/<class>/<image>.jpg"

    def scan(self, data_root: str) -> TaskData:
        if not os.path.isdir(data_root):
            raise TaskLayoutError(f"folder '{data_root}' does not exist; expected: {self.layout}")
        flat = list_images(data_root)
        if not flat:
            return scan_class_folders(data_root, self.layout)
        name = os.path.basename(os.path.normpath(os.path.abspath(data_root)))
        return TaskData(ids=flat, paths=[os.path.join(data_root, f) for f in flat],
                        labels=np.zeros(len(flat), dtype=np.int64), classes=[name],
                        subsets=[""] * len(flat), root=data_root)
