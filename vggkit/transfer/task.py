"""The transfer-task interface (the paper's Appendix B protocols as data).

A :class:`TransferTask` knows three things about a downstream data set:

* how its files are laid out (:meth:`TransferTask.scan` -> :class:`TaskData`),
* how the protocol splits it into training and test images
  (:meth:`TransferTask.splits` -> list of :class:`Split`),
* how the protocol scores a classifier (:meth:`TransferTask.evaluate`).

Feature extraction (``vggkit.features``) calls :meth:`scan` and stores
``ids``, ``labels``, ``subsets`` and ``classes`` with the descriptors; the SVM
tool rebuilds a :class:`TaskData` from that store (see
:meth:`TaskData.from_features`) and draws the splits from it, so the splits
never depend on the data root still being there.

Tasks arrive through the ``vggkit_register_transfer_tasks`` hook and are built
by name with :func:`build_task`.
"""
from __future__ import annotations

import abc

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from vggkit.data.filelist import IMG_EXTENSIONS
from vggkit.errors import UserError
from vggkit.features.regions import ItemRegions, as_item_regions, regions_per_item

#: label values of a multi-label task (the VOC devkit's convention)
POSITIVE, NEGATIVE, DIFFICULT = 1, -1, 0

#: the suffixes training's image folders accept too: one list for the whole toolkit
IMAGE_EXTENSIONS = IMG_EXTENSIONS


class TaskLayoutError(FileNotFoundError):
    """The data root does not have the layout the task expects."""


class ProtocolError(UserError, ValueError):
    """The data cannot satisfy the protocol (e.g. too few images in a class)."""


class TaskOptionError(UserError, ValueError):
    """A task option of the wrong type or out of range (e.g. ``n_train=-1``)."""


@dataclass
class TaskData:
    """Every item of a task (an image, or a region of one), in a fixed order.

    Attributes:
        ids: unique item ids (stable across machines: relative paths, devkit ids, or
            e.g. '2010_006088/1' for the first person of a VOC action image).
        paths: absolute paths of the image files ('' when only features are known).
        labels: ``(N,)`` int class indices (single-label) or ``(N, C)`` int8 in
            {1 positive, -1 negative, 0 difficult} (multi-label). A multi-label row of
            all zeros means the labels are withheld (VOC-2012 test).
        classes: class names, index order of ``labels``.
        subsets: per image, the official subset ('trainval', 'test', ...) or ''
            when the protocol draws random splits.
        root: the data root that was scanned ('' when unknown).
        regions: per item, the regions of its image whose descriptors are stacked
            into the item's descriptor, each a pixel box ``(left, top, right,
            bottom)`` or None for the whole image (:mod:`vggkit.features.regions`);
            e.g. ``(None, person_box)`` for a person seen in context. None (the
            default): every item is its whole image.
    """

    ids: list[str]
    paths: list[str]
    labels: np.ndarray
    classes: list[str]
    subsets: list[str]
    root: str = ""
    regions: list[ItemRegions] | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.labels = np.asarray(self.labels)
        if len(self.paths) != n or len(self.subsets) != n or len(self.labels) != n:
            raise ValueError(
                f"TaskData fields disagree in length: ids {n}, paths {len(self.paths)}, "
                f"labels {len(self.labels)}, subsets {len(self.subsets)}")
        if self.regions is not None:
            self.regions = as_item_regions(self.regions, self.ids)

    @property
    def regions_per_item(self) -> int:
        """How many region descriptors one item's descriptor stacks (1: whole images)."""
        return regions_per_item(self.regions)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    @classmethod
    def from_features(cls, fs: Any) -> "TaskData":
        """Rebuild the task data from a feature store (``load_features``'s FeatureSet).

        ``root`` is the data root the store was extracted from, when it recorded
        one, so a protocol's message can name the folder to fix.
        """
        ids = [str(i) for i in fs.ids]
        return cls(ids=ids, paths=[""] * len(ids), labels=np.asarray(fs.labels),
                   classes=[str(c) for c in fs.classes], subsets=[str(s) for s in fs.subsets],
                   root=str((getattr(fs, "meta", None) or {}).get("data_root") or ""),
                   regions=fs.regions)


@dataclass
class Split:
    """One protocol split: indices into a :class:`TaskData`.

    Attributes:
        name: e.g. 'split0' or 'trainval-test'.
        train: indices of the training images (the SVM's whole training part).
        test: indices of the test images.
        seed: the seed that drew the split (None for official splits).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, data: TaskData) -> dict[str, Any]:
        """A JSON-able record of the split (image ids), written beside results."""
        return {"name": self.name, "seed": self.seed, **self.info,
                "train": [data.ids[i] for i in self.train],
                "test": [data.ids[i] for i in self.test]}


class TransferTask(abc.ABC):
    """Base class of a downstream task; subclasses set the class attributes.

    Attributes:
        name: registry name of the task.
        default_aggregate: how descriptors at several scales are combined, 'avg' or 'stack'.
        default_scales: the paper's test scales Q for this task.
        multilabel: True when labels are (N, C) in {1, -1, 0}.
        metric_name: key of the headline metric in :meth:`evaluate`'s result.
        default_splits: how many splits the protocol averages over.
    """

    name: str = "task"
    default_aggregate: str = "avg"
    default_scales: tuple[int, ...] = (256, 384, 512)
    multilabel: bool = False
    metric_name: str = "accuracy"
    default_splits: int = 1

    @abc.abstractmethod
    def scan(self, data_root: str) -> TaskData:
        """List every image of the task under ``data_root``."""

    def splits(self, data: TaskData, n_splits: int | None = None, seed: int = 0) -> list[Split]:
        """The protocol's training/test splits of ``data`` (seeded, reproducible).

        Optional: a task used only for feature extraction needs :meth:`scan` alone.
        """
        raise NotImplementedError(f"task '{self.name}' ({type(self).__name__}) defines no "
                                  "splits(); implement it to train SVMs on this task")

    def evaluate(self, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Score ``scores`` (N×C) against ``labels``; values in percent.

        Returns a dict with at least ``metric_name`` (float, %) and 'per_class'
        (list of floats in class order, %). Optional, like :meth:`splits`.
        """
        raise NotImplementedError(f"task '{self.name}' ({type(self).__name__}) defines no "
                                  "evaluate(); implement it to score SVMs on this task")

    def write_predictions(self, data: TaskData, split: Split, scores: np.ndarray,
                          out_dir: str) -> list[str]:
        """Write files an evaluation server takes (when test labels are withheld).

        Returns the paths written; the default writes nothing.
        """
        return []

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "default_aggregate": self.default_aggregate,
                "default_scales": list(self.default_scales), "multilabel": self.multilabel,
                "metric": self.metric_name, "default_splits": self.default_splits}


def build_task(name: str | dict | TransferTask, **kwargs: Any) -> TransferTask:
    """Build a registered transfer task by name (or config dict).

    Raises:
        KeyError: the name is unknown; the message lists the known tasks.
    """
    if isinstance(name, TransferTask):
        return name
    from vggkit.registry import TRANSFER_TASKS
    cfg = dict(name) if isinstance(name, dict) else {"type": name}
    cfg.update(kwargs)
    task_type = cfg.pop("type")
    cls = TRANSFER_TASKS.get(task_type)
    if cls is None:
        known = ", ".join(TRANSFER_TASKS.known_names()) or "none"
        raise KeyError(f"unknown transfer task '{task_type}'; known tasks: {known} "
                       "(install a task plugin, e.g. `pip install -e plugins/vggkit-caltech`)")
    _check_options(task_type, cls, cfg)
    return cls(**cfg)


def _check_options(name: str, cls: type, options: dict[str, Any]) -> None:
    """Name an option the task's constructor does not take, with the ones it does."""
    import inspect
    params = inspect.signature(cls).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise UserError(f"transfer task '{name}' has no option {', '.join(map(repr, unknown))}; "
                        f"its options are: {', '.join(accepted) or 'none'}")


def check_option(task: str, name: str, value: Any, kind: type, example: Any, *, low: float,
                 high: float | None = None, optional: bool = False) -> Any:
    """``value`` of task option ``name`` if it has type ``kind`` and lies in range, else TaskOptionError.

    ``kind`` int: an integer >= ``low``; float: a finite number in the open
    interval (``low``, ``high``). ``optional``: None is accepted too.
    ``example`` is a good value the message suggests. Options arrive from
    ``--task-option KEY=VALUE`` as Python literals or bare words, so a wrong
    type or a negative count must be named here, before it meets numpy
    (``n_train=-1`` would silently train on all but one image per class).
    """
    if value is None and optional:
        return None
    if kind is int:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low
        want = f"an integer >= {low:g}"
    else:
        ok = (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
              and bool(np.isfinite(value)) and low < value and (high is None or value < high))
        want = f"a number in ({low:g}, {high:g})" if high is not None else f"a number > {low:g}"
    if not ok:
        raise TaskOptionError(f"task '{task}' option {name}={value!r} must be {want}"
                              f"{' or None' if optional else ''}; e.g. --task-option {name}={example}")
    return value


def check_min_per_class(counts: Sequence[int], classes: Sequence[str], need: int,
                        what: str, root: str = "") -> None:
    """Raise :class:`ProtocolError` naming every class with fewer than ``need`` images."""
    short = [(c, int(n)) for c, n in zip(classes, counts) if n < need]
    if short:
        listed = ", ".join(f"'{c}' has {n}" for c, n in short[:10])
        more = f" (and {len(short) - 10} more)" if len(short) > 10 else ""
        where = f" under {root}" if root else ""
        raise ProtocolError(f"{what} needs at least {need} images per class{where}, but "
                            f"{listed}{more}; add images or lower the requirement")
