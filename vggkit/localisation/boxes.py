"""Box geometry of Appendix A, in numpy: formats, IoU, and boxes under rescale, crop and flip.

Two formats:

* ``xyxy``: ``(xmin, ymin, xmax, ymax)`` in pixels of an image, continuous
  coordinates (a box covering pixel columns 10..19 is ``xmin=10, xmax=20``);
  the data and every result use it.
* ``cxcywh``: the paper's "centre x, centre y, width, height", normalised to
  the window the net sees (its input crop), so a box filling the crop is
  ``(0.5, 0.5, 1, 1)``; the regression head predicts it.

Every function takes and returns float arrays of shape ``(..., 4)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["as_boxes", "area", "iou", "to_cxcywh", "to_xyxy", "scale_boxes", "shift_boxes",
           "flip_boxes", "clip_boxes", "crop_boxes", "centre_box"]


def as_boxes(boxes: Sequence | np.ndarray) -> np.ndarray:
    """``boxes`` as a float64 ``(N, 4)`` array (a single box becomes ``(1, 4)``)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must be N x 4, got shape {arr.shape}")
    return arr


def area(boxes: np.ndarray) -> np.ndarray:
    """Area of ``xyxy`` boxes (0 for an empty or inverted box)."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N) with every box of ``b`` (M): N x M.

    Continuous coordinates (no "+1" of the ILSVRC devkit's inclusive pixel
    indices, which changes the IoU of a 100-pixel box by about 1 %).
    """
    a, b = as_boxes(a), as_boxes(b)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def to_cxcywh(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """``xyxy`` pixels of a ``width x height`` window -> normalised ``cxcywh``."""
    b = np.asarray(boxes, dtype=np.float64)
    size = np.array([width, height])
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2 / size, (b[..., 2:] - b[..., :2]) / size],
                          axis=-1)


def to_xyxy(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised ``cxcywh`` of a ``width x height`` window -> ``xyxy`` pixels of the window.

    A negative predicted width or height is taken as 0 (a point).
    """
    b = np.asarray(boxes, dtype=np.float64)
    size = np.array([width, height])
    centre, half = b[..., :2] * size, np.clip(b[..., 2:], 0, None) * size / 2
    return np.concatenate([centre - half, centre + half], axis=-1)


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Boxes of an image resized by ``sx`` horizontally and ``sy`` vertically."""
    return np.asarray(boxes, dtype=np.float64) * np.array([sx, sy, sx, sy])


def shift_boxes(boxes: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Boxes with the origin moved to ``(dx, dy)`` (a crop's top-left corner)."""
    return np.asarray(boxes, dtype=np.float64) - np.array([dx, dy, dx, dy])


def flip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """Boxes of an image of ``width`` mirrored left-right: ``x -> width - x``."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.stack([width - b[..., 2], b[..., 1], width - b[..., 0], b[..., 3]], axis=-1)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes clipped to the image ``[0, width] x [0, height]``."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(b, 0, np.array([width, height, width, height]))


def crop_boxes(boxes: np.ndarray, window: Sequence[float]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes seen through a crop ``window = (x0, y0, x1, y1)``.

    Returns:
        ``(clipped, keep, visible)``: every box in the window's coordinates,
        clipped to it; which boxes keep a positive area; and the fraction of
        each box's area inside the window (0 for a box cut off entirely).
    """
    b = as_boxes(boxes)
    x0, y0, x1, y1 = (float(v) for v in window)
    clipped = clip_boxes(shift_boxes(b, x0, y0), x1 - x0, y1 - y0)
    full = area(b)
    visible = np.where(full > 0, area(clipped) / np.where(full > 0, full, 1), 0.0)
    return clipped, visible > 0, visible


def centre_box(width: float, height: float, box_width: float, box_height: float) -> np.ndarray:
    """The ``box_width x box_height`` box centred in a ``width x height`` image (xyxy)."""
    cx, cy = width / 2, height / 2
    return np.array([cx - box_width / 2, cy - box_height / 2, cx + box_width / 2,
                     cy + box_height / 2])
