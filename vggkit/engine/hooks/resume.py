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
        self._saved_per_epoch: Optional[int] = None  # of a resumed checkpoint
        self._patched: Optional[tuple[Any, Any]] = None

    @staticmethod
    def _samples_per_iter(runner: Any) -> int:
        return runner.train_dataloader.batch_size * get_world_size()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        meta = checkpoint.setdefault("meta", {})
        meta["samples_per_iter"] = self._samples_per_iter(runner)
        # where a checkpoint stands in its epoch, whatever the batch of the run resuming it
        meta["iters_per_epoch"] = len(runner.train_dataloader)

    def _saved_iters_per_epoch(self, runner: Any, meta: dict) -> int:
        """The iterations per epoch of the run that saved ``meta``."""
        if meta.get("iters_per_epoch"):
            return int(meta["iters_per_epoch"])
        saved = meta.get("samples_per_iter")
        if saved is None or saved == self._samples_per_iter(runner):
            return len(runner.train_dataloader)  # the same batch: the same epoch length
        # a checkpoint of an older vggkit: as many batches of its size as the data needs
        return max(1, -(-len(runner.train_dataloader.dataset) // int(saved)))

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if not isinstance(getattr(runner, "_train_loop", None), BaseLoop):
            return  # testing, or loading weights before training is set up
        if not getattr(runner, "_resume", False):
            return  # load_from: the weights only, training starts at iteration 0
        meta = checkpoint.get("meta", {})
        per_epoch = self._saved_iters_per_epoch(runner, meta)
        self._saved_per_epoch = per_epoch
        # an epoch checkpoint records the epochs done (iter = epoch x per_epoch), a
        # mid-epoch one the epoch it is in and the iterations done so far
        epoch, done = int(meta.get("epoch", 0)), int(meta.get("iter", 0)) - int(
            meta.get("epoch", 0)) * per_epoch
        saved, now = meta.get("samples_per_iter"), self._samples_per_iter(runner)
        if saved is not None and saved != now and 0 < done < per_epoch:
            path = getattr(runner, "_load_from", None) or "the checkpoint"
            after = (f"from the checkpoint of epoch {epoch} (--resume WORK_DIR/epoch_{epoch}.pth)"
                     if epoch else "afresh (it is in the first epoch)")
            raise ValueError(
                f"cannot continue '{path}': it stopped inside epoch {epoch + 1} (batch {done}/"
                f"{per_epoch}) trained with {saved} images per iteration (batch x processes) "
                f"and this run has {now}, so the rest of the epoch would differ. Resume with "
                f"the same total_batch_size, batch_per_gpu and number of processes, or {after}")

    def before_train(self, runner: Any) -> None:
        loader = runner.train_dataloader
        if getattr(loader, "persistent_workers", False) and hasattr(loader.dataset, "set_epoch"):
            raise ValueError("train_dataloader.persistent_workers=True keeps the workers' copy of "
                             "SeededDataset at epoch 0 (the same augmentation every epoch); set "
                             "persistent_workers=False")
        # counted in the saved run's iterations: an epoch checkpoint resumed with another
        # batch has done 0 batches of its next epoch, whatever the new epoch length
        per_epoch = self._saved_per_epoch or len(loader)
        done = runner.iter - runner.epoch * per_epoch
        if done == per_epoch:  # saved after the epoch's last batch: all of them are done
            done = len(loader)
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
