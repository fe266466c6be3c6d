"""``make bench``: run every benchmark, print a one-screen summary, write ``benchmarks/RESULTS.md``.

Each ``bench_*.py`` writes ``results/<name>.md`` and ``.json`` (its headlines:
figure, the path that produced it, median (min-max) of paired ratios); this
script runs them one after another (never in parallel: they would measure
each other), prints each one's elapsed time, then the summary table.

A full run first clears ``results/`` and writes ``RESULTS.md`` from this run's
fragments only, so every figure in it comes from the run that wrote it; a
benchmark that fails or times out is named there, with no figures. A partial
run (``--only``/``--skip``) refreshes its fragments and prints the summary of
those, but leaves ``RESULTS.md`` alone.

    python benchmarks/run_all.py [--only extract eval ...] [--skip svm ...]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import RESULTS, machine_header  # noqa: E402

#: fragment name -> (script, what it compares, seconds after which it is stopped)
BENCHMARKS = {
    "inference": ("bench_inference.py", "VGG-16 inference: vggkit auto vs torchvision fp32, "
                  "channels_last, ORT, bf16 cast once, compiled", 600),
    "extract": ("bench_extract.py", "multi-scale fc7 extraction vs its fp32 path, timm, "
                "torchvision; overhead", 800),
    "eval": ("bench_eval.py", "dense (vs its fp32 path) and multi-crop vs a plain torchvision "
             "loop", 600),
    "train": ("bench_train.py", "training step vs a plain PyTorch loop and mmpretrain; "
              "--amp auto", 500),
    "pipeline": ("bench_pipeline.py", "training data pipeline vs torchvision, mmpretrain", 200),
    "svm": ("bench_svm.py", "SVM transfer vs scikit-learn LinearSVC", 400),
    "checkpoint": ("bench_checkpoint.py", "cost of the checkpoint content hash", 200),
    # four 10-epoch trainings, two at a time, plus a second seed for a pair whose gap lies
    # within 1.5 points of the goal; skipped (exit 0, a fragment saying so) without ../shared
    "cifar": ("bench_cifar.py", "CIFAR-10 error: tiny configs vs a plain PyTorch loop", 1800),
}
#: run only when named (`make bench ONLY=cifar`): accuracy, not speed, and alone longer than
#: the budget of the whole speed run
OPT_IN = ("cifar",)
#: the whole of ``make bench`` must stay under this
BUDGET_S = 20 * 60

# VGG-16 is 15.47 GMACs per 224 image forward; training ~3x (forward + two backward).
H100_NOTE = """## Estimate (not measured): one H100, VGG-16 AMP training

No GPU is available to this project, so this is arithmetic, labelled as such.
A training step costs about 3 × 15.47 ≈ 46 GMACs = 93 GFLOP per 224 image. An H100
SXM offers ~990 TFLOP/s dense fp16; convolution nets of VGG's shape reach
roughly 35–45% of that with AMP and channels_last, i.e. **~3,700–4,800 images/s**
for the same code path (`tools/train.py --amp --channels-last`). Feeding that
takes {need} CPU cores of our training pipeline at its {per_core:.0f} images/s per
core measured in this run (decode + scale jitter + crop + flip, pipeline section),
against {need_tv} cores for torchvision's transforms at {tv:.0f} images/s per core.
"""


def h100_note() -> str:
    try:
        with open(os.path.join(RESULTS, "pipeline.json")) as f:
            rates = json.load(f)["images_per_s"]
        ours = max(v for k, v in rates.items() if "vggkit" in k and "unfused" not in k)
        tv = next(v for k, v in rates.items() if "torchvision" in k)
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return ""
    return H100_NOTE.format(need=math.ceil(4800 / ours), per_core=ours,
                            need_tv=math.ceil(4800 / tv), tv=tv)


def headlines(names: list[str]) -> list[tuple[str, dict]]:
    rows = []
    for name in names:
        try:
            with open(os.path.join(RESULTS, f"{name}.json")) as f:
                rows += [(name, h) for h in json.load(f).get("headlines", [])]
        except (OSError, ValueError):
            continue
    return rows


def summary_text(rows: list[tuple[str, dict]], elapsed: dict[str, tuple[float, str]],
                 total: float) -> str:
    """The terminal summary: one line per headline, then the elapsed times."""
    out = [f"{'figure':<50} {'median (min–max)':<28} path that produced it"]
    for _, h in rows:
        path = h["path"] if len(h["path"]) <= 64 else h["path"][:61] + "..."
        out.append(f"{h['figure'][:50]:<50} {h['text']:<28} {path}")
    out.append("elapsed: " + ", ".join(f"{n} {s:.0f}s{'' if st == 'ok' else ' (' + st + ')'}"
                                       for n, (s, st) in elapsed.items())
               + f"; total {total:.0f}s ({total / 60:.1f} min, budget {BUDGET_S // 60} min)")
    return "\n".join(out)


def summary_markdown(rows: list[tuple[str, dict]]) -> str:
    lines = ["| benchmark | figure | median (min–max) | reads as | path that produced it |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {h['figure']} | {h['text']} | {h['reads']} | {h['path']} |"
              for n, h in rows]
    return "\n".join(lines)


def run(name: str) -> tuple[float, str]:
    script, what, limit = BENCHMARKS[name]
    print(f"== {name}: {what}", flush=True)
    start = time.time()
    try:
        proc = subprocess.run([sys.executable, os.path.join(HERE, script)],
                              cwd=os.path.dirname(HERE), timeout=limit)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        status = f"stopped after {limit}s"
    seconds = time.time() - start
    print(f"== {name}: {status} in {seconds:.0f}s", flush=True)
    return seconds, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these ({', '.join(BENCHMARKS)}); RESULTS.md is kept")
    parser.add_argument("--skip", nargs="+", default=[], choices=list(BENCHMARKS),
                        metavar="NAME", help="do not run these; RESULTS.md is kept")
    args = parser.parse_args(argv)
    default = [n for n in BENCHMARKS if n not in OPT_IN]
    names = [n for n in BENCHMARKS if (n in args.only if args.only else n in default)
             and n not in args.skip]
    full = names == default
    header = machine_header()
    if full:  # RESULTS.md will hold this run's figures only; an opt-in section's (cifar: half
        # an hour of training) stays until that section is run again
        for path in [os.path.join(RESULTS, f"{n}.{ext}") for n in names for ext in ("md", "json")]:
            if os.path.exists(path):
                os.remove(path)
    start = time.time()
    elapsed = {name: run(name) for name in names}
    total = time.time() - start
    rows = headlines([n for n in names if elapsed[n][1] == "ok"])
    print("\n" + summary_text(rows, elapsed, total), flush=True)
    if not full:
        print("partial run: benchmarks/RESULTS.md left as it was (fragments in results/)")
        return 0 if all(st == "ok" for _, st in elapsed.values()) else 1
    parts = ["# vggkit benchmarks", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M')} by `make bench` "
             f"(`python benchmarks/run_all.py`) in {total:.0f} s ({total / 60:.1f} min; "
             f"budget {BUDGET_S // 60} min). Every figure below comes from that run.", "",
             header, "",
             "The protocol: every contender in one process; after a warm-up, at least five "
             "paired rounds in rotated order; a figure is the median over rounds of a paired "
             "ratio (one path's time over another's in the same round) with its min–max, "
             "written **parity** when that range includes 1.0. Each section records its "
             "machine, CPU flags and load.", "",
             "The bf16 rows (weights cast to bf16 once, torch.compile in bf16, `auto` choosing "
             "bf16, `--amp auto` training in bf16) need a CPU with AVX-512 BF16 or AMX: without "
             "them bf16 is emulated and those rows are left out (the flags of the machine "
             "that ran them are in the header above and in each section).", "",
             "## Summary", "", summary_markdown(rows), "",
             "Elapsed: " + ", ".join(f"{n} {s:.0f} s{'' if st == 'ok' else ' (' + st + ')'}"
                                     for n, (s, st) in elapsed.items()) + ".", ""]
    for name in names:
        path = os.path.join(RESULTS, f"{name}.md")
        if elapsed[name][1] == "ok" and os.path.exists(path):
            with open(path) as f:
                parts += [f.read().strip(), ""]
        else:
            parts += [f"## {name}", "", f"Not measured: `{BENCHMARKS[name][0]}` "
                      f"{elapsed[name][1]} in this run.", ""]
    if "pipeline" in names and elapsed["pipeline"][1] == "ok":
        parts.append(h100_note())
    target = os.path.join(HERE, "RESULTS.md")
    with open(target + ".tmp", "w") as f:
        f.write("\n".join(parts).rstrip() + "\n")
    os.replace(target + ".tmp", target)
    print(f"wrote {target}")
    return 0 if all(st == "ok" for _, st in elapsed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
