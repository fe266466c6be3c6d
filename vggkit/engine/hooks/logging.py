"""What a user watches during training: images/s, a progress bar, bad images."""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook


def _batch_size(data_batch: Any) -> int:
    inputs = data_batch.get("inputs") if isinstance(data_batch, dict) else None
    return len(inputs) if inputs is not None else 0


class ThroughputHook(Hook):
    """Puts ``train/img_per_s`` (all ranks together) into the message hub for the log line."""

    priority = "NORMAL"

    def __init__(self) -> None:
        self._last: Optional[float] = None

    def before_train_epoch(self, runner: Any) -> None:
        self._last = None  # do not count validation or worker start-up

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            images = _batch_size(data_batch) * get_world_size()
            runner.message_hub.update_scalar("train/img_per_s", images / (now - self._last))
        self._last = now


class ProgressBarHook(Hook):
    """A tqdm bar over each training epoch and validation, when stderr is a terminal.

    Args:
        force: show it even when stderr is not a TTY (``None``: only on a TTY).
    """

    priority = "LOW"

    def __init__(self, force: Optional[bool] = None) -> None:
        self.force = force
        self._bar: Any = None

    def _enabled(self) -> bool:
        if get_rank() != 0:
            return False
        return self.force if self.force is not None else sys.stderr.isatty()

    def _open(self, total: int, desc: str, initial: int = 0) -> None:
        if self._enabled():
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=initial, desc=desc, leave=False,
                             dynamic_ncols=True, file=sys.stderr)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_train_epoch(self, runner: Any) -> None:
        total = len(runner.train_dataloader)
        self._open(total, f"epoch {runner.epoch + 1}/{runner.max_epochs}",
                   initial=max(0, runner.iter - runner.epoch * total))

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        if self._bar is not None:
            loss = runner.message_hub.get_scalar("train/loss")
            self._bar.set_postfix(loss=f"{loss.current():.4f}", refresh=False)
            self._bar.update(1)

    def after_train_epoch(self, runner: Any) -> None:
        self._close()

    def before_val_epoch(self, runner: Any) -> None:
        self._open(len(runner.val_dataloader), "val")

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def after_val_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        self._close()


class BadImageSummaryHook(Hook):
    """Logs the skipped unreadable images of each split at the end of its epoch.

    Each split counts its own distinct files: training's at each training epoch
    end, validation's (only when any) at each validation end, so neither leaks
    into the other's or the next epoch's count.
    """

    priority = "BELOW_NORMAL"

    def before_train(self, runner: Any) -> None:
        from vggkit.data import bad_images
        # one folder per rank: each rank resets its own at the epoch end
        bad_images.set_log_dir(os.path.join(runner.work_dir, "bad_images", f"rank{get_rank()}"))
        bad_images.reset()

    def before_train_epoch(self, runner: Any) -> None:
        from vggkit.data import bad_images
        bad_images.set_split("train")

    def after_train_epoch(self, runner: Any) -> None:
        self._report(runner, "train", runner.epoch + 1, quiet=False)

    def before_val_epoch(self, runner: Any) -> None:
        from vggkit.data import bad_images
        bad_images.set_split("val")

    def after_val_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        # mmengine has counted the finished training epoch by now
        self._report(runner, "val", runner.epoch, quiet=True)

    def after_train(self, runner: Any) -> None:
        from vggkit.data import bad_images
        bad_images.set_split(None)

    @staticmethod
    def _report(runner: Any, split: str, epoch: int, quiet: bool) -> None:
        from vggkit.data import bad_images
        info = bad_images.summary(split)
        if info["count"] or not quiet:
            message = bad_images.format_summary(info, split=split)
            (runner.logger.warning if info["count"] else runner.logger.info)(
                f"epoch {epoch}: {message}")
        bad_images.reset(split)
