"""The image descriptor of the paper's Appendix B, as tensor functions.

For one net and one scale Q the net runs densely over the whole image
rescaled to Q; the map of the chosen layer (fc7 after its ReLU by default) is
globally average-pooled, averaged with the pooled map of the horizontally
flipped image and L2-normalised (:func:`with_mirrors`, :func:`flip_pooled`,
:func:`l2_normalize`).

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

from vggkit.features import AGGREGATES


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows of ``x`` (N x D) scaled to unit L2 norm (a zero row stays zero)."""
    return F.normalize(x, p=2.0, dim=1, eps=eps)


def with_mirrors(images: Tensor) -> Tensor:
    """Images N x C x H x W followed by their horizontal flips: the 2N batch of :func:`flip_pooled`.

    Any dtype: the extractor mirrors the uint8 views (a quarter of the bytes
    of float) and normalises the 2N batch afterwards, which gives the same
    bytes, since normalisation is per pixel and commutes with the flip.
    """
    return torch.cat([images, images.flip(-1)], dim=0)


def flip_pooled(dense_map: Callable[[Tensor], Tensor], batch: Tensor) -> Tensor:
    """Global average of the dense map of each image and of its mirror, averaged: N x C.

    ``batch`` is :func:`with_mirrors` of N normalised images (2N: the images,
    then their mirrors), run as one pass of ``dense_map`` (better
    utilisation), which gives the chosen layer's map 2N x C x h x w (e.g.
    :func:`vggkit.inference.runners.compile_for_inference` of that layer).
    The result is not normalised.
    """
    if batch.shape[0] % 2:
        raise ValueError(f"flip_pooled takes images and their mirrors (with_mirrors), "
                         f"an even batch; got {batch.shape[0]}")
    n = batch.shape[0] // 2
    pooled = dense_map(batch).float().mean(dim=(2, 3))
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

