"""Point a config at a data root and check it before any training starts.

A missing or mis-laid-out dataset must fail in the first second with the path
and the expected layout -- not after the model is built, or hours in.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

import numpy as np

from vggkit.engine.scales import innermost_dataset

SPLITS = {"train_dataloader": "train", "val_dataloader": "val", "test_dataloader": "val"}


class DataRootError(FileNotFoundError):
    """The data root of a config is missing or not laid out as its dataset expects."""


def _datasets(cfg: Any) -> list[tuple[str, dict]]:
    found = []
    for key in SPLITS:
        loader = cfg.get(key)
        if isinstance(loader, dict) and isinstance(loader.get("dataset"), dict):
            found.append((key, innermost_dataset(loader["dataset"])))
    return found


def apply_data_root(cfg: Any, root: str) -> None:
    """Set every dataset's ``data_root`` to ``root``.

    ``ImageNet`` datasets take the root itself (they choose ``train``/``val``
    by ``split``). An ``ImageFolder`` takes ``root/train`` or ``root/val`` when
    both exist, else ``root`` itself for every split (then validation runs on
    training images, which is said in the log).
    """
    root = os.path.abspath(os.path.expanduser(root))
    split_dirs = all(os.path.isdir(os.path.join(root, s)) for s in ("train", "val"))
    for key, dataset in _datasets(cfg):
        kind = str(dataset.get("type", "")).rsplit(".", 1)[-1]
        if kind == "ImageFolder" and split_dirs:
            dataset["data_root"] = os.path.join(root, SPLITS[key])
        else:
            dataset["data_root"] = root
            if kind == "ImageFolder" and key == "val_dataloader":
                print(f"vggkit train: '{root}' has no train/ and val/ sub-folders: validating "
                      "on the training images (errors will be optimistic)", file=sys.stderr)


def check_datasets(cfg: Any) -> Optional[int]:
    """:func:`check_training_data`'s number of classes (None if unknown)."""
    classes = check_training_data(cfg)
    return None if classes is None else len(classes)


def check_training_data(cfg: Any) -> Optional[list[str]]:
    """Build and scan each dataset so layout, image and transform errors surface now.

    Returns:
        The class names of the training set (None if unknown).

    Raises:
        DataRootError: naming the path, the dataset and the expected layout,
            or a training set with fewer than 2 classes or a class without images.
    """
    from vggkit.registry import DATASETS
    train_classes = None
    for key, dataset in _datasets(cfg):
        try:
            built = DATASETS.build(dict(dataset, lazy_init=True))
            # the labels are counted from the plain list (this copy is only scanned)
            built.serialize_data = False
            # the file scan (cached on disk, so the runner's own scan is then quick)
            # finds class folders without images now, not after the model is built
            built.full_init()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise DataRootError(
                f"{key}: {exc}\n(pass the dataset's root with --data-root DIR, or set "
                f"{key}.dataset.data_root in the config)") from None
        except ValueError as exc:  # e.g. a transform's S_min > S_max, S < crop
            raise ValueError(f"{key}.dataset: {exc}") from None
        classes = (getattr(built, "metainfo", None) or {}).get("classes")
        if key == "train_dataloader" and classes:
            train_classes = [str(c) for c in classes]
            check_trainable_classes(built, train_classes)
    return train_classes


def _class_place(dataset: Any, name: str) -> str:
    """Where the images of class ``name`` of ``dataset`` come from, for a message."""
    if getattr(dataset, "list_file", None):  # ImageNet from a list file
        return f"class '{name}' of list file '{dataset.list_file}'"
    base = getattr(dataset, "split_dir", None) or getattr(dataset, "data_root", "")
    return f"class folder '{os.path.join(base, name)}'"


def check_trainable_classes(dataset: Any, classes: list[str]) -> None:
    """A training set needs two classes or more, each with images.

    One class trains to loss 0 and "0 % error" while learning nothing, and a
    class without images gets an output the net is never shown: both are
    mistakes in the data, refused before any training.

    Raises:
        DataRootError: naming the data root, or the empty class's folder.
    """
    root = getattr(dataset, "split_dir", None) or getattr(dataset, "data_root", "") or "?"
    if len(classes) < 2:
        raise DataRootError(f"train_dataloader: '{root}' has {len(classes)} class "
                            f"({', '.join(map(repr, classes))}); classification needs at least 2 "
                            "classes with images (one sub-folder of images per class)")
    data_list = getattr(dataset, "data_list", None)
    if not isinstance(data_list, list):
        return  # a dataset of another kind: its labels are not listed
    counts = [0] * len(classes)
    for info in data_list:
        label = info.get("gt_label", -1)
        if not isinstance(label, int):  # an array or tensor of one label
            label = int(np.asarray(label).reshape(-1)[0])
        if 0 <= label < len(counts):
            counts[label] += 1
    empty = [name for name, n in zip(classes, counts) if n == 0]
    if empty:
        more = f" (and {len(empty) - 1} more empty classes)" if len(empty) > 1 else ""
        raise DataRootError(f"train_dataloader: {_class_place(dataset, empty[0])} has no "
                            f"images{more}; every class of '{root}' needs training images: add "
                            "some, or remove the class")
