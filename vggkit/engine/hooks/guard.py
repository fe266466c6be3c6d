"""Stop a diverged run at once instead of training on NaNs for days."""
from __future__ import annotations

import math
from typing import Any

from mmengine.hooks import Hook

from vggkit.errors import UserError


class TrainingDivergedError(UserError, FloatingPointError):
    """The training loss became NaN or infinite: the fix is in the recipe, not the code."""


class NonFiniteLossHook(Hook):
    """Raises :class:`TrainingDivergedError` when the training loss becomes NaN or infinite."""

    priority = "HIGH"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        loss = (outputs or {}).get("loss")
        if loss is None:
            return
        value = loss.item() if hasattr(loss, "item") else float(loss)  # item(): no autograd warning
        if not math.isfinite(value):
            lr = runner.optim_wrapper.get_lr()
            raise TrainingDivergedError(
                f"training loss is {value} at epoch {runner.epoch + 1}, iteration "
                f"{runner.iter + 1} (lr {lr}): the run diverged. Lower the learning rate "
                "(--cfg-options optim_wrapper.optimizer.lr=...) or the init scale "
                "(model.vgg.init_std), and resume from an earlier checkpoint or start again.")
