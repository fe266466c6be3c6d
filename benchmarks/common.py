"""Shared by every benchmark: the protocol, the machine, test images, same-weight VGG-16s.

The protocol (issue 11, "honest benchmarks"): every contender runs in one
process; after a warm-up, :func:`paired_rounds` runs at least
:data:`MIN_ROUNDS` rounds in rotated order (round r starts at contender
r mod n), so each round sees every contender under about the same load of
this shared machine. A figure is the median over rounds of a *paired* ratio,
one contender's time over another's in the same round, with its min-max
(:func:`paired`); a ratio whose range includes 1.0 is written "parity"
(:func:`fmt_ratio`). Each benchmark writes ``results/<name>.md`` (with the
machine and its CPU flags) and ``results/<name>.json`` whose ``headlines``
(:func:`headline`) ``run_all.py`` puts in the summary table.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from vggkit.machine import machine_line

HERE = os.path.dirname(os.path.abspath(__file__))
#: where the fragments go (``VGGKIT_BENCH_RESULTS``: elsewhere, e.g. for a smoke run)
RESULTS = os.environ.get("VGGKIT_BENCH_RESULTS") or os.path.join(HERE, "results")
#: VGG-16's forward pass at 224: 15.47 GMACs
VGG16_GFLOP = 30.9

#: the fewest timed rounds a figure may rest on
MIN_ROUNDS = 5
#: median, min, max over rounds of a paired ratio
Ratio = tuple[float, float, float]
#: SIMD flags that decide convolution speed on x86 (and what 'auto' may offer)
_FLAGS = ("sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw",
          "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


# -- the machine ---------------------------------------------------------------------
def cpu_flags() -> list[str]:
    """The SIMD flags of :data:`_FLAGS` this CPU has (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            have = next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), [])
    except OSError:
        have = []
    return [flag for flag in _FLAGS if flag in have]


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_header() -> str:
    """One line for a section: CPU, cores, libraries, all SIMD flags, load at start."""
    flags = cpu_flags()
    missing = [name for name, flag in (("AVX-512", "avx512f"), ("AVX-512 BF16", "avx512_bf16"),
                                       ("AMX", "amx_bf16")) if flag not in flags]
    return (f"Machine: {machine_line()}; CPU flags: {' '.join(flags) or 'none found'}"
            f"{' (no ' + ', no '.join(missing) + ')' if missing else ''}; load average "
            f"{load_average()} (1, 5, 15 min) at start, on a 2-core box shared with other jobs.")


def command(argv: list[str] | None) -> str:
    """How the running benchmark was invoked, for its section."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", "benchmarks/" + os.path.basename(sys.argv[0]), *args]).strip()


def native_bf16() -> bool:
    """Whether vggkit takes this CPU for one that computes bf16 natively (its bf16 rows run)."""
    from vggkit.inference.backends import cpu_has_bf16
    return cpu_has_bf16()


def matmul_limit(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a ``size``² matmul in fp32 and bf16 (the best of ``repeats``), and the
    VGG-16 images/s they bound (:data:`VGG16_GFLOP` per image): the machine's limit."""
    import torch
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size).to(dtype)
        a @ a  # warm-up
        best = min(_seconds(lambda: a @ a) for _ in range(repeats))
        out[f"{name}_gflops"] = 2 * size ** 3 / best / 1e9
        out[f"{name}_vgg16_img_per_s"] = out[f"{name}_gflops"] / VGG16_GFLOP
    return out


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def auto_said(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``fn()`` and the lines 'vggkit auto: ...' it printed (what 'auto' chose and why),
    still shown on stderr."""
    import contextlib
    import io
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        value = fn()
    text = buffer.getvalue()
    sys.stderr.write(text)
    return value, [line for line in text.splitlines() if line.startswith("vggkit auto:")]


# -- the protocol ----------------------------------------------------------------------
class Rounds:
    """Seconds per round of each contender, and each one's output of the last round."""

    def __init__(self, names: list[str]) -> None:
        self.times: dict[str, list[float]] = {n: [] for n in names}
        self.outputs: dict[str, Any] = {}

    def median(self) -> dict[str, float]:
        return {n: statistics.median(ts) for n, ts in self.times.items()}

    def ratios(self, base: str) -> dict[str, Ratio]:
        """:func:`paired` against ``base``."""
        return paired(self.times, base)


def paired_rounds(fns: Mapping[str, Callable[[int], Any]], rounds: int = MIN_ROUNDS,
                  warmup: int | Mapping[str, Callable[[], Any]] = 1,
                  label: str = "", cycle: int = 1) -> Rounds:
    """Time ``fns`` (name -> ``fn(round)``) in ``rounds`` rotated rounds after a warm-up.

    ``warmup`` is the number of untimed rounds (``fn(-1)``, every contender,
    in order), or a cheaper warm-up callable per contender. With ``cycle``
    values run in turn (:func:`cycling`), round r starts at contender
    ``(r mod cycle + r div cycle) mod n``, so the rounds of one value do not
    all start with the same contender. Prints one line per round.
    """
    if rounds < MIN_ROUNDS:
        raise SystemExit(f"--rounds {rounds}: the protocol needs at least {MIN_ROUNDS}")
    names = list(fns)
    if isinstance(warmup, int):
        for _ in range(warmup):
            for name in names:
                fns[name](-1)
    else:
        for name in names:
            warmup[name]()
    out = Rounds(names)
    for r in range(rounds):
        first = (r % cycle + r // cycle) % len(names)
        for name in names[first:] + names[:first]:
            start = time.perf_counter()
            out.outputs[name] = fns[name](r)
            out.times[name].append(time.perf_counter() - start)
        print(f"{label}round {r}: " + ", ".join(f"{n} {out.times[n][-1]:.2f}s" for n in names),
              flush=True)
    return out


def cycling(values: Sequence) -> Callable[[int], list]:
    """``of(round)``: every value for the warm-up (round < 0), else ``values[round mod n]``.

    For benchmarks whose whole unit is too slow for five rounds: each timed
    round runs one value (e.g. one test scale Q), the warm-up all of them.
    """
    values = list(values)
    return lambda r: values if r < 0 else [values[r % len(values)]]


def cycle_medians(times: Sequence[float], values: Sequence) -> dict:
    """Median seconds of the rounds of each value of :func:`cycling` (round r ran values[r mod n])."""
    n = len(values)
    return {v: statistics.median(times[i::n]) for i, v in enumerate(values) if times[i::n]}


def ratio(values: list[float]) -> Ratio:
    return statistics.median(values), min(values), max(values)


def paired(times: Mapping[str, list[float]], base: str) -> dict[str, Ratio]:
    """Median, min, max over rounds of ``times[name][r] / times[base][r]``."""
    return {n: ratio([t / b for t, b in zip(ts, times[base])]) for n, ts in times.items()}


def inverse(r: Ratio) -> Ratio:
    """The same ratio the other way up (time ratio <-> speed-up)."""
    return 1 / r[0], 1 / r[2], 1 / r[1]


def fmt_ratio(r: Ratio, digits: int = 2) -> str:
    """'1.71× (1.52–1.90)', or 'parity (0.97×, 0.90–1.05)' when the range includes 1."""
    med, lo, hi = r
    if lo <= 1.0 <= hi:
        return f"parity ({med:.{digits}f}×, {lo:.{digits}f}–{hi:.{digits}f})"
    return f"{med:.{digits}f}× ({lo:.{digits}f}–{hi:.{digits}f})"


def fmt_share(r: Ratio) -> str:
    """A fraction over rounds as '12.3 % (10.1–15.0)'."""
    return f"{100 * r[0]:.1f} % ({100 * r[1]:.1f}–{100 * r[2]:.1f})"


def headline(figure: str, path: str, r: Ratio, reads: str, share: bool = False) -> dict:
    """One row of the summary table: what, which path produced it, median (min-max)."""
    return {"figure": figure, "path": path, "ratio": list(r), "reads": reads,
            "text": fmt_share(r) if share else fmt_ratio(r)}


def write_fragment(name: str, markdown: str, data: dict) -> str:
    """Write ``results/<name>.md`` and ``.json`` atomically; return the .md path.

    ``data`` should hold ``headlines`` (a list of :func:`headline`); the
    machine and the time of the run are added.
    """
    os.makedirs(RESULTS, exist_ok=True)
    data = {"machine": machine_line(), "cpu_flags": cpu_flags(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}
    path = os.path.join(RESULTS, f"{name}.md")
    for target, text in ((path, markdown.rstrip() + "\n"),
                         (os.path.join(RESULTS, f"{name}.json"),
                          json.dumps(data, indent=2, default=float))):
        tmp = f"{target}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    print(markdown, flush=True)
    return path


# -- inputs ----------------------------------------------------------------------------
def make_jpegs(directory: str, count: int, seed: int = 0) -> list[str]:
    """Write ``count`` ImageNet-sized (500×375 or 375×500) JPEGs, quality 90.

    Made from scikit-learn's two sample photographs (no download): random 4:3
    windows, every third one portrait, with noise so no two files are equal.
    """
    from sklearn.datasets import load_sample_images
    rng = np.random.default_rng(seed)
    bases = load_sample_images().images  # two 427×640 photographs
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(count):
        base = Image.fromarray(bases[i % len(bases)])
        w = int(rng.integers(480, 569))
        h = w * 3 // 4
        x0, y0 = int(rng.integers(0, 640 - w + 1)), int(rng.integers(0, 427 - h + 1))
        img = base.crop((x0, y0, x0 + w, y0 + h)).resize((500, 375), Image.BILINEAR)
        if i % 3 == 2:
            img = img.transpose(Image.ROTATE_90)
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 4 + i % 5, img.size[::-1] + (3,))
        path = os.path.join(directory, f"img_{i:03d}.jpg")
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def vgg16_pair(num_classes: int = 1000):
    """torchvision's ``vgg16`` (random init, seed 0) and vggkit's VGG-16 with its weights.

    Returns ``(torchvision model, vggkit model, preprocess record)``, both in
    eval mode; nothing is downloaded.
    """
    import torch
    import torchvision
    from vggkit.factory import build_vgg
    from vggkit.models.converters import get_converter
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None, num_classes=num_classes).eval()
    sd, meta = get_converter("torchvision").convert_with_meta(reference.state_dict(), "vgg16")
    ours = build_vgg("vgg16", num_classes=num_classes, init="none").eval()
    ours.load_state_dict(sd)
    return reference, ours, dict(meta["preprocess"])


def torchvision_dense_head(model, upto: str = "fc8"):
    """torchvision VGG's classifier as convolutions (what a user writes for dense maps).

    fc6 becomes a 7×7 convolution and fc7/fc8 1×1 ones, from the Linear
    weights; ``upto='fc7'`` stops after fc7's ReLU (the Appendix-B descriptor).
    """
    import torch
    from torch import nn
    fc6, fc7, fc8 = (m for m in model.classifier if isinstance(m, nn.Linear))
    layers = []
    for fc, k in ((fc6, 7), (fc7, 1)) + (((fc8, 1),) if upto == "fc8" else ()):
        conv = nn.Conv2d(fc.in_features // (k * k), fc.out_features, k)
        with torch.no_grad():
            conv.weight.copy_(fc.weight.view_as(conv.weight))
            conv.bias.copy_(fc.bias)
        layers += [conv, nn.ReLU(inplace=True)] if fc is not fc8 else [conv]
    return nn.Sequential(*layers).eval()
