"""What the test tool needs from a config and a checkpoint: the net and the test set."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from torch import nn

from vggkit.engine.scales import (check_scales, default_test_scales, innermost_dataset,
                                  weights_train_scale)
from vggkit.errors import plural


@dataclass
class ModelEntry:
    """A net ready for evaluation with its preprocessing and test scales.

    ``compiled`` is the net on its inference backends
    (:func:`vggkit.evaluation.loop.compile_nets`); without it the strategies
    run ``model`` eagerly.
    """

    model: nn.Module
    preprocess: dict[str, Any]
    scales: list[int]
    config: str = ""
    checkpoint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    compiled: Any = None

    @property
    def net(self) -> Any:
        """What the strategies run: the compiled net, else the model itself."""
        return self.model if self.compiled is None else self.compiled

    @property
    def label(self) -> str:
        name = os.path.splitext(os.path.basename(self.checkpoint or self.config))[0]
        return f"{getattr(self.model, 'arch', '?')}:{name}" if name else str(self.model.arch)


def load_model(config: Any, checkpoint: str, device: str = "cpu",
               scales: list[int] | None = None, config_path: str = "") -> ModelEntry:
    """Build the net of ``config`` (an mmengine Config or path) and load ``checkpoint``.

    Scales default to the paper's set for the training scale
    (:func:`~vggkit.engine.scales.weights_train_scale`).
    """
    from mmengine.config import Config

    from vggkit.models.from_config import build_from_config
    if isinstance(config, str):
        config_path, config = config, Config.fromfile(config)
    model, meta, _ = build_from_config(config, checkpoint, config_path or "config")
    model.to(device)
    crop = int(model.input_size)
    q = (check_scales(scales, crop) if scales
         else default_test_scales(weights_train_scale(meta, config), crop))
    return ModelEntry(model, dict(meta["preprocess"]), q, config_path, checkpoint, dict(meta))


@dataclass
class TestSet:
    """The images of a test split: paths, ids (paths relative to the root), labels."""

    paths: list[str]
    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    root: str = ""


def load_test_set(config: Any, data_root: str | None = None, config_path: str = "") -> TestSet:
    """The dataset of ``cfg.test_dataloader.dataset`` (``data_root`` overridden).

    Only image paths and labels are read: strategies rescale the images
    themselves, so the config's test pipeline is not used.
    """
    from vggkit.registry import DATASETS
    try:
        ds_cfg = dict(config["test_dataloader"]["dataset"])
    except (KeyError, TypeError):
        raise ValueError(f"{config_path or 'config'} has no test_dataloader.dataset; add one or "
                         "use a config from configs/") from None
    from vggkit.engine.datacheck import apply_data_root
    if data_root is not None:
        if not os.path.isdir(data_root):
            raise FileNotFoundError(f"--data-root '{data_root}' is not a directory")
        # as tools/train.py does: an image folder with train/ and val/ is tested on val/
        apply_data_root({"test_dataloader": {"dataset": ds_cfg}}, data_root)
    ds_cfg = dict(innermost_dataset(ds_cfg), pipeline=[])
    dataset = DATASETS.build(ds_cfg)
    root = str(getattr(dataset, "data_root", "") or ds_cfg.get("data_root") or "")
    paths, labels = [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        paths.append(str(info["img_path"]))
        labels.append(int(np.asarray(info.get("gt_label", -1)).reshape(-1)[0]))
    ids = [os.path.relpath(p, root) if root and os.path.abspath(p).startswith(os.path.abspath(root))
           else p for p in paths]
    classes = [str(c) for c in (dataset.metainfo.get("classes") or [])]
    return TestSet(paths, ids, np.asarray(labels, dtype=np.int64), classes, root)


def recorded_classes(meta: Mapping[str, Any]) -> list[str] | None:
    """The class names a checkpoint's meta records (``classes``, or mmengine's
    ``dataset_meta['classes']`` that ``vggkit train`` saves), else None."""
    recorded = meta.get("classes") or (meta.get("dataset_meta") or {}).get("classes")
    return [str(c) for c in recorded] if recorded else None


def check_classes(entry: ModelEntry, test_set: TestSet) -> None:
    """Raise ``ValueError`` if the net's classes do not match the test set's."""
    n_model, n_data = int(entry.model.num_classes), len(test_set.classes)
    where = f"checkpoint '{entry.checkpoint}'"
    if n_data and n_model != n_data:
        raise ValueError(f"{where} predicts {plural(n_model, 'class')} but the test set "
                         f"({test_set.root or 'dataset'}) has {n_data}; evaluate on the data it "
                         "was trained for, or set num_classes in the config to match")
    recorded = recorded_classes(entry.meta)
    if recorded and n_data and [str(c) for c in recorded] != test_set.classes:
        diff = next(i for i, (a, b) in enumerate(zip(recorded, test_set.classes)) if str(a) != b) \
            if len(recorded) == n_data else None
        raise ValueError(f"{where} was trained with classes that differ from the test set's"
                         + (f" (first difference at index {diff}: '{recorded[diff]}' vs "
                            f"'{test_set.classes[diff]}')" if diff is not None else "")
                         + "; the class order must match the checkpoint's")
    bad = test_set.labels[(test_set.labels < -1) | (test_set.labels >= n_model)]
    if bad.size:
        raise ValueError(f"test set labels {bad[:5].tolist()} are outside the {plural(n_model, 'class')} "
                         f"of {where}")
