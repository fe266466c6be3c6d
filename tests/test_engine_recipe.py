"""The recipe on real data: lr scaling, the tiny config learning scikit-learn's digits,
the per-layer statistics; and the recipe check (the paper in miniature): its
per-layer init, its runs' rules, budget, schedule, verdicts and resume."""
from __future__ import annotations

import json
import math
import os

import pytest

import torch

from helpers import CLASSES, REPO, ToolRun, make_image_folder, make_split_folder, run_train

from vggkit.engine import recipe_check
from vggkit.engine.recipe_check import analysis, report, runs
from vggkit.factory import build_vgg
from vggkit.models.init import full_size_fan_ins, scaled_stds

TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")


def _scalars(work):
    (path,) = work.glob("*/vis_data/scalars.json")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_tiny_config_learns_the_digits_folder(tmp_path):
    """Issue 10's acceptance run: 10 epochs on 1,409 digit scans, 10 classes (chance 90 %).

    Measured 7.7-10.8 % final top-1 error over two seeds with the paper's lr and plateau
    rule (docs/training_collapse.md), 7.0 % (seed 0) with issue 24's first recipe (a linear
    warm-up times a cosine), 4.4 % with torch's one-cycle and the clip (docs/natural_images.md); the floor
    is 20 %."""
    from vggkit.demo import write_digits
    root = write_digits(str(tmp_path / "digits"), source_classes=10)["source"]
    work = tmp_path / "w"
    run = run_train([TINY, "--data-root", root, "--work-dir", str(work), "--seed", "0",
                     "--cfg-options", "default_hooks.checkpoint.iter_interval=100000"], timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "lr 0.0125 for 16 images per step" in run.stderr  # the config's 0.2 at 256, scaled
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


def _small(arch="A", **kw):
    return build_vgg(arch, 10, width_mult=0.25, fc_width=512, input_size=32, **kw)


def test_paper_scaled_init_keeps_the_full_size_gain_per_layer():
    torch.manual_seed(0)
    net = _small(init="paper_scaled")
    stds = scaled_stds(net, 0.01)
    conv1_1, conv3_2 = net.features[net.conv_names["conv1_1"]], net.features[net.conv_names["conv3_2"]]
    # by hand: conv1_1 sees 3 x 3 x 3 = 27 inputs at any width: 0.01;
    # conv3_2: 256 x 9 = 2304 full size, 64 x 9 = 576 at 1/4 width: 0.01 x 2;
    # fc6: 512 x 7 x 7 = 25088 full size (224 crops), 128 x 1 x 1 here: 0.01 x 14;
    # fc7: 4096 full size, 512 here: 0.01 x sqrt(8)
    expected = {conv1_1: 0.01, conv3_2: 0.02, net.head.fc6: 0.14,
                net.head.fc7: 0.01 * 8 ** 0.5, net.head.fc8: 0.01 * 8 ** 0.5}
    for layer, std in expected.items():
        assert stds[layer] == pytest.approx(std, rel=1e-9)
        assert layer.weight.std().item() == pytest.approx(std, rel=0.15)  # 432 draws at least
        assert torch.count_nonzero(layer.bias) == 0
    # Table 1's A at full size: 3, 64, 128, 256, 256, 512, 512, 512 input channels x 3 x 3,
    # then fc6 over a 7 x 7 x 512 map, fc7 and fc8 over 4096
    assert full_size_fan_ins("A") == [27, 576, 1152, 2304, 2304, 4608, 4608, 4608, 25088, 4096,
                                      4096]


def test_from_checkpoint_draws_the_layers_it_does_not_copy_with_init_random(tmp_path):
    torch.manual_seed(0)
    a = _small(init="paper_scaled")
    path = tmp_path / "a.pth"
    torch.save({"state_dict": a.state_dict()}, path)
    e = _small("E", init="from_checkpoint", init_checkpoint=str(path), init_random="paper_scaled")
    assert torch.equal(e.features[e.conv_names["conv3_2"]].weight,
                       a.features[a.conv_names["conv3_2"]].weight)  # copied from A
    assert torch.equal(e.head.fc6.weight, a.head.fc6.weight)
    conv5_4 = e.features[e.conv_names["conv5_4"]]  # random: 512 x 9 full size, 128 x 9 here
    assert conv5_4.weight.std().item() == pytest.approx(0.02, rel=0.05)
    with pytest.raises(ValueError, match="init_random"):
        _small(init="paper", init_random="uniform")


def test_schedule_and_test_scales_follow_the_papers_rules():
    assert runs.milestones(10) == [7, 9]  # lr / 10 after 70 % and 90 % of the budget
    assert runs.milestones(7) == [5, 6] and runs.milestones(1) == [1]
    assert runs.single_q(32) == 32 and runs.single_q((32, 64)) == 48  # Table 3
    assert runs.multi_q(32, 32) == [32, 36]  # S - S/8 would be under the crop
    assert runs.multi_q(48, 32) == [42, 48, 54] and runs.multi_q((32, 64), 32) == [32, 48, 64]
    assert report.d_settings("A_jit", 32)["table4"] == [32, 48, 64]
    # (d) is trained with every seed, the initialisation runs with the first
    keys = [runs.run_key(r, s) for r, s in runs.instances([3, 4])]
    assert keys.count("A_jit_s4") == 1 and "E_glorot_s4" not in keys and "A_s4" in keys


def test_budget_from_the_probe_and_kept_on_resume(tmp_path):
    # by hand: 3 runs (A, A, E) at 0.1 + 0.1 + 0.25 s per step, 2 at a time: 0.225 s per step
    # of the check; 80 % of 10 min = 480 s: 2133 steps, 21 epochs of 100 steps
    assert runs.epochs_for_budget({"A": 0.1, "E": 0.25}, ["A", "A", "E"], 100, 10, 2) == (21, 2133)
    assert runs.epochs_for_budget({"A": 10.0}, ["A"], 100, 1, 1)[0] == 1  # at least one epoch
    calls = []

    def probe():
        calls.append(1)
        return {"probe_epochs": 12, "probe_seconds_per_step": {"A": 0.1}}
    work = str(tmp_path)
    assert recipe_check.choose_budget(work, None, 30, 2, probe, "first")["epochs"] == 12
    got = recipe_check.choose_budget(work, None, 5, 2, probe, "resumed")  # resumed: kept
    assert (got["epochs"], got["set_by"], len(calls)) == (12, "first", 1)
    got = recipe_check.choose_budget(work, 3, 30, 2, probe, "told")
    assert (got["epochs"], got["source"], got["probe_epochs"], got["set_by"]) == (
        3, "--epochs", 12, "told")
    other = str(tmp_path / "other")
    os.mkdir(other)
    assert recipe_check.choose_budget(other, 3, 30, 2, probe)["epochs"] == 3  # no probe needed
    assert len(calls) == 1
    got = recipe_check.choose_budget(other, None, 30, 2, probe)  # resumed: probed for the record
    assert (got["epochs"], got["probe_epochs"], len(calls)) == (3, 12, 2)


def test_run_configs_keep_the_papers_step_and_the_datas_own_statistics(tmp_path):
    data = make_split_folder(tmp_path / "img", train=2, val=1)
    stats = runs.training_stats(str(data), str(tmp_path / "stats.json"))
    a_final = runs.final_checkpoint(str(tmp_path / "w" / "A_s0"), 4)
    (tmp_path / "w" / "A_s0").mkdir(parents=True)
    open(a_final, "w").close()  # E_from_A only needs the file to exist until it trains
    for name, scale, q in (("A", 32, 32), ("A_jit", [32, 64], 48), ("E_from_A", 32, 32)):
        run = runs.BY_NAME[name]
        cfg = runs.build_config(runs.CONFIG, str(data), str(tmp_path / "w" / name), 0,
                                runs.run_options(run, 0, 4, stats, str(tmp_path / "w")))
        vgg = cfg.model.vgg
        assert (vgg.arch, vgg.init, vgg.dropout, vgg.fc_width, vgg.width_mult) == (
            run.arch, run.init, 0.5, 512, 0.25)
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ("SGD", 0.01, 0.9, 5e-4)
        assert cfg.train_dataloader.batch_size == 64 and cfg.resume is False
        assert [dict(s) for s in cfg.param_scheduler] == [
            dict(type="MultiStepLR", by_epoch=True, milestones=[3, 4], gamma=0.1)]
        pipeline = cfg.train_dataloader.dataset.dataset.pipeline
        assert pipeline[0].scale == scale and pipeline[0].pad == 4
        assert pipeline[2].stats_file == stats  # PCA lighting from the data's own statistics
        assert cfg.val_dataloader.dataset.pipeline[1].scale == q
        assert cfg.model.data_preprocessor.stats_file == stats and cfg.model.data_preprocessor.std == [1.0] * 3
    assert (vgg.init_checkpoint, vgg.init_random) == (a_final, "paper_scaled")
    # a killed run resumes from the newest checkpoint in its work dir
    (tmp_path / "w" / "A").mkdir()
    torch.save({"meta": {}, "state_dict": {}}, tmp_path / "w" / "A" / "epoch_1.pth")
    cfg = runs.build_config(runs.CONFIG, str(data), str(tmp_path / "w" / "A"), 0,
                            runs.run_options(runs.BY_NAME["A"], 0, 4, stats, str(tmp_path / "w")))
    assert cfg.resume is True and cfg.load_from.endswith("epoch_1.pth")
    import json
    mean = json.loads((tmp_path / "stats.json").read_text())["mean"]
    assert all(0 < m < 255 for m in mean)


def test_check_trains_only_what_is_missing_first_what_others_start_from(tmp_path, monkeypatch):
    data = make_split_folder(tmp_path / "img", train=2, val=1)
    work = tmp_path / "w"
    planned, reported = [], []
    monkeypatch.setattr(recipe_check, "train_all", lambda plan, *a: planned.append(plan))
    monkeypatch.setattr(runs, "probe_seconds_per_step", lambda *a: {"A": 0.1, "E": 0.2})
    monkeypatch.setattr(report, "write_report", lambda **kw: reported.append(kw) or {"ok": 1})
    for key in ("A_s1", "A_S48_s0"):  # finished before a kill
        (work / key).mkdir(parents=True)
        (work / key / "epoch_2.pth").write_bytes(b"")
    assert recipe_check.check(data_root=str(data), work_dir=str(work), epochs=2) is None
    keys = [p.key for p in planned[0]]
    assert keys[0] == "A_s0" and set(keys[1:4]) == {"E_random_s0", "E_glorot_s0", "E_from_A_s0"}
    assert set(keys) == {"A_s0", "E_random_s0", "E_glorot_s0", "E_from_A_s0", "A_jit_s0", "A_jit_s1"}
    assert {p.key: p.after for p in planned[0]}["E_from_A_s0"] == "A_s0"
    assert not reported  # the (fake) training wrote no checkpoint: no report yet
    for key in keys:  # now they have finished; A_S48 is optional: left out, the report is made
        (work / key).mkdir(exist_ok=True)
        (work / key / "epoch_2.pth").write_bytes(b"")
    (work / "A_S48_s0" / "epoch_2.pth").unlink()
    assert recipe_check.check(data_root=str(data), work_dir=str(work), epochs=2,
                              runs=["A", "A_jit", "E_random", "E_from_A", "E_glorot"]) == {"ok": 1}
    assert planned[-1] == [] and reported[0]["budget"]["epochs"] == 2
    assert reported[0]["classes"] == sorted(CLASSES)
    assert [runs.run_key(r, s) for r, s in reported[0]["trained"]] == [
        "A_s0", "A_s1", "A_jit_s0", "A_jit_s1", "E_random_s0", "E_from_A_s0", "E_glorot_s0"]


A_FIGS = {"first": 89.0, "best": 55.0, "final": 56.0, "steps_under_80": 300.0, "steps_under_50": math.nan}
STALL = {"first": 90.0, "best": 89.0, "final": 90.0, "steps_under_80": math.nan, "steps_under_50": math.nan}
SLOW = {"first": 90.0, "best": 82.0, "final": 83.0, "steps_under_80": math.nan, "steps_under_50": math.nan}


def test_verdicts_follow_made_up_figures():
    chance = 90.0
    assert analysis.verdict_a([A_FIGS, A_FIGS], chance)[0] == "reproduced"
    assert analysis.verdict_a([A_FIGS, STALL], chance)[0] == "not reproduced"
    assert analysis.verdict_a([SLOW], chance)[0] == "inconclusive"  # 7 points under chance
    assert analysis.verdict_b(STALL, A_FIGS, [A_FIGS], chance)[0] == "reproduced"
    assert "stalls" in analysis.verdict_b(STALL, A_FIGS, [A_FIGS], chance)[1]
    assert analysis.verdict_b(A_FIGS, A_FIGS, [A_FIGS], chance)[0] == "not reproduced"
    assert analysis.verdict_b(STALL, SLOW, [A_FIGS], chance)[0] == "inconclusive"
    v, reason = analysis.verdict_b(STALL, STALL, [A_FIGS], chance)  # A's layers do not help
    assert v == "not reproduced" and "stalls as well" in reason
    assert analysis.verdict_b(STALL, A_FIGS, [SLOW], chance)[0] == "inconclusive"
    assert [analysis.verdict_c(x, chance)[0] for x in (A_FIGS, STALL, SLOW)] == [
        "reproduced", "not reproduced", "inconclusive"]
    assert analysis.summarise({"val_epoch": [1, 2, 3], "top1_error": [85, 70, 45]}, 100) == {
        "first": 85, "best": 45, "final": 45, "steps_under_80": 200, "steps_under_50": 300}


def test_scale_jittering_verdict_weighs_differences_against_the_seeds_spread():
    def t(t3, t4):
        return {"table3": t3, "table4": t4}
    fixed = {"A": [t(50, 48), t(52, 50)], "A_S48": [t(53, 51)]}
    # seeds differ by 2 points: a 5-point gain counts, a 1-point one does not
    v, reason, rows = analysis.verdict_d(dict(fixed, A_jit=[t(45, 44), t(46, 43)]), "A_jit",
                                         ("A", "A_S48"))
    assert v == "reproduced" and rows["table3:A"]["margin"] == 2 and "win" in reason
    v, _, rows = analysis.verdict_d(dict(fixed, A_jit=[t(50, 48), t(51, 49)]), "A_jit",
                                    ("A", "A_S48"))
    assert v == "inconclusive" and rows["table3:A"]["outcome"] == "tie"
    assert rows["table3:A_S48"]["outcome"] == "win"  # 53 against 50.5, beyond 2
    v, _, _ = analysis.verdict_d(dict(fixed, A_jit=[t(56, 48), t(57, 50)]), "A_jit", ("A", "A_S48"))
    assert v == "not reproduced"


def test_report_states_each_verdict_and_its_figures():
    summary = {k: A_FIGS for k in ("A_s0", "A_s1", "E_from_A_s0", "E_glorot_s0", "A_S48_s0",
                                   "A_jit_s0", "A_jit_s1")}
    summary["E_random_s0"] = STALL
    settings = report.d_settings("A_jit", 32)
    tests = {"A": [dict.fromkeys(settings, 50.0)] * 2, "A_S48": [dict.fromkeys(settings, 51.0)],
             "A_jit": [dict.fromkeys(settings, 40.0)] * 2}
    verdicts = report.judge(summary, tests, [0, 1], 90.0)
    assert [verdicts[k]["verdict"] for k in "abcd"] == ["reproduced"] * 4
    text = report.markdown({
        "command": "vggkit recipe-check --epochs 3", "seeds": [0, 1], "data_root": "/d",
        "classes": list("0123456789"), "n_train": 640, "chance_top1_error": 90.0,
        "budget": {"epochs": 3, "source": "--epochs", "minutes": 30, "jobs": 2},
        "steps_per_epoch": 10, "lr_milestones_epochs": [2, 3], "summary": summary,
        "tests": tests, "verdicts": verdicts, "machine": "m", "load_average_15min": 9.0,
        "cpu_count": 2, "minutes": 1.0})
    assert "`vggkit recipe-check --epochs 3`" in text and "a shared machine" in text
    assert "| E_random | 0 | net E, random init, S = 32 | never | never | 90.0 | 89.0 | 90.0 |" in text
    assert "| A_jit | [32, 64] | mean | **40.0** |" in text
    assert text.count(": reproduced.**") == 4


def test_recipe_check_reads_every_validation_including_the_last(tmp_path):
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
    h = analysis.curves(str(run), epochs=2)
    assert h["val_epoch"] == [1, 2] and h["top1_error"] == [80.0, 60.0]
    assert h["loss"] == [2.3, 2.2]


def test_recipe_check_refuses_bad_input_in_one_line(tmp_path, capsys):
    from vggkit.commands.recipe_check import main
    make_image_folder(tmp_path / "flat", per_class=1)
    tool = ToolRun("recipe_check.py", ["--data-root", str(tmp_path / "none")])  # the script too
    for argv, said in ((["--data-root", str(tmp_path / "flat")], "has no train/ sub-folder"),
                       (["--minutes", "0"], "positive number of minutes"),
                       (["--runs", "B"], "invalid choice")):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's refusals
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, (argv, err)
    run = tool.wait()
    assert run.returncode == 2 and "is not a directory" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_recipe_check_never_overwrites_a_report_file_it_did_not_write(tmp_path, capsys):
    from vggkit.commands.recipe_check import main
    out = tmp_path / "docs"
    out.mkdir()
    mine = out / "recipe_check.md"
    mine.write_text("my notes\n")
    code = main(["--data-root", str(make_split_folder(tmp_path / "data")), "--out", str(out),
                 "--work-dir", str(tmp_path / "w"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "not written by vggkit" in err and len(err.strip().splitlines()) == 1
    assert mine.read_text() == "my notes\n"
    assert not (tmp_path / "w").exists()  # refused before any work
