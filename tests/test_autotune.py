"""'auto' measured: the fastest candidate that agrees with fp32 eager, cached and printed once;
the probe's winner handed over, not built twice; inputs of many sizes leave jit out."""
from __future__ import annotations

import copy
import json
import time
from collections import Counter

import pytest
import torch

from vggkit.inference import autotune, backends
from vggkit.inference.backends import choose

from helpers import tiny_vgg


#: seconds a "slow" candidate sleeps per call: far above a tiny net's forward on one thread
SLOW = 0.2
#: one thread: on a busy 2-core machine OpenMP's barriers make a tiny forward take anything
#: from 1 to 300 ms, which would drown the difference a test sets up
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net():
    return tiny_vgg(5, init="glorot")


@pytest.fixture
def probe_env(tmp_path, monkeypatch):
    """A fresh cache file and process memory; no onnxruntime (cheap); candidates built
    (``calls``, probe ``sizes``), their runners (``runs``) and the calls of each (``ran``)
    recorded; ``slow`` candidates sleep, ``noisy`` ones disagree with eager."""
    autotune.forget()
    monkeypatch.setenv("VGGKIT_AUTOTUNE", "on")
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(autotune, "onnxruntime_available", lambda: False)
    calls: list[tuple[str, str]] = []
    sizes: set[int] = set()
    runs: dict[str, object] = {}
    ran: Counter = Counter()
    slow: dict[str, float] = {}
    noisy: set[str] = set()
    real = autotune.build_runner

    def build(model, output, relu, backend, precision, device, size):
        calls.append((backend, precision))
        sizes.add(size)
        run = real(model, output, relu, backend, precision, device, size)
        name = f"{backend} {precision}"

        def wrapped(x):
            ran[name] += 1
            if name in slow:
                time.sleep(slow[name])
            y = run(x)
            return y + torch.randn_like(y) * y.abs().max() if name in noisy else y
        runs[name] = wrapped
        return wrapped

    monkeypatch.setattr(autotune, "build_runner", build)
    yield {"cache": tmp_path / "autotune.json", "calls": calls, "sizes": sizes, "runs": runs,
           "ran": ran, "slow": slow, "noisy": noisy}
    autotune.forget()


def _entry(path):
    return next(iter(json.loads(path.read_text())["entries"].values()))


@pytest.mark.parametrize("slower", ["jit fp32", "eager fp32"])
def test_the_faster_candidate_is_picked(net, probe_env, slower):
    probe_env["slow"][slower] = SLOW
    got = choose("auto", "fp32", "cpu", models=[net], cache=str(probe_env["cache"]))
    faster = "eager fp32" if slower == "jit fp32" else "jit fp32"
    assert " ".join(got) == faster
    record = _entry(probe_env["cache"])
    assert record["ms"][slower] > record["ms"][faster] and record["rejected"] == {}


def test_a_disagreeing_candidate_is_rejected_with_why(net, probe_env):
    probe_env["noisy"].add("jit fp32")
    probe_env["slow"]["eager fp32"] = SLOW  # the noisy one would be the fastest
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


@pytest.fixture
def built(monkeypatch):
    """How often each backend's one-time work (export, trace, conversion) really ran."""
    from vggkit.inference import runners
    counts: Counter = Counter()
    for name in ("_eager", "_jit", "_mkldnn", "_onnxruntime"):
        def counted(*args, _real=getattr(runners, name), _name=name[1:], **kwargs):
            counts[_name] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(runners, name, counted)
    return counts


def test_the_winner_is_built_once_and_handed_over(net, probe_env, built):
    from vggkit.inference.runners import compile_for_inference
    model = copy.deepcopy(net)
    probe_env["slow"]["eager fp32"] = SLOW  # a winner with one-time work (jit or mkldnn)
    run = compile_for_inference(model, "fc7", "auto", precision="fp32",
                                cache=str(probe_env["cache"]), example_size=64)
    record = _entry(probe_env["cache"])
    assert record["backend"] in ("jit", "mkldnn")
    assert run is probe_env["runs"][f"{record['backend']} fp32"]  # the probe's own runner
    # every candidate built once in all: fp32 eager is both the reference and a candidate
    assert built == Counter({"eager": 1, "jit": 1, "mkldnn": 1})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(run(x), model.dense_pre_logits(x, "fc7"), rtol=1e-4, atol=1e-4)


def test_a_net_changed_after_the_probe_is_built_afresh(net, probe_env):
    from vggkit.inference.runners import compile_for_inference
    model = copy.deepcopy(net)
    probe_env["slow"]["eager fp32"] = SLOW  # a winner that snapshots the weights (jit, mkldnn)
    backend, precision = choose("auto", "fp32", "cpu", models=[model], output="fc7",
                                example_size=64, cache=str(probe_env["cache"]))
    assert backend in ("jit", "mkldnn")
    with torch.no_grad():
        model.head.fc7.bias.add_(1.0)  # e.g. weights loaded between the choice and the run
    run = compile_for_inference(model, "fc7", backend, precision=precision, example_size=64)
    assert run is not probe_env["runs"][f"{backend} {precision}"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(run(x), model.dense_pre_logits(x, "fc7"), rtol=1e-4, atol=1e-4)


def test_clearly_slower_candidates_leave_the_race_early(net, probe_env):
    probe_env["slow"]["jit fp32"] = SLOW  # > PRUNE_RATIO x a tiny eager forward
    assert choose("auto", "fp32", "cpu", models=[net],
                  cache=str(probe_env["cache"])) == ("eager", "fp32")
    # jit: its two warm-ups (TorchScript optimises on the second call) and one round of one
    # call (one slow call outlasts MIN_SAMPLE_SECONDS); eager: one call as reference and
    # check, and that round, after which it races alone: no more
    record = _entry(probe_env["cache"])
    assert record["repeats"]["jit fp32"] == 1
    assert probe_env["ran"] == Counter({"jit fp32": 2 + 1,
                                        "eager fp32": 1 + record["repeats"]["eager fp32"]})
    assert record["ms"]["jit fp32"] >= SLOW * 1e3


def test_a_net_of_milliseconds_is_timed_over_repeated_calls(monkeypatch):
    # calls per sample fill MIN_SAMPLE_SECONDS (0.05 s) from the fastest warm-up, 1 to 64
    race = autotune._Race(torch.device("cpu"), [], "logits", None, [])
    for name, warm in (("small", [0.006, 0.004]), ("tiny", [0.0001]), ("vgg16", [0.4])):
        race._admit(name, [name], warm)
    assert race.repeats == {"small": 13, "tiny": 64, "vgg16": 1}  # ceil(0.05 / 0.004) = 13
    calls = iter([0.001 * (i + 1) for i in range(13)])  # 1 ms, 2 ms, ..., 13 ms
    monkeypatch.setattr(autotune, "_timed", lambda runs, inputs, device: (next(calls), []))
    assert race._sample("small") == pytest.approx(0.007)  # the mean of 1..13 ms


def test_the_lowest_median_wins_even_if_its_candidate_left_the_race_early(monkeypatch):
    # 'lucky' had one fast warm-up (1 s) and is slow after (5 s a call); 'steady' takes
    # 2 s every call: over PRUNE_RATIO x lucky's best, so it is not timed after round 1,
    # yet its median is the lower: it is the faster path
    script = {"lucky": [5.0, 5.0, 5.0], "steady": [2.0, 2.0, 2.0]}
    race = autotune._Race(torch.device("cpu"), [], "logits", None, [])
    race.runs, race.warm = {"lucky": ["lucky"], "steady": ["steady"]}, {"lucky": [1.0],
                                                                         "steady": [2.0]}
    race.repeats = {"lucky": 1, "steady": 1}
    monkeypatch.setattr(autotune, "_timed",
                        lambda runs, inputs, device: (script[runs[0]].pop(0), []))
    assert race.run(3) == "steady"
    assert race.times == {"lucky": [5.0], "steady": [2.0]}  # one round each: then one was left


def test_inputs_of_many_sizes_leave_out_the_traced_backend(net, probe_env):
    cpu = torch.device("cpu")
    found, why = autotune.offered(cpu, "fp32", [net], "dense", None, dynamic_size=True)
    assert found == [("mkldnn", "fp32"), ("eager", "fp32")] and "traced" in why["jit fp32"]
    assert ("jit", "fp32") in autotune.offered(cpu, "fp32", [net], "dense", None)[0]
    choice = choose("auto", "fp32", "cpu", models=[net], output="dense", example_size=80,
                    dynamic_size=True, cache=str(probe_env["cache"]))
    assert choice in found
    assert ("jit", "fp32") not in probe_env["calls"]
    assert probe_env["sizes"] == {80}  # the probe ran at the representative size given


def test_offered_candidates(net, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    found, why = autotune.offered(cpu, "auto", [net], "logits", None)
    assert ("eager", "bf16") not in found and "AVX-512" in why["bf16"]
    assert ("mkldnn", "fp32") not in found  # logits: dense maps only
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
    found, _ = autotune.offered(cpu, "auto", [net], "fc7", True)
    assert ("eager", "bf16") in found and ("mkldnn", "fp32") in found
    found, _ = autotune.offered(torch.device("cuda"), "auto", [net], "fc7", True)
    assert ("eager", "fp16") in found and all(b != "mkldnn" for b, _ in found)
