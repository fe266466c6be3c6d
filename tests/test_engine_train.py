"""tools/train.py end to end: the tiny config learns on real images; errors are clear."""
from __future__ import annotations

import json
import textwrap

import pytest
from PIL import Image

from helpers import REPO, make_image_folder, make_split_folder, run_train

from vggkit.safe_load import torch_load
from vggkit.commands.train import main, parse_args
from vggkit.engine.train import load_config

TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")


def _scalars(work):
    (path,) = work.glob("*/vis_data/scalars.json")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_config_learns_on_real_images(tmp_path):
    data = make_split_folder(tmp_path / "img", train=12, val=6)  # 36 train, 18 val JPEGs
    broken = data / "train" / "blue_disc" / "zz_truncated.jpg"
    broken.write_bytes((data / "train" / "blue_disc" / "000.jpg").read_bytes()[:300])
    work = tmp_path / "work"
    run = run_train([TINY, "--data-root", str(data), "--work-dir", str(work), "--seed", "0",
                     "--cfg-options", "train_cfg.max_epochs=12", "default_hooks.logger.interval=1"])
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    for field in ("lr:", "eta:", "loss:", "img_per_s:", "top1_error:", "top5_error:"):
        assert field in log, field
    # the bad file is skipped, named, and summed up at the end of every epoch
    assert "epoch 12: vggkit: skipped 1 bad image(s) in train:" in log
    assert str(broken) in log
    rows = _scalars(work)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 12 * 3  # 36 images / batch 16 -> 3 iterations per epoch
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    errors = [r["top1_error"] for r in rows if "top1_error" in r]
    assert len(errors) == 12
    # chance is 66.7% top-1 error for 3 classes (the 1/16-width net usually separates 2 of
    # the 3 in 12 epochs: 33%)
    assert max(errors[-3:]) < 100 * 2 / 3 - 10
    with Image.open(work / "curves.png") as png:  # the curves hook's picture
        assert png.format == "PNG" and png.width > 400
    ckpt = torch_load(str(work / "epoch_12.pth"))
    assert ckpt["meta"]["train_scale"] == {"S": 32}  # the tiny config's fixed S (pad-4 crops)
    assert ckpt["meta"]["preprocess"] == {"mean": [123.68, 116.779, 103.939],
                                          "std": [58.395, 57.12, 57.375], "bgr": False}
    assert ckpt["meta"]["dataset_meta"]["classes"] == ("blue_disc", "green_vstripes",
                                                        "red_hstripes")


def test_strict_bad_images_stop_with_one_line_naming_the_file(tmp_path):
    from helpers import unsupported_dds
    data = make_image_folder(tmp_path / "img", per_class=2)
    dds = data / "blue_disc" / "dds_as.png"  # Pillow opens it, then NotImplementedError
    dds.write_bytes(unsupported_dds())
    run = run_train([TINY, "--data-root", str(data), "--work-dir", str(tmp_path / "work"),
                     "--cfg-options", "train_cfg.max_epochs=1",
                     "train_dataloader.dataset.dataset.bad_images=strict"])
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    (line,) = [l for l in run.stderr.splitlines() if l.startswith("vggkit train: error:")]
    assert line.startswith(f"vggkit train: error: bad image file '{dds}': NotImplementedError")


def test_missing_dataset_is_reported_before_anything_starts(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main([TINY, "--data-root", str(missing), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "expected layout" in err and "<class_a>" in err
    assert not (tmp_path / "w").exists()


def test_wrong_layout_is_reported(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (40, 40)).save(flat / "a.jpg")  # images but no class folders
    assert main([TINY, "--data-root", str(flat)]) == 2
    err = capsys.readouterr().err
    assert str(flat) in err and "class" in err


@pytest.mark.parametrize("scale, message", [((64, 32), "S_min > S_max"),
                                            ((16, 64), "smaller than the crop size 32")])
def test_bad_scale_values_are_reported(tmp_path, capsys, scale, message):
    data = make_image_folder(tmp_path / "img", per_class=1)
    config = tmp_path / "bad.py"
    config.write_text(textwrap.dedent(f"""
        _base_ = ['{TINY}']
        train_dataloader = dict(dataset=dict(dataset=dict(pipeline=[
            dict(type='LoadScaleCrop', scale={scale}, crop=32), dict(type='PackInputs')])))
    """))
    assert main([str(config), "--data-root", str(data)]) == 2
    err = capsys.readouterr().err
    assert message in err and "train_dataloader" in err


def test_indivisible_batch_is_reported(tmp_path, capsys):
    data = make_image_folder(tmp_path / "img", per_class=1)
    code = main([TINY, "--data-root", str(data), "--cfg-options", "total_batch_size=256",
                 "batch_per_gpu=48"])
    assert code == 2
    assert "batch_per_gpu in [1, 2, 4, 8, 16, 32, 64, 128, 256]" in capsys.readouterr().err


def test_num_classes_mismatch_is_reported(tmp_path, capsys):
    data = make_image_folder(tmp_path / "img", per_class=1)
    assert main([TINY, "--data-root", str(data), "--cfg-options",
                 "model.vgg.num_classes=1000"]) == 2
    assert "training set has 3 classes" in capsys.readouterr().err


def test_command_line_options_reach_the_config(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=1)
    args = parse_args([TINY, "--data-root", str(data), "--amp", "bf16", "--channels-last",
                       "--seed", "5", "--deterministic", "--work-dir", str(tmp_path / "w")])
    cfg = load_config(args)
    assert cfg.model.autocast == "bfloat16"  # CPU: bf16 autocast (no CUDA here)
    assert cfg.model.channels_last and cfg.model.data_preprocessor.channels_last
    assert cfg.randomness == {"seed": 5, "deterministic": True}
    assert cfg.model.vgg.num_classes == 3  # from the image folder
    assert cfg.train_dataloader.dataset.dataset.data_root == str(data)  # no train/ val/ split
    assert cfg.train_dataloader.batch_size == 16 and cfg.optim_wrapper.accumulative_counts == 1


def test_paper_configs_load_with_the_paper_recipe():
    from mmengine.config import Config
    from vggkit.engine.batch_size import apply_batch
    expected = {"vgg11_a": ("A", 0.01, 256), "vgg11_a_lrn": ("A-LRN", 0.01, 256),
                "vgg13_b": ("B", 0.01, 256), "vgg16_c": ("C", 0.01, 256),
                "vgg16_d": ("D", 0.01, 256), "vgg19_e": ("E", 0.01, 256),
                "vgg16_c_s384": ("C", 1e-3, 384), "vgg16_d_s384": ("D", 1e-3, 384),
                "vgg19_e_s384": ("E", 1e-3, 384), "vgg16_jitter": ("D", 1e-3, (256, 512)),
                "vgg19_jitter": ("E", 1e-3, (256, 512))}
    for name, (arch, lr, scale) in expected.items():
        cfg = Config.fromfile(str(REPO / "configs" / f"{name}.py"))
        assert cfg.model.vgg.arch == arch and cfg.model.vgg.dropout == 0.5
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ("SGD", lr, 0.9, 5e-4)
        assert cfg.train_cfg.max_epochs == 74 and cfg.train_cfg.val_interval == 1
        (plateau,) = cfg.param_scheduler
        assert (plateau.type, plateau.monitor, plateau.factor) == ("ReduceOnPlateauLR",
                                                                   "top1_error", 0.1)
        assert cfg.train_dataloader.dataset.dataset.pipeline[0].scale == scale
        # batch 256 in total on 1, 2 or 8 GPUs
        for world, counts in ((1, 8), (2, 4), (8, 1)):
            assert apply_batch(cfg, world) == (32, counts)
        if arch in "BCDE" and lr == 0.01:  # pre-initialised from net A (Sect. 3.1)
            assert cfg.model.vgg.init == "from_checkpoint"
            assert cfg.model.vgg.init_conv_layers == 4 and cfg.model.vgg.init_fc_layers == 3
        if lr == 1e-3:
            assert cfg.load_from.endswith("epoch_74.pth")


def test_missing_net_a_checkpoint_is_reported(tmp_path, capsys):
    data = make_image_folder(tmp_path / "img", per_class=1)
    missing = tmp_path / "net_a.pth"
    assert main([TINY, "--data-root", str(data), "--cfg-options", "model.vgg.init=from_checkpoint",
                 f"model.vgg.init_checkpoint={missing}"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "net A" in err


@pytest.fixture
def amp_config(tmp_path, monkeypatch):
    """``load_config`` of the tiny config (1/16 width) with --amp options, on a CPU whose
    native bf16 support is given; CUDA is hidden so the CPU rules apply anywhere."""
    import torch

    from vggkit.inference import backends
    data = make_image_folder(tmp_path / "img", per_class=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # the CPU's answer is the one given: an ISA cap in the environment (the suite run with
    # ONEDNN_MAX_CPU_ISA=AVX2) would otherwise change the reason printed
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)

    def load(amp: list[str], native_bf16: bool):
        monkeypatch.setattr(backends, "cpu_has_bf16", lambda: native_bf16)
        return load_config(parse_args([
            TINY, "--data-root", str(data), *amp, "--work-dir", str(tmp_path / "w"),
            "--cfg-options", "model.vgg.width_mult=0.0625", "model.vgg.fc_width=16"]))
    return load


@pytest.mark.parametrize("asked, device, native_bf16, expected", [
    ("auto", "cpu", False, "fp32"),   # AVX2 only: emulated bf16 is slower than fp32
    ("auto", "cpu", True, "bf16"),    # AVX-512 BF16 / AMX
    ("auto", "cuda", False, "fp16"),  # fp16 with loss scaling
    ("bf16", "cpu", False, "bf16"),   # forced on an AVX2 CPU
    ("bf16", "cuda", False, "bf16"),
    ("fp16", "cuda", True, "fp16"),
    (None, "cpu", True, "fp32"),      # no --amp: fp32 whatever the CPU
])
def test_amp_precision_rule(monkeypatch, asked, device, native_bf16, expected):
    from vggkit.engine.train import amp_precision
    from vggkit.inference import backends
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: native_bf16)
    precision, note = amp_precision(asked, device)
    assert precision == expected
    assert (note is not None) == (asked == "auto" and expected == "fp32")


def test_amp_flag_modes_and_bad_ones(tmp_path, capsys, monkeypatch):
    import torch
    assert parse_args([TINY, "--amp"]).amp == "auto"  # the bare flag of earlier versions
    bare = parse_args(["--amp", TINY, "--seed", "1"])  # ... also right before the config
    assert (bare.amp, bare.config, bare.seed) == ("auto", TINY, 1)
    assert parse_args([TINY, "--amp", "bf16"]).amp == "bf16" and parse_args([TINY]).amp is None
    with pytest.raises(SystemExit):  # argparse names the modes
        parse_args([TINY, "--amp", "int8"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = make_image_folder(tmp_path / "img", per_class=1)
    assert main([TINY, "--data-root", str(data), "--amp", "fp16"]) == 2
    assert "--amp fp16 needs CUDA (here: cpu)" in capsys.readouterr().err


def _training_step_dtypes(cfg) -> list[tuple]:
    """One training step of the config's model, optimiser and training data, as mmengine's
    loop runs it; per forward of conv1_1 and of the whole net (logits): output dtype, CPU
    autocast state."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from vggkit.plugins import load_plugins
    from vggkit.registry import MODELS
    load_plugins()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    seen = []
    for layer in (model.vgg.features[0], model.vgg):
        layer.register_forward_hook(lambda m, i, o: seen.append(
            (o.dtype, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):  # as the Runner sets it
        loader = Runner.build_dataloader(cfg.train_dataloader)
    before = model.vgg.head.fc8.weight.detach().clone()
    log = model.train_step(next(iter(loader)), build_optim_wrapper(model, cfg.optim_wrapper))
    assert torch.isfinite(log["loss"]).item()
    assert model.vgg.head.fc8.weight.dtype == torch.float32  # master weights stay fp32
    assert not torch.equal(before, model.vgg.head.fc8.weight)  # the step updated them
    return seen


def test_forced_amp_bf16_runs_a_training_step_under_cpu_autocast(amp_config):
    import torch
    cfg = amp_config(["--amp", "bf16"], native_bf16=False)
    assert cfg.model.autocast == "bfloat16" and cfg.optim_wrapper.type == "OptimWrapper"
    seen = _training_step_dtypes(cfg)
    assert seen == [(torch.bfloat16, True, torch.bfloat16)] * 2


def test_auto_amp_on_an_avx2_cpu_trains_in_fp32_and_says_why(amp_config, capsys):
    import torch
    cfg = amp_config(["--amp"], native_bf16=False)
    assert cfg.model.get("autocast") is None
    assert ("vggkit train: --amp: training in fp32: this CPU has no AVX-512 BF16/AMX, where "
            "bf16 autocast is emulated and slower than fp32 (--amp bf16 forces it)"
            in capsys.readouterr().err.splitlines())
    seen = _training_step_dtypes(cfg)
    assert [(dtype, on) for dtype, on, _ in seen] == [(torch.float32, False)] * 2


def test_auto_amp_on_a_bf16_cpu_autocasts(amp_config, capsys):
    assert amp_config(["--amp"], native_bf16=True).model.autocast == "bfloat16"
    assert "--amp" not in capsys.readouterr().err
