"""'auto' measured: the fastest candidate that agrees with fp32 eager, cached and printed once;
the probe's winner handed over, not built twice; inputs of many sizes leave jit out; the
choice on injected timings (native bf16, an AVX2-like CPU, compile paid back or not)."""
from __future__ import annotations

import copy
import json
import time
from collections import Counter

import pytest
import torch

from vggkit.inference import autotune, backends
from vggkit.inference.autotune import choice, choose, decide

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
    """A fresh cache file and process memory; no onnxruntime (cheap), no compiler (slow);
    candidates built (``calls``, probe ``shapes``), their runners (``runs``) and the calls of
    each (``ran``) recorded; ``slow`` candidates sleep, ``noisy`` ones disagree with eager."""
    autotune.forget()
    monkeypatch.setenv("VGGKIT_AUTOTUNE", "on")
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(autotune, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(backends, "compiler_available", lambda device: False)
    calls: list[tuple[str, str]] = []
    shapes: set[tuple[int, ...]] = set()
    runs: dict[str, object] = {}
    ran: Counter = Counter()
    slow: dict[str, float] = {}
    noisy: set[str] = set()
    real = autotune.build_runner

    def build(model, output, relu, backend, precision, device, example):
        calls.append((backend, precision))
        shapes.add(tuple(example.shape))
        run = real(model, output, relu, backend, precision, device, example)
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
    yield {"cache": tmp_path / "autotune.json", "calls": calls, "shapes": shapes, "runs": runs,
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
    first = choose("auto", "fp32", "cpu", models=[net], cache=cache, batch=4)
    assert probe_env["cache"].exists() and probe_env["calls"]
    assert probe_env["shapes"] == {(4, 3, 32, 32)}  # the caller's batch, the net's crop
    err = capsys.readouterr().err
    assert err.count("vggkit auto:") == 1
    # the path, what it is, what it ran on, and the figures that chose it
    assert f"vggkit auto: {first[0]} fp32 (" in err and "for A(fc32)/logits, batch 4 at 32" in err
    assert " ms, " in err and "onnxruntime fp32 not offered" in err
    probe_env["calls"].clear()
    assert choose("auto", "fp32", "cpu", models=[net], cache=cache, batch=4) == first
    autotune.forget()  # a new process: reads the file, does no timing
    assert choose("auto", "fp32", "cpu", models=[net], cache=cache, batch=4) == first
    assert probe_env["calls"] == []
    # printed once per process per key: the second in-process call said nothing
    assert capsys.readouterr().err.count("vggkit auto:") == 1


def test_the_probe_batch_is_the_callers_up_to_a_cap(net, probe_env):
    choose("auto", "fp32", "cpu", models=[net], cache=str(probe_env["cache"]), batch=32)
    assert probe_env["shapes"] == {(autotune.PROBE_MAX_BATCH, 3, 32, 32)}
    assert _entry(probe_env["cache"])["batch"] == autotune.PROBE_MAX_BATCH


def test_forced_backend_and_off_switch_do_not_probe(net, probe_env, monkeypatch):
    cache = str(probe_env["cache"])
    assert choose("jit", "auto", "cpu", models=[net], cache=cache) == ("jit", "fp32")
    assert choose("eager", "fp32", "cpu", models=[net], cache=cache) == ("eager", "fp32")
    assert choose("auto", "bf16", "cpu", models=[net], cache=cache) == ("eager", "bf16")
    with pytest.raises(backends.BackendUnavailableError, match="C\\+\\+ compiler"):
        choose("compile", "fp32", "cpu", models=[net], cache=cache)
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
    assert min(_entry(probe_env["cache"])["ms"].items(), key=lambda kv: kv[1])[0] in (
        "jit fp32", "mkldnn fp32", "eager fp32")


@pytest.fixture
def built(monkeypatch):
    """How often each backend's one-time work (cast, export, trace, conversion) really ran."""
    from vggkit.inference import build
    counts: Counter = Counter()
    for name in ("_eager", "_jit", "_mkldnn", "_onnxruntime"):
        def counted(*args, _real=getattr(build, name), _name=name[1:], **kwargs):
            counts[_name] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(build, name, counted)
    return counts


def test_the_winner_is_built_once_and_handed_over(net, probe_env, built):
    from vggkit.inference.runners import compile_for_inference
    model = copy.deepcopy(net)
    probe_env["slow"]["eager fp32"] = SLOW  # a winner with one-time work (jit or mkldnn)
    run = compile_for_inference(model, "fc7", "auto", precision="fp32",
                                cache=str(probe_env["cache"]), example_size=64)
    backend = decide(_entry(probe_env["cache"]), None)[0]
    assert backend in ("jit", "mkldnn")
    assert run is probe_env["runs"][f"{backend} fp32"]  # the probe's own runner
    # every candidate built once in all: fp32 eager is both the reference and a candidate
    assert built == Counter({"eager": 1, "jit": 1, "mkldnn": 1})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(run(x), model.dense_pre_logits(x, "fc7"), rtol=1e-4, atol=1e-4)


def test_a_choice_read_from_the_cache_is_built_afresh(net, probe_env):
    from vggkit.inference.runners import compile_for_inference
    model = copy.deepcopy(net)
    probe_env["slow"]["eager fp32"] = SLOW  # a winner that snapshots the weights (jit, mkldnn)
    first = choice("auto", "fp32", "cpu", models=[model], output="fc7", example_size=64,
                   cache=str(probe_env["cache"]))
    assert first.backend in ("jit", "mkldnn") and first.runners is not None
    with torch.no_grad():
        model.head.fc7.bias.add_(1.0)  # e.g. weights loaded between the choice and the run
    run = compile_for_inference(model, "fc7", "auto", precision="fp32", example_size=64,
                                cache=str(probe_env["cache"]))  # remembered: no runners
    assert run is not first.runners[0]
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


def test_a_candidate_that_left_the_race_early_keeps_its_median(monkeypatch):
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
    race.run(3)
    assert race.times == {"lucky": [5.0], "steady": [2.0]}  # one round each: then one was left
    assert decide({"ms": {"eager fp32": 5000.0, "jit fp32": 2000.0}}, None)[:2] == ("jit", "fp32")


def test_inputs_of_many_sizes_leave_out_the_traced_backend(net, probe_env):
    cpu = torch.device("cpu")
    found, why = autotune.offered(cpu, "fp32", [net], "dense", None, dynamic_size=True)
    assert found == [("mkldnn", "fp32"), ("eager", "fp32")] and "traced" in why["jit fp32"]
    assert ("jit", "fp32") in autotune.offered(cpu, "fp32", [net], "dense", None)[0]
    got = choose("auto", "fp32", "cpu", models=[net], output="dense", example_size=80, batch=2,
                 dynamic_size=True, cache=str(probe_env["cache"]))
    assert got in found
    assert ("jit", "fp32") not in probe_env["calls"]
    assert probe_env["shapes"] == {(2, 3, 80, 80)}  # the probe ran at the size given


def test_offered_candidates(net, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the reason without native bf16
    monkeypatch.setattr(backends, "compiler_available", lambda device: True)
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    found, why = autotune.offered(cpu, "auto", [net], "logits", None)
    assert ("eager", "bf16") not in found and "AVX-512" in why["bf16"]
    assert ("mkldnn", "fp32") not in found  # logits: dense maps only
    # compile: only with calls to pay its compile time back, at the fastest precision
    assert "one-off" in why["compile fp32"] and not any(b == "compile" for b, _ in found)
    found, _ = autotune.offered(cpu, "auto", [net], "logits", None, runs=100)
    assert ("compile", "fp32") in found and ("compile", "bf16") not in found
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
    found, _ = autotune.offered(cpu, "auto", [net], "fc7", True, runs=100)
    assert ("eager", "bf16") in found and ("mkldnn", "fp32") in found
    assert ("compile", "bf16") in found and ("compile", "fp32") not in found
    found, _ = autotune.offered(torch.device("cuda"), "auto", [net], "fc7", True, runs=100)
    assert {("eager", "fp16"), ("compile", "fp16")} <= set(found)
    assert all(b != "mkldnn" for b, _ in found)
    monkeypatch.setattr(backends, "compiler_available", lambda device: False)
    _, why = autotune.offered(cpu, "auto", [net], "fc7", True, runs=100)
    assert "C++ compiler" in why["compile bf16"]


def test_onednn_held_to_avx2_has_no_native_bf16(monkeypatch):
    from vggkit import machine
    monkeypatch.setattr(machine, "machine_info", lambda: {"isa": ["avx2", "avx512_bf16"]})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert backends.reduced_precision(torch.device("cpu"))[0] == "bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert backends.reduced_precision(torch.device("cpu")) == (
        None, "oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA)")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert backends.cpu_has_bf16()


# -- the choice on injected timings -------------------------------------------------------
#: issue 26's figures, batch 8 of VGG-16 at 224 on a 2-core AMD EPYC with AVX-512 BF16
#: (ms per batch from its img/s), and the same paths on an AVX2-only CPU (fp32 only offered)
NATIVE_BF16 = {"onnxruntime fp32": 1138.0, "jit fp32": 1210.0, "eager fp32": 1391.0,
               "eager bf16": 639.0}
AVX2_LIKE = {"onnxruntime fp32": 4410.0, "jit fp32": 6752.0, "eager fp32": 11448.0}


def test_decide_native_bf16_takes_the_weights_cast_once():
    assert decide({"ms": NATIVE_BF16}, None) == ("eager", "bf16", "")


def test_decide_on_an_avx2_like_cpu_takes_onnxruntime():
    assert decide({"ms": AVX2_LIKE}, None) == ("onnxruntime", "fp32", "")
    # emulated bf16, were it forced into the race: slower than fp32, not chosen
    assert decide({"ms": {**AVX2_LIKE, "eager bf16": 30000.0}}, 10 ** 6)[:2] == (
        "onnxruntime", "fp32")


def test_decide_takes_compile_only_when_its_compile_time_is_paid_back():
    # 615 ms a batch against 639: 24 ms saved per call; 40 s of compilation: 1667 calls
    record = {"ms": {**NATIVE_BF16, "compile bf16": 615.0},
              "setup_s": {"compile bf16": 40.0, "eager bf16": 0.5}}
    for runs in (None, 1, 1666):  # a one-off run, or too few calls
        backend, precision, note = decide(record, runs)
        assert (backend, precision) == ("eager", "bf16")
        assert "compile bf16 not chosen" in note and "after 1667 calls" in note
    backend, precision, note = decide(record, 1667)
    assert (backend, precision) == ("compile", "bf16")
    assert "compile bf16 chosen" in note and "paid once per process" in note
    # no faster per call: never, however long the run
    slower = {"ms": {**NATIVE_BF16, "compile bf16": 700.0}, "setup_s": {"compile bf16": 40.0}}
    assert decide(slower, 10 ** 9) == ("eager", "bf16", "compile bf16 not chosen: no faster "
                                                        "per call")


def test_the_message_names_the_path_and_the_figures(capsys):
    record = {"ms": {**NATIVE_BF16, "compile bf16": 615.0}, "setup_s": {"compile bf16": 40.0},
              "rejected": {"jit fp32": "top-1 differs on 1 of 8 inputs"}}
    key = ("AMD EPYC [avx2,avx512_bf16] x2 | torch 2 | ort 1 | cpu | D(fc4096)#abc | logits "
           "relu=None | 8x224 | eager bf16,compile bf16")
    backend, precision, note = decide(record, None)
    text = autotune.message(record, (backend, precision), note, {}, key)
    assert text.startswith("vggkit auto: eager bf16 (weights cast to bf16 once, channels-last) "
                           "for D(fc4096)/logits, batch 8 at 224, on AMD EPYC (compile bf16 "
                           "615.0 ms, eager bf16 639.0 ms, ort 1138.0 ms")
    assert "compile bf16 not chosen: its 40.0 s of compilation" in text
    assert "jit fp32 rejected: top-1 differs" in text


# -- agreement -------------------------------------------------------------------------
def test_agreement_cosine_and_top1_with_ties():
    ref = torch.tensor([[1.0, 0.999, 0.0, -1.0], [2.0, 0.0, 1.0, -1.0]])
    assert autotune.agreement(ref.clone(), ref, "logits") is None
    # the first row's top-1 flips within a tie (0.001 of a spread of 2): agreed
    tied = torch.tensor([[0.999, 1.0, 0.0, -1.0], [2.0, 0.0, 1.0, -1.0]])
    assert autotune.agreement(tied, ref, "logits") is None
    # a clear flip is a disagreement, even at a cosine over the bar
    ref2 = torch.tensor([[10.0, 9.7] + [0.0] * 100])  # a margin of 3 % of the spread
    flipped = torch.tensor([[9.7, 10.0] + [0.0] * 100])  # cosine 0.9995
    assert autotune.agreement(flipped, ref2, "logits") == "top-1 differs on 1 of 1 inputs"
    assert autotune.agreement(flipped, ref2, "fc7") is None  # feature maps: cosine only
    assert "cosine" in autotune.agreement(-ref, ref, "fc7")
    assert autotune.agreement(ref * float("nan"), ref, "fc7") == "non-finite outputs"
