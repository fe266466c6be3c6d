"""Batches of the net's inputs: images of equal size together, at most so many pixels.

A dense net takes a batch only of equal-sized inputs, so inputs are grouped
by size first. What one forward pass may hold:

* feature extraction: :data:`MAX_BATCH_PIXELS`, fixed, recorded in a store's settings;
* evaluation: :func:`vggkit.inference.pass_cap.pass_cap`, derived on the running
  machine for the net, its output and the backend running it.
"""
from __future__ import annotations

from typing import Sequence

#: image pixels per batch of feature extraction (before mirroring), on any device:
#: bounds activation memory at large Q (4 images of 683 x 512: conv1 maps of the
#: 8 passes take ~0.7 GB in fp32). Recorded in a feature store's settings.
MAX_BATCH_PIXELS = 4 * 683 * 512


def size_batches(sizes: Sequence[tuple[int, int]], batch_size: int,
                 max_pixels: int | None = None) -> list[list[int]]:
    """Indices grouped by equal size, in index order within a size, chunked.

    A chunk holds at most ``batch_size`` inputs and ``max_pixels`` pixels (at
    least one input). Sizes come in sorted order. The result depends only on
    the arguments: the same inputs always make the same batches (which a
    resumed feature extraction relies on for byte-identical output).
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(i)
    batches = []
    for size in sorted(groups):
        members = groups[size]
        step = batch_size
        if max_pixels is not None:
            step = max(1, min(batch_size, max_pixels // (size[0] * size[1])))
        batches += [members[s:s + step] for s in range(0, len(members), step)]
    return batches
