"""'auto' measured: the fastest candidate that agrees with fp32 eager, cached and printed once."""
from __future__ import annotations

import json
import time

import pytest
import torch

from vggkit.inference import autotune, backends
from vggkit.inference.backends import choose
from vggkit.models import build_vgg


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_vgg("A", num_classes=5, width_mult=1 / 16, fc_width=32, input_size=32,
                     init="glorot").eval()


@pytest.fixture
def probe_env(tmp_path, monkeypatch):
    """A fresh cache file and process memory; eager and jit only (cheap); calls counted."""
    autotune.forget()
    monkeypatch.setenv("VGGKIT_AUTOTUNE", "on")
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(autotune, "onnxruntime_available", lambda: False)
    calls: list[tuple[str, str]] = []
    slow: dict[str, float] = {}
    noisy: set[str] = set()
    real = autotune.build_runner

    def build(model, output, relu, backend, precision, device, size):
        calls.append((backend, precision))
        run = real(model, output, relu, backend, precision, device, size)
        name = f"{backend} {precision}"

        def wrapped(x):
            if name in slow:
                time.sleep(slow[name])
            y = run(x)
            return y + torch.randn_like(y) * y.abs().max() if name in noisy else y
        return wrapped

    monkeypatch.setattr(autotune, "build_runner", build)
    yield {"cache": tmp_path / "autotune.json", "calls": calls, "slow": slow, "noisy": noisy}
    autotune.forget()


def _entry(path):
    return next(iter(json.loads(path.read_text())["entries"].values()))


@pytest.mark.parametrize("slower", ["jit fp32", "eager fp32"])
def test_the_faster_candidate_is_picked(net, probe_env, slower):
    probe_env["slow"][slower] = 0.1
    got = choose("auto", "fp32", "cpu", models=[net], cache=str(probe_env["cache"]))
    faster = "eager fp32" if slower == "jit fp32" else "jit fp32"
    assert " ".join(got) == faster
    record = _entry(probe_env["cache"])
    assert record["ms"][slower] > record["ms"][faster] and record["rejected"] == {}


def test_a_disagreeing_candidate_is_rejected_with_why(net, probe_env):
    probe_env["noisy"].add("jit fp32")
    probe_env["slow"]["eager fp32"] = 0.1  # the noisy one would be the fastest
    got = choose("auto", "fp32", "cpu", models=[net], cache=str(probe_env["cache"]))
    assert got == ("eager", "fp32")
    record = _entry(probe_env["cache"])
    assert "jit fp32" not in record["ms"]
    assert "cosine" in record["rejected"]["jit fp32"] or "top-1" in record["rejected"]["jit fp32"]


def test_cache_is_written_and_reused_without_timing(net, probe_env, capsys):
    cache = str(probe_env["cache"])
    first = choose("auto", "fp32", "cpu", models=[net], cache=cache)
    assert probe_env["cache"].exists() and probe_env["calls"]
    err = capsys.readouterr().err
    assert err.count("vggkit auto:") == 1 and f"{first[0]} fp32 for A(fc32)/logits" in err
    assert "onnxruntime fp32 not offered" in err
    probe_env["calls"].clear()
    assert choose("auto", "fp32", "cpu", models=[net], cache=cache) == first  # process memory
    autotune.forget()  # a new process: reads the file, does no timing
    assert choose("auto", "fp32", "cpu", models=[net], cache=cache) == first
    assert probe_env["calls"] == []
    # printed once per process per key: the second in-process call said nothing
    assert capsys.readouterr().err.count("vggkit auto:") == 1


def test_forced_backend_and_off_switch_do_not_probe(net, probe_env, monkeypatch):
    cache = str(probe_env["cache"])
    assert choose("jit", "auto", "cpu", models=[net], cache=cache) == ("jit", "fp32")
    assert choose("eager", "fp32", "cpu", models=[net], cache=cache) == ("eager", "fp32")
    assert choose("auto", "bf16", "cpu", models=[net], cache=cache) == ("eager", "bf16")
    monkeypatch.setenv("VGGKIT_AUTOTUNE", "off")
    assert choose("auto", "auto", "cpu", models=[net], cache=cache) == ("jit", "fp32")
    assert probe_env["calls"] == [] and not probe_env["cache"].exists()


def test_compile_for_inference_auto_runs_the_choice(net, probe_env):
    from vggkit.inference.runners import compile_for_inference
    run = compile_for_inference(net, "fc7", "auto", precision="fp32",
                                cache=str(probe_env["cache"]), example_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = net.dense_pre_logits(x, "fc7")
    torch.testing.assert_close(run(x), ref, rtol=1e-4, atol=1e-4)
    assert _entry(probe_env["cache"])["backend"] in ("jit", "mkldnn", "eager")


def test_offered_candidates(net, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: False)
    found, why = autotune.offered(cpu, "auto", [net], "logits", None)
    assert ("eager", "bf16") not in found and "AVX-512" in why["bf16"]
    assert ("mkldnn", "fp32") not in found  # logits: dense maps only
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: True)
    found, _ = autotune.offered(cpu, "auto", [net], "fc7", True)
    assert ("eager", "bf16") in found and ("mkldnn", "fp32") in found
    found, _ = autotune.offered(torch.device("cuda"), "auto", [net], "fc7", True)
    assert ("eager", "fp16") in found and all(b != "mkldnn" for b, _ in found)
