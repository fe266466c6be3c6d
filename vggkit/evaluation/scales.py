"""Test scales Q: the paper's defaults from the training scale, and checks."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

#: the paper's ±32 around a fixed training scale S, at its 224-pixel crop
PAPER_CROP = 224
PAPER_OFFSET = 32


def default_test_scales(train_scale: Mapping[str, Any] | None, crop: int = PAPER_CROP) -> list[int]:
    """The paper's multi-scale test set (Sect. 4.2) for a training scale.

    * fixed ``{'S': S}`` -> ``{S - d, S, S + d}`` with ``d = 32`` at crop 224
      (scaled by ``crop / 224`` for smaller nets, e.g. 5 for a 32-pixel crop);
      scales below the crop are raised to the crop and duplicates dropped
      (a net trained at S = 224 is tested at {224, 256}).
    * jittered ``{'S_min': a, 'S_max': b}`` -> ``{a, (a + b) / 2, b}``.
    * unknown (e.g. converted weights without a record) -> the single scale
      ``round(crop * 256 / 224)``: 256 for 224-pixel crops, the usual
      single-scale protocol of torchvision and timm.
    """
    if not train_scale:
        return [int(math.floor(crop * 256 / PAPER_CROP + 0.5))]
    if "S_min" in train_scale and "S_max" in train_scale:
        lo, hi = int(train_scale["S_min"]), int(train_scale["S_max"])
        if lo > hi:
            raise ValueError(f"train_scale {dict(train_scale)} has S_min > S_max")
        scales = [lo, int(math.floor((lo + hi) / 2 + 0.5)), hi]
    elif "S" in train_scale:
        s = int(train_scale["S"])
        d = max(1, int(math.floor(PAPER_OFFSET * crop / PAPER_CROP + 0.5)))
        scales = [s - d, s, s + d]
    else:
        raise ValueError(f"train_scale must be {{'S': int}} or {{'S_min': int, 'S_max': int}}, "
                         f"got {dict(train_scale)}")
    return sorted({max(q, crop) for q in scales})


def check_scales(scales: Sequence[int], crop: int, what: str = "model") -> list[int]:
    """``scales`` as ints, each at least ``crop``; raises ``ValueError`` naming the bad Q."""
    if not scales:
        raise ValueError("at least one test scale Q is needed (e.g. --scales 256 384 512)")
    out = [int(q) for q in scales]
    low = [q for q in out if q < crop]
    if low:
        raise ValueError(f"test scale Q={low[0]} is below the crop size {crop} of the {what} "
                         f"(input_size={crop}); every Q must be >= {crop}, since the image's "
                         f"smallest side is rescaled to Q and a {crop}×{crop} crop (or the fc6 "
                         "window of dense evaluation) must fit in it")
    return out
