"""The one-cycle policy (Smith & Topin 2018) for mmengine runners, lr and momentum.

mmengine's ``OneCycleLR`` schedules only the lr; torch's ``OneCycleLR`` also
cycles the momentum the other way (``cycle_momentum=True``, its default), and on
CIFAR-10 that was worth about 2 points to the tiny nets (docs/natural_images.md).
:class:`OneCycleMomentum` is that half as an mmengine scheduler, so a config pairs
it with :class:`OneCycleLR` and gets torch's schedule step for step. Like any
mmengine scheduler without ``end``, it spans the whole run (the runner fills ``end``
from ``train_cfg``), so the cycle follows ``--cfg-options train_cfg.max_epochs=...``.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from mmengine.optim.scheduler import OneCycleLR as _MMOneCycleLR
from mmengine.optim.scheduler.momentum_scheduler import MomentumSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

__all__ = ["OneCycleLR", "OneCycleMomentum"]


class OneCycleLR(_MMOneCycleLR):
    """mmengine's ``OneCycleLR`` peaking at the optimiser's lr, with a checkpoint of numbers.

    Two differences, and otherwise mmengine's (its arguments, torch's formula):

    * ``eta_max`` left out is the optimiser's lr, so the config's lr (scaled
      with the batch) is the peak and ``--cfg-options optim_wrapper.optimizer.lr=``
      still sets the lr, as with every other schedule;
    * mmengine's keeps its annealing function, a bound method, in the state it
      saves, so a checkpoint pickles a reference to the class, and vggkit's
      loader (``weights_only``) refuses such a file; this one leaves it out.

    Registered under the same name, it replaces mmengine's in vggkit's configs.
    """

    def __init__(self, optimizer: Any, eta_max: Any = None, *args: Any, **kwargs: Any) -> None:
        if eta_max is None:
            eta_max = [group["lr"] for group in optimizer.param_groups]
        super().__init__(optimizer, eta_max, *args, **kwargs)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("anneal_func", None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        anneal = self.anneal_func
        super().load_state_dict(state_dict)
        self.anneal_func = anneal


class OneCycleMomentum(MomentumSchedulerMixin, _ParamScheduler):
    """Momentum from ``max_momentum`` to ``base_momentum`` while the lr rises, then back.

    Both phases are cosine, as torch's ``OneCycleLR(anneal_strategy='cos')``:
    the first ``pct_start`` of ``total_steps`` (default ``end - begin``) go down
    to ``base_momentum``, the rest back up to ``max_momentum``. A high momentum
    while the lr is small and a low one at its peak keep the step
    lr / (1 - momentum) from peaking as sharply as the lr.
    """

    def __init__(self, optimizer: Any, base_momentum: float = 0.85,
                 max_momentum: float = 0.95, pct_start: float = 0.3,
                 total_steps: Optional[int] = None, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"OneCycleMomentum pct_start must be in (0, 1), got {pct_start}")
        if not 0.0 <= base_momentum <= max_momentum < 1.0:
            raise ValueError("OneCycleMomentum needs 0 <= base_momentum <= max_momentum < 1, got "
                             f"base_momentum={base_momentum}, max_momentum={max_momentum}")
        self.total_steps = int(total_steps if total_steps is not None else end - begin)
        if self.total_steps < 1:
            raise ValueError(f"OneCycleMomentum needs at least 1 step, got {self.total_steps} "
                             "(set end, or total_steps)")
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)
        self.pct_start = float(pct_start)
        super().__init__(optimizer, begin=begin, end=end, last_step=last_step,
                         by_epoch=by_epoch, verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, begin: int = 0, end: int = INF,
                              total_steps: Optional[int] = None, by_epoch: bool = True,
                              epoch_length: Optional[int] = None, **kwargs: Any
                              ) -> "OneCycleMomentum":
        """An iteration-based instance of an epoch-based config (``convert_to_iter_based``)."""
        if not by_epoch or not epoch_length:
            raise ValueError("convert_to_iter_based needs by_epoch=True and a positive "
                             f"epoch_length, got by_epoch={by_epoch}, epoch_length={epoch_length}")
        return cls(*args, begin=int(begin * epoch_length),
                   end=end if end == INF else int(end * epoch_length),
                   total_steps=None if total_steps is None else total_steps * epoch_length,
                   by_epoch=False, **kwargs)

    def momentum_at(self, step: int) -> float:
        """The momentum after ``step`` steps (torch's ``OneCycleLR`` formula)."""
        peak = self.pct_start * self.total_steps - 1  # the step at which the lr peaks
        if step <= peak:
            start, stop, pct = self.max_momentum, self.base_momentum, step / peak if peak > 0 else 1.0
        else:
            start, stop = self.base_momentum, self.max_momentum
            pct = min(1.0, (step - peak) / (self.total_steps - 1 - peak))
        return stop + (start - stop) / 2.0 * (math.cos(math.pi * pct) + 1.0)

    def _get_value(self) -> list[float]:
        value = self.momentum_at(self.last_step)
        return [value for _ in self.optimizer.param_groups]
