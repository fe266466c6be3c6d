"""Single-label tasks: class folders, per-class random splits, class recall.

:class:`SingleLabelTask` holds what Caltech-101/256 and any image folder share:
a scan of ``<root>/<class>/<image>`` folders and seeded per-class splits of
``n_train`` training and up to ``n_test`` test images. :class:`ImageFolderTask`
is the core task any user's own data set works with; :class:`FolderTask`
(``vggkit extract``'s default) has the same protocol when its folder has class
sub-folders.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

import numpy as np

from vggkit.data.filelist import scan_image_folder, top_images
from vggkit.transfer.metrics import accuracy, confusion_matrix, mean_class_recall, per_class_recall
from vggkit.transfer.task import (IMAGE_EXTENSIONS, ProtocolError, Split, TaskData, TaskLayoutError,
                                  TransferTask, check_min_per_class, check_option)


def list_images(folder: str) -> list[str]:
    """Image files directly in ``folder`` (sorted, hidden files skipped)."""
    return top_images(folder, IMAGE_EXTENSIONS)


def scan_class_folders(root: str, layout: str, *, class_filter: Callable[[str], bool] | None = None,
                       subset: str = "", allow_flat: bool = False) -> TaskData:
    """One class per sub-folder of ``root``, every image under it, sub-folders included.

    The scan of training and testing too (:func:`vggkit.data.filelist.scan_image_folder`),
    so every tool sees the same files. Ids are paths relative to ``root``
    (``<class>/<file>``, ``<class>/<sub>/<file>``). With ``allow_flat``, a folder
    with images directly in it is one class named after it.

    Raises:
        TaskLayoutError: ``root`` is missing or holds no class folder with images.
    """
    if not os.path.isdir(root):
        raise TaskLayoutError(f"data root {root} does not exist; expected layout: {layout}")
    # no cache file: extract and transfer write nothing into the user's data folder
    found = scan_image_folder(root, class_filter=class_filter, allow_flat=allow_flat,
                              extensions=IMAGE_EXTENSIONS, cache=False)
    if not found.samples:
        raise TaskLayoutError(f"no images found under {root}; expected layout: {layout}")
    ids = [rel.replace(os.sep, "/") for rel, _ in found.samples]
    return TaskData(ids=ids, paths=[os.path.join(root, rel) for rel, _ in found.samples],
                    labels=np.asarray([label for _, label in found.samples], dtype=np.int64),
                    classes=found.classes, subsets=[subset] * len(ids), root=root)


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
        self.n_train = check_option(self.name, "n_train", n_train, int, 10, low=1, optional=True)
        self.n_test = check_option(self.name, "n_test", n_test, int, 50, low=1, optional=True)
        self.train_fraction = float(check_option(self.name, "train_fraction", train_fraction, float,
                                                 0.5, low=0.0, high=1.0))

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
        distinct = self.distinct_splits(counts, cap=n_splits)
        if n_splits > distinct:
            raise ProtocolError(
                f"{n_splits} splits asked of task '{self.name}' (--splits), but its {len(labels)} "
                f"images in {len(counts)} classes allow only {distinct} different ones; the mean "
                f"and std would count repeated splits: use --splits {distinct} or fewer, or more images")
        out = []
        for s in range(n_splits):
            split_seed = seed + s
            # one generator per split so split k is the same whatever n_splits is
            rng = np.random.default_rng(split_seed)
            train, test = [], []
            for c in range(len(data.classes)):
                idx = rng.permutation(np.flatnonzero(labels == c))
                k = self.train_count(len(idx))
                train.append(idx[:k])
                rest = idx[k:]
                test.append(rest if self.n_test is None else rest[:self.n_test])
            out.append(Split(name=f"split{s}", train=np.sort(np.concatenate(train)),
                             test=np.sort(np.concatenate(test)), seed=split_seed,
                             info={"n_train": self.n_train, "n_test": self.n_test}))
        return out

    def train_count(self, n: int) -> int:
        """Training images the protocol draws from a class of ``n`` images."""
        if self.n_train is not None:
            return self.n_train
        return max(1, min(n - 1, int(round(self.train_fraction * n))))

    def distinct_splits(self, counts: Any, cap: int) -> int:
        """How many different (train, test) splits classes of ``counts`` images allow.

        The count is a product of binomials that soon exceeds any split count,
        so it stops as soon as it passes ``cap``.
        """
        total = 1
        for n in (int(n) for n in counts):
            k = min(self.train_count(n), n)
            rest = n - k
            total *= math.comb(n, k) * math.comb(rest, rest if self.n_test is None else min(self.n_test, rest))
            if total > cap:
                break
        return total

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
        splits: default number of random splits (None: the class's ``default_splits``, 1).
    """

    name = "imagefolder"
    default_aggregate = "avg"
    default_scales = (256, 384, 512)

    def __init__(self, n_train: int | None = None, n_test: int | None = None,
                 train_fraction: float = 0.5, metric: str = "mean_class_recall",
                 splits: int | None = None) -> None:
        super().__init__(n_train, n_test, train_fraction)
        if metric not in ("mean_class_recall", "accuracy"):
            raise ValueError(f"metric must be 'mean_class_recall' or 'accuracy', got '{metric}'")
        self.metric_name = metric
        if splits is not None:
            self.default_splits = check_option(self.name, "splits", splits, int, 3, low=1)


class FolderTask(ImageFolderTask):
    """Features of any folder of images, with or without class sub-folders.

    With class sub-folders it lists them like ``imagefolder`` and has its
    protocol and options (seeded per-class random splits, ``n_train`` per class
    or ``train_fraction`` of each, the rest test), 3 splits by default. A flat
    folder is one class named after the folder, holding every image under it
    (ids are paths relative to it; a warning says when sub-folders hold some): its
    features have no labels, so :meth:`splits` says how to get some. Unlike
    ``imagefolder`` the scan asks nothing of the class sizes: any folder's
    features can be extracted, and the protocol checks them when it splits.
    """

    name = "folder"
    default_aggregate = "avg"  # the paper's VOC setting: Q = 256, 384, 512 averaged
    default_scales = (256, 384, 512)
    default_splits = 3
    layout = "<root>/<image>.jpg, or <root>/<class>/<image>.jpg"

    def scan(self, data_root: str) -> TaskData:
        if not os.path.isdir(data_root):
            raise TaskLayoutError(f"folder '{data_root}' does not exist; expected: {self.layout}")
        return scan_class_folders(data_root, self.layout, allow_flat=True)

    def splits(self, data: TaskData, n_splits: int | None = None, seed: int = 0) -> list[Split]:
        # one class: usually a flat folder (named after it), else a single class sub-folder;
        # either way there is nothing to tell apart, and the fix is the same
        present = np.unique(np.asarray(data.labels))
        if len(present) < 2:
            where = f"'{data.root}'" if data.root else "the folder"
            names = ", ".join(repr(data.classes[int(c)]) for c in present) or "none"
            raise ProtocolError(
                f"task '{self.name}': the {len(data)} images of {where} form one class ({names}), "
                "as a folder without class sub-folders does, so there are no labels to train "
                f"classifiers on; sort them into class sub-folders ({data.root or 'DIR'}/<class>/"
                "*.jpg, at least 2 classes), extract their features again and rerun transfer")
        return super().splits(data, n_splits, seed)
