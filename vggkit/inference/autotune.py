"""'auto' resolved by measuring: the fastest path that agrees with fp32 eager, on this machine.

Layers, each importing only those before it: :mod:`~vggkit.inference.names`,
:mod:`~vggkit.inference.backends` (what can run here), :mod:`~vggkit.inference.build`
(a path's runner), this module (the choice), :mod:`~vggkit.inference.runners`
(the public face). What each part buys, with its figure: ``docs/inference.md``.

On first use per key (machine, ISA flags and oneDNN's limit, threads, library
versions, device, the nets' parameter shapes, output, the probe's batch and
size, the candidates), every candidate (:func:`offered`) is built and run on
one input of the batch (up to :data:`PROBE_MAX_BATCH`) and size the caller
feeds: a first call that is also the check (:func:`agreement`), then up to
:data:`ROUNDS` rounds in rotated order, the clearly slower leaving early
(:data:`PRUNE_RATIO`). The figures are cached (:func:`cache_path`) and the
choice made from them (:func:`decide`: the lowest median; ``torch.compile``
only when its compile time is paid back within the caller's ``runs``),
printed once per process with the figures that chose it, and returned with
the probe's runners of the winner (:class:`Choice`), so nothing is built
twice. In a process group rank 0 decides for all. ``VGGKIT_AUTOTUNE=off``:
:func:`static_choice`, in fp32 (no agreement is checked without a probe).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import statistics
import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import nn

from vggkit import paths
from vggkit.inference.backends import (DYNAMIC_SIZE_BACKENDS, BackendUnavailableError,
                                       onednn_isa_limit, onnxruntime_available,
                                       reduced_precision, unavailable)
from vggkit.inference.build import build
from vggkit.inference.names import BACKENDS, PRECISIONS, Backend

ROUNDS = 3
MIN_COSINE = 0.999
#: a top-1 of fp32 ahead of the candidate's by at most this share of the row's logit spread
#: is a tie, not a disagreement: a random-init VGG-16 on random inputs gives margins of
#: 3e-12 in logits spread over ~4e-7, which bf16's rounding (errors ~2e-9) flips
TIE = 0.02
#: the probe's batch at most: the caller's batch up to this (issue 26 measured at 8; the
#: pass-cap probe found fp32 time per crop flat from 1 to 4)
PROBE_MAX_BATCH = 8
#: a candidate whose best time is over this many times the best candidate's best
#: time stops being timed; best times only err upwards (a busy machine slows a
#: run, never speeds it up), so a truly fast candidate is not dropped by noise
PRUNE_RATIO = 1.5
#: calls before timing: TorchScript's profiling executor optimises on its second call
WARMUPS = {"jit": 2}
#: a round's sample repeats the calls of a fast candidate (up to MAX_REPEATS) to last
#: this long; a VGG-16 call (~0.4 s on 2 cores) is one call per sample
MIN_SAMPLE_SECONDS = 0.05
MAX_REPEATS = 64
#: every (backend, precision) pair 'auto' may pick, in the order they are listed
CANDIDATES = (("onnxruntime", "fp32"), ("jit", "fp32"), ("mkldnn", "fp32"), ("eager", "fp32"),
              ("eager", "bf16"), ("eager", "fp16"),
              ("compile", "fp32"), ("compile", "bf16"), ("compile", "fp16"))
REFERENCE = ("eager", "fp32")
#: 'auto' without probing (VGGKIT_AUTOTUNE=off, or no net to probe)
STATIC_ORDER = (Backend.ONNXRUNTIME, Backend.MKLDNN, Backend.JIT, Backend.EAGER)
_SHORT = {"onnxruntime": "ort", "jit": "jit", "mkldnn": "mkldnn", "eager": "eager",
          "compile": "compile"}
#: what each backend is, for the printed choice
_WHAT = {"onnxruntime": "ONNX Runtime", "jit": "frozen TorchScript",
         "mkldnn": "oneDNN blocked layout", "compile": "torch.compile, inductor, frozen weights"}
#: the backends a reader may wonder about when they were not offered
_NOTED = ("bf16", "onnxruntime", "jit", "compile")

#: the section of the cache file holding the probes' figures
ENTRIES = "entries"

_memo: dict[tuple, Any] = {}   # (path, key) -> this process's record
_printed: set[str] = set()


class Choice(NamedTuple):
    """A resolved path; ``runners`` (one per model) when the probe that chose it ran in
    this call, to be used instead of building the path again."""

    backend: str
    precision: str
    runners: list | None = None


def enabled() -> bool:
    """Whether 'auto' is measured (``VGGKIT_AUTOTUNE`` is not off/0/false/static)."""
    return os.environ.get("VGGKIT_AUTOTUNE", "on").strip().lower() not in (
        "off", "0", "false", "no", "static")


def cache_path(cache: str | os.PathLike | None = None) -> str:
    """The cache file: ``cache``, else ``$VGGKIT_AUTOTUNE_CACHE``, else
    ``autotune/autotune.json`` in the cache root (:func:`vggkit.paths.cache_dir`)."""
    if cache is not None:
        return os.fspath(cache)
    if os.environ.get("VGGKIT_AUTOTUNE_CACHE"):
        return os.environ["VGGKIT_AUTOTUNE_CACHE"]
    return os.fspath(paths.cache_dir("autotune") / "autotune.json")


def forget() -> None:
    """Drop this process's records and messages (tests; a new process)."""
    _memo.clear()
    _printed.clear()


def describe(backend: str, precision: str) -> str:
    """What a path is, in a few words: 'eager bf16 (weights cast to bf16 once, channels-last)'."""
    if backend == "eager":
        how = "channels-last" if precision == "fp32" else \
            f"weights cast to {precision} once, channels-last"
    else:
        how = _WHAT[backend]
    return f"{backend} {precision} ({how})"


def choice(backend: str, precision: str, device: str | torch.device, *,
           models: Sequence[nn.Module] = (), output: str = "logits", relu: bool | None = None,
           example_size: int | None = None, batch: int | None = None,
           dynamic_size: bool = False, runs: int | None = None,
           cache: str | None = None) -> Choice:
    """The path that runs ``output`` of ``models`` on ``device``.

    A backend named outright must be able to run here; its 'auto' precision
    is fp16 on CUDA for eager and compile, else fp32 (nothing is measured).
    Backend 'auto' is measured among :func:`offered` (those of ``precision``
    unless 'auto'), probed at ``batch`` inputs of ``example_size`` (the sizes
    the caller feeds) and cached; ``dynamic_size`` (inputs of many sizes)
    leaves out the backends of fixed size (jit); ``runs`` (calls expected in
    this process) offers ``torch.compile``, chosen only when its compile time
    is paid back within them. With ``VGGKIT_AUTOTUNE=off``, or no model to
    probe, it is :func:`static_choice`. In a process group, rank 0 decides for
    all (every rank must call it, in the same order).

    Raises:
        ValueError: an unknown name.
        BackendUnavailableError: a named backend that cannot run here, with why.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown inference backend '{backend}'; choose one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; choose one of {PRECISIONS}")
    device, asked, models = torch.device(device), Backend(backend), list(models)
    if asked is Backend.AUTO:
        found, why_not = offered(device, precision, models, output, relu, dynamic_size, runs)
        if not found:  # e.g. fp16 asked on a device where eager cannot run it
            reason = unavailable(Backend.EAGER, device, precision, models, output, relu)
            raise BackendUnavailableError(
                f"no backend runs {precision} here ({device.type}): {reason}; use --precision fp32")
        if len(found) == 1 or not models or not enabled():
            return Choice(*static_choice(found, device))
        return _resolve(found, why_not, device, models, output, relu,
                        (example_size, batch, runs), cache)
    if precision == "auto":
        reduced = asked in (Backend.EAGER, Backend.COMPILE) and device.type == "cuda"
        precision = "fp16" if reduced else "fp32"
    reason = unavailable(asked, device, precision, models, output, relu)
    if reason is not None:
        raise BackendUnavailableError(
            f"backend '{asked}' {reason} (here: {device.type}, {precision}, output {output}); "
            "use --backend eager, or auto")
    return Choice(asked.value, precision)


def choose(backend: str, precision: str, device: str | torch.device,
           **options: Any) -> tuple[str, str]:
    """:func:`choice` as plain names, e.g. ``('eager', 'bf16')``."""
    return tuple(choice(backend, precision, device, **options)[:2])  # type: ignore[return-value]


def offered(device: torch.device, precision: str, models: Sequence[nn.Module], output: str,
            relu: bool | None, dynamic_size: bool = False, runs: int | None = None
            ) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The candidate ``(backend, precision)`` pairs that can run here, and why the others not.

    ``precision`` other than 'auto' keeps only that precision; 'auto' offers
    fp32 and the reduced precision that pays here
    (:func:`~vggkit.inference.backends.reduced_precision`). ``torch.compile``
    is offered at the fastest of those only, and only with ``runs`` > 1: its
    compile time (tens of seconds for VGG-16) must be paid back.
    ``dynamic_size`` keeps only the backends that take any input size.
    """
    found, why_not = [], {}
    paying, why_slow = reduced_precision(device)
    for backend, prec in CANDIDATES:
        if precision not in ("auto", prec):
            continue
        name = f"{backend} {prec}"
        if precision == "auto" and prec not in ("fp32", paying):
            if prec == "bf16" and device.type == "cpu":
                why_not["bf16"] = why_slow
            continue
        reason = unavailable(Backend(backend), device, prec, models, output, relu)
        if reason is None and dynamic_size and backend not in DYNAMIC_SIZE_BACKENDS:
            reason = "fixed to the traced input size, and the inputs vary in size"
        if reason is None and backend == "compile":
            if precision == "auto" and prec != (paying or "fp32"):
                continue  # compile only at the fastest precision this device has
            if not runs or runs < 2:
                reason = "a one-off run (its compile time is paid once per process)"
        if reason is None:
            found.append((backend, prec))
        elif prec != "fp16" or device.type == "cuda":
            why_not[name] = reason
    return found, why_not


def static_choice(found: Sequence[tuple[str, str]], device: torch.device) -> tuple[str, str]:
    """'auto' without measuring: fp16 eager on CUDA, else the first of :data:`STATIC_ORDER`."""
    if device.type == "cuda" and ("eager", "fp16") in found:
        return "eager", "fp16"
    for backend in STATIC_ORDER:
        for pair in found:
            if pair[0] == backend.value and pair[1] == "fp32":
                return pair
    return found[0]


def model_signature(models: Sequence[nn.Module]) -> str:
    """A short readable name (arch, width) plus a hash of every parameter's name and shape."""
    digest = hashlib.sha1()
    names = []
    for m in models:
        shapes = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
        digest.update(repr((type(m).__name__, shapes)).encode())
        arch = getattr(m, "arch", type(m).__name__)
        names.append(f"{arch}(fc{getattr(m, 'fc_width', '?')})")
    return f"{'+'.join(names)}#{digest.hexdigest()[:10]}"


def probe_key(device: torch.device, models: Sequence[nn.Module], output: str,
              relu: bool | None, size: int | None, batch: int | None = None) -> str:
    """The cache key: machine, libraries, device, nets, output, probe batch and size."""
    from vggkit.machine import machine_info
    m = machine_info()
    ort = _ort_version() if onnxruntime_available() else "none"
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    isa = ",".join(m["isa"]) + (f",onednn<={onednn_isa_limit()}" if onednn_isa_limit() else "")
    return (f"{m['cpu']} [{isa}] x{torch.get_num_threads()} | torch {m['torch']} "
            f"| ort {ort} | {dev} | {model_signature(models)} | {output} relu={relu} "
            f"| {probe_batch(batch)}x{','.join(str(probe_size(m, output, size)) for m in models)}")


@functools.cache
def _ort_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("onnxruntime")
    except PackageNotFoundError:
        return "?"


def probe_size(model: nn.Module, output: str, size: int | None) -> int:
    """Logits run the model's crop size; dense maps the caller's size, at least the crop size."""
    own = int(getattr(model, "input_size", 224))
    return own if output == "logits" else max(own, size or 0)


def probe_batch(batch: int | None) -> int:
    """The caller's batch, at most :data:`PROBE_MAX_BATCH` (1 when not given)."""
    return max(1, min(int(batch or 1), PROBE_MAX_BATCH))


def build_runner(model: nn.Module, output: str, relu: bool | None, backend: str,
                 precision: str, device: torch.device, example: torch.Tensor) -> Callable:
    """One candidate, built as the compile after the probe would build it (tests wrap this)."""
    return build(model, output, backend, precision, device, example, relu=relu)


def agreement(out: torch.Tensor, ref: torch.Tensor, output: str) -> str | None:
    """Why ``out`` disagrees with the fp32 eager ``ref``, or None.

    Every input's output must have cosine >= :data:`MIN_COSINE` with fp32's;
    for logits, the candidate's top-1 must also be fp32's, or a class fp32
    ranks within a tie of it (:data:`TIE` of the input's logit spread).
    """
    out, ref = out.float().flatten(1), ref.float().flatten(1)
    if out.shape != ref.shape:
        return f"shape {tuple(out.shape)} != {tuple(ref.shape)}"
    if not torch.isfinite(out).all():
        return "non-finite outputs"
    out, ref = out.double(), ref.double()  # no eps: random-init nets have tiny outputs
    norms = out.norm(dim=1) * ref.norm(dim=1)
    dots = (out * ref).sum(1)
    both_zero = (out.norm(dim=1) == 0) & (ref.norm(dim=1) == 0)
    cos = torch.where(both_zero, torch.ones_like(dots),
                      dots / norms.clamp_min(torch.finfo(torch.float64).tiny)).min().item()
    if cos < MIN_COSINE:
        return f"cosine {cos:.5f} < {MIN_COSINE}"
    if output == "logits":
        margin = ref.max(1).values - ref.gather(1, out.argmax(1, keepdim=True))[:, 0]
        spread = ref.max(1).values - ref.min(1).values
        differ = int((margin > TIE * spread).sum())
        if differ:
            return f"top-1 differs on {differ} of {len(ref)} inputs"
    return None


def _timed(runs: Sequence[Callable], inputs: Sequence[torch.Tensor],
           device: torch.device) -> tuple[float, list[torch.Tensor]]:
    """Seconds one call of every model's runner takes, and their outputs."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    outs = [run(x) for run, x in zip(runs, inputs)]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, outs


def _why(e: Exception) -> str:
    return str(e).splitlines()[0][:120] if str(e) else type(e).__name__


class _Race:
    """The candidates of one probe: built, checked against fp32 eager, timed.

    Every call is timed; the warm-ups count for :data:`PRUNE_RATIO` (their
    times only err upwards), the rounds for the median. :attr:`repeats` holds the
    calls per round's sample, from the fastest warm-up; :attr:`setup` the
    seconds each took to build (export, trace, compile).
    """

    def __init__(self, device: torch.device, models: Sequence[nn.Module], output: str,
                 relu: bool | None, inputs: Sequence[torch.Tensor]) -> None:
        self.device, self.models, self.output, self.relu = device, models, output, relu
        self.inputs = inputs
        self.runs: dict[str, list[Callable]] = {}
        self.warm: dict[str, list[float]] = {}
        self.times: dict[str, list[float]] = {}
        self.repeats: dict[str, int] = {}
        self.setup: dict[str, float] = {}
        self.rejected: dict[str, str] = {}
        self.refs: list[torch.Tensor] = []

    def _build(self, name: str) -> list[Callable]:
        start = time.perf_counter()
        runs = [build_runner(m, self.output, self.relu, *name.split(), self.device, x)
                for m, x in zip(self.models, self.inputs)]
        self.setup[name] = round(time.perf_counter() - start, 3)
        return runs

    def reference(self, offered_too: bool) -> None:
        """fp32 eager's outputs, the reference; it enters the race when it is a candidate."""
        name = " ".join(REFERENCE)
        runs = self._build(name)
        seconds, outs = _timed(runs, self.inputs, self.device)
        self.refs = [o.float().cpu() for o in outs]
        if offered_too:
            self._admit(name, runs, [seconds])

    def enter(self, name: str) -> None:
        """Build, check and warm up one candidate; a failure rejects it with its reason."""
        try:
            runs = self._build(name)
            seconds, outs = _timed(runs, self.inputs, self.device)  # the first warm-up checks
            for out, ref in zip(outs, self.refs):
                why = agreement(out.cpu(), ref, self.output)
                if why is not None:
                    raise ValueError(why)
            warm = [seconds] + [_timed(runs, self.inputs, self.device)[0]
                                for _ in range(WARMUPS.get(name.split()[0], 1) - 1)]
        except Exception as e:  # noqa: BLE001 -- a candidate that fails is rejected, not fatal
            self.rejected[name] = _why(e)
            return
        self._admit(name, runs, warm)

    def _admit(self, name: str, runs: list[Callable], warm: list[float]) -> None:
        self.runs[name], self.warm[name] = runs, warm
        self.repeats[name] = max(1, min(MAX_REPEATS, math.ceil(MIN_SAMPLE_SECONDS / min(warm))))

    def _sample(self, name: str) -> float:
        """Seconds per call, over one round's :attr:`repeats` calls."""
        k = self.repeats[name]
        return sum(_timed(self.runs[name], self.inputs, self.device)[0] for _ in range(k)) / k

    def _best(self, name: str) -> float:
        return min(self.warm[name] + self.times.get(name, []))

    def run(self, rounds: int) -> None:
        """Time the entrants in rotated order, dropping the clearly slower.

        A race of one stops after the round that gives its figure.
        """
        alive = list(self.runs)
        for r in range(rounds):
            if r and len(alive) == 1:
                break
            for name in alive[r % len(alive):] + alive[:r % len(alive)]:
                self.times.setdefault(name, []).append(self._sample(name))
            fastest = min(self._best(n) for n in alive)
            alive = [n for n in alive if self._best(n) <= PRUNE_RATIO * fastest]


def probe(found: Sequence[tuple[str, str]], device: torch.device, models: Sequence[nn.Module],
          output: str, relu: bool | None, size: int | None, batch: int | None = None,
          rounds: int = ROUNDS) -> tuple[dict, dict[str, list[Callable]]]:
    """Time and check every candidate; the record that is cached, and every entrant's runners.

    Returns:
        ``({'ms': {name: median ms per call}, 'setup_s': {name: seconds to build},
        'repeats': {name: calls per sample}, 'rejected': {name: why}, 'batch', 'sizes'},
        {name: [runner per model]})``; a time is summed over ``models``.
    """
    gen = torch.Generator().manual_seed(0)
    sizes = [probe_size(m, output, size) for m in models]
    inputs = [torch.randn(probe_batch(batch), 3, s, s, generator=gen).to(device) for s in sizes]
    race = _Race(device, models, output, relu, inputs)
    race.reference(REFERENCE in found)
    for pair in found:
        if pair != REFERENCE:
            race.enter(" ".join(pair))
    if not race.runs:
        raise RuntimeError(f"no inference path agrees with fp32 eager: {race.rejected}")
    race.run(rounds)
    ms = {n: round(statistics.median(t) * 1e3, 3) for n, t in race.times.items()}
    return ({"ms": ms, "setup_s": {n: race.setup[n] for n in ms}, "repeats": race.repeats,
             "rejected": race.rejected, "batch": probe_batch(batch), "sizes": sizes},
            race.runs)


def decide(record: dict, runs: int | None) -> tuple[str, str, str]:
    """The path a probe's figures choose for ``runs`` calls, and a note on compile.

    The lowest median time per call, except a ``torch.compile`` path, which
    must also pay back its compile time (``setup_s``) within ``runs`` calls:
    ``setup_s`` < ``runs`` × (the best other path's time - its own).

    Returns:
        ``(backend, precision, note)``; the note says why compile was or was not chosen.
    """
    ms, setup = record["ms"], record.get("setup_s", {})
    plain = [n for n in ms if not n.startswith("compile ")] or list(ms)
    best, note = min(plain, key=ms.get), ""
    for name in sorted((n for n in ms if n not in plain), key=ms.get):
        saved = (ms[best] - ms[name]) / 1e3
        if saved <= 0:
            note = f"{name} not chosen: no faster per call"
            continue
        calls = math.ceil(setup.get(name, 0.0) / saved)
        paid = runs is not None and runs >= calls
        note = (f"{name} {'chosen' if paid else 'not chosen'}: its {setup.get(name, 0.0):.1f} s "
                f"of compilation is paid back after {calls} calls, {runs or 1} expected"
                + (" (paid once per process)" if paid else ""))
        if paid:
            best = name
        break
    backend, precision = best.split()
    return backend, precision, note


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) and isinstance(data.get(ENTRIES), dict) else \
            {"version": 2, ENTRIES: {}}
    except (OSError, ValueError):
        return {"version": 2, ENTRIES: {}}


def _write(path: str, key: str, record: dict) -> None:
    from vggkit.fileio import atomic_write_json
    data = _read(path)  # others' entries are kept (read-modify-write of one small file)
    data[ENTRIES] = {**data[ENTRIES], key: record}
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write_json(path, data, sort_keys=True)
    except OSError as e:  # a read-only cache costs a probe per process, nothing else
        print(f"vggkit auto: cannot write {path} ({e})", file=sys.stderr)


def remembered(path: str, key: str, measure: Callable[[], dict]) -> dict:
    """The record under ``key`` in the cache file ``path``: this process's if it has one,
    else the file's if it has figures, else ``measure()``, stamped and written there."""
    if (path, key) not in _memo:
        record = _read(path)[ENTRIES].get(key)
        if not isinstance(record, dict) or not isinstance(record.get("ms"), dict) \
                or not record["ms"]:
            record = measure()
            record["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            _write(path, key, record)
        _memo[(path, key)] = record
    return _memo[(path, key)]


def message(record: dict, chosen: tuple[str, str], note: str, why_not: dict[str, str],
            key: str) -> str:
    """'vggkit auto: eager bf16 (weights cast to bf16 once, channels-last) for D(fc4096)/logits,
    batch 8 at 224, on AMD EPYC (eager bf16 640.1 ms, ort 1130.2 ms, ...; ...)'."""
    figures = ", ".join(f"{_SHORT[n.split()[0]]}{'' if n.endswith('fp32') else ' ' + n.split()[1]}"
                        f" {v:.1f} ms" for n, v in sorted(record["ms"].items(), key=lambda kv: kv[1]))
    notes = ([note] if note else []) + [
        f"{n} rejected: {why}" for n, why in record.get("rejected", {}).items()]
    notes += [f"{n} not offered: {why}" for n, why in why_not.items()
              if n.split()[0] in _NOTED]
    parts = key.split(" | ")
    what = f"{parts[4].split('#')[0]}/{parts[5].split(' ')[0]}"
    batch, sizes = parts[6].split("x", 1)
    cpu = parts[0].split(" [")[0]
    tail = f"; {'; '.join(notes)}" if notes else ""
    return (f"vggkit auto: {describe(*chosen)} for {what}, batch {batch} at {sizes}, on {cpu} "
            f"({figures}{tail})")


def say_once(key: str, text: str) -> None:
    """Print ``text`` on stderr the first time this process sees ``key``."""
    if key not in _printed:
        _printed.add(key)
        print(text, file=sys.stderr)


def _resolve(found: Sequence[tuple[str, str]], why_not: dict[str, str], device: torch.device,
             models: Sequence[nn.Module], output: str, relu: bool | None,
             workload: tuple[int | None, int | None, int | None],
             cache: str | os.PathLike | None) -> Choice:
    """The measured choice among ``found`` (cached; probed on first use per key).

    In a process group rank 0 decides and the other ranks take its choice: one
    probe instead of one per rank, timed while the other ranks wait (ranks
    sharing a machine would otherwise slow each other's timings), and one
    choice for the whole run.
    """
    from vggkit.inference.distributed import on_rank0
    size, batch, runs = workload
    path = cache_path(cache)
    key = probe_key(device, models, output, relu, size, batch) + " | " + ",".join(
        f"{b} {p}" for b, p in found)
    built: dict[str, list[Callable]] = {}

    def measure() -> dict:
        record, runners = probe(found, device, models, output, relu, size, batch)
        built.update(runners)
        return record

    def decided() -> tuple[str, str]:
        record = remembered(path, key, measure)
        backend, precision, note = decide(record, runs)
        say_once(f"{key} | runs={runs}", message(record, (backend, precision), note, why_not, key))
        return backend, precision

    chosen = tuple(on_rank0(decided))
    if chosen not in [tuple(p) for p in found]:  # rank 0's choice cannot run on this rank
        fallback = static_choice(found, device)
        say_once(f"fallback | {key}", f"vggkit auto: rank 0 chose {' '.join(chosen)}, which "
                 f"cannot run on this rank; {' '.join(fallback)} instead")
        return Choice(*fallback)
    return Choice(*chosen, built.get(" ".join(chosen)))
