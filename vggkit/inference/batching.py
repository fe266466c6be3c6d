"""Batches of the net's inputs: images of equal size together, at most so many pixels.

A dense net takes a batch only of equal-sized inputs, so inputs are grouped
by size first. The pixel caps below bound what one pass holds.
"""
from __future__ import annotations

from typing import Sequence

import torch

#: input pixels per forward pass of evaluation on CPU. Larger batches buy no
#: parallelism there but their activation maps overflow the cache (and malloc's
#: mmap threshold): measured on VGG-D/16, 6 dense inputs of 384x512 run 1.4x
#: slower than 3 passes of 2, and 50 crops of 224x224 per pass ~1.5x slower than 7.
CPU_PASS_PIXELS = 384 * 1024

#: image pixels per batch of feature extraction (before mirroring), on any device:
#: bounds activation memory at large Q (4 images of 683 x 512: conv1 maps of the
#: 8 passes take ~0.7 GB in fp32). Recorded in a feature store's settings.
MAX_BATCH_PIXELS = 4 * 683 * 512


def pass_pixels(device: torch.device) -> int | None:
    """The pixel cap of one evaluation pass on ``device`` (None: only the batch size counts)."""
    return CPU_PASS_PIXELS if device.type == "cpu" else None


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
