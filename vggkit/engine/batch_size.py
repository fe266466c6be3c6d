"""Sect. 3.1: "the batch size was set to 256" -- whatever the number of GPUs.

The total batch is split over ``world_size`` processes of ``batch_per_gpu``
images; when that is smaller than the total, gradients are accumulated over
``total / (world_size * batch_per_gpu)`` iterations before each SGD step
(mmengine's ``accumulative_counts`` divides each loss by it, so the update is
the mean over the full 256 images).
"""
from __future__ import annotations

import os
from typing import Any, Optional


def world_size_from_env(launcher: str) -> int:
    """Number of training processes the launcher will start (1 without one)."""
    if launcher == "pytorch":
        return int(os.environ.get("WORLD_SIZE", 1))
    if launcher == "slurm":
        return int(os.environ.get("SLURM_NTASKS", os.environ.get("WORLD_SIZE", 1)))
    return 1


def split_batch(total: int, world_size: int, batch_per_gpu: Optional[int]) -> tuple[int, int]:
    """``(batch_per_gpu, accumulative_counts)`` giving exactly ``total`` images per step.

    ``batch_per_gpu=None`` puts ``total / world_size`` on each process.

    Raises:
        ValueError: when ``total`` is not a multiple of ``world_size * batch_per_gpu``,
            naming valid choices.
    """
    if total < 1 or world_size < 1:
        raise ValueError(f"total_batch_size and world size must be positive, got {total} and "
                         f"{world_size}")
    if batch_per_gpu is None:
        if total % world_size:
            raise ValueError(f"total_batch_size={total} cannot be split evenly over {world_size} "
                             f"processes; set batch_per_gpu so that {total} is a multiple of "
                             f"{world_size} x batch_per_gpu")
        return total // world_size, 1
    if batch_per_gpu < 1:
        raise ValueError(f"batch_per_gpu must be positive, got {batch_per_gpu}")
    if total % (world_size * batch_per_gpu):
        valid = [b for b in range(1, total + 1) if total % (world_size * b) == 0]
        raise ValueError(
            f"total_batch_size={total} is not a multiple of world_size ({world_size}) x "
            f"batch_per_gpu ({batch_per_gpu}) = {world_size * batch_per_gpu}, so the paper's "
            f"batch cannot be kept with gradient accumulation. Use batch_per_gpu in {valid} "
            f"(--cfg-options batch_per_gpu=N) or another number of GPUs.")
    return batch_per_gpu, total // (world_size * batch_per_gpu)


def apply_batch(cfg: Any, world_size: int) -> tuple[int, int]:
    """Set ``train_dataloader.batch_size`` and ``optim_wrapper.accumulative_counts`` in ``cfg``.

    Reads ``total_batch_size`` (default 256) and ``batch_per_gpu`` from the
    config's top level. Also rounds the checkpoint hook's ``iter_interval``
    up to a multiple of the accumulation count (a checkpoint must not fall
    inside an accumulation window). Returns ``(batch_per_gpu, accumulative_counts)``.
    """
    total = int(cfg.get("total_batch_size", 256))
    per_gpu, counts = split_batch(total, world_size, cfg.get("batch_per_gpu"))
    cfg.train_dataloader.batch_size = per_gpu
    cfg.optim_wrapper.accumulative_counts = counts
    ckpt = (cfg.get("default_hooks") or {}).get("checkpoint")
    if ckpt and ckpt.get("iter_interval"):
        ckpt["iter_interval"] = -(-int(ckpt["iter_interval"]) // counts) * counts
    return per_gpu, counts


def check_batch_override(cfg: Any, options: Optional[dict]) -> None:
    """Refuse ``--cfg-options train_dataloader.batch_size=N`` that :func:`apply_batch` overrode.

    The batch per iteration is ``batch_per_gpu`` (or the total split over the
    processes); a batch_size given on the command line was silently replaced.
    Call after :func:`apply_batch`.
    """
    key = "train_dataloader.batch_size"
    asked = (options or {}).get(key)
    used = cfg.train_dataloader.batch_size
    if asked is None or asked == used:
        return
    total = int(cfg.get("total_batch_size", 256))
    raise ValueError(
        f"--cfg-options {key}={asked!r} is not used: vggkit sets {key} from total_batch_size "
        f"({total} images per SGD step) and batch_per_gpu (here {used} per process and "
        f"iteration); pass --cfg-options batch_per_gpu={asked} for {asked} per iteration "
        f"(gradients accumulated to {total}), or total_batch_size={asked} for {asked} per step")


LR_SCALING_RULES = ("linear", "sqrt", "none")


def lr_scale_factor(total: int, base_batch_size: int, rule: str) -> float:
    """How much the lr written for ``base_batch_size`` images per step changes at ``total``.

    ``linear`` (Goyal et al. 2017, "Accurate, large minibatch SGD"): the lr is
    proportional to the batch, so each image moves the weights as much as in
    the paper's batch of 256. ``sqrt`` keeps the variance of the step's noise
    instead (Krizhevsky 2014); ``none`` uses the lr as written.
    """
    if rule not in LR_SCALING_RULES:
        raise ValueError(f"lr_scaling must be one of {LR_SCALING_RULES}, got {rule!r}")
    if base_batch_size < 1:
        raise ValueError(f"base_batch_size must be positive, got {base_batch_size}")
    ratio = total / base_batch_size
    return {"linear": ratio, "sqrt": ratio ** 0.5, "none": 1.0}[rule]


def _is_lr(scheduler: Any) -> bool:
    """Whether a ``param_scheduler`` entry schedules the lr (mmengine's ``*LR`` types)."""
    kind = scheduler.get("type", "")
    return isinstance(kind, str) and kind.endswith("LR")


def scale_learning_rate(cfg: Any) -> float:
    """Scale the optimiser's lr (and its schedulers' absolute lrs) to the config's batch.

    The lr of a config is the one for ``base_batch_size`` images per step
    (256, the paper's). A config run with another ``total_batch_size`` (a
    CPU demo with 16) gets it scaled by ``lr_scaling``; without that, the
    paper's lr 0.01 at a batch of 16 takes 16x the paper's step per image,
    and a from-scratch net collapses within its first 20 iterations (dead
    ReLUs, fc7 constant across images; see docs/recipe_check.md). Returns
    the factor; call once per config.
    """
    total = int(cfg.get("total_batch_size", 256))
    factor = lr_scale_factor(total, int(cfg.get("base_batch_size", 256)),
                             str(cfg.get("lr_scaling", "linear")))
    if factor == 1.0:
        return factor
    optimizer = cfg.optim_wrapper.optimizer
    optimizer.lr = float(optimizer.lr) * factor
    for scheduler in cfg.get("param_scheduler") or []:
        # absolute lrs scale with the lr: the plateau rule's floor, a one-cycle's peak, a
        # cosine's end (an lr scheduler's only: a momentum scheduler's eta_min is a momentum)
        keys = ("min_value", "eta_max", "eta_min") if _is_lr(scheduler) else ("min_value",)
        for key in keys:
            if key in scheduler:
                scheduler[key] = float(scheduler[key]) * factor
    return factor
