"""'auto' measured: the fastest path that agrees with fp32 eager, on this CPU.

On first use per key (CPU model + ISA flags, threads, torch and onnxruntime
versions, device, the nets' parameter shapes, output, ReLU, probe size), every
candidate path (:func:`offered`) is built and timed on one fixed input (batch 1
at the nets' size or the caller's): a warm-up, then ``ROUNDS`` rounds in
rotated order, median per candidate. A candidate whose output disagrees with
fp32 eager (cosine < ``MIN_COSINE``, or another top-1 for logits) is rejected
with its reason. The fastest that agrees is kept and cached, with the figures,
in ``autotune.json`` under ``$VGGKIT_CACHE`` (``VGGKIT_AUTOTUNE_CACHE`` or the
``cache`` argument override the file), so later runs resolve 'auto' from the
cache without timing: a feature store resumed on the same machine sees the
same backend. The choice is printed once per process per key on stderr.

``VGGKIT_AUTOTUNE=off`` skips probing: 'auto' then takes the first available
of :data:`STATIC_ORDER` (what 'auto' did before measuring).
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
from typing import Callable, Sequence

import torch
from torch import nn

from vggkit.inference.backends import Backend, cpu_has_bf16, onnxruntime_available, unavailable

ROUNDS = 3
MIN_COSINE = 0.999
#: every (backend, precision) pair 'auto' may pick, in the order they are listed
CANDIDATES = (("onnxruntime", "fp32"), ("jit", "fp32"), ("mkldnn", "fp32"),
              ("eager", "fp32"), ("eager", "bf16"), ("eager", "fp16"))
#: 'auto' without probing (VGGKIT_AUTOTUNE=off, or no net to probe)
STATIC_ORDER = (Backend.ONNXRUNTIME, Backend.MKLDNN, Backend.JIT, Backend.EAGER)
_SHORT = {"onnxruntime": "ort", "jit": "jit", "mkldnn": "mkldnn", "eager": "eager"}

_memo: dict[tuple[str, str], tuple[str, str]] = {}   # (cache file, key) -> choice
_printed: set[str] = set()


def enabled() -> bool:
    """Whether 'auto' is measured (``VGGKIT_AUTOTUNE`` is not off/0/false/static)."""
    return os.environ.get("VGGKIT_AUTOTUNE", "on").strip().lower() not in (
        "off", "0", "false", "no", "static")


def cache_path(cache: str | os.PathLike | None = None) -> str:
    """The cache file: ``cache``, else ``$VGGKIT_AUTOTUNE_CACHE``, else ``$VGGKIT_CACHE/autotune.json``."""
    if cache is not None:
        return os.fspath(cache)
    if os.environ.get("VGGKIT_AUTOTUNE_CACHE"):
        return os.environ["VGGKIT_AUTOTUNE_CACHE"]
    root = os.environ.get("VGGKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vggkit")
    return os.path.join(root, "autotune.json")


def forget() -> None:
    """Drop this process's memory of choices and messages (tests)."""
    _memo.clear()
    _printed.clear()


def offered(device: torch.device, precision: str, models: Sequence[nn.Module], output: str,
            relu: bool | None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The candidate ``(backend, precision)`` pairs that can run here, and why the others not.

    ``precision`` other than 'auto' keeps only that precision. bf16 is offered on
    CPUs with native bf16 (AVX-512 BF16 / AMX) only, fp16 on CUDA only, unless
    asked for by name.
    """
    found, why_not = [], {}
    for backend, prec in CANDIDATES:
        if precision not in ("auto", prec):
            continue
        name = f"{backend} {prec}"
        if precision == "auto" and prec == "bf16":
            if device.type != "cpu":
                continue
            if not cpu_has_bf16():
                why_not["bf16"] = "no AVX-512 BF16/AMX"
                continue
        reason = unavailable(Backend(backend), device, prec, models, output, relu)
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
    ort = "none"
    if onnxruntime_available():
        from importlib.metadata import PackageNotFoundError, version
        try:
            ort = version("onnxruntime")
        except PackageNotFoundError:
            ort = "?"
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return (f"{m['cpu']} [{','.join(m['isa'])}] x{torch.get_num_threads()} | torch {m['torch']} "
            f"| ort {ort} | {dev} | {model_signature(models)} | {output} relu={relu} "
            f"| {','.join(str(probe_size(m, output, size)) for m in models)}")


def probe_size(model: nn.Module, output: str, size: int | None) -> int:
    """Logits run the model's crop size; dense maps the caller's size, at least the crop size."""
    own = int(getattr(model, "input_size", 224))
    return own if output == "logits" else max(own, size or 0)


def build_runner(model: nn.Module, output: str, relu: bool | None, backend: str,
                 precision: str, device: torch.device, size: int) -> Callable:
    """One candidate, built as :func:`compile_for_inference` builds it (tests wrap this)."""
    from vggkit.inference.runners import compile_for_inference
    return compile_for_inference(model, output, backend, device=device, precision=precision,
                                 channels_last=backend == "eager", relu=relu, example_size=size)


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe(found: Sequence[tuple[str, str]], device: torch.device, models: Sequence[nn.Module],
          output: str, relu: bool | None, size: int | None, rounds: int = ROUNDS) -> dict:
    """Time and check every candidate; return the record that is cached.

    Returns:
        ``{'backend', 'precision', 'ms': {name: median ms}, 'rejected': {name: why}}``
        where the time of a candidate is summed over ``models``.
    """
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, 3, s, s, generator=gen).to(device)
              for s in (probe_size(m, output, size) for m in models)]
    refs = []
    for m, x in zip(models, inputs):
        ref_run = build_runner(m, output, relu, "eager", "fp32", device, x.shape[-1])
        refs.append(ref_run(x).float().cpu())
    runs: dict[str, list[Callable]] = {}
    rejected: dict[str, str] = {}
    for backend, prec in found:
        name = f"{backend} {prec}"
        try:
            runs[name] = [build_runner(m, output, relu, backend, prec, device, x.shape[-1])
                          for m, x in zip(models, inputs)]
            for run, x, ref in zip(runs[name], inputs, refs):  # the warm-up is the check
                why = _agreement(run(x).cpu(), ref, output)
                if why is not None:
                    raise ValueError(why)
                run(x)  # a second warm-up: TorchScript optimises on its second call
        except Exception as e:  # noqa: BLE001 -- a candidate that fails is rejected, not fatal
            rejected[name] = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            runs.pop(name, None)
    if not runs:
        raise RuntimeError(f"no inference path agrees with fp32 eager: {rejected}")
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            _sync(device)
            start = time.perf_counter()
            for run, x in zip(runs[name], inputs):
                run(x)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    ms = {n: round(statistics.median(t) * 1e3, 3) for n, t in times.items()}
    best = min(names, key=lambda n: ms[n])
    backend, prec = best.split(" ")
    return {"backend": backend, "precision": prec, "ms": ms, "rejected": rejected}


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) and isinstance(data.get("entries"), dict) else \
            {"version": 1, "entries": {}}
    except (OSError, ValueError):
        return {"version": 1, "entries": {}}


def _write(path: str, key: str, record: dict) -> None:
    from vggkit.fileio import atomic_write_json
    data = _read(path)  # others' entries are kept (read-modify-write of one small file)
    data.setdefault("version", 1)
    data["entries"][key] = record
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
              if n == "bf16" or n.startswith("onnxruntime")]
    parts = key.split(" | ")
    what = f"{parts[4].split('#')[0]}/{parts[5].split(' ')[0]}"
    cpu = parts[0].split(" [")[0]
    tail = f"; {'; '.join(notes)}" if notes else ""
    return (f"vggkit auto: {record['backend']} {record['precision']} for {what} on {cpu} "
            f"({figures}{tail})")


def resolve(found: Sequence[tuple[str, str]], why_not: dict[str, str], device: torch.device,
            models: Sequence[nn.Module], output: str, relu: bool | None, size: int | None,
            cache: str | os.PathLike | None = None) -> tuple[str, str]:
    """The measured choice among ``found`` (cached; probed on first use per key)."""
    path = cache_path(cache)
    key = probe_key(device, models, output, relu, size) + " | " + ",".join(
        f"{b} {p}" for b, p in found)
    if (path, key) in _memo:
        return _memo[(path, key)]
    record = _read(path)["entries"].get(key)
    usable = record is not None and (record.get("backend"), record.get("precision")) in \
        [tuple(p) for p in found]
    if not usable:
        record = probe(found, device, models, output, relu, size)
        record["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _write(path, key, record)
    choice = (record["backend"], record["precision"])
    _memo[(path, key)] = choice
    if key not in _printed:
        _printed.add(key)
        print(message(record, why_not, key), file=sys.stderr)
    return choice
