"""The image descriptor of the paper's Appendix B, as tensor functions.

For one net and one scale Q the net runs densely over the whole image
rescaled to Q; the map of the chosen layer (fc7 after its ReLU by default) is
globally average-pooled, averaged with the pooled map of the horizontally
flipped image and L2-normalised (:func:`flip_pooled`, :func:`l2_normalize`).

Normalisation rule used everywhere in vggkit (the paper leaves it open):
**every part is L2-normalised before it is combined, and the combination is
L2-normalised again.** So

* ``avg``: unit per-scale descriptors are averaged, then normalised (each
  scale weighs the same whatever its activation magnitude);
* ``stack``: unit per-scale descriptors are concatenated and the whole is
  normalised, so each scale block has norm ``1/sqrt(#scales)``;
* several nets (Net-D & Net-E): each net's aggregated descriptor is unit,
  the blocks are concatenated and normalised, so each net's block has norm
  ``1/sqrt(#nets)`` and the stored vector has norm 1;
* several regions of one image (VOC action: the whole image and the person
  box, :mod:`vggkit.features.regions`): each region's descriptor (nets
  stacked) is unit, the regions are concatenated and normalised, so each
  region's block has norm ``1/sqrt(#regions)``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LAYERS = ("fc7", "fc6", "pool5")
AGGREGATES = ("avg", "stack")


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows of ``x`` (N x D) scaled to unit L2 norm (a zero row stays zero)."""
    return F.normalize(x, p=2.0, dim=1, eps=eps)


def flip_pooled(dense_map: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Global average of the dense map of ``x`` and of its mirror, averaged: N x C.

    ``dense_map`` gives the chosen layer's map N x C x h x w of normalised
    images (e.g. :func:`vggkit.inference.runners.compile_for_inference` of
    that layer). The image and its mirror run as one batch of 2N (one pass,
    better utilisation); the result is not normalised.
    """
    n = x.shape[0]
    pooled = dense_map(torch.cat([x, x.flip(-1)], dim=0)).float().mean(dim=(2, 3))
    return (pooled[:n] + pooled[n:]) / 2


def combine(parts: Sequence[Tensor], mode: str) -> Tensor:
    """Aggregate descriptors N x D_i of one image set by the normalisation rule above.

    Args:
        parts: per-scale (or per-net) descriptors, normalised or not.
        mode: 'avg' (all D_i equal; result N x D) or 'stack' (N x sum D_i).
    """
    if mode not in AGGREGATES:
        raise ValueError(f"unknown aggregation '{mode}'; choose one of {AGGREGATES}")
    if not parts:
        raise ValueError("nothing to combine: no scales or nets given")
    units = [l2_normalize(p) for p in parts]
    if mode == "avg":
        merged = torch.stack(units).mean(dim=0)
    else:
        merged = torch.cat(units, dim=1)
    return l2_normalize(merged)


def descriptor_dim(width: int, n_scales: int, mode: str) -> int:
    """Length of one net's descriptor: ``width`` for 'avg', ``n_scales * width`` for 'stack'."""
    return width * (n_scales if mode == "stack" else 1)
