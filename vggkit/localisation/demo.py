"""``vggkit localise --demo``: Appendix A in miniature, offline, on a CPU in minutes.

1. data      scikit-learn's digits pasted on cluttered canvases with known boxes
             (:mod:`vggkit.localisation.canvases`), written once under the cache
             directory: 1,200 training and 300 validation canvases;
2. classify  ``tools/train.py configs/loc/tiny/digits_cls.py``: net A at 1/4 width
             learns the digit of a canvas from box-aware crops;
3. localise  ``tools/train.py configs/loc/tiny/digits_{scr,pcr}.py``: the same net
             with fc8 regressing a box (one shared: SCR; one per class: PCR),
             initialised from the classifier, every layer fine-tuned;
4. test      ``vggkit localise`` on the validation canvases: the centre-crop and
             the dense protocols at Q = 32, 48, 64, boxes merged greedily, top-1
             and top-5 localisation error against the whole-image and centre-box
             baselines; a PNG of predicted and true boxes.

With several ``--seeds`` each seed trains afresh, and the table gives the mean
and the range.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from vggkit import paths
from vggkit.demo import last_checkpoint
from vggkit.errors import UserError
from vggkit.localisation.canvases import write_canvases

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "configs", "loc", "tiny")
CLASSIFIER = os.path.join(CONFIGS, "digits_cls.py")
LOCALISERS = {"SCR": os.path.join(CONFIGS, "digits_scr.py"),
              "PCR": os.path.join(CONFIGS, "digits_pcr.py")}
ROWS = (("top1_loc_error", "top-1 loc"), ("top5_loc_error", "top-5 loc"),
        ("gt_class_loc_error", "true-class loc"))


def canvas_root() -> str:
    """Where the canvases are written by default: beside the digits demo's cache."""
    return os.fspath(paths.cache_dir("loc-digits-v1"))


def _train(config: str, data: str, work_dir: str, seed: int, epochs: int | None,
           options: list[str]) -> str:
    from vggkit.commands.train import main as train_main
    extra = options + ([f"train_cfg.max_epochs={epochs}"] if epochs else [])
    argv = [config, "--data-root", data, "--work-dir", work_dir, "--seed", str(seed)]
    code = train_main(argv + (["--cfg-options", *extra] if extra else []))
    if code:
        raise SystemExit(f"vggkit localise --demo: training {config} failed (exit {code})")
    return last_checkpoint(work_dir)


def run_seed(data: str, work_dir: str, seed: int, epochs: tuple[int, int] | None,
             plot: str | None) -> dict[str, Any]:
    """Train the classifier and both localisers with ``seed``; evaluate both."""
    from vggkit.commands.localise import main as localise_main
    timings, results = {}, {}
    start = time.time()
    cls_ckpt = _train(CLASSIFIER, data, os.path.join(work_dir, "cls"), seed,
                      epochs and epochs[0], [])
    timings["classifier"] = time.time() - start
    for name, config in LOCALISERS.items():
        start = time.time()
        ckpt = _train(config, data, os.path.join(work_dir, name.lower()), seed,
                      epochs and epochs[1], [f"model.vgg.init_checkpoint={cls_ckpt}"])
        timings[f"{name} training"] = time.time() - start
        out = os.path.join(work_dir, f"{name.lower()}.json")
        start = time.time()
        argv = [config, ckpt, "--cls-config", CLASSIFIER, "--cls-checkpoint", cls_ckpt,
                "--data-root", data, "--out", out, "--no-progress"]
        if plot and name == "PCR":
            argv += ["--plot", plot]
        if localise_main(argv):
            raise SystemExit(f"vggkit localise --demo: evaluating {name} failed")
        timings[f"{name} test"] = time.time() - start
        with open(out, encoding="utf-8") as f:
            results[name] = json.load(f)
    return {"seed": seed, "results": results, "timings": timings}


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def format_table(runs: list[dict[str, Any]]) -> str:
    """Errors in % per net, protocol and baseline; mean (range) over seeds."""
    first = runs[0]["results"]["PCR"]
    lines = ["", "vggkit localise --demo: digits on cluttered canvases "
             f"({first['num_images']} validation canvases, Q={first['scales']}, seeds "
             f"{[r['seed'] for r in runs]}); errors in %, mean (min-max) over seeds", "",
             f"  {'':<28}" + "".join(f"{title:>22}" for _, title in ROWS)]

    def row(label: str, get) -> None:
        lines.append(f"  {label:<28}" + "".join(
            f"{_cell([get(r)[k] for r in runs]):>22}" for k, _ in ROWS))
    for name in LOCALISERS:
        for protocol in first["results"]:
            row(f"{name}, {protocol}", lambda r, n=name, p=protocol: r["results"][n]["results"][p])
    for base in first["baselines"]:
        row(f"baseline: {base.replace('_', ' ')}",
            lambda r, b=base: r["results"]["PCR"]["baselines"][b])
    cls = [r["results"]["PCR"]["results"]["dense"] for r in runs]
    lines += ["", f"  classifier (dense, Q={first['scales']}): top-1 error "
              f"{_cell([c['top1_cls_error'] for c in cls])}, top-5 error "
              f"{_cell([c['top5_cls_error'] for c in cls])}", "", "  time per stage (s):"]
    for run in runs:
        lines.append(f"    seed {run['seed']}: " + ", ".join(
            f"{k} {v:.0f}" for k, v in run["timings"].items()))
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    """The body of ``vggkit localise --demo`` (see the module docstring)."""
    import torch
    from vggkit.fileio import atomic_write_json, atomic_write_text
    if args.config or args.checkpoint or args.localiser:
        raise UserError("--demo takes no CONFIG CHECKPOINT or --localiser: it trains its own nets")
    if not args.threads:
        torch.set_num_threads(1)  # as fast for these tiny nets, and immune to busy cores
    start = time.time()
    data = write_canvases(args.data_root or canvas_root())
    print(f"vggkit localise --demo: canvases in {data} ({time.time() - start:.0f} s)", flush=True)
    runs = []
    for seed in args.seeds:
        work_dir = os.path.join(args.work_dir, f"seed{seed}")
        plot = args.plot or os.path.join(args.work_dir, "boxes.png")
        runs.append(run_seed(data, work_dir, seed, tuple(args.epochs) if args.epochs else None,
                             plot if seed == args.seeds[0] else None))
    text = format_table(runs) + f"\n\n  total {time.time() - start:.0f} s; boxes: {plot}"
    print(text)
    atomic_write_text(os.path.join(args.work_dir, "summary.txt"), text + "\n")
    atomic_write_json(os.path.join(args.work_dir, "summary.json"), [  # per-image guesses: NAME.json
        {**r, "results": {n: {k: v for k, v in res.items() if k != "images"}
                          for n, res in r["results"].items()}} for r in runs])
    return 0
