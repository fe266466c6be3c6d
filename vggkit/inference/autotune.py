"""'auto' measured: the fastest path that agrees with fp32 eager, on this CPU.

On first use per key (CPU model + ISA flags, threads, torch and onnxruntime
versions, device, the nets' parameter shapes, output, ReLU, probe size), every
candidate path (:func:`offered`) is built and timed on one fixed input (batch 1
at the nets' size or the caller's): a warm-up that is also the check, then up
to ``ROUNDS`` rounds in rotated order, median per candidate. A round's sample of
a net that takes milliseconds repeats its calls to last ``MIN_SAMPLE_SECONDS``:
one call of a small net is within the timer's and the scheduler's noise. A
candidate whose output disagrees with fp32 eager (cosine < ``MIN_COSINE``, or
another top-1 for logits) is rejected with its reason; one whose best time is
over ``PRUNE_RATIO`` times the best candidate's leaves the race early (its
figure is then the median of fewer rounds), and the last one left is not timed
further. The lowest median wins, whether or not its candidate left early (the
best times only choose whom to keep timing), and is cached, with the figures, in
``autotune/autotune.json`` under ``$VGGKIT_CACHE`` (``VGGKIT_AUTOTUNE_CACHE`` or the
``cache`` argument override the file), so later runs resolve 'auto' from the
cache without timing: a feature store resumed on the same machine sees the
same backend. The choice is printed once per process per key on stderr.

The probe's dominant cost is building the candidates (ONNX export, tracing),
so the winner's runners are handed to the compile that follows
(:func:`vggkit.inference.runners.keep_prebuilt`) instead of being built again,
and fp32 eager, the reference, is built and run once. In a process group only
rank 0 probes (or reads its cache) and the others take its choice.

``VGGKIT_AUTOTUNE=off`` skips probing: 'auto' then takes the first available
of :data:`STATIC_ORDER` (what 'auto' did before measuring).

The same file holds the evaluation's crops per pass, measured per key and
backend by :mod:`vggkit.inference.pass_cap` in its own section
(:func:`remembered`: one cache, one read-modify-write, one off switch).
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
from typing import Any, Callable, Sequence, TypeVar

import torch
from torch import nn

from vggkit import paths
from vggkit.inference import runners
from vggkit.inference.backends import (DYNAMIC_SIZE_BACKENDS, Backend, onnxruntime_available,
                                       reduced_precision, unavailable)

ROUNDS = 3
MIN_COSINE = 0.999
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
CANDIDATES = (("onnxruntime", "fp32"), ("jit", "fp32"), ("mkldnn", "fp32"),
              ("eager", "fp32"), ("eager", "bf16"), ("eager", "fp16"))
REFERENCE = ("eager", "fp32")
#: 'auto' without probing (VGGKIT_AUTOTUNE=off, or no net to probe)
STATIC_ORDER = (Backend.ONNXRUNTIME, Backend.MKLDNN, Backend.JIT, Backend.EAGER)
_SHORT = {"onnxruntime": "ort", "jit": "jit", "mkldnn": "mkldnn", "eager": "eager"}
#: the backends a reader may wonder about when they were not offered
_NOTED = ("bf16", "onnxruntime", "jit")

#: the section of the cache file holding the backend choices
ENTRIES = "entries"

T = TypeVar("T")
_memo: dict[tuple, Any] = {}   # (what, ...) -> this process's value (see remember)
_printed: set[str] = set()


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
    """Drop this process's choices, pass caps, messages and handed-over runners (tests)."""
    _memo.clear()
    _printed.clear()
    runners.drop_prebuilt()


def offered(device: torch.device, precision: str, models: Sequence[nn.Module], output: str,
            relu: bool | None, dynamic_size: bool = False
            ) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The candidate ``(backend, precision)`` pairs that can run here, and why the others not.

    ``precision`` other than 'auto' keeps only that precision. A reduced
    precision is offered where it pays (:func:`~vggkit.inference.backends.reduced_precision`:
    bf16 on CPUs with native bf16, fp16 on CUDA) unless asked for by name.
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
              relu: bool | None, size: int | None) -> str:
    """The cache key: machine, libraries, device, nets, output, probe size."""
    from vggkit.machine import machine_info
    m = machine_info()
    ort = _ort_version() if onnxruntime_available() else "none"
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return (f"{m['cpu']} [{','.join(m['isa'])}] x{torch.get_num_threads()} | torch {m['torch']} "
            f"| ort {ort} | {dev} | {model_signature(models)} | {output} relu={relu} "
            f"| {','.join(str(probe_size(m, output, size)) for m in models)}")


@functools.cache
def _ort_version() -> str:
    # read once: the evaluation's pass cap builds this key per batch of images
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("onnxruntime")
    except PackageNotFoundError:
        return "?"


def probe_size(model: nn.Module, output: str, size: int | None) -> int:
    """Logits run the model's crop size; dense maps the caller's size, at least the crop size."""
    own = int(getattr(model, "input_size", 224))
    return own if output == "logits" else max(own, size or 0)


def build_runner(model: nn.Module, output: str, relu: bool | None, backend: str,
                 precision: str, device: torch.device, size: int) -> Callable:
    """One candidate, built so that the compile after the probe can take it (tests wrap this)."""
    return runners.probe_compile(model, output, relu, backend, precision, device, size)


def _agreement(out: torch.Tensor, ref: torch.Tensor, output: str) -> str | None:
    """Why ``out`` disagrees with the fp32 eager ``ref``, or None."""
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
    if output == "logits" and not torch.equal(out.argmax(1), ref.argmax(1)):
        return "top-1 differs"
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
    calls per round's sample, from the fastest warm-up.
    """

    def __init__(self, device: torch.device, models: Sequence[nn.Module], output: str,
                 relu: bool | None, inputs: Sequence[torch.Tensor]) -> None:
        self.device, self.models, self.output, self.relu = device, models, output, relu
        self.inputs = inputs
        self.runs: dict[str, list[Callable]] = {}
        self.warm: dict[str, list[float]] = {}
        self.times: dict[str, list[float]] = {}
        self.repeats: dict[str, int] = {}
        self.rejected: dict[str, str] = {}
        self.refs: list[torch.Tensor] = []

    def _build(self, backend: str, precision: str) -> list[Callable]:
        return [build_runner(m, self.output, self.relu, backend, precision, self.device,
                             x.shape[-1]) for m, x in zip(self.models, self.inputs)]

    def reference(self, offered_too: bool) -> None:
        """fp32 eager's outputs, the reference; it enters the race when it is a candidate."""
        runs = self._build(*REFERENCE)
        seconds, outs = _timed(runs, self.inputs, self.device)
        self.refs = [o.float().cpu() for o in outs]
        if offered_too:
            self._admit(" ".join(REFERENCE), runs, [seconds])

    def enter(self, backend: str, precision: str) -> None:
        """Build, check and warm up one candidate; a failure rejects it with its reason."""
        name = f"{backend} {precision}"
        try:
            runs = self._build(backend, precision)
            seconds, outs = _timed(runs, self.inputs, self.device)  # the first warm-up checks
            for out, ref in zip(outs, self.refs):
                why = _agreement(out.cpu(), ref, self.output)
                if why is not None:
                    raise ValueError(why)
            warm = [seconds] + [_timed(runs, self.inputs, self.device)[0]
                                for _ in range(WARMUPS.get(backend, 1) - 1)]
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

    def run(self, rounds: int) -> str:
        """Time the entrants in rotated order, dropping the clearly slower; the fastest.

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
        # every entrant has a round's sample: one lucky call must not beat steady ones
        return min(self.times, key=lambda n: statistics.median(self.times[n]))


def probe(found: Sequence[tuple[str, str]], device: torch.device, models: Sequence[nn.Module],
          output: str, relu: bool | None, size: int | None,
          rounds: int = ROUNDS) -> tuple[dict, list[Callable]]:
    """Time and check every candidate; the record that is cached and the winner's runners.

    Returns:
        ``({'backend', 'precision', 'ms': {name: median ms}, 'repeats': {name: calls per
        sample}, 'rejected': {name: why}}, [runner per model])`` where the time of a
        candidate is summed over ``models``.
    """
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, 3, s, s, generator=gen).to(device)
              for s in (probe_size(m, output, size) for m in models)]
    race = _Race(device, models, output, relu, inputs)
    race.reference(REFERENCE in found)
    for pair in found:
        if pair != REFERENCE:
            race.enter(*pair)
    if not race.runs:
        raise RuntimeError(f"no inference path agrees with fp32 eager: {race.rejected}")
    best = race.run(rounds)
    ms = {n: round(statistics.median(t) * 1e3, 3) for n, t in race.times.items()}
    backend, prec = best.split(" ")
    return ({"backend": backend, "precision": prec, "ms": ms, "repeats": race.repeats,
             "rejected": race.rejected},
            race.runs[best])


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) and isinstance(data.get(ENTRIES), dict) else \
            {"version": 1, ENTRIES: {}}
    except (OSError, ValueError):
        return {"version": 1, ENTRIES: {}}


def _section(data: dict, section: str) -> dict:
    found = data.get(section)
    return found if isinstance(found, dict) else {}


def _write(path: str, key: str, record: dict, section: str = ENTRIES) -> None:
    from vggkit.fileio import atomic_write_json
    data = _read(path)  # others' entries are kept (read-modify-write of one small file)
    data.setdefault("version", 1)
    data[section] = {**_section(data, section), key: record}
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write_json(path, data, sort_keys=True)
    except OSError as e:  # a read-only cache costs a probe per process, nothing else
        print(f"vggkit auto: cannot write {path} ({e})", file=sys.stderr)


def message(record: dict, why_not: dict[str, str], key: str) -> str:
    """'vggkit auto: onnxruntime fp32 for D/fc7 on <cpu> (ort 12.1 ms, ...; ...)'."""
    figures = ", ".join(f"{_SHORT[n.split()[0]]}{'' if n.endswith('fp32') else ' ' + n.split()[1]}"
                        f" {v:.1f} ms" for n, v in sorted(record["ms"].items(), key=lambda kv: kv[1]))
    notes = [f"{n} rejected: {why}" for n, why in record.get("rejected", {}).items()]
    notes += [f"{n} not offered: {why}" for n, why in why_not.items()
              if n.split()[0] in _NOTED]
    parts = key.split(" | ")
    what = f"{parts[4].split('#')[0]}/{parts[5].split(' ')[0]}"
    cpu = parts[0].split(" [")[0]
    tail = f"; {'; '.join(notes)}" if notes else ""
    return (f"vggkit auto: {record['backend']} {record['precision']} for {what} on {cpu} "
            f"({figures}{tail})")


def remember(slot: tuple, compute: Callable[[], T]) -> T:
    """``compute()`` once per process per ``slot`` (:func:`forget` drops them)."""
    if slot not in _memo:
        _memo[slot] = compute()
    return _memo[slot]


def remembered(path: str, key: str, measure: Callable[[], dict], section: str = ENTRIES,
               usable: Callable[[dict], bool] = lambda record: True) -> dict:
    """The record under ``key`` in ``section`` of the cache file ``path``.

    This process's if it has one, else the file's if ``usable``, else
    ``measure()``, stamped and written there (the other entries kept).
    """
    def fetch() -> dict:
        record = _section(_read(path), section).get(key)
        if not isinstance(record, dict) or not usable(record):
            record = measure()
            record["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            _write(path, key, record, section)
        return record
    return remember((section, path, key), fetch)


def _measured(path: str, key: str, found: Sequence[tuple[str, str]], why_not: dict[str, str],
              device: torch.device, models: Sequence[nn.Module], output: str,
              relu: bool | None, size: int | None) -> tuple[str, str]:
    """This process's choice: remembered, cached, or probed (its runners then handed over)."""
    def measure() -> dict:
        runners.drop_prebuilt()  # an earlier probe's unclaimed winner: free its memory first
        record, built = probe(found, device, models, output, relu, size)
        for model, run in zip(models, built):
            runners.keep_prebuilt(model, output, relu, record["backend"], record["precision"],
                                  device, run)
        return record

    offered_now = [tuple(p) for p in found]
    record = remembered(path, key, measure, usable=lambda r: (
        r.get("backend"), r.get("precision")) in offered_now)
    say_once(key, message(record, why_not, key))
    return record["backend"], record["precision"]


def say_once(key: str, text: str) -> None:
    """Print ``text`` on stderr the first time this process sees ``key``."""
    if key not in _printed:
        _printed.add(key)
        print(text, file=sys.stderr)


def resolve(found: Sequence[tuple[str, str]], why_not: dict[str, str], device: torch.device,
            models: Sequence[nn.Module], output: str, relu: bool | None, size: int | None,
            cache: str | os.PathLike | None = None) -> tuple[str, str]:
    """The measured choice among ``found`` (cached; probed on first use per key).

    In a process group rank 0 decides and the other ranks take its choice: one
    probe instead of one per rank, timed while the other ranks wait (ranks
    sharing a machine would otherwise slow each other's timings), and one
    choice for the whole run. Every rank must call it, in the same order.
    """
    from vggkit.inference.distributed import on_rank0
    path = cache_path(cache)
    key = probe_key(device, models, output, relu, size) + " | " + ",".join(
        f"{b} {p}" for b, p in found)
    choice = tuple(on_rank0(lambda: _measured(path, key, found, why_not, device, models,
                                              output, relu, size)))
    if choice not in [tuple(p) for p in found]:  # rank 0's choice cannot run on this rank
        fallback = static_choice(found, device)
        say_once(f"fallback | {key}", f"vggkit auto: rank 0 chose {' '.join(choice)}, which "
                 f"cannot run on this rank; {' '.join(fallback)} instead")
        return fallback
    return choice
