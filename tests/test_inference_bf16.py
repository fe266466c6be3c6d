"""The reduced-precision paths: bf16 weights cast once agree with fp32 (cosine, top-1) for
every output; a forced bf16 (API, ``vggkit test``, ``vggkit extract``) runs the cast-once
path, never autocast, and leaves the caller's net in fp32; torch.compile where a compiler is
present. Emulated bf16 (no AVX-512 BF16, or ONEDNN_MAX_CPU_ISA=AVX2) gives the same numbers,
slowly: these tests check agreement, not speed."""
from __future__ import annotations

import contextlib
import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from helpers import FolderTask, tiny_vgg
from vggkit.inference import autotune, backends, build
from vggkit.inference.build import dense_output
from vggkit.inference.runners import CompiledNet, compile_for_inference
from vggkit.factory import build_vgg

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = {"logits": 32, "dense": 64, "fc7": 64, "pool5": 64}


@pytest.fixture
def casts(monkeypatch):
    """Every cast of a net's weights (dtype, the net built), and autocast made an error."""
    seen: list[tuple[torch.dtype, torch.nn.Module]] = []
    real = build._cast

    def recorded(model, dtype, device, in_place):
        net = real(model, dtype, device, in_place)
        seen.append((dtype, net))
        return net

    def no_autocast(*args, **kwargs):
        raise AssertionError("the reduced-precision paths cast the weights once, no autocast")

    monkeypatch.setattr(build, "_cast", recorded)
    monkeypatch.setattr(torch, "autocast", no_autocast)
    return seen


def _reduced(casts):
    """The dtypes of the casts to a reduced precision (fp32 runs the net as it is)."""
    return [d for d, _ in casts if d != torch.float32]


def _cosine(a, b):
    return F.cosine_similarity(a.float().flatten(1), b.float().flatten(1)).min().item()


@pytest.mark.parametrize("arch", ["A", "A-LRN"])
@pytest.mark.parametrize("output", list(SIZES))
def test_bf16_weights_cast_once_agree_with_fp32(arch, output, casts):
    torch.manual_seed(0)
    model = build_vgg(arch, num_classes=5, width_mult=1 / 16, fc_width=32, input_size=32,
                      init="glorot").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = compile_for_inference(model, output, "eager", precision="bf16",
                                example_size=SIZES[output])
    x = torch.randn(6, 3, SIZES[output], SIZES[output]) * 60
    got = run(x)
    with torch.no_grad():
        ref = dense_output(model, x, output)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert _cosine(got, ref) >= autotune.MIN_COSINE
    assert autotune.agreement(got, ref, output) is None  # cosine, and top-1 for logits
    # the cast-once path: one bf16 copy, the caller's net untouched in fp32
    (dtype, net), = [c for c in casts if c[0] != torch.float32]
    assert dtype == torch.bfloat16 and net is not model
    assert all(p.dtype == torch.bfloat16 for p in net.parameters())
    assert all(torch.equal(before[k], v) and v.dtype == before[k].dtype
               for k, v in model.state_dict().items())


def test_in_place_casts_the_net_itself(casts):
    model = tiny_vgg(5, init="glorot")
    run = compile_for_inference(model, "fc7", "eager", precision="bf16", example_size=64,
                                in_place=True)
    assert run(torch.randn(1, 3, 64, 64)).dtype == torch.float32
    assert casts[0][1] is model and next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("output", ["logits", "dense"])
def test_channels_last_layout_of_the_conv_stack_and_the_head(precision, output, casts):
    """The convs run channels-last, the head too for the dense maps; for the logits the
    head stays contiguous, so that its FC view is a view."""
    torch.manual_seed(0)  # fc6 a 2x2 conv: its layouts differ (a 1x1 conv's would not)
    model = build_vgg("A", num_classes=5, width_mult=1 / 16, fc_width=32, input_size=64,
                      init="glorot").eval()
    compile_for_inference(model, output, "eager", precision=precision)
    net = casts[-1][1]
    assert net.head.fc6.weight.shape[-1] == 2
    conv = next(m for m in net.features.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    fc6 = net.head.fc6.weight
    if output == "dense":
        assert fc6.is_contiguous(memory_format=torch.channels_last)
    else:  # F.linear on it flattened: a view, not a copy per call
        assert fc6.is_contiguous() and fc6.flatten(1).data_ptr() == fc6.data_ptr()


def test_forced_bf16_everywhere_is_the_cast_once_path(casts, monkeypatch):
    """``precision='bf16'`` with backend auto: eager bf16 in every caller, probing or not."""
    from vggkit.features.extractor import FeatureExtractor, Net
    model = tiny_vgg(5, init="glorot")
    for probing in ("off", "on"):
        autotune.forget()
        monkeypatch.setenv("VGGKIT_AUTOTUNE", probing)
        monkeypatch.setattr(backends, "compiler_available", lambda device: False)
        assert autotune.choose("auto", "bf16", "cpu", models=[model]) == ("eager", "bf16")
    net = CompiledNet(model, "auto", "bf16", dense_size=64)
    x = torch.randn(2, 3, 32, 32) * 60
    with torch.no_grad():
        assert _cosine(net(x), model(x)) >= autotune.MIN_COSINE
    assert net.choices == {"logits": ("eager", "bf16")}
    raw = {"mean": [0.0] * 3, "std": [1.0] * 3, "bgr": False}
    extractor = FeatureExtractor([Net(model, raw)], scales=(32, 48), precision="bf16")
    assert (extractor.backend, extractor.precision) == ("eager", "bf16")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8))
    got = extractor.describe_images([img])
    reference = FeatureExtractor([Net(copy.deepcopy(model), raw)], scales=(32, 48),
                                 precision="fp32", backend="eager")
    assert float(np.dot(got[0], reference.describe_images([img])[0])) >= autotune.MIN_COSINE
    assert _reduced(casts) == [torch.bfloat16] * 2  # CompiledNet's logits, the extractor's fc7
    autotune.forget()


@pytest.mark.usefixtures("folder_task")
def test_extract_precision_bf16_writes_the_cast_once_path(feature_setup, tmp_path, casts):
    from vggkit.commands import extract as extract_tool
    from vggkit.features.store import load_features
    args = [*feature_setup["d"], "--task", FolderTask.name, "--data-root",
            str(feature_setup["data"]), "--no-progress", "--scales", "32", "48"]
    threads = torch.get_num_threads()
    try:
        assert extract_tool.main([*args, "--precision", "bf16", "--out",
                                  str(tmp_path / "bf16")]) == 0
        assert extract_tool.main([*args, "--precision", "fp32", "--backend", "eager",
                                  "--out", str(tmp_path / "fp32")]) == 0
    finally:
        torch.set_num_threads(threads)
    bf16, fp32 = load_features(str(tmp_path / "bf16")), load_features(str(tmp_path / "fp32"))
    settings = bf16.meta["settings"]
    assert (settings["backend"], settings["precision"]) == ("eager", "bf16")
    assert _reduced(casts) == [torch.bfloat16]
    rows = (bf16.features * fp32.features).sum(1)  # unit rows: their cosines
    assert rows.min() >= autotune.MIN_COSINE


def test_vggkit_test_precision_bf16_runs_the_cast_once_path(tmp_path, casts, capsys):
    from vggkit.commands.test import main
    from vggkit.evaluation.posteriors import load_posteriors
    from vggkit.models import save_checkpoint
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for n, cls in enumerate(("ant", "bee", "ant", "bee")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40 + 8 * n, 48, 3), np.uint8)).save(
            root / cls / f"img{n}.jpg", quality=95)
    vgg = dict(arch="A", num_classes=2, width_mult=1 / 16, input_size=32, fc_width=32)
    cfg = tmp_path / "tiny.py"
    cfg.write_text(f"model = dict(type='VGGClassifier', vgg={vgg!r})\n"
                   "test_dataloader = dict(batch_size=4, dataset=dict(type='ImageFolder', "
                   f"data_root={str(root)!r}, cache=False))\n")
    torch.manual_seed(0)
    save_checkpoint(str(tmp_path / "a.pth"), {f"vgg.{k}": v for k, v in build_vgg(
        **vgg, init="glorot").state_dict().items()},
        {"preprocess": {"mean": [120.0] * 3, "std": [1.0] * 3, "bgr": False},
         "train_scale": {"S": 40}, "dataset_meta": {"classes": ["ant", "bee"]}})
    posts = {}
    for precision, backend in (("bf16", "auto"), ("fp32", "eager")):
        out = tmp_path / f"{precision}.npz"
        with contextlib.redirect_stdout(None):
            assert main([str(cfg), str(tmp_path / "a.pth"), "--strategy", "center", "dense",
                         "--precision", precision, "--backend", backend, "--workers", "0",
                         "--no-progress", "--save-posteriors", str(out),
                         "--out", str(tmp_path / f"{precision}.json")]) == 0
        posts[precision] = load_posteriors(str(out)).scores
    model = json.loads((tmp_path / "bf16.json").read_text())["models"][0]
    assert model["backend"] == {"logits": "eager bf16", "dense": "eager bf16"}
    assert _reduced(casts) == [torch.bfloat16] * 2  # the crops' net and the score map's
    for name in ("center", "dense"):
        np.testing.assert_allclose(posts["bf16"][name], posts["fp32"][name], atol=2e-2)


@pytest.mark.skipif(not backends.compiler_available(torch.device("cpu")),
                    reason="torch.compile needs a C++ compiler here")
def test_compile_agrees_and_auto_measures_its_compile_time(tmp_path, monkeypatch):
    """One compilation (tens of seconds even for the tiny net): the probe's candidate at
    the fastest precision here (bf16 with native bf16, else fp32), checked against fp32."""
    model = tiny_vgg(5, init="glorot")
    autotune.forget()
    monkeypatch.setenv("VGGKIT_AUTOTUNE", "on")
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(autotune, "onnxruntime_available", lambda: False)
    cache = tmp_path / "autotune.json"
    got = autotune.choice("auto", "auto", "cpu", models=[model], batch=2, runs=10 ** 9,
                          cache=str(cache))
    record = next(iter(json.loads(cache.read_text())["entries"].values()))
    name = f"compile {backends.reduced_precision(torch.device('cpu'))[0] or 'fp32'}"
    assert name in record["ms"], record["rejected"]  # built, and agreed with fp32
    assert record["setup_s"][name] > record["setup_s"]["eager fp32"]
    assert got[:2] == autotune.decide(record, 10 ** 9)[:2]
    x = torch.randn(2, 3, 32, 32) * 60
    with torch.no_grad():
        assert autotune.agreement(got.runners[0](x), model(x), "logits") is None
    autotune.forget()
