"""PASCAL VOC-2007/2012 image classification (trainval → test), per-class AP and mAP."""
from __future__ import annotations

import abc

import os
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from vggkit.fileio import atomic_write_text
from vggkit.transfer.metrics import voc07_ap, voc_area_ap
from vggkit.transfer.task import Split, TaskData, TaskLayoutError, TransferTask

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
LAYOUT = ("VOCdevkit/VOC<year>/{JPEGImages/<id>.jpg, ImageSets/Main/<split>.txt, "
          "ImageSets/Main/<class>_<split>.txt, Annotations/<id>.xml}")


def _read_ids(path: str) -> list[str]:
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def _read_class_file(path: str) -> dict[str, int]:
    """``<id> <1|-1|0>`` lines of an ImageSets/Main/<class>_<split>.txt file."""
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                raise ValueError(f"{path}:{n}: expected '<image id> <1|-1|0>', got {line.strip()!r}")
            out[parts[0]] = int(parts[1])
    return out


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


class _VOCTask(TransferTask):
    """VOC classification: official splits, one-vs-rest, per-class AP.

    Args:
        train_split: image set to train on (default 'trainval').
        test_split: image set to test on (default 'test'; 'val' to evaluate VOC-2012 locally).
    """

    multilabel = True
    metric_name = "mAP"
    default_aggregate = "avg"  # the paper averages scales on VOC
    default_scales = (256, 384, 512)
    default_splits = 1
    year = ""

    def __init__(self, train_split: str = "trainval", test_split: str = "test") -> None:
        self.train_split, self.test_split = train_split, test_split

    def devkit_dir(self, data_root: str) -> str:
        for cand in (data_root, os.path.join(data_root, f"VOC{self.year}"),
                     os.path.join(data_root, "VOCdevkit", f"VOC{self.year}")):
            if os.path.isdir(os.path.join(cand, "ImageSets", "Main")):
                return cand
        raise TaskLayoutError(f"no VOC{self.year} devkit under {data_root} (ImageSets/Main not found); "
                              f"expected layout: {LAYOUT}")

    def _subset_labels(self, root: str, split: str, ids: list[str]) -> np.ndarray:
        labels = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.int8)
        main = os.path.join(root, "ImageSets", "Main")
        for k, cls in enumerate(VOC_CLASSES):
            path = os.path.join(main, f"{cls}_{split}.txt")
            if os.path.isfile(path):
                table = _read_class_file(path)
                missing = [i for i in ids if i not in table]
                if missing:
                    raise ValueError(f"{path} has no label for image '{missing[0]}' "
                                     f"({len(missing)} of {split}.txt missing)")
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
            list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
            if not os.path.isfile(list_file):
                raise TaskLayoutError(f"{list_file} not found; expected layout: {LAYOUT} "
                                      "(for VOC-2012 test, unpack the test tar into the same devkit)")
            split_ids = _read_ids(list_file)
            for i in split_ids:
                path = os.path.join(root, "JPEGImages", f"{i}.jpg")
                if not os.path.isfile(path):
                    raise TaskLayoutError(f"image {path} listed in {list_file} is missing")
                paths.append(path)
            ids += split_ids
            labels.append(self._subset_labels(root, split, split_ids))
            subsets += [split] * len(split_ids)
        return TaskData(ids=ids, paths=paths, labels=np.concatenate(labels), classes=list(VOC_CLASSES),
                        subsets=subsets, root=root)

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

    def write_predictions(self, data: TaskData, split: Split, scores: np.ndarray,
                          out_dir: str) -> list[str]:
        """``comp1_cls_test_<class>.txt`` files (``<image id> <score>``) for the evaluation server."""
        if (np.asarray(data.labels)[split.test] != 0).any(1).all():
            return []  # labels are known: nothing to submit
        os.makedirs(out_dir, exist_ok=True)
        written = []
        for k, cls in enumerate(data.classes):
            path = os.path.join(out_dir, f"comp1_cls_{self.test_split}_{cls}.txt")
            atomic_write_text(path, "".join(f"{data.ids[i]} {float(s):.6f}\n"
                                            for i, s in zip(split.test, scores[:, k])))
            written.append(path)
        return written


class VOC2007(_VOCTask):
    """VOC-2007 classification: trainval (5,011) → test (4,952), 11-point interpolated AP."""

    name = "voc2007"
    year = "2007"

    def ap(self, scores: np.ndarray, gt: np.ndarray) -> float:
        return voc07_ap(scores, gt)


class VOC2012(_VOCTask):
    """VOC-2012 classification: trainval → test (labels withheld: submission files), area AP."""

    name = "voc2012"
    year = "2012"

    def ap(self, scores: np.ndarray, gt: np.ndarray) -> float:
        return voc_area_ap(scores, gt)
