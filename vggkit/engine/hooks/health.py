"""Warn -- or stop, with ``--strict-health`` -- when a run has collapsed instead of learning.

A collapsed net keeps training without an error: the loss stays finite, the
epochs go by, and the days are lost. Three symptoms give it away, each cheap to
watch: the validation set is predicted as one class, the training loss sits at
ln(K) (the posteriors are uniform: the net ignores its input), and fc7 is the
same for every image of a batch (the signal died before the classifier).

The decision functions (:func:`constant_predictions`, :func:`loss_plateau`,
:func:`constant_features`) are pure; :class:`TrainingHealthHook` feeds them from
the runner and turns what they saw into one warning per condition and epoch.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather_object, all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import Tensor

from vggkit.errors import UserError

MIN_LOSS_WINDOW = 100  # iterations: the default window when an epoch is shorter


class TrainingCollapseError(UserError, RuntimeError):
    """A health check failed and the hook is strict (``vggkit train --strict-health``)."""


@dataclass(frozen=True)
class FeatureStats:
    """fc7 (after ReLU) over one batch.

    Attributes:
        batch: images in the batch.
        max_std: the largest standard deviation across the batch of any fc7 unit.
        max_abs: the largest absolute activation.
        alive: per unit, whether any image of the batch activates it.
    """

    batch: int
    max_std: float
    max_abs: float
    alive: Tensor

    @property
    def dead_fraction(self) -> float:
        """Fraction of fc7 units that are zero for every image of the batch."""
        return 1.0 - float(self.alive.float().mean()) if self.alive.numel() else 0.0


def feature_stats(fc7: Tensor) -> FeatureStats:
    """Statistics of an N x C fc7 batch; the ReLU is applied here (it is idempotent,
    so fc7 given before or after its ReLU yields the same)."""
    act = F.relu(fc7.detach().float().flatten(1))
    std = act.std(dim=0, unbiased=False) if len(act) > 1 else act.new_zeros(act.shape[1:])
    return FeatureStats(batch=len(act), max_std=float(std.max()) if std.numel() else 0.0,
                        max_abs=float(act.abs().max()) if act.numel() else 0.0,
                        alive=(act > 0).any(dim=0).cpu())


def _class_name(index: int, classes: Optional[Sequence[str]]) -> str:
    if classes is not None and 0 <= index < len(classes):
        return f"class {index} ('{classes[index]}')"
    return f"class {index}"


def constant_predictions(pred_counts: Mapping[int, int], gt_counts: Mapping[int, int],
                         classes: Optional[Sequence[str]] = None) -> Optional[str]:
    """What was seen when every validation image got the same predicted class, else None.

    A val set whose labels are one class is not a collapse when predicted as that
    class, so the labels must span at least two classes (unknown labels count as
    spanning).

    Args:
        pred_counts: predicted class -> number of images.
        gt_counts: true class -> number of images (empty when the labels are unknown).
        classes: class names, for the message.
    """
    predicted = [c for c, n in pred_counts.items() if n > 0]
    total = sum(pred_counts.values())
    labels = [c for c, n in gt_counts.items() if n > 0]
    if total < 2 or len(predicted) != 1 or (gt_counts and len(labels) < 2):
        return None
    seen = (f"validation predictions: all {total} images predicted "
            f"{_class_name(predicted[0], classes)}")
    return seen + (f" though their labels span {len(labels)} classes" if labels else "")


def loss_plateau(losses: Sequence[float], num_classes: int, tolerance: float) -> Optional[str]:
    """What was seen when the loss has sat at ln(num_classes) +- tolerance, else None.

    ln(K) is the cross-entropy of uniform posteriors: a net whose loss has not left
    it predicts the same for every image. Both halves of the window must lie at
    ln(K) -- means, so that noisy batches of a learning net do not count, and two
    halves, so that a loss on its way down from above ln(K) is not caught
    crossing it.
    """
    if num_classes < 2 or not losses:
        return None
    chance, half = math.log(num_classes), (len(losses) + 1) // 2
    if any(abs(sum(part) / len(part) - chance) > tolerance
           for part in (losses[:half], losses[len(losses) - half:])):
        return None
    return (f"training loss {sum(losses) / len(losses):.4f} = ln({num_classes}) "
            f"± {tolerance:g} over the last {len(losses)} iterations")


def constant_features(stats: FeatureStats, tolerance: float = 1e-6) -> Optional[str]:
    """What was seen when fc7 is the same for every image of the batch, else None.

    Constant means a spread of at most ``tolerance`` relative to the activations'
    scale (absolute below 1): a signal that vanished to 1e-9 is as dead as zeros.
    """
    if stats.batch < 2 or stats.max_std > tolerance * max(1.0, stats.max_abs):
        return None
    return (f"fc7 identical across the {stats.batch} images of the batch "
            f"(max std {stats.max_std:.3g}, max |fc7| {stats.max_abs:.3g})")


def _vgg_of(model: Any) -> Any:
    """The VGG inside a (possibly DDP-wrapped) classifier, or None for another model."""
    model = model.module if is_model_wrapper(model) else model
    vgg = getattr(model, "vgg", None)
    return vgg if callable(getattr(vgg, "pre_logits", None)) else None


class TrainingHealthHook(Hook):
    """Warns (``strict``: raises :class:`TrainingCollapseError`) when training collapsed.

    Checks: the validation predictions of an epoch are all one class; the mean
    training loss over the last ``loss_window_iters`` iterations is ln(K) within
    ``loss_tolerance``; fc7 is constant across a training batch (looked at on the
    first iteration and every ``interval`` iterations, with one extra no-grad
    forward of that batch in eval mode). Each condition is reported at most once
    per epoch. In distributed runs every rank reaches the same decision, so a
    strict stop never leaves a rank waiting.

    Args:
        loss_window_iters: iterations the loss has to leave ln(K), and the length
            of its averaging window; validation predictions are judged only once
            training has run this long (a few steps in, one class for everything
            is normal). None: one training epoch, at least 100 iterations (a
            healthy net can sit at ln(K) for a while: the digits demo config
            does for its whole first epoch of 53 iterations, then learns; on
            ImageNet for hundreds of iterations; one still there after a whole
            epoch is not learning).
        loss_tolerance: how close to ln(K) counts as "not moved".
        check_features: watch fc7 (needs a model with ``vgg.pre_logits``).
        interval: iterations between fc7 and loss checks.
        feature_tolerance: relative spread below which fc7 counts as constant.
        strict: raise instead of warning.
    """

    priority = "LOW"  # after the logger: the warning follows the epoch's metrics

    def __init__(self, loss_window_iters: Optional[int] = None, loss_tolerance: float = 0.01,
                 check_features: bool = True, interval: int = 50,
                 feature_tolerance: float = 1e-6, strict: bool = False) -> None:
        if loss_window_iters is not None and loss_window_iters < 1:
            raise ValueError(f"TrainingHealthHook: loss_window_iters must be >= 1 or None, "
                             f"got {loss_window_iters}")
        if interval < 1:
            raise ValueError(f"TrainingHealthHook: interval must be >= 1, got {interval}")
        self.loss_window_iters, self.loss_tolerance = loss_window_iters, loss_tolerance
        self.check_features, self.interval = check_features, interval
        self.feature_tolerance, self.strict = feature_tolerance, strict
        self._losses: deque[float] = deque(maxlen=loss_window_iters or MIN_LOSS_WINDOW)
        self._seen = 0  # training iterations of this process (a resumed run starts afresh)
        self._reported: set[tuple[str, int]] = set()
        self._num_classes: Optional[int] = None
        self._images_per_step: Optional[int] = None
        self._probe = False
        self._pending: Optional[FeatureStats] = None
        self._last_features: Optional[tuple[int, FeatureStats]] = None
        self._handle: Any = None
        self._pred: Counter[int] = Counter()
        self._gt: Counter[int] = Counter()

    # -- training -------------------------------------------------------------------
    def before_train(self, runner: Any) -> None:
        vgg = _vgg_of(runner.model)
        self._num_classes = getattr(vgg, "num_classes", None)
        window = self.loss_window_iters
        if window is None:
            try:
                window = max(MIN_LOSS_WINDOW, len(runner.train_dataloader))
            except TypeError:  # an infinite loader: no epoch to measure by
                window = MIN_LOSS_WINDOW
        self._losses = deque(maxlen=window)
        if self.check_features and vgg is not None:
            self._handle = vgg.register_forward_pre_hook(self._capture)

    def after_train(self, runner: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _capture(self, vgg: Any, args: tuple) -> None:
        """Forward pre-hook of the VGG: fc7 of the batch it is about to train on.

        The training forward computes fc7 inside ``forward_head`` without calling
        the fc7 module, so a hook on ``head.fc7`` would never fire; fc7 is computed
        again here, in eval mode so that dropout does not fake a spread (and batch
        norm statistics are not updated twice).
        """
        if not self._probe:
            return
        self._probe = False
        modes = [(module, module.training) for module in vgg.modules()]  # frozen parts stay so
        vgg.eval()
        try:
            with torch.no_grad():
                self._pending = feature_stats(vgg.pre_logits(args[0]))
        finally:
            for module, training in modes:
                module.training = training

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._probe = self._handle is not None and (self._seen == 0 or
                                                    (runner.iter + 1) % self.interval == 0)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        loss = (outputs or {}).get("loss")
        loss = float(loss.detach()) if isinstance(loss, Tensor) else loss
        if loss is not None and math.isfinite(loss):
            self._losses.append(loss)
        self._seen += 1
        self._images_per_step = self._step_size(runner, data_batch)
        iteration = runner.iter + 1
        if self._pending is not None:
            stats, self._pending = self._all_ranks(self._pending), None
            self._last_features = (iteration, stats)
            self._report(runner, "fc7", runner.epoch + 1, constant_features(
                stats, self.feature_tolerance), f"iteration {iteration}")
        window = self._losses.maxlen or 1
        if (self._num_classes and self._seen >= window
                and (self._seen - window) % self.interval == 0 and len(self._losses) == window):
            # the windows of all ranks averaged (a no-op in one process): one verdict
            losses = torch.tensor(list(self._losses), dtype=torch.float64)
            all_reduce(losses, op="mean")
            self._report(runner, "loss", runner.epoch + 1, loss_plateau(
                losses.tolist(), self._num_classes, self.loss_tolerance),
                f"iteration {iteration}")

    @staticmethod
    def _step_size(runner: Any, data_batch: Any) -> Optional[int]:
        """Images per optimiser step, all ranks and accumulated batches together."""
        per_rank = getattr(runner.train_dataloader, "batch_size", None)  # not the short last one
        if per_rank is None:
            inputs = data_batch.get("inputs") if isinstance(data_batch, dict) else None
            per_rank = len(inputs) if inputs is not None else None
        accumulate = getattr(runner.optim_wrapper, "_accumulative_counts", 1)
        return per_rank * get_world_size() * accumulate if per_rank else None

    # -- validation -----------------------------------------------------------------
    def before_val_epoch(self, runner: Any) -> None:
        self._pred, self._gt = Counter(), Counter()

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:
        for sample in outputs or ():
            pred = getattr(sample, "pred_label", None)
            if pred is None:
                continue
            self._pred[int(torch.as_tensor(pred).reshape(-1)[0])] += 1
            gt = getattr(sample, "gt_label", None)
            if gt is not None:
                self._gt[int(torch.as_tensor(gt).reshape(-1)[0])] += 1

    def after_val_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        if runner.iter < (self._losses.maxlen or 0):  # too early to judge (same on all ranks)
            return
        pred, gt = Counter(), Counter()
        # every rank saw its shard: count over all of them (all ranks then agree)
        for rank_pred, rank_gt in all_gather_object((self._pred, self._gt)):
            pred.update(rank_pred)
            gt.update(rank_gt)
        classes = (getattr(runner.val_dataloader.dataset, "metainfo", None) or {}).get("classes")
        self._report(runner, "predictions", runner.epoch,
                     constant_predictions(pred, gt, classes), f"validation of epoch {runner.epoch}")

    # -- reporting ------------------------------------------------------------------
    @staticmethod
    def _all_ranks(stats: FeatureStats) -> FeatureStats:
        """One verdict for all ranks: the largest spread and activation, units alive anywhere."""
        scalars, alive = torch.tensor([stats.max_std, stats.max_abs]), stats.alive.float()
        all_reduce(scalars, op="max")  # no-ops in one process
        all_reduce(alive, op="max")
        return FeatureStats(stats.batch, float(scalars[0]), float(scalars[1]), alive > 0)

    def _report(self, runner: Any, condition: str, epoch: int, seen: Optional[str],
                when: str) -> None:
        if seen is None or (condition, epoch) in self._reported:
            return
        self._reported.add((condition, epoch))
        message = f"training health ({when}): {seen}. {self._causes(runner)}"
        if self.strict:
            raise TrainingCollapseError(message)
        runner.logger.warning(message)

    def _causes(self, runner: Any) -> str:
        """The usual causes, with this run's numbers where they are known."""
        init = "initialisation (model.vgg.init, model.vgg.init_std)"
        scale = "input scale (model.data_preprocessor mean/std)"
        dead = "dead ReLUs"
        if self._last_features is not None:
            iteration, stats = self._last_features
            dead += (f" ({100 * stats.dead_fraction:.0f}% of the {stats.alive.numel()} fc7 units "
                     f"were dead on the batch of iteration {iteration})")
        if runner.iter == 0:  # fc7 of the first batch, looked at before the first update
            return f"Seen before any update, so the usual causes are {init}; {scale}; {dead}."
        try:
            lr = f"lr {runner.optim_wrapper.get_lr()['lr'][0]:g}"
        except (AttributeError, KeyError, IndexError, TypeError):
            lr = "lr"
        batch = f" for {self._images_per_step} images per step" if self._images_per_step else ""
        return (f"Usual causes: a learning rate too high for the batch, or not scaled with it "
                f"({lr}{batch}; try 10x lower: --cfg-options optim_wrapper.optimizer.lr=...), "
                f"or one too small to leave a flat start (N(0, 0.01^2), the Caffe reading of the paper's init, on a "
                f"short run); {init}; {scale}; {dead}. Per-layer statistics: --layer-stats N "
                f"(docs/training_collapse.md).")
