"""The training health guard: a collapsed run is named (or stopped with --strict-health),
a learning one is left alone."""
from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import BaseDataElement
from PIL import Image

from helpers import REPO, ToolRun, make_image_folder

from vggkit.engine.classifier import VGGClassifier
from vggkit.commands.train import parse_args
from vggkit.engine.train import load_config
from vggkit.engine.hooks.health import (TrainingCollapseError, TrainingHealthHook,
                                        constant_features, constant_predictions, feature_stats,
                                        loss_plateau)

TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")
# the tools' process (helpers.zygote) imports in the background during the quick tests,
# which take one thread: tiny nets gain nothing from two and would contend with it
pytestmark = pytest.mark.usefixtures("warm_zygote", "one_thread")
LN10 = math.log(10)


# -- decision logic on hand-made inputs ---------------------------------------------------
def test_one_class_predictions_are_named_with_class_and_count():
    seen = constant_predictions({3: 359}, {0: 90, 1: 90, 2: 90, 3: 89}, classes="abcd")
    assert seen == ("validation predictions: all 359 images predicted class 3 ('d') "
                    "though their labels span 4 classes")
    assert "all 7 images predicted class 0" in constant_predictions({0: 7, 1: 0}, {})


@pytest.mark.parametrize("pred, gt", [({0: 5, 1: 1}, {0: 3, 1: 3}),  # varied predictions
                                      ({2: 6}, {2: 6}),  # a one-class val set, predicted right
                                      ({1: 1}, {0: 1})])  # one image says nothing
def test_other_predictions_are_healthy(pred, gt):
    assert constant_predictions(pred, gt) is None


def test_loss_stuck_at_ln_k_is_seen():
    rng = np.random.default_rng(0)
    losses = list(LN10 + rng.normal(0, 0.02, 200))  # batch noise around uniform posteriors
    seen = loss_plateau(losses, 10, 0.01)
    assert seen is not None and "= ln(10) ± 0.01 over the last 200 iterations" in seen
    assert f"{sum(losses) / 200:.4f}" in seen


@pytest.mark.parametrize("losses", [
    [LN10] * 60 + list(np.linspace(LN10, 1.8, 140)),  # sits at ln K for 60 iterations, learns
    [LN10 + 0.05] * 200,  # stuck, but not at ln K (the validation check is for that)
])
def test_moving_loss_is_healthy(losses):
    assert loss_plateau(losses, 10, 0.01) is None


def test_loss_crossing_ln_k_on_its_way_down_is_healthy():
    losses = list(np.linspace(LN10 + 0.5, LN10 - 0.5, 200))  # started above ln K
    assert abs(sum(losses) / len(losses) - LN10) < 1e-9  # the mean alone would be fooled
    assert loss_plateau(losses, 10, 0.01) is None


def test_constant_fc7_is_seen_and_dead_units_counted():
    fc7 = torch.tensor([[0.5, -1.0, 2.0, -3.0]]).repeat(16, 1)  # the same row 16 times
    stats = feature_stats(fc7)
    assert stats.dead_fraction == 0.5  # units 1 and 3 are negative for every image
    assert constant_features(stats) == ("fc7 identical across the 16 images of the batch "
                                         "(max std 0, max |fc7| 2)")
    dead = feature_stats(-torch.rand(8, 32))  # every unit below zero: ReLU gives 0 everywhere
    assert dead.dead_fraction == 1.0 and "8 images" in constant_features(dead)
    faint = feature_stats(1e-9 * torch.rand(8, 32))  # a signal that vanished
    assert constant_features(faint) is not None


def test_varied_fc7_is_healthy():
    stats = feature_stats(torch.randn(16, 64))
    assert constant_features(stats) is None and stats.dead_fraction == 0.0  # P(dead) = 2^-16
    assert constant_features(feature_stats(torch.zeros(1, 64))) is None  # one image: no spread


# -- the hook, driven by hand -----------------------------------------------------------
class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def _runner(model=None, **kw) -> SimpleNamespace:
    return SimpleNamespace(model=model, logger=Log(), iter=0, epoch=0,
                           optim_wrapper=SimpleNamespace(get_lr=lambda: {"lr": [0.5]}),
                           train_dataloader=[None] * 60,
                           val_dataloader=SimpleNamespace(
                               dataset=SimpleNamespace(metainfo={"classes": ("cat", "dog")})),
                           **kw)


def _model(num_classes: int = 10) -> VGGClassifier:
    torch.manual_seed(0)
    return VGGClassifier(dict(arch="A", num_classes=num_classes, width_mult=1 / 16, fc_width=32,
                              input_size=32, init="glorot"))


def _train(hook: TrainingHealthHook, runner: SimpleNamespace, losses, images=None) -> None:
    for loss in losses:
        hook.before_train_iter(runner, 0)
        batch = images if images is not None else torch.randn(4, 3, 32, 32)
        runner.model(batch, mode="tensor")  # the forward the probe looks at
        hook.after_train_iter(runner, 0, {"inputs": batch}, {"loss": torch.tensor(loss)})
        runner.iter += 1


def test_hook_warns_once_per_epoch_when_loss_sits_at_ln_k():
    hook = TrainingHealthHook(loss_window_iters=20, interval=5, check_features=False)
    runner = _runner(_model(10))
    hook.before_train(runner)
    _train(hook, runner, [LN10] * 19)
    assert runner.logger.warnings == []  # fewer than loss_window_iters iterations
    _train(hook, runner, [LN10] * 40)  # checked at 20, 25, ... 55: reported once
    (warning,) = runner.logger.warnings
    assert warning.startswith("training health (iteration 20): training loss 2.3026 = ln(10) ± "
                              "0.01 over the last 20 iterations.")
    assert "lr 0.5 for 4 images per step" in warning and "initialisation" in warning
    assert "input scale" in warning and "dead ReLUs" in warning
    runner.epoch = 1
    _train(hook, runner, [LN10] * 5)
    assert len(runner.logger.warnings) == 2 and "(iteration 60)" in runner.logger.warnings[1]


def test_hook_is_silent_on_a_learning_loss():
    hook = TrainingHealthHook(loss_window_iters=20, interval=1)
    runner = _runner(_model(10))
    hook.before_train(runner)
    _train(hook, runner, np.linspace(2.5, 1.0, 100))  # crosses ln(10) on the way down
    assert runner.logger.warnings == []


def test_hook_sees_constant_fc7_before_the_first_update():
    model = _model(10)
    with torch.no_grad():  # fc6 outputs zeros: fc7 is its bias for every image
        model.vgg.head.fc6.weight.zero_()
        model.vgg.head.fc6.bias.fill_(-1.0)
    model.train()
    hook = TrainingHealthHook(interval=10)
    runner = _runner(model)
    hook.before_train(runner)
    _train(hook, runner, [1.0], images=torch.randn(8, 3, 32, 32))
    (warning,) = runner.logger.warnings
    assert "(iteration 1): fc7 identical across the 8 images of the batch (max std 0" in warning
    assert "Seen before any update" in warning and "optimizer.lr" not in warning
    assert "of the 32 fc7 units were dead on the batch of iteration 1" in warning
    # the probe ran in eval mode and gave the training mode back, dropout included
    assert model.training and model.vgg.head.dropout.training


def test_hook_leaves_a_healthy_fc7_and_frozen_modules_alone():
    model = _model(10)
    model.train()
    model.vgg.features.eval()  # e.g. a frozen conv stack: must stay in eval mode
    hook = TrainingHealthHook(interval=1)
    runner = _runner(model)
    hook.before_train(runner)
    _train(hook, runner, [1.0, 0.9])
    assert runner.logger.warnings == []
    assert not model.vgg.features.training and model.vgg.head.training


def _val(hook: TrainingHealthHook, runner: SimpleNamespace, preds, labels) -> None:
    hook.before_val_epoch(runner)
    samples = []
    for pred, label in zip(preds, labels):
        sample = BaseDataElement()
        sample.set_field(torch.tensor([pred]), "pred_label")
        sample.set_field(torch.tensor([label]), "gt_label")
        samples.append(sample)
    for start in range(0, len(samples), 4):  # a few val batches
        hook.after_val_iter(runner, start // 4, None, samples[start:start + 4])
    hook.after_val_epoch(runner, {})


def test_hook_names_one_class_validation_predictions():
    hook = TrainingHealthHook(loss_window_iters=50)
    runner = _runner()
    runner.iter = 49
    _val(hook, runner, [1] * 10, [0, 1] * 5)
    assert runner.logger.warnings == []  # before loss_window_iters of training: too early
    runner.iter, runner.epoch = 60, 1
    _val(hook, runner, [1] * 10, [0, 1] * 5)
    (warning,) = runner.logger.warnings
    assert warning.startswith("training health (validation of epoch 1): validation "
                              "predictions: all 10 images predicted class 1 ('dog') though "
                              "their labels span 2 classes.")
    runner.epoch = 2
    _val(hook, runner, [0, 1] * 5, [0, 1] * 5)
    assert len(runner.logger.warnings) == 1


def test_strict_hook_raises_with_the_same_message():
    hook = TrainingHealthHook(loss_window_iters=10, strict=True)
    runner = _runner()
    runner.iter, runner.epoch = 10, 1
    with pytest.raises(TrainingCollapseError, match=r"all 8 images predicted class 0 \('cat'\)"):
        _val(hook, runner, [0] * 8, [0, 1] * 4)
    assert runner.logger.warnings == []


# -- end to end: the real Runner through tools/train.py ------------------------------------
def test_strict_health_flag_reaches_the_hook(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=1)
    base = [TINY, "--data-root", str(data)]
    hooks = load_config(parse_args(base)).custom_hooks
    (hook,) = [h for h in hooks if h.type == "TrainingHealthHook"]
    assert not hook.get("strict")  # warnings by default
    hooks = load_config(parse_args([*base, "--strict-health"])).custom_hooks
    assert [h.get("strict") for h in hooks if h.type == "TrainingHealthHook"] == [True]
    # a config whose custom_hooks left the guard out gets one
    bare = load_config(parse_args([*base, "--strict-health", "--cfg-options", "custom_hooks=[]"]))
    assert [dict(h) for h in bare.custom_hooks] == [{"type": "TrainingHealthHook", "strict": True}]


def _health(**options) -> list[str]:
    """--cfg-options entries for the health hook of the tiny config's custom_hooks."""
    hooks = Config.fromfile(TINY).custom_hooks
    (index,) = [i for i, hook in enumerate(hooks) if hook.type == "TrainingHealthHook"]
    return [f"custom_hooks.{index}.{key}={value}" for key, value in options.items()]


def _health_warnings(log: str) -> list[str]:
    return [line.split(" - WARNING - ", 1)[1] for line in log.splitlines()
            if " - WARNING - training health" in line]


def _solid_folder(root: Path, per_class: int = 16) -> Path:
    """Solid red vs solid blue images with noise: separable by the mean colour alone."""
    rng = np.random.default_rng(0)
    for name, colour in (("blue", (30, 40, 220)), ("red", (220, 40, 30))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            noise = rng.normal(0, 25, size=(48, 56, 3))
            img = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i:03d}.jpg", quality=92)
    return root


def _collapsed_run(root: Path) -> list[str]:
    data = make_image_folder(root / "img", per_class=6)  # 18 images, 2 iterations/epoch
    return [TINY, "--data-root", str(data), "--work-dir", str(root / "w"),
            "--seed", "0", "--cfg-options", "model.vgg.init=paper", "total_batch_size=16",
            "train_cfg.max_epochs=3", *_health(interval=1, loss_window_iters=2)]


def _high_lr_run(root: Path) -> list[str]:
    data = make_image_folder(root / "img", per_class=6)
    return [TINY, "--data-root", str(data), "--work-dir", str(root / "w"), "--seed", "0",
            "--strict-health", "--cfg-options", "total_batch_size=16", "lr_scaling=none",
            "optim_wrapper.optimizer.lr=0.3",
            "train_cfg.max_epochs=4", *_health(interval=1, loss_window_iters=2)]


def _learning_run(root: Path) -> list[str]:
    data = _solid_folder(root / "img")  # 32 images, 2 iterations per epoch
    return [TINY, "--data-root", str(data), "--work-dir", str(root / "w"),
            "--seed", "0", "--strict-health", "--cfg-options", "total_batch_size=16",
            "optim_wrapper.optimizer.lr=0.02", "train_cfg.max_epochs=12",
            *_health(interval=1, loss_window_iters=12)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, ToolRun]]:
    """The three tools/train.py runs of the tests below, started together: each is one
    single-threaded process, so on two cores they end in about the time of two."""
    started = {}
    for name, args in (("collapsed", _collapsed_run), ("high_lr", _high_lr_run),
                       ("learning", _learning_run)):
        root = tmp_path_factory.mktemp(name)
        started[name] = (root, ToolRun("train.py", args(root)))
    return started


def test_collapsed_run_is_named_in_the_log(runs):
    """init='paper' (N(0, 0.01^2)) at 1/16 width: the signal vanishes in the conv stack,
    the stall Sect. 3.1 warns of."""
    run = runs["collapsed"][1].wait()
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = _health_warnings(run.stdout + run.stderr)
    assert warnings[0].startswith("training health (iteration 1): fc7 identical across the "
                                  "16 images of the batch")
    assert "Seen before any update" in warnings[0]
    assert any(w.startswith("training health (iteration 2): training loss 1.09")
               and "= ln(3) ± 0.01 over the last 2 iterations" in w for w in warnings)
    assert any("(validation of epoch 1): validation predictions: all 18 images predicted class"
               in w and "though their labels span 3 classes" in w for w in warnings)
    # at most once per condition and epoch: 3 conditions x 3 epochs
    kinds = [w.split(": ", 1)[1].split(" ")[0] for w in warnings]
    assert len(warnings) <= 9 and kinds.count("validation") == 3, warnings


def test_strict_health_stops_a_too_high_learning_rate(runs):
    root, started = runs["high_lr"]
    run = started.wait()
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    (line,) = [ln for ln in run.stderr.splitlines() if ln.startswith("vggkit train: error:")]
    assert line == run.stderr.splitlines()[-1]  # the last word, on one line
    assert line.startswith("vggkit train: error: training health (")
    # the lr the schedule had reached (the tiny config's one-cycle: 0.3 at its peak)
    lr = float(re.search(r"\(lr ([0-9.]+) for 16 images per step", line).group(1))
    assert 0.1 < lr <= 0.3 and "dead ReLUs" in line
    assert not (root / "w" / "epoch_4.pth").exists()  # stopped, not trained to the end


def test_learning_run_is_left_alone(runs):
    """Every check at every iteration from the start, on a run that learns (its loss
    starts above ln 2 and crosses it by epoch 4; its validations before that are one class,
    within the grace of loss_window_iters = 12 iterations = 6 epochs)."""
    run = runs["learning"][1].wait()
    assert run.returncode == 0, run.stderr[-3000:]
    assert _health_warnings(run.stdout + run.stderr) == []
    assert "top1_error: 0.0000" in run.stdout  # it did learn
