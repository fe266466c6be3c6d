"""Point a config at a data root and check it before any training starts.

A missing or mis-laid-out dataset must fail in the first second with the path
and the expected layout -- not after the model is built, or hours in.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

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
    """Build and scan each dataset so layout, image and transform errors surface now.

    Returns:
        The number of classes of the training set (None if unknown).

    Raises:
        DataRootError: naming the path, the dataset and the expected layout.
    """
    from vggkit.registry import DATASETS
    num_classes = None
    for key, dataset in _datasets(cfg):
        try:
            built = DATASETS.build(dict(dataset, lazy_init=True))
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
            num_classes = len(classes)
    return num_classes
