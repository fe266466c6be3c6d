"""Greedy merging of box predictions (Appendix A: "merged greedily", after OverFeat).

The rule, exactly:

1. Every candidate box ``b_i`` (``xyxy``) with confidence ``s_i`` starts as
   a cluster of its own, with weight ``s_i``.
2. Find the two clusters whose boxes overlap most (highest IoU; ties go to
   the lowest pair of indices in candidate order). If that IoU is below
   ``iou_threshold``, stop.
3. Replace them by one cluster: its box is the weighted mean of the two
   boxes' coordinates (weights = the clusters' total confidences, so a
   cluster's box is always the confidence-weighted mean of all its members),
   its confidence the sum of the two. Go to 2.

The clusters are returned by descending total confidence; the first is the
prediction. Summing confidences ranks a box on which many locations and
scales agree above an isolated confident one, as OverFeat does.
"""
from __future__ import annotations

import numpy as np

from vggkit.localisation.boxes import as_boxes, iou

__all__ = ["merge_boxes"]

_EPS = 1e-12  # a zero confidence still carries its box into the mean


def merge_boxes(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5
                ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Merge ``boxes`` (N x 4) with confidences ``scores`` (N) greedily (module docstring).

    Returns:
        ``(merged boxes M x 4, total confidences M, member indices per cluster)``,
        by descending confidence.
    """
    boxes = as_boxes(boxes).copy()
    weights = np.maximum(np.asarray(scores, dtype=np.float64).reshape(-1), _EPS)
    if len(weights) != len(boxes):
        raise ValueError(f"merge_boxes: {len(boxes)} boxes but {len(weights)} scores")
    totals = np.asarray(scores, dtype=np.float64).reshape(-1).copy()
    members = [[i] for i in range(len(boxes))]
    alive = np.ones(len(boxes), dtype=bool)
    overlap = iou(boxes, boxes)
    np.fill_diagonal(overlap, -1.0)
    while alive.sum() > 1:
        # symmetric: the first maximum in row-major order is the pair (i < j) of lowest indices
        i, j = divmod(int(np.argmax(overlap)), len(boxes))
        if overlap[i, j] < iou_threshold:
            break
        w = weights[i] + weights[j]
        boxes[i] = (weights[i] * boxes[i] + weights[j] * boxes[j]) / w
        weights[i], totals[i] = w, totals[i] + totals[j]
        members[i] += members[j]
        alive[j] = False
        overlap[j, :] = overlap[:, j] = -1.0
        row = np.where(alive, iou(boxes[i], boxes)[0], -1.0)
        row[i] = -1.0
        overlap[i, :] = overlap[:, i] = row
    keep = np.flatnonzero(alive)
    order = keep[np.argsort(-totals[keep], kind="stable")]
    return boxes[order], totals[order], [sorted(members[k]) for k in order]
