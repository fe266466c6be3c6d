"""Exact continuation of a run killed in the middle of an epoch.

mmengine's epoch loop restarts a resumed epoch from its first batch, so a
checkpoint taken mid-epoch (``VGGCheckpointHook(iter_interval=...)``) would
replay data already trained on. :class:`ResumeHook` makes the resumed epoch
skip the batches done before the checkpoint -- at the sampler, without
decoding them -- and keeps batch indices (logs, "[epoch][i/N]") as in the
uninterrupted run. With :mod:`vggkit.engine.seeding` (per-sample augmentation
seeds, per-iteration dropout seeds) a resumed run then computes exactly the
uninterrupted run's updates.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator, Optional

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from torch.utils.data import Sampler

from vggkit.engine.seeding import derive_seed


class _SkipFirst(Sampler):
    """Yields ``sampler`` without its first ``skip`` indices (one epoch only)."""

    def __init__(self, sampler: Any, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.sampler)  # the epoch's length stays the full one


class ResumeHook(Hook):
    """Mid-epoch resume, per-sample augmentation seeds and per-iteration dropout seeds.

    Args:
        reseed_iters: reseed torch before every iteration from
            ``(seed, rank, iter)`` so dropout masks do not depend on the
            process's history (needed for resume equality).
    """

    priority = "VERY_HIGH"

    def __init__(self, reseed_iters: bool = True) -> None:
        self.reseed_iters = reseed_iters
        self._skip_batches = 0
        self._patched: Optional[tuple[Any, Any]] = None

    @staticmethod
    def _samples_per_iter(runner: Any) -> int:
        return runner.train_dataloader.batch_size * get_world_size()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint.setdefault("meta", {})["samples_per_iter"] = self._samples_per_iter(runner)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if not isinstance(getattr(runner, "_train_loop", None), BaseLoop):
            return  # testing, or loading weights before training is set up
        meta = checkpoint.get("meta", {})
        saved, now = meta.get("samples_per_iter"), self._samples_per_iter(runner)
        mid_epoch = meta.get("iter", 0) % max(1, len(runner.train_dataloader))
        if saved is not None and saved != now and mid_epoch:
            raise ValueError(
                f"cannot continue this mid-epoch checkpoint: it was trained with {saved} images "
                f"per iteration (batch x processes), this run has {now}, so the rest of the "
                "epoch would differ. Resume with the same batch_per_gpu and number of "
                "processes, or from an epoch checkpoint (--resume work_dir/epoch_N.pth).")

    def before_train(self, runner: Any) -> None:
        loader = runner.train_dataloader
        if getattr(loader, "persistent_workers", False) and hasattr(loader.dataset, "set_epoch"):
            raise ValueError("train_dataloader.persistent_workers=True keeps the workers' copy of "
                             "SeededDataset at epoch 0 (the same augmentation every epoch); set "
                             "persistent_workers=False")
        done = runner.iter - runner.epoch * len(loader)
        if 0 < done <= len(loader):
            self._skip_batches = done
            runner.logger.info(f"vggkit: resuming epoch {runner.epoch + 1} at batch {done + 1}/"
                               f"{len(loader)} (iteration {runner.iter + 1}); skipping the "
                               f"{done} batches trained before the checkpoint")

    def before_train_epoch(self, runner: Any) -> None:
        loader = runner.train_dataloader
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(runner.epoch, seed=runner.seed)
        if self._skip_batches:
            batch_sampler = loader.batch_sampler
            skip = self._skip_batches * batch_sampler.batch_size
            batch_sampler.sampler = _SkipFirst(batch_sampler.sampler, skip)
            # batch indices continue where the killed run stopped
            loop, offset = runner.train_loop, self._skip_batches
            run_iter = loop.run_iter
            loop.run_iter = lambda idx, data_batch: run_iter(idx + offset, data_batch)
            self._patched = (batch_sampler, loop)
            self._skip_batches = 0

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.reseed_iters:
            torch.manual_seed(derive_seed(runner.seed or 0, get_rank(), runner.iter))

    def after_train_epoch(self, runner: Any) -> None:
        if self._patched is not None:
            batch_sampler, loop = self._patched
            batch_sampler.sampler = batch_sampler.sampler.sampler
            del loop.run_iter  # back to the class's method
            self._patched = None
