"""A PNG of the training curves (loss, lr, validation top-1/top-5 error) in the work dir."""
from __future__ import annotations

import io
import os.path as osp
import time
from typing import Any, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from vggkit.fileio import atomic_write_bytes

META_KEY = "vggkit_curves"


class TrainingCurvesHook(Hook):
    """Collects loss and lr per iteration and val errors per epoch; redraws the PNG.

    The history travels in checkpoints (``meta['vggkit_curves']``), so a
    resumed run draws the whole training, not only its second half.

    Args:
        filename: PNG name inside the work dir.
        min_interval: seconds between redraws after validation (drawing costs
            about a second of CPU); the final picture is always drawn.
    """

    priority = "LOW"

    def __init__(self, filename: str = "curves.png", min_interval: float = 60.0) -> None:
        self.filename = filename
        self.min_interval = min_interval
        self._drawn_at = float("-inf")
        self.history: dict[str, list] = {"iter": [], "loss": [], "lr": [],
                                         "val_epoch": [], "top1_error": [], "top5_error": []}

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        hub = runner.message_hub
        loss, lr = hub.get_scalar("train/loss"), hub.get_scalar("train/lr")
        self.history["iter"].append(runner.iter + 1)
        self.history["loss"].append(float(loss.current()) if loss is not None else float("nan"))
        self.history["lr"].append(float(lr.current()) if lr is not None else float("nan"))

    def after_val_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        if metrics:
            self.history["val_epoch"].append(runner.epoch)
            for key in ("top1_error", "top5_error"):
                self.history[key].append(float(metrics.get(key, float("nan"))))
        if time.monotonic() - self._drawn_at >= self.min_interval:
            self.draw(runner)

    def after_train(self, runner: Any) -> None:
        self.draw(runner)

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint.setdefault("meta", {})[META_KEY] = {k: list(v) for k, v in self.history.items()}

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        saved = checkpoint.get("meta", {}).get(META_KEY)
        if saved:
            self.history = {k: list(saved.get(k, [])) for k in self.history}

    def draw(self, runner: Any) -> None:
        if is_main_process() and self.history["iter"]:
            atomic_write_bytes(osp.join(runner.work_dir, self.filename), render(self.history))
            self._drawn_at = time.monotonic()


def render(history: dict[str, list]) -> bytes:
    """PNG bytes: loss and lr against iterations, val errors against epochs."""
    from matplotlib.figure import Figure  # no pyplot: no global state, thread-safe

    fig = Figure(figsize=(12, 3.6), dpi=100)
    ax_loss, ax_lr, ax_err = fig.subplots(1, 3)
    ax_loss.plot(history["iter"], history["loss"], lw=0.8)
    ax_loss.set(title="training loss", xlabel="iteration")
    ax_lr.plot(history["iter"], history["lr"], lw=0.8, color="tab:orange")
    ax_lr.set(title="learning rate", xlabel="iteration", yscale="log")
    epochs = history["val_epoch"]
    if epochs:
        ax_err.plot(epochs, history["top1_error"], "o-", label="top-1")
        ax_err.plot(epochs, history["top5_error"], "s-", label="top-5")
        ax_err.legend()
    ax_err.set(title="validation error (%)", xlabel="epoch")
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.15, wspace=0.3)  # tight_layout: slow
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
