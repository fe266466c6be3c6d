"""The paper's scales: the training scale S and the test scales Q derived from it.

Training rescales images to smallest side S (fixed, or jittered in
[S_min, S_max]) and records S in checkpoints (``meta['train_scale']``), read
from the transform that actually rescaled the training images. Testing
rescales to smallest side Q, by default the paper's set for S (Sect. 3.2/4.2:
Q in {S-32, S, S+32} for a fixed S, {S_min, (S_min+S_max)/2, S_max} for
jitter).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

#: transforms whose ``scale`` argument is the training scale S or [S_min, S_max]
SCALE_TRANSFORMS = ("LoadScaleCrop", "RandomScaleCrop", "IsotropicRescale")
#: the paper's +-32 around a fixed training scale S, at its 224-pixel crop
PAPER_CROP = 224
PAPER_OFFSET = 32
#: sources whose published weights were trained with scale jittering S in [256, 512]
#: (the paper's released Caffe models D and E)
JITTERED_SOURCES = {"caffe": {"S_min": 256, "S_max": 512}}
CONVERTED_SOURCES = ("torchvision", "timm", "mmpretrain", "caffe")


# -- the training scale S ------------------------------------------------------------
def innermost_dataset(dataset_cfg: Any) -> Any:
    """Follow ``dataset=`` of wrapper datasets (e.g. ``SeededDataset``) to the real one."""
    while isinstance(dataset_cfg, dict) and isinstance(dataset_cfg.get("dataset"), dict):
        dataset_cfg = dataset_cfg["dataset"]
    return dataset_cfg


def pipeline_train_scale(pipeline: Any) -> Optional[tuple[int, int]]:
    """``(S_min, S_max)`` of a training pipeline (S_min == S_max for a fixed S)."""
    for step in pipeline or ():
        name = str(step.get("type", "")).rsplit(".", 1)[-1] if isinstance(step, dict) else ""
        if name in SCALE_TRANSFORMS and "scale" in step:
            scale = step["scale"]
            if isinstance(scale, int):
                return scale, scale
            lo, hi = scale
            return int(lo), int(hi)
    return None


def as_record(lo: int, hi: int) -> dict[str, int]:
    """The contract's form: ``{'S': s}`` or ``{'S_min': lo, 'S_max': hi}``."""
    return {"S": lo} if lo == hi else {"S_min": lo, "S_max": hi}


def checkpoint_train_scale(cfg: Any) -> Optional[dict[str, int]]:
    """``meta['train_scale']`` for a runner config (None if no scale transform)."""
    loader = cfg.get("train_dataloader") or {}
    dataset = innermost_dataset(loader.get("dataset"))
    scale = pipeline_train_scale(dataset.get("pipeline") if isinstance(dataset, dict) else None)
    return as_record(*scale) if scale else None


def weights_train_scale(meta: Mapping[str, Any], config: Any) -> Optional[dict[str, int]]:
    """The training scale of loaded weights, which their default test scales derive from.

    In order: ``meta['train_scale']`` (runner checkpoints); for converted
    Caffe weights the paper's jittered [256, 512]; for our own checkpoints the
    config's training pipeline (:func:`checkpoint_train_scale`); else None
    (the single-scale torchvision/timm protocol, see :func:`default_test_scales`).
    """
    if meta.get("train_scale"):
        return dict(meta["train_scale"])
    source = meta.get("source")
    if source in JITTERED_SOURCES:
        return dict(JITTERED_SOURCES[source])
    if source in CONVERTED_SOURCES:
        return None
    return checkpoint_train_scale(config)


# -- the test scales Q ---------------------------------------------------------------
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
