"""The recipe on real data: lr scaling, the tiny config learning scikit-learn's digits,
the per-layer statistics, and the recipe check's rules and verdicts."""
from __future__ import annotations

import json
import math

import pytest

from helpers import REPO, ToolRun, make_image_folder, run_train

from vggkit.engine import recipe_check
from vggkit.commands.train import parse_args
from vggkit.engine.train import load_config

TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")


def _scalars(work):
    (path,) = work.glob("*/vis_data/scalars.json")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_tiny_config_learns_the_digits_folder(tmp_path):
    """Issue 10's acceptance run: 10 epochs on 1,409 digit scans, 10 classes (chance 90 %).

    Measured 7.7-10.8 % final top-1 error over two seeds (docs/recipe_check.md); the floor
    is 20 %."""
    from vggkit.demo import write_digits
    root = write_digits(str(tmp_path / "digits"), source_classes=10)["source"]
    work = tmp_path / "w"
    run = run_train([TINY, "--data-root", root, "--work-dir", str(work), "--seed", "0",
                     "--cfg-options", "default_hooks.checkpoint.iter_interval=100000"], timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "lr 0.000625 for 16 images per step" in run.stderr  # the paper's 0.01 at 256, scaled
    errors = [r["top1_error"] for r in _scalars(work) if "top1_error" in r]
    assert len(errors) == 10
    assert errors[-1] < 20.0, errors
    assert "training health" not in run.stdout + run.stderr  # a healthy run stays silent


def test_layer_stats_record_the_first_iterations(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=6)
    steps = {}
    runs = {lr: ToolRun("train.py", [  # both at once: two single-threaded processes
        TINY, "--data-root", str(data), "--work-dir", str(tmp_path / f"w{lr}"), "--seed", "0",
        "--layer-stats", "3", "--cfg-options", "lr_scaling=none",
        f"optim_wrapper.optimizer.lr={lr}", "train_cfg.max_epochs=3"]) for lr in (1e-4, 1e-2)}
    for lr, started in runs.items():
        work = tmp_path / f"w{lr}"
        run = started.wait()
        assert run.returncode == 0, run.stderr[-3000:]
        rows = [json.loads(x) for x in (work / "layer_stats.jsonl").read_text().splitlines()]
        assert [r["iter"] for r in rows] == [1, 2, 3]  # 18 images / 16 -> 2 per epoch: 2 epochs
        first = rows[0]
        assert set(first["layers"]) >= {"features.0", "head.fc6", "head.fc7", "head.fc8"}
        assert 0.0 <= first["fc7_alive"] <= 1.0 and first["input_std"] > 0
        steps[lr] = first["layers"]["features.0"]["rel_step"]
    # same seed, same first batch and weights: the first step is proportional to the lr
    assert steps[1e-2] / steps[1e-4] == pytest.approx(100.0, rel=1e-3)


def test_recipe_check_runs_keep_the_papers_rules(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=2)
    by_name = {r.name: r for r in recipe_check.RUNS}
    for name, scale in (("A", (32, 48)), ("E_glorot", (32, 48)), ("A_fixed_S", 32)):
        argv = recipe_check.train_argv(by_name[name], str(tmp_path / "w"), str(data), epochs=7,
                                       width=0.25, literal_init=False, seed=0)
        cfg = load_config(parse_args(argv))
        vgg = cfg.model.vgg
        assert vgg.arch == by_name[name].arch and vgg.dropout == 0.5
        assert vgg.init == by_name[name].init
        assert vgg.init_std == pytest.approx(0.02)  # 0.01 / sqrt(1/4): full-width gain
        assert (vgg.width_mult, vgg.fc_width) == (0.25, 1024)  # 4096 / 4
        assert list(cfg.model.data_preprocessor.std) == [1.0, 1.0, 1.0]  # mean subtraction only
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.momentum, opt.weight_decay) == ("SGD", 0.9, 5e-4)
        assert opt.lr == pytest.approx(0.01 * 16 / 256)
        assert cfg.train_cfg.max_epochs == 7
        assert cfg.param_scheduler[0].type == "ReduceOnPlateauLR"
        got = cfg.train_dataloader.dataset.dataset.pipeline[0].scale
        assert (tuple(got) if isinstance(got, (list, tuple)) else got) == scale


def test_recipe_check_verdicts_follow_the_figures():
    learned = {"first": 80.0, "best": 10.0, "final": 12.0, "epoch_under_50": 3}
    stalled = {"first": 90.0, "best": 88.0, "final": 90.0, "epoch_under_50": math.nan}
    tests_jit = {"Q=32": 10.0, "Q=40": 9.0, "Q=48": 12.0, "Q=32,40,48": 8.0}
    tests_fix = {"Q=32": 11.0, "Q=40": 12.0, "Q=48": 20.0, "Q=32,40,48": 9.0}
    s = {"A": learned, "E_random": stalled, "E_from_A": learned, "E_glorot": learned,
         "A_fixed_S": learned}
    v = recipe_check.verdicts(s, {"A": tests_jit, "A_fixed_S": tests_fix}, chance=90.0)
    assert v["a"] == "reproduced" and v["c"] == "reproduced"
    assert v["b"].startswith("reproduced") and v["d"].startswith("reproduced: jittered A has "
                                                                 "lower error at 4 of 4")
    v = recipe_check.verdicts(dict(s, E_from_A=stalled), {"A": tests_fix, "A_fixed_S": tests_jit},
                              chance=90.0)
    assert v["b"].startswith("partly") and v["d"].startswith("not reproduced: jittered A has "
                                                             "lower error at only 0 of 4")
    s = dict(s, A=stalled, A_fixed_S=stalled, E_from_A=stalled, E_glorot=stalled)
    v = recipe_check.verdicts(s, {"A": tests_fix, "A_fixed_S": tests_jit}, chance=90.0)
    assert v["a"].startswith("not reproduced") and v["c"].startswith("not reproduced")
    assert v["b"].startswith("not testable") and v["d"].startswith("not testable")
    assert recipe_check.summarise({"val_epoch": [1, 2, 3], "top1_error": [90, 45, 40]}) == {
        "first": 90, "final": 40, "best": 40, "epoch_under_50": 2}


def test_recipe_check_reads_every_validation_including_the_last(tmp_path):
    import torch
    run = tmp_path / "A"
    run.mkdir()
    # the final checkpoint is written before the final validation: its copy lacks epoch 2
    torch.save({"meta": {"vggkit_curves": {"iter": [1, 2], "loss": [2.3, 2.2], "val_epoch": [1],
                                           "top1_error": [80.0], "top5_error": [30.0]}}},
               run / "epoch_2.pth")
    for stamp, rows in (("20260101_000000", [(1, 80.0), (2, 70.0)]),
                        ("20260101_010000", [(2, 60.0)])):  # a resumed rerun of epoch 2
        logs = run / stamp / "vis_data"
        logs.mkdir(parents=True)
        (logs / "scalars.json").write_text("".join(
            json.dumps({"loss": 2.0, "step": 5}) + "\n" +
            json.dumps({"top1_error": e, "top5_error": 1.0, "step": s}) + "\n" for s, e in rows))
    h = recipe_check.curves(str(run), epochs=2)
    assert h["val_epoch"] == [1, 2] and h["top1_error"] == [80.0, 60.0]
    assert h["loss"] == [2.3, 2.2]
