"""tools/test.py end to end on a tiny net and JPEGs written here; torchvision parity;
distributed evaluation with two real processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import top_k_accuracy_score

from helpers import TenCropPlugin
from vggkit.evaluation.posteriors import load_posteriors
from vggkit.commands.test import main
from vggkit.factory import build_vgg
from vggkit.models import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("ant", "bee", "cat")
#: (class, width, height) of the test JPEGs: 7 images, odd for the 2-rank split
IMAGES = [("ant", 60, 40), ("ant", 48, 64), ("bee", 50, 50), ("bee", 70, 45),
          ("cat", 48, 64), ("cat", 64, 48), ("cat", 40, 40)]
VGG_CFG = dict(arch="A", num_classes=3, width_mult=1 / 16, input_size=32, fc_width=32)
MEAN = [120.0, 110.0, 100.0]


def write_config(path, data_root, vgg=VGG_CFG):
    path.write_text(
        "model = dict(type='VGGClassifier', vgg=%r,\n"
        "             data_preprocessor=dict(type='VGGDataPreprocessor', mean=%r))\n"
        "test_dataloader = dict(batch_size=4, dataset=dict(type='ImageFolder', "
        "data_root=%r, cache=False))\n" % (vgg, MEAN, str(data_root)))
    return str(path)


def write_checkpoint(path, seed, vgg=VGG_CFG, train_scale=None, classes=CLASSES):
    torch.manual_seed(seed)
    net = build_vgg(**vgg, init="kaiming")
    meta = {"preprocess": {"mean": MEAN, "std": [1.0, 1.0, 1.0], "bgr": False},
            "train_scale": train_scale or {"S": 40}, "dataset_meta": {"classes": list(classes)}}
    # the engine's classifier stores the net as self.vgg
    save_checkpoint(str(path), {f"vgg.{k}": v for k, v in net.state_dict().items()}, meta)
    return str(path), net.eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaltool")
    root = tmp / "data"
    rng = np.random.default_rng(0)
    for n, (cls, w, h) in enumerate(IMAGES):
        (root / cls).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / cls / f"img{n}.jpg", quality=95)
    cfg = write_config(tmp / "tiny.py", root)
    ckpt, net = write_checkpoint(tmp / "a.pth", 1)
    ckpt2, net2 = write_checkpoint(tmp / "b.pth", 2)
    return tmp, root, cfg, ckpt, net, ckpt2, net2


def _run(*argv):
    return main([*map(str, argv), "--workers", "0", "--no-progress"])


def _plain_center(net, path, q, crop=32, mean=MEAN):
    """Reference: PIL resize (smallest side q) + centre crop + mean subtraction + softmax."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    # long side rounded half up (52.5 -> 53), the convention of vggkit.data
    size = (q, int(h * q / w + 0.5)) if w <= h else (int(w * q / h + 0.5), q)
    img = img.resize(size, Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
    top, left = (x.shape[1] - crop + 1) // 2, (x.shape[2] - crop + 1) // 2
    x = x[:, top:top + crop, left:left + crop] - torch.tensor(mean).view(3, 1, 1)
    with torch.no_grad():
        return F.softmax(net(x[None]), 1)[0]


@pytest.fixture(scope="module")
def baseline(setup):
    """One run of every built-in strategy, reused by several tests."""
    tmp, _, cfg, ckpt, *_ = setup
    out, post = tmp / "r.json", tmp / "p.npz"
    import contextlib
    import io
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _run(cfg, ckpt, "--strategy", "center", "dense", "multicrop", "dense+multicrop",
                    "--out", out, "--save-posteriors", post, "--batch-size", "50") == 0
    return out, post, printed.getvalue()


def test_tool_end_to_end(setup, baseline):
    tmp, root, cfg, ckpt, net, _, _ = setup
    out, post, printed = baseline
    results = json.loads(out.read_text())
    assert results["num_images"] == len(IMAGES) and results["images_per_s"] > 0
    model = results["models"][0]
    assert model["scales"] == [35, 40, 45]  # the paper's {S-32, S, S+32}, scaled to crop 32
    # --backend auto, unmeasured in tests: the static order, without jit for the score map
    from vggkit.inference.backends import onnxruntime_available
    assert model["backend"] == ({"logits": "onnxruntime fp32", "dense": "onnxruntime fp32"}
                                if onnxruntime_available() else
                                {"logits": "jit fp32", "dense": "mkldnn fp32"})
    saved = load_posteriors(str(post))
    assert sorted(saved.ids) == sorted(f"{c}/img{n}.jpg" for n, (c, _, _) in enumerate(IMAGES))
    for name in ("center", "dense", "multicrop", "dense+multicrop"):
        assert name in printed
        p = saved.scores[name]
        assert p.shape == (7, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
        # independent check of the errors: sklearn's top-k accuracy
        expected = 100 * (1 - top_k_accuracy_score(saved.labels, p, k=1, labels=[0, 1, 2]))
        assert model["results"][name]["top1_error"] == pytest.approx(expected, abs=1e-3)
        assert model["results"][name]["top5_error"] == 0.0  # 3 classes
    np.testing.assert_allclose(saved.scores["dense+multicrop"],
                               (saved.scores["dense"] + saved.scores["multicrop"]) / 2, atol=1e-6)
    # centre posteriors against a plain PIL + torch pipeline, scale by scale
    for n, (cls, w, h) in enumerate(IMAGES):
        ref = sum(_plain_center(net, root / cls / f"img{n}.jpg", q) for q in (35, 40, 45)) / 3
        got = saved.scores["center"][saved.ids.index(f"{cls}/img{n}.jpg")]
        np.testing.assert_allclose(got, ref.numpy(), atol=2e-3)


def test_fusion_of_model_with_itself_equals_model(setup, baseline):
    tmp, _, cfg, ckpt, *_ = setup
    single, fused = baseline[0], tmp / "self.json"
    assert _run(cfg, ckpt, "--strategy", "dense", "--fuse", cfg, ckpt, "--out", fused,
                "--save-posteriors", tmp / "self.npz") == 0
    a, b = json.loads(single.read_text()), json.loads(fused.read_text())
    assert b["fusion"]["dense"] == a["models"][0]["results"]["dense"]
    np.testing.assert_allclose(load_posteriors(str(tmp / "self.npz")).scores["dense"],
                               load_posteriors(str(baseline[1])).scores["dense"], atol=1e-6)


def test_fusion_of_two_models_and_from_saved_posteriors(setup, baseline):
    tmp, _, cfg, ckpt, _, ckpt2, _ = setup
    assert _run(cfg, ckpt2, "--strategy", "center", "--scales", "32", "48",
                "--save-posteriors", tmp / "b.npz") == 0
    a, b = load_posteriors(str(baseline[1])), load_posteriors(str(tmp / "b.npz"))
    order = [b.ids.index(i) for i in a.ids]
    expected = (a.scores["center"] + b.scores["center"][order]) / 2
    # fused later from the file, without re-running net b
    assert _run(cfg, ckpt, "--strategy", "center", "--fuse-posteriors", tmp / "b.npz",
                "--save-posteriors", tmp / "ab.npz") == 0
    np.testing.assert_allclose(load_posteriors(str(tmp / "ab.npz")).scores["center"], expected,
                               atol=1e-6)
    from vggkit.commands.fuse import main as fuse_main
    assert fuse_main([f"{baseline[1]}:center", f"{tmp / 'b.npz'}:center", "--save-posteriors",
                      str(tmp / "ab2.npz")]) == 0
    np.testing.assert_allclose(load_posteriors(str(tmp / "ab2.npz")).scores["fusion"], expected,
                               atol=1e-6)


def test_a_forced_backend_gives_the_same_posteriors_or_says_why_not(setup, baseline, capsys):
    tmp, _, cfg, ckpt, *_ = setup
    assert _run(cfg, ckpt, "--strategy", "dense", "--backend", "mkldnn",
                "--save-posteriors", tmp / "mkldnn.npz", "--out", tmp / "mkldnn.json") == 0
    assert json.loads((tmp / "mkldnn.json").read_text())["models"][0]["backend"] == {
        "dense": "mkldnn fp32"}
    np.testing.assert_allclose(load_posteriors(str(tmp / "mkldnn.npz")).scores["dense"],
                               load_posteriors(str(baseline[1])).scores["dense"], atol=1e-5)
    capsys.readouterr()
    assert _run(cfg, ckpt, "--strategy", "center", "--backend", "mkldnn") == 2
    err = capsys.readouterr().err
    assert "backend 'mkldnn' gives only the dense maps" in err and "--backend eager, or auto" in err


def test_pass_crops_caps_each_pass_and_leaves_the_posteriors(setup, baseline, monkeypatch):
    tmp, _, cfg, ckpt, *_ = setup
    from vggkit.evaluation import strategies
    passes = []

    def recording(*args, **kwargs):
        batches = size_batches(*args, **kwargs)
        passes.extend(len(b) for b in batches)
        return batches
    size_batches = strategies.size_batches
    monkeypatch.setattr(strategies, "size_batches", recording)
    assert _run(cfg, ckpt, "--strategy", "multicrop", "--pass-crops", "1", "--batch-size", "50",
                "--save-posteriors", tmp / "one.npz") == 0
    # 50 crops (5x5 grid, 2 flips) per image and scale, yet one crop per forward pass
    assert passes and max(passes) == 1
    np.testing.assert_allclose(load_posteriors(str(tmp / "one.npz")).scores["multicrop"],
                               load_posteriors(str(baseline[1])).scores["multicrop"], atol=1e-5)


def test_plugin_strategy_through_the_tool(setup):
    tmp, _, cfg, ckpt, *_ = setup
    from helpers import register_plugin
    from vggkit.plugins import reload_plugins
    register_plugin(TenCropPlugin, "tencrop")
    try:
        assert _run(cfg, ckpt, "--strategy", "10crop", "--scales", "40",
                    "--out", tmp / "ten.json") == 0
    finally:
        reload_plugins()
    assert "10crop" in json.loads((tmp / "ten.json").read_text())["models"][0]["results"]


def test_bad_inputs_are_named(setup, capsys, tmp_path):
    tmp, root, cfg, ckpt, *_ = setup
    assert _run(cfg, ckpt, "--scales", "24") == 2
    assert "Q=24 is below the crop size 32" in capsys.readouterr().err
    assert _run(cfg, ckpt, "--strategy", "12crop") == 2
    err = capsys.readouterr().err
    assert "unknown evaluation strategy '12crop'" in err and "dense+multicrop" in err
    # a checkpoint for 4 classes on the 3-class test set
    vgg4 = dict(VGG_CFG, num_classes=4)
    cfg4 = write_config(tmp_path / "four.py", root, vgg4)
    ckpt4, _ = write_checkpoint(tmp_path / "four.pth", 0, vgg4, classes=CLASSES + ("dog",))
    assert _run(cfg4, ckpt4) == 2
    err = capsys.readouterr().err
    assert "predicts 4 classes but the test set" in err and "has 3" in err and "four.pth" in err
    # same count, different class order
    ckpt_swapped, _ = write_checkpoint(tmp_path / "swapped.pth", 0,
                                       classes=("bee", "ant", "cat"))
    assert _run(cfg, ckpt_swapped) == 2
    assert "first difference at index 0: 'bee' vs 'ant'" in capsys.readouterr().err


def test_torchvision_checkpoint_matches_torchvision_pipeline(tmp_path):
    """Converted torchvision VGG-11 (random weights) vs torchvision's own model + transforms."""
    import torchvision
    from torchvision import transforms as T

    from vggkit.models.converters import import_weights
    torch.manual_seed(0)
    tv = torchvision.models.vgg11(weights=None, num_classes=3)
    # a narrow head (fc_width 64) keeps the files small; the layout stays torchvision's
    tv.classifier[0], tv.classifier[3] = torch.nn.Linear(512 * 7 * 7, 64), torch.nn.Linear(64, 64)
    tv.classifier[6] = torch.nn.Linear(64, 3)
    tv.eval()
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    import_weights("torchvision", str(tmp_path / "tv.pth"), str(tmp_path / "ours.pth"))
    root = tmp_path / "data"
    rng = np.random.default_rng(1)
    # sizes whose rescaled long side leaves an even margin around the 224 crop, so
    # torchvision's CenterCrop rounding and ours pick the same pixels
    for cls, (w, h) in zip(CLASSES, [(450, 300), (300, 450), (256, 256)]):
        (root / cls).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / cls / "x.png")
    cfg = write_config(tmp_path / "vgg11.py", root, dict(arch="vgg11", num_classes=3, fc_width=64))
    assert _run(cfg, tmp_path / "ours.pth", "--strategy", "center", "--scales", "256",
                "--save-posteriors", tmp_path / "p.npz", "--batch-size", "3") == 0
    saved = load_posteriors(str(tmp_path / "p.npz"))
    pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                          T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        x = torch.stack([pipeline(Image.open(root / c / "x.png").convert("RGB")) for c in CLASSES])
        ref = F.softmax(tv(x), 1).numpy()
    got = saved.scores["center"][[saved.ids.index(f"{c}/x.png") for c in CLASSES]]
    assert np.abs(ref - 1 / 3).max() > 1e-3  # the random net is not trivially uniform
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_two_process_distributed_run_has_no_duplicates_or_losses(setup, baseline):
    tmp, _, cfg, ckpt, *_ = setup
    single = baseline[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           os.path.join(REPO, "tools", "test.py"), cfg, ckpt, "--launcher", "pytorch",
           "--device", "cpu", "--strategy", "dense", "center", "--workers", "0", "--no-progress",
           "--save-posteriors", str(tmp / "two.npz"), "--out", str(tmp / "two.json")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two, one = load_posteriors(str(tmp / "two.npz")), load_posteriors(str(single))
    assert len(two.ids) == len(set(two.ids)) == len(IMAGES)  # 7 images over 2 ranks
    assert sorted(two.ids) == sorted(one.ids)
    order = [two.ids.index(i) for i in one.ids]
    for name in ("dense", "center"):
        np.testing.assert_allclose(two.scores[name][order], one.scores[name], atol=1e-5)
    assert json.loads((tmp / "two.json").read_text())["world_size"] == 2


def test_shipped_tiny_config_with_train_val_root(tmp_path):
    """configs/tiny: num_classes=None (read from the checkpoint), scales from its pipeline."""
    rng = np.random.default_rng(2)
    for split, n in (("train", 1), ("val", 2)):
        for cls in CLASSES:
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{i}.jpg")
    vgg = dict(VGG_CFG, width_mult=1 / 4, fc_width=128)  # the config's net
    ckpt, _ = write_checkpoint(tmp_path / "t.pth", 0, vgg)
    state = torch.load(ckpt, weights_only=True)
    del state["meta"]["train_scale"]  # fall back to the config's fixed S = 32
    torch.save(state, ckpt)
    out = tmp_path / "r.json"
    assert _run(os.path.join(REPO, "configs", "tiny", "vgg_a_tiny.py"), ckpt, "--data-root",
                tmp_path, "--strategy", "center", "--out", out) == 0
    results = json.loads(out.read_text())
    assert results["num_images"] == 6  # val/ only
    # {S - 5, S, S + 5} (the paper's +-32 at crop 224, scaled to crop 32) with 27 < crop dropped
    assert results["models"][0]["scales"] == [32, 37]


def test_default_scales_of_converted_weights():
    from vggkit.engine.scales import weights_train_scale
    assert weights_train_scale({"source": "caffe"}, {}) == {"S_min": 256, "S_max": 512}
    assert weights_train_scale({"source": "torchvision"}, {"train_scale": 256}) is None
    assert weights_train_scale({"train_scale": {"S": 384}, "source": "vggkit"}, {}) == {"S": 384}


def test_cfg_options_reach_the_config(setup, capsys):
    tmp, root, cfg, ckpt, *_ = setup
    # an fc6/fc7 of 64 units does not fit the 32-unit checkpoint: the option reached the config
    assert _run(cfg, ckpt, "--cfg-options", "model.vgg.fc_width=64") == 2
    err = capsys.readouterr().err
    assert "does not fit the model" in err and "fc6" in err
