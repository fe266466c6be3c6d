"""Caltech-101 and Caltech-256 protocols of the paper's Appendix B."""
from __future__ import annotations

import os

from vggkit.transfer.single_label import SingleLabelTask
from vggkit.transfer.task import TaskLayoutError


class _CaltechTask(SingleLabelTask):
    """Shared: random seeded splits, mean class recall, stacked scales."""

    default_aggregate = "stack"  # the paper: stacking scales beat averaging on Caltech
    default_scales = (256, 384, 512)
    default_splits = 3
    folder = ""

    def class_root(self, data_root: str) -> str:
        # accept the data root or the category folder itself
        if os.path.basename(os.path.normpath(data_root)) == self.folder:
            return data_root
        path = os.path.join(data_root, self.folder)
        if not os.path.isdir(path):
            raise TaskLayoutError(f"{path} not found; expected layout: {data_root}/{self.layout}")
        return path


class Caltech101(_CaltechTask):
    """Caltech-101: 102 classes (incl. BACKGROUND_Google), 30 train / up to 50 test per class.

    Args:
        n_train: training images per class (paper: 30).
        n_test: maximum test images per class (paper: 50).
    """

    name = "caltech101"
    folder = "101_ObjectCategories"
    layout = "101_ObjectCategories/<class>/image_NNNN.jpg"

    def __init__(self, n_train: int = 30, n_test: int | None = 50) -> None:
        super().__init__(n_train=n_train, n_test=n_test)


class Caltech256(_CaltechTask):
    """Caltech-256: 257 classes (incl. 257.clutter), 60 train per class, the rest test.

    Args:
        n_train: training images per class (paper: 60).
        n_test: maximum test images per class (paper: all the rest).
    """

    name = "caltech256"
    folder = "256_ObjectCategories"
    layout = "256_ObjectCategories/NNN.name/NNN_NNNN.jpg"

    def __init__(self, n_train: int = 60, n_test: int | None = None) -> None:
        super().__init__(n_train=n_train, n_test=n_test)
