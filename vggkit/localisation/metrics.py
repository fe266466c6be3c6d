"""Localisation error (ILSVRC CLS-LOC criterion) and the validation metric of training.

ILSVRC: an image gets up to k guesses, each a class and a box. A guess is
correct when its class is one of the image's ground-truth classes and its box
overlaps a ground-truth box *of that class* with IoU >= 0.5 (the devkit's
``ov >= 0.5``; an overlap of exactly one half counts). The image is
localised under top-k when any of its first k guesses is correct; the top-k
localisation error is the percentage of images that are not. With the
ground-truth class given instead of guessed, the same IoU test measures the
boxes alone.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from vggkit.localisation.boxes import as_boxes, iou

__all__ = ["IOU_THRESHOLD", "best_iou", "is_localised", "localisation_error", "BoxError"]

IOU_THRESHOLD = 0.5


def best_iou(box: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray, label: int) -> float:
    """The largest IoU of ``box`` with a ground-truth box of class ``label`` (0 if none)."""
    mine = as_boxes(gt_boxes)[np.asarray(gt_labels).reshape(-1) == int(label)]
    return float(iou(box, mine).max()) if len(mine) else 0.0


def is_localised(guesses: Sequence[tuple[int, np.ndarray]], gt_boxes: np.ndarray,
                 gt_labels: np.ndarray, k: int = 5, threshold: float = IOU_THRESHOLD) -> bool:
    """Whether one of the first ``k`` ``(class, box)`` guesses is correct (module docstring)."""
    return any(best_iou(box, gt_boxes, gt_labels, label) >= threshold
               for label, box in list(guesses)[:k])


def localisation_error(guesses: Sequence[Sequence[tuple[int, np.ndarray]]],
                       gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray], k: int,
                       threshold: float = IOU_THRESHOLD) -> float:
    """Top-``k`` localisation error in percent over images (one guess list per image)."""
    if not len(guesses):
        raise ValueError("localisation_error of no images is undefined")
    hits = [is_localised(g, b, lab, k, threshold)
            for g, b, lab in zip(guesses, gt_boxes, gt_labels)]
    return 100.0 * (1.0 - float(np.mean(hits)))


def _get(sample: Any, key: str) -> Any:
    return sample.get(key) if isinstance(sample, dict) else getattr(sample, key, None)


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class BoxError(BaseMetric):
    """mmengine metric of training's validation: boxes with the ground-truth class.

    From ``pred_bbox`` (the box of the sample's ``gt_label``, pixels of the
    input) and ``gt_bboxes``/``gt_bboxes_labels``: ``loc_error``, the
    percentage of samples whose box has IoU < 0.5 with every ground-truth box
    of their class, and ``mean_iou`` (in %).
    """

    default_prefix: str | None = ""

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            box, label = _get(sample, "pred_bbox"), _get(sample, "gt_label")
            boxes, labels = _get(sample, "gt_bboxes"), _get(sample, "gt_bboxes_labels")
            if box is None or label is None or boxes is None or labels is None:
                raise KeyError("BoxError needs pred_bbox, gt_label, gt_bboxes and "
                               "gt_bboxes_labels in every data sample (VGGLocaliser's predict "
                               "mode and PackBoxInputs set them)")
            self.results.append(best_iou(_numpy(box), _numpy(boxes), _numpy(labels),
                                         int(_numpy(label).reshape(-1)[0])))

    def compute_metrics(self, results: list) -> dict[str, float]:
        overlaps = np.asarray(results, dtype=np.float64)
        return {"loc_error": 100.0 * float(np.mean(overlaps < IOU_THRESHOLD)),
                "mean_iou": 100.0 * float(np.mean(overlaps))}
