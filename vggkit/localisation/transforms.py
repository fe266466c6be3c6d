"""Box-aware versions of the transforms of :mod:`vggkit.data.transforms`.

Each one runs its parent unchanged -- the same draws of S, crop position and
flip, the same pixels -- and moves ``results['gt_bboxes']`` (K x 4 ``xyxy``
pixels of the current image) and ``results['gt_bboxes_labels']`` with it.

Box rules (docs/localisation.md):

* **clip**: a box cut by a crop is clipped to it; ``results['box_visible']``
  keeps the fraction of each box's area left inside.
* **cut off**: a box left with no area is removed.
* **resample**: a random crop is redrawn (same S, new position) up to
  ``max_tries`` times until some box keeps at least ``min_visible`` of its
  area. If no draw manages, the draw that kept the most is used and
  ``results['box_cut'] = True`` flags the sample; if even that one shows no
  box at all, the sample is dropped (the transform returns None, and the
  dataset takes the next image, as for a bad image). Deterministic crops
  (centre) make one draw under the same rule.
* **whole box**: ``results['gt_bboxes_whole']`` follows the same geometry
  without clipping (a cut box extends beyond the image). It is the
  regression target by default (:class:`PackBoxInputs`): a crop that shows
  part of an object is trained to predict all of it, which is what the dense
  test protocol needs, where most windows see only part of the object.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from vggkit.data.packing import DEFAULT_META_KEYS, PackInputs
from vggkit.data.transforms import (CenterCrop, IsotropicRescale, LoadImage, RandomCrop,
                                    RandomFlip, RandomScaleCrop, TestRescale, draw_scale,
                                    set_img, rescaled_size)
from vggkit.localisation.boxes import (area, crop_boxes, flip_boxes, scale_boxes, shift_boxes,
                                       to_cxcywh)

__all__ = ["LoadBoxImage", "BoxIsotropicRescale", "BoxRandomCrop", "BoxRandomScaleCrop",
           "BoxCenterCrop", "BoxTestRescale", "BoxRandomFlip", "PackBoxInputs", "crop_with_boxes"]

#: one crop draw: (cropped image, window in the scaled image, (sx, sy) scaling the boxes first)
Draw = Callable[[], tuple[Image.Image, Sequence[float], tuple[float, float]]]


def _boxes(results: dict) -> np.ndarray:
    if results.get("gt_bboxes") is None:
        raise KeyError(f"a box transform got no 'gt_bboxes' for '{results.get('img_path', '?')}'"
                       ": use a localisation dataset (BoxList, ILSVRCLocalisation)")
    return np.asarray(results["gt_bboxes"], dtype=np.float64).reshape(-1, 4)


def _whole(results: dict) -> np.ndarray:
    whole = results.get("gt_bboxes_whole")
    return _boxes(results) if whole is None else np.asarray(whole, np.float64).reshape(-1, 4)


def _map_boxes(results: dict, move: Callable[[np.ndarray], np.ndarray]) -> None:
    """Apply ``move`` to the clipped and the whole boxes."""
    results["gt_bboxes_whole"] = move(_whole(results))
    results["gt_bboxes"] = move(_boxes(results))


def crop_with_boxes(results: dict, draw: Draw, min_visible: float = 0.5,
                    max_tries: int = 1) -> dict | None:
    """Apply the crop rule of the module docstring; ``draw()`` makes one crop."""
    boxes, whole = _boxes(results), _whole(results)
    labels = np.asarray(results.get("gt_bboxes_labels", np.zeros(len(boxes))), dtype=np.int64)
    best: tuple | None = None
    for attempt in range(1, max_tries + 1):
        img, window, factor = draw()
        clipped, keep, visible = crop_boxes(scale_boxes(boxes, *factor), window)
        shown = float(visible.max()) if len(visible) else 0.0
        if best is None or shown > best[0]:
            best = (shown, img, window, factor, clipped, keep, visible)
        if shown >= min_visible:
            break
    shown, img, window, factor, clipped, keep, visible = best
    if shown <= 0.0:
        return None
    moved = shift_boxes(scale_boxes(whole, *factor), window[0], window[1])
    results.update(gt_bboxes=clipped[keep], gt_bboxes_whole=moved[keep],
                   gt_bboxes_labels=labels[keep], box_visible=visible[keep],
                   box_cut=shown < min_visible, crop_tries=attempt,
                   crop_box=tuple(float(v) for v in window))
    return set_img(results, img)


def _check_rule(min_visible: float, max_tries: int) -> None:
    if not 0.0 < min_visible <= 1.0:
        raise ValueError(f"min_visible must lie in (0, 1], got {min_visible}")
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")


def _centre_window(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    x0, y0 = (width - size) // 2, (height - size) // 2  # as data.transforms.center_crop
    return x0, y0, x0 + size, y0 + size


class LoadBoxImage(LoadImage):
    """:class:`LoadImage`; boxes annotated on another size (``ann_size``) follow the decoded one."""

    def transform(self, results: dict) -> dict | None:
        if super().transform(results) is None:
            return None
        size, (w, h) = results.get("ann_size"), results["img"].size
        sx, sy = (w / size[0], h / size[1]) if size else (1.0, 1.0)
        _map_boxes(results, lambda b: scale_boxes(b, sx, sy))
        return results


class BoxIsotropicRescale(IsotropicRescale):
    """:class:`IsotropicRescale` (S fixed or jittered) moving the boxes."""

    def transform(self, results: dict) -> dict:
        w, h = results["img"].size
        super().transform(results)
        img = results["img"]
        _map_boxes(results, lambda b: scale_boxes(b, img.width / w, img.height / h))
        return results


class BoxRandomCrop(RandomCrop):
    """:class:`RandomCrop` under the crop rule (``min_visible``, ``max_tries``)."""

    def __init__(self, size: int = 224, min_visible: float = 0.5, max_tries: int = 10) -> None:
        super().__init__(size)
        _check_rule(min_visible, max_tries)
        self.min_visible, self.max_tries = float(min_visible), int(max_tries)

    def transform(self, results: dict) -> dict | None:
        def draw():
            out = RandomCrop.transform(self, dict(results))
            return out["img"], out["crop_box"], (1.0, 1.0)
        return crop_with_boxes(results, draw, self.min_visible, self.max_tries)


class BoxRandomScaleCrop(RandomScaleCrop):
    """:class:`RandomScaleCrop` (rescale to S + crop, fused) under the crop rule.

    S is drawn once per sample; a redraw moves only the window.
    """

    def __init__(self, scale: int | Sequence[int] = (256, 512), crop: int = 224,
                 min_visible: float = 0.5, max_tries: int = 10) -> None:
        super().__init__(scale, crop)
        _check_rule(min_visible, max_tries)
        self.min_visible, self.max_tries = float(min_visible), int(max_tries)

    def transform(self, results: dict) -> dict | None:
        s, img = draw_scale(*self.scale), results["img"]
        rw, rh = rescaled_size(img.width, img.height, s)
        results["scale"] = s

        def draw():
            out, window = self.scale_crop(img, s)
            return out, window, (rw / img.width, rh / img.height)
        return crop_with_boxes(results, draw, self.min_visible, self.max_tries)


class BoxCenterCrop(CenterCrop):
    """:class:`CenterCrop`; boxes clipped, a sample with no box left dropped."""

    def transform(self, results: dict) -> dict | None:
        w, h = results["img"].size

        def draw():
            return (CenterCrop.transform(self, dict(results))["img"],
                    _centre_window(w, h, self.size), (1.0, 1.0))
        return crop_with_boxes(results, draw)


class BoxTestRescale(TestRescale):
    """:class:`TestRescale` (test scale Q, optional centre crop) moving the boxes."""

    __test__ = False

    def transform(self, results: dict) -> dict | None:
        w, h = results["img"].size
        rw, rh = rescaled_size(w, h, self.scale)
        window = (0, 0, rw, rh) if self.crop is None else _centre_window(rw, rh, self.crop)

        def draw():
            return TestRescale.transform(self, dict(results))["img"], window, (rw / w, rh / h)
        out = crop_with_boxes(results, draw)
        if out is not None:
            out["scale"] = self.scale
        return out


class BoxRandomFlip(RandomFlip):
    """:class:`RandomFlip` mirroring the boxes with the image."""

    def transform(self, results: dict) -> dict:
        super().transform(results)
        if results["flip"]:
            _map_boxes(results, lambda b: flip_boxes(b, results["img"].width))
        return results


class PackBoxInputs(PackInputs):
    """:class:`PackInputs` plus the regression target of Appendix A.

    The target is the box with the largest area in the final image (after
    clipping): ``data_sample.gt_bbox`` holds its normalised ``(cx, cy, w, h)``
    -- of the whole box (``target='whole'``, coordinates may leave [0, 1]) or
    of its clipped part (``'clipped'``) -- and ``gt_label`` its class. The
    clipped boxes stay in ``gt_bboxes`` (K x 4 pixels) and
    ``gt_bboxes_labels``. A sample without boxes is dropped (None).
    """

    def __init__(self, target: str = "whole", meta_keys: Sequence[str] = (
            *DEFAULT_META_KEYS, "box_cut", "crop_tries")) -> None:
        super().__init__(meta_keys)
        if target not in ("whole", "clipped"):
            raise ValueError(f"PackBoxInputs target must be 'whole' or 'clipped', got {target!r}")
        self.target = target

    def transform(self, results: dict) -> dict | None:
        boxes = _boxes(results)
        if not len(boxes):
            return None
        labels = np.asarray(results["gt_bboxes_labels"], dtype=np.int64).reshape(-1)
        target = int(np.argmax(area(boxes)))
        results["gt_label"] = int(labels[target])
        packed: dict[str, Any] = super().transform(results)
        sample, img = packed["data_samples"], results["img"]
        chosen = (_whole(results) if self.target == "whole" else boxes)[target]
        sample.gt_bbox = torch.as_tensor(to_cxcywh(chosen, img.width, img.height),
                                         dtype=torch.float32)
        sample.gt_bboxes = torch.as_tensor(boxes, dtype=torch.float32)
        sample.gt_bboxes_labels = torch.as_tensor(labels)
        return packed
