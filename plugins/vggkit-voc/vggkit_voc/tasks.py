"""PASCAL VOC transfer tasks: the devkit's layout, official splits, per-class AP and mAP.

:class:`VOCTask` is what every VOC task shares (the devkit directory, the
trainval → test split, AP per class, the evaluation server's result files);
image classification (:class:`VOC2007`, :class:`VOC2012`) is here, action
classification of person boxes in :mod:`vggkit_voc.action`.
"""
from __future__ import annotations

import abc

import os
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from vggkit.fileio import atomic_write_text
from vggkit.transfer.metrics import voc07_ap, voc_area_ap
from vggkit.transfer.task import ProtocolError, Split, TaskData, TaskLayoutError, TransferTask

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
LAYOUT = ("VOCdevkit/VOC<year>/{JPEGImages/<id>.jpg, ImageSets/Main/<split>.txt, "
          "ImageSets/Main/<class>_<split>.txt, Annotations/<id>.xml}")


def _read_ids(path: str) -> list[str]:
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def read_class_file(path: str, keys: tuple[str, ...] = ("image id",)) -> dict[str, int]:
    """``<key...> <1|-1|0>`` lines of an ImageSets/<Main|Action>/<class>_<split>.txt file.

    ``keys`` names the columns before the label (Main: the image id; Action:
    the image id and the person index); several are joined with '/', the
    item ids of the task.
    """
    out = {}
    expected = " ".join(f"<{k}>" for k in keys) + " <1|-1|0>"
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != len(keys) + 1 or parts[-1] not in ("1", "-1", "0"):
                raise ValueError(f"{path}:{n}: expected '{expected}', got {line.strip()!r}")
            out["/".join(parts[:-1])] = int(parts[-1])
    return out


def missing_label(path: str, split: str, ids: list[str], table: dict[str, int]) -> None:
    """Raise naming the first id of the ``split`` list that the class file ``path`` lacks."""
    missing = [i for i in ids if i not in table]
    if missing:
        raise ValueError(f"{path} has no label for '{missing[0]}' "
                         f"({len(missing)} of {split}.txt missing)")


def _labels_from_xml(path: str, classes: tuple[str, ...]) -> np.ndarray:
    """The devkit's rule: 1 if a non-difficult object, 0 if only difficult ones, else -1."""
    row = -np.ones(len(classes), dtype=np.int8)
    for obj in ET.parse(path).getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name in classes:
            k = classes.index(name)
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            row[k] = max(row[k], 0 if difficult else 1)
    return row


class VOCTask(TransferTask):
    """What every VOC task shares: official splits, one-vs-rest, per-class AP.

    Subclasses set ``year``, ``image_sets`` (the ImageSets sub-folder),
    ``layout`` (shown in errors), ``competition`` (the results-file prefix) and
    implement :meth:`scan` and :meth:`ap`.

    Args:
        train_split: image set to train on (default 'trainval').
        test_split: image set to test on (default 'test'; 'val' to evaluate VOC-2012 locally).
    """

    multilabel = True
    metric_name = "mAP"
    default_aggregate = "avg"  # the paper averages scales on VOC
    # Appendix B: the VOC-2007/2012 results average Q in {256, 384, 512, 640, 768}; the
    # smaller {256, 384, 512} (--scales 256 384 512, a third of the work) was 0.3 % worse
    default_scales = (256, 384, 512, 640, 768)
    default_splits = 1
    year = ""
    image_sets = "Main"
    layout = LAYOUT
    competition = "comp1_cls"  # the devkit's comp1: classification

    def __init__(self, train_split: str = "trainval", test_split: str = "test") -> None:
        self.train_split, self.test_split = train_split, test_split

    def devkit_dir(self, data_root: str) -> str:
        for cand in (data_root, os.path.join(data_root, f"VOC{self.year}"),
                     os.path.join(data_root, "VOCdevkit", f"VOC{self.year}")):
            if os.path.isdir(os.path.join(cand, "ImageSets", self.image_sets)):
                return cand
        raise TaskLayoutError(f"no VOC{self.year} devkit under {data_root} (ImageSets/"
                              f"{self.image_sets} not found); expected layout: {self.layout}")

    def split_list(self, root: str, split: str) -> str:
        """The ImageSets list file of ``split``; raises naming it when it is missing."""
        path = os.path.join(root, "ImageSets", self.image_sets, f"{split}.txt")
        if not os.path.isfile(path):
            raise TaskLayoutError(f"{path} not found; expected layout: {self.layout} "
                                  "(for VOC-2012 test, unpack the test tar into the same devkit)")
        return path

    def check_disjoint(self, ids: list[str]) -> None:
        """Refuse a training set and test set that share items (e.g. trainval and val)."""
        seen: set[str] = set()
        for item in ids:
            if item in seen:
                raise ProtocolError(f"task '{self.name}': '{item}' is in both {self.train_split} "
                                    f"and {self.test_split}; choose disjoint sets (train_split="
                                    "train with test_split=val to evaluate without the test server)")
            seen.add(item)

    def image_path(self, root: str, image_id: str, list_file: str) -> str:
        """``JPEGImages/<id>.jpg``; raises naming it and the list that names it when missing."""
        path = os.path.join(root, "JPEGImages", f"{image_id}.jpg")
        if not os.path.isfile(path):
            raise TaskLayoutError(f"image {path} listed in {list_file} is missing")
        return path

    def splits(self, data: TaskData, n_splits: int | None = None, seed: int = 0) -> list[Split]:
        subsets = np.asarray(data.subsets)
        train = np.flatnonzero(subsets == self.train_split)
        test = np.flatnonzero(subsets == self.test_split)
        if train.size == 0 or test.size == 0:
            raise ValueError(f"task '{self.name}' needs images of subsets '{self.train_split}' and "
                             f"'{self.test_split}'; the data has {sorted(set(data.subsets))}")
        return [Split(name=f"{self.train_split}-{self.test_split}", train=train, test=test, seed=None)]

    @abc.abstractmethod
    def ap(self, scores: np.ndarray, gt: np.ndarray) -> float:
        """Average precision of one class (the year's definition)."""

    def evaluate(self, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        scores, labels = np.asarray(scores), np.asarray(labels)
        if not (labels != 0).any(1).all():
            return {"mAP": float("nan"), "per_class": [float("nan")] * scores.shape[1],
                    "withheld": True}
        per_class = [self.ap(scores[:, k], labels[:, k]) for k in range(scores.shape[1])]
        return {"mAP": float(np.nanmean(per_class)), "per_class": per_class}

    def submission_id(self, item_id: str) -> str:
        """The columns before the score in a results file that name an item."""
        return item_id

    def write_predictions(self, data: TaskData, split: Split, scores: np.ndarray,
                          out_dir: str) -> list[str]:
        """``<competition>_test_<class>.txt`` files (``<item> <score>`` lines) for the server."""
        if (np.asarray(data.labels)[split.test] != 0).any(1).all():
            return []  # labels are known: nothing to submit
        os.makedirs(out_dir, exist_ok=True)
        written = []
        for k, cls in enumerate(data.classes):
            path = os.path.join(out_dir, f"{self.competition}_{self.test_split}_{cls}.txt")
            atomic_write_text(path, "".join(f"{self.submission_id(data.ids[i])} {float(s):.6f}\n"
                                            for i, s in zip(split.test, scores[:, k])))
            written.append(path)
        return written


class _VOCClassification(VOCTask):
    """VOC image classification: ImageSets/Main, labels from the class files or the XML."""

    def _subset_labels(self, root: str, split: str, ids: list[str]) -> np.ndarray:
        labels = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.int8)
        main = os.path.join(root, "ImageSets", "Main")
        for k, cls in enumerate(VOC_CLASSES):
            path = os.path.join(main, f"{cls}_{split}.txt")
            if os.path.isfile(path):
                table = read_class_file(path)
                missing_label(path, split, ids, table)
                labels[:, k] = [table[i] for i in ids]
            elif os.path.isdir(os.path.join(root, "Annotations")) and split != "test":
                for n, i in enumerate(ids):
                    xml = os.path.join(root, "Annotations", f"{i}.xml")
                    if not os.path.isfile(xml):
                        raise TaskLayoutError(f"neither {path} nor {xml} exists; expected layout: {LAYOUT}")
                    labels[n] = _labels_from_xml(xml, VOC_CLASSES)
                return labels
            else:
                return np.zeros_like(labels)  # withheld (VOC-2012 test): all-zero rows
        return labels

    def scan(self, data_root: str) -> TaskData:
        root = self.devkit_dir(data_root)
        ids, paths, labels, subsets = [], [], [], []
        for split in (self.train_split, self.test_split):
            list_file = self.split_list(root, split)
            split_ids = _read_ids(list_file)
            paths += [self.image_path(root, i, list_file) for i in split_ids]
            ids += split_ids
            labels.append(self._subset_labels(root, split, split_ids))
            subsets += [split] * len(split_ids)
        self.check_disjoint(ids)
        return TaskData(ids=ids, paths=paths, labels=np.concatenate(labels), classes=list(VOC_CLASSES),
                        subsets=subsets, root=root)


class VOC2007(_VOCClassification):
    """VOC-2007 classification: trainval (5,011) → test (4,952), 11-point interpolated AP."""

    name = "voc2007"
    year = "2007"

    def ap(self, scores: np.ndarray, gt: np.ndarray) -> float:
        return voc07_ap(scores, gt)


class VOC2012(_VOCClassification):
    """VOC-2012 classification: trainval → test (labels withheld: submission files), area AP."""

    name = "voc2012"
    year = "2012"

    def ap(self, scores: np.ndarray, gt: np.ndarray) -> float:
        return voc_area_ap(scores, gt)


