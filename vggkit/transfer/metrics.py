"""Transfer metrics: accuracy, mean class recall, VOC average precision.

All values are percentages, as the paper's Table 11 reports them.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, int), np.asarray(pred, int)), 1)
    return cm


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class in % (NaN for a class with no test image)."""
    totals = cm.sum(1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * np.diag(cm) / totals


def mean_class_recall(cm: np.ndarray) -> float:
    """Mean over classes that have test images of the per-class recall (%)."""
    return float(np.nanmean(per_class_recall(cm)))


def accuracy(cm: np.ndarray) -> float:
    """Fraction of test images classified correctly (%)."""
    return float(100.0 * np.trace(cm) / max(cm.sum(), 1))


def _ranked(scores: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Cumulative TP and FP counts down the ranking, difficult (0) removed.

    Ties keep the devkit's behaviour: a stable descending sort, so tied
    images are taken in their input order.
    """
    scores, gt = np.asarray(scores, np.float64), np.asarray(gt)
    keep = gt != 0  # "difficult" images neither help nor hurt, as in VOCevalcls.m
    scores, gt = scores[keep], gt[keep]
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(gt[order] > 0)
    fp = np.cumsum(gt[order] < 0)
    return tp, fp, int((gt > 0).sum())


def voc07_ap(scores: np.ndarray, gt: np.ndarray) -> float:
    """VOC-2007 11-point interpolated AP (%): mean of max precision at recall ≥ 0, .1, …, 1."""
    tp, fp, npos = _ranked(scores, gt)
    if npos == 0:
        return float("nan")
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, 1)
    ap = 0.0
    for r in np.linspace(0.0, 1.0, 11):
        above = prec[rec >= r - 1e-12]
        ap += (above.max() if above.size else 0.0) / 11.0
    return float(100.0 * ap)


def voc_area_ap(scores: np.ndarray, gt: np.ndarray) -> float:
    """VOC-2010+ AP (%): area under the monotone (interpolated) precision/recall curve."""
    tp, fp, npos = _ranked(scores, gt)
    if npos == 0:
        return float("nan")
    rec = np.concatenate([[0.0], tp / npos, [1.0]])
    prec = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1), [0.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]  # make precision non-increasing
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(100.0 * np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))
