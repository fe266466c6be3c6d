"""The training scale S of a config, as recorded in checkpoints.

Evaluation picks the paper's test scales from it (Sect. 3.2: Q in
{S-32, S, S+32} for a fixed S, {S_min, (S_min+S_max)/2, S_max} for jitter), so
it is read from the transform that actually rescaled the training images.
"""
from __future__ import annotations

from typing import Any, Optional

#: transforms whose ``scale`` argument is the training scale S or [S_min, S_max]
SCALE_TRANSFORMS = ("LoadScaleCrop", "RandomScaleCrop", "IsotropicRescale")


def innermost_dataset(dataset_cfg: Any) -> Any:
    """Follow ``dataset=`` of wrapper datasets (e.g. ``SeededDataset``) to the real one."""
    while isinstance(dataset_cfg, dict) and isinstance(dataset_cfg.get("dataset"), dict):
        dataset_cfg = dataset_cfg["dataset"]
    return dataset_cfg


def train_scale_of(pipeline: Any) -> Optional[tuple[int, int]]:
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
    scale = train_scale_of(dataset.get("pipeline") if isinstance(dataset, dict) else None)
    return as_record(*scale) if scale else None
