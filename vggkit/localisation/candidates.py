"""Apply a localiser and a classifier to one image at several scales (Appendix A testing).

For each test scale Q the image is rescaled isotropically to smallest side Q,
then either

* ``dense``: both nets run fully convolutionally over the whole image. The
  localiser gives a box at every location of its map (per class for PCR),
  normalised to the ``input_size`` window at ``(32 j, 32 i)``; the
  classifier's softmax at the same location is that box's confidence (a
  classifier map of another size is resampled to the box map, nearest).
  The window grid is centred: the ``size mod 32`` pixels a stride-32 map
  cannot cover are trimmed evenly from both sides rather than all from the
  right and bottom (a few pixels of a 256-pixel image, but a third of a
  48-pixel one); or
* ``center``: both nets see the central crop of their ``input_size``: one box
  (per class) and one posterior vector per scale.

With ``flip`` the mirrored image adds its own locations, boxes mirrored
back. Every box is returned in pixels of the original image, and the image's
class posterior is the mean over scales (and flips) of the spatial mean --
the paper's dense classification.

Several localisation nets (:class:`BoxNet`, each at its own scales) are fused
as the paper does: "we first take the union of their sets of bounding box
predictions, and then run the merging procedure on the union"
(:func:`union`, :func:`fused_candidates`; the merging is the caller's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from torch import Tensor

from vggkit.inference.views import image_views
from vggkit.localisation.boxes import flip_boxes, scale_boxes, shift_boxes, to_xyxy
from vggkit.localisation import PROTOCOLS
from vggkit.models.preprocess import normalize

__all__ = ["PROTOCOLS", "Candidates", "BoxNet", "window_boxes", "candidates", "union",
           "fused_candidates", "CompiledLocaliser", "compiled_nets"]

STRIDE = 32  # five 2x2 max-pools


@dataclass
class Candidates:
    """One image's box predictions at every location, scale and flip.

    Attributes:
        boxes: L x C' x 4 ``xyxy`` pixels of the original image (C' = 1 for SCR).
        confidences: L x C, the classifier's posterior at each box's location.
        posterior: C, the image's class posterior.
    """

    boxes: np.ndarray
    confidences: np.ndarray
    posterior: np.ndarray


@dataclass(frozen=True)
class BoxNet:
    """One localisation net of a test: the model, its test scales Q, its preprocess record.

    The paper's fusion tests each net at its own scales (Table 9: the S = 256 net
    at Q = 256, the S = 384 net at Q = 352 and 384).
    """

    model: Any
    scales: Sequence[int]
    preprocess: Mapping[str, Any]


class CompiledLocaliser:
    """A :class:`~vggkit.localisation.model.VGGLocaliser`'s boxes with its VGG on the paths
    'auto' resolves (:class:`~vggkit.inference.runners.CompiledNet`): ``boxes`` of crops and
    the ``dense`` box map, as the localiser gives them."""

    def __init__(self, loc: Any, backend: str = "auto", precision: str = "auto",
                 dense_size: int | None = None) -> None:
        from vggkit.inference.runners import CompiledNet
        self.num_boxes = loc.num_boxes
        # one view at a time: batch 1, the crop and the middle test scale
        self.vgg = CompiledNet(loc.vgg, backend, precision, dense_size=dense_size,
                               batches={"logits": 1, "dense": 1})

    def boxes(self, inputs: Tensor) -> Tensor:
        return self.vgg(inputs).float().view(len(inputs), self.num_boxes, 4)

    def dense(self, inputs: Tensor) -> Tensor:
        out = self.vgg.dense(inputs).float()
        return out.view(len(inputs), self.num_boxes, 4, *out.shape[-2:])


def compiled_nets(nets: Sequence[BoxNet], cls: Any, protocols: Sequence[str],
                  backend: str = "auto", precision: str = "auto") -> tuple[list[BoxNet], Any]:
    """The localisation nets and the classifier on the paths 'auto' chooses for the outputs
    ``protocols`` call (the crops' for 'center', the dense maps' for 'dense'), built now."""
    from vggkit.inference.runners import CompiledNet
    outputs = [{"center": "logits", "dense": "dense"}[p] for p in protocols]
    scales = sorted(q for n in nets for q in n.scales)
    middle = int(scales[(len(scales) - 1) // 2]) if scales else None
    boxed = [BoxNet(CompiledLocaliser(n.model, backend, precision, middle), n.scales,
                    n.preprocess) for n in nets]
    classifier = CompiledNet(cls, backend, precision, dense_size=middle,
                             batches={"logits": 1, "dense": 1})
    for net in [b.model.vgg for b in boxed] + [classifier]:
        net.prepare(outputs)
    return boxed, classifier


def window_boxes(box_map: torch.Tensor, input_size: int, stride: int = STRIDE) -> np.ndarray:
    """A dense box map N x C x 4 x h x w (normalised per window) -> N x (h w) x C x 4 pixels.

    The window of location ``(i, j)`` is the ``input_size`` square whose
    top-left corner is ``(stride j, stride i)``; locations run row by row.
    """
    n, c, _, h, w = box_map.shape
    boxes = to_xyxy(box_map.permute(0, 3, 4, 1, 2).reshape(n, h * w, c, 4).cpu().numpy(),
                    input_size, input_size)
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    offsets = np.stack([jj.ravel(), ii.ravel()] * 2, axis=-1) * stride  # (x, y, x, y)
    return boxes + offsets[None, :, None, :]


def _input(view: Tensor, record: Mapping[str, Any], device: str) -> Tensor:
    return normalize(view[None].to(device), record)


def _centre(view: Tensor, size: int) -> tuple[Tensor, int, int]:
    """The central ``size`` square of a 3 x H x W view, and its offset (as ``center_crop``)."""
    dy, dx = (view.shape[-2] - size) // 2, (view.shape[-1] - size) // 2
    return view[:, dy:dy + size, dx:dx + size], dx, dy


def _dense(loc: Any, cls: Any, view: Tensor, pre: Sequence[Mapping], device: str
           ) -> tuple[np.ndarray, np.ndarray]:
    h, w = view.shape[-2:]
    dx, dy = (w % STRIDE) // 2, (h % STRIDE) // 2
    view = view[:, dy:dy + h - h % STRIDE, dx:dx + w - w % STRIDE]
    box_map = loc.dense(_input(view, pre[0], device))
    scores = cls.dense(_input(view, pre[1], device)).float().softmax(1)
    if scores.shape[-2:] != box_map.shape[-2:]:
        scores = F.interpolate(scores, size=tuple(box_map.shape[-2:]), mode="nearest")
    conf = scores[0].flatten(1).T.cpu().numpy()  # (h w) x C, row by row as window_boxes
    return shift_boxes(window_boxes(box_map, loc.vgg.input_size)[0], -dx, -dy), conf


def _center(loc: Any, cls: Any, view: Tensor, pre: Sequence[Mapping], device: str
            ) -> tuple[np.ndarray, np.ndarray]:
    size = loc.vgg.input_size
    crop, dx, dy = _centre(view, size)
    boxes = to_xyxy(loc.boxes(_input(crop, pre[0], device)).cpu().numpy(), size, size)
    scores = cls(_input(_centre(view, cls.input_size)[0], pre[1], device)).float().softmax(1)
    return shift_boxes(boxes, -dx, -dy), scores.cpu().numpy()


@torch.no_grad()
def candidates(loc: Any, cls: Any, img: Image.Image, scales: Sequence[int], protocol: str,
               preprocess: Sequence[Mapping[str, Any]], flip: bool = False,
               device: str = "cpu") -> Candidates:
    """Every box of ``img`` under ``protocol`` at ``scales`` (see the module docstring).

    Args:
        loc: a :class:`~vggkit.localisation.model.VGGLocaliser` in eval mode.
        cls: the classification :class:`~vggkit.models.VGG` in eval mode.
        preprocess: the two nets' preprocess records (localiser, classifier).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; choose from {PROTOCOLS}")
    apply = _dense if protocol == "dense" else _center
    boxes, confs, posteriors = [], [], []
    views = image_views(img, scales)
    for q in scales:
        scaled = views[int(q)]
        factor = (img.width / scaled.shape[-1], img.height / scaled.shape[-2])
        for mirrored in (False, True) if flip else (False,):
            b, conf = apply(loc, cls, scaled.flip(-1) if mirrored else scaled, preprocess, device)
            if mirrored:
                b = flip_boxes(b, scaled.shape[-1])
            boxes.append(scale_boxes(b, *factor))
            confs.append(conf)
            posteriors.append(conf.mean(0))
    return Candidates(np.concatenate(boxes), np.concatenate(confs), np.mean(posteriors, 0))


def union(found: Sequence[Candidates]) -> Candidates:
    """The candidates of several localisation nets on one image, as one set.

    Boxes and their confidences are concatenated, so the greedy merging runs
    over all nets' boxes at once. Beside per-class nets, a single-class net's
    shared box stands for every class (it is that net's box for any class).
    The image posterior is the mean of the nets' (the classifier is the same;
    only the scales it saw differ).
    """
    if not found:
        raise ValueError("union: no candidates (give at least one localisation net)")
    if len(found) == 1:
        return found[0]
    width = max(f.boxes.shape[1] for f in found)
    boxes = [f.boxes if f.boxes.shape[1] == width else np.repeat(f.boxes, width, axis=1)
             for f in found]
    return Candidates(np.concatenate(boxes), np.concatenate([f.confidences for f in found]),
                      np.mean([f.posterior for f in found], 0))


def fused_candidates(nets: Sequence[BoxNet], cls: Any, img: Image.Image, protocol: str,
                     cls_preprocess: Mapping[str, Any], flip: bool = False,
                     device: str = "cpu") -> Candidates:
    """:func:`union` of every net's :func:`candidates` at the net's own scales."""
    return union([candidates(n.model, cls, img, n.scales, protocol,
                             (n.preprocess, cls_preprocess), flip, device) for n in nets])
