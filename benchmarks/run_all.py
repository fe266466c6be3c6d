"""``make bench``: run every benchmark, then assemble ``benchmarks/RESULTS.md``.

Each ``bench_*.py`` writes its own fragment ``results/<name>.md`` (with the
command that produced it); this script runs them one after another (never in
parallel: they would measure each other) and joins the fragments.

    python benchmarks/run_all.py [--only inference svm ...] [--skip train]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import RESULTS, machine_line  # noqa: E402

#: fragment name -> (script, what the issue asks of it)
BENCHMARKS = {
    "inference": ("bench_inference.py", "VGG-16 inference vs torchvision, timm, ONNX Runtime"),
    "extract": ("bench_extract.py", "dense multi-scale fc7 extraction vs a timm loop"),
    "train": ("bench_train.py", "training step: runner overhead vs a plain PyTorch loop"),
    "pipeline": ("bench_pipeline.py", "training data pipeline vs torchvision transforms"),
    "eval": ("bench_eval.py", "dense vs multi-crop cost; strategies vs plain torch"),
    "svm": ("bench_svm.py", "SVM transfer vs scikit-learn LinearSVC"),
    "checkpoint": ("bench_checkpoint.py", "cost of the state-dict content hash on load"),
}

# VGG-16 is 15.47 GMACs per 224 image forward; training ~3x (forward + two backward).
H100_NOTE = """## Estimate (not measured): one H100, VGG-16 AMP training

No GPU is available to this project, so this is arithmetic, labelled as such.
A training step costs about 3 × 15.47 ≈ 46 GMACs = 93 GFLOP per 224 image. An H100
SXM offers ~990 TFLOP/s dense fp16; convolution nets of VGG's shape reach
roughly 35–45% of that with AMP and channels_last, i.e. **~3,700–4,800 images/s**
for the same code path (`tools/train.py --amp --channels-last`). Feeding that
takes {need} CPU cores of our training pipeline at its measured {per_core:.0f}
images/s per core (decode + scale jitter + crop + flip, `results/pipeline.md`),
against {need_tv} cores for torchvision's transforms at {tv:.0f} images/s per core.
"""


def h100_note() -> str:
    try:
        with open(os.path.join(RESULTS, "pipeline.json")) as f:
            data = json.load(f)
        rates = data.get("median") or data.get("images_per_s") or data
        ours = max(v for k, v in rates.items() if "vggkit" in k and "unfused" not in k)
        tv = next(v for k, v in rates.items() if "torchvision" in k)
    except (OSError, ValueError, StopIteration, AttributeError, TypeError):
        return ""
    import math
    return H100_NOTE.format(need=math.ceil(4800 / ours), per_core=ours,
                            need_tv=math.ceil(4800 / tv), tv=tv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(BENCHMARKS),
                        help="do not run these (their last fragment is still included)")
    args = parser.parse_args(argv)
    failed = []
    for name, (script, what) in BENCHMARKS.items():
        if (args.only and name not in args.only) or name in args.skip:
            continue
        print(f"== {name}: {what}", flush=True)
        start = time.time()
        proc = subprocess.run([sys.executable, os.path.join(HERE, script)], cwd=os.path.dirname(HERE))
        print(f"== {name}: exit {proc.returncode} in {time.time() - start:.0f}s", flush=True)
        if proc.returncode:
            failed.append(name)
    parts = ["# vggkit benchmarks", "",
             f"Assembled {time.strftime('%Y-%m-%d %H:%M')} by `make bench` "
             "(`python benchmarks/run_all.py`).", f"Machine: {machine_line()}.",
             "Every figure is a median over repeats, measured side by side with the "
             "alternative in one process, alternating; the machine is shared, so "
             "ratios mean more than absolute rates.", ""]
    for name in BENCHMARKS:
        path = os.path.join(RESULTS, f"{name}.md")
        if os.path.exists(path):
            with open(path) as f:
                parts += [f.read().strip(), ""]
        else:
            parts += [f"## {name}", "", "not measured yet", ""]
    parts.append(h100_note())
    target = os.path.join(HERE, "RESULTS.md")
    with open(target + ".tmp", "w") as f:
        f.write("\n".join(parts))
    os.replace(target + ".tmp", target)
    print(f"wrote {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
