"""``vggkit localise --demo``: Appendix A in miniature, offline, on a CPU in minutes.

1. data      scikit-learn's digits pasted on cluttered canvases with known boxes
             (:mod:`vggkit.localisation.canvases`), written once under the cache
             directory: 1,200 training and 300 validation canvases;
2. classify  :func:`vggkit.engine.train.train` of ``configs/loc/tiny/digits_cls.py``:
             net A at 1/4 width learns the digit of a canvas from box-aware crops;
3. localise  the same of ``configs/loc/tiny/digits_{scr,pcr}.py``: the same net
             with fc8 regressing a box (one shared: SCR; one per class: PCR),
             initialised from the classifier, every layer fine-tuned;
4. test      :func:`vggkit.localisation.api.localise` (what ``vggkit localise`` runs)
             on the validation canvases: the centre-crop and
             the dense protocols at Q = 32, 48, 64, boxes merged greedily, top-1
             and top-5 localisation error against the whole-image and centre-box
             baselines; a PNG of predicted and true boxes.

With several ``--seeds`` each seed trains afresh, and the table gives the mean
and the range.
"""
from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np

from vggkit import paths
from vggkit.demo import last_checkpoint
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
           options: dict[str, Any]) -> str:
    from vggkit.engine.train import train
    extra = {**options, **({"train_cfg.max_epochs": epochs} if epochs else {})}
    train(config, data_root=data, work_dir=work_dir, seed=seed, cfg_options=extra or None)
    return last_checkpoint(work_dir)


def run_seed(data: str, work_dir: str, seed: int, epochs: tuple[int, int] | None,
             plot: str | None) -> dict[str, Any]:
    """Train the classifier and both localisers with ``seed``; evaluate both."""
    from vggkit.fileio import atomic_write_json
    from vggkit.localisation.api import format_result, localise, plot_result
    timings, results = {}, {}
    start = time.time()
    cls_ckpt = _train(CLASSIFIER, data, os.path.join(work_dir, "cls"), seed,
                      epochs and epochs[0], {})
    timings["classifier"] = time.time() - start
    for name, config in LOCALISERS.items():
        start = time.time()
        ckpt = _train(config, data, os.path.join(work_dir, name.lower()), seed,
                      epochs and epochs[1], {"model.vgg.init_checkpoint": cls_ckpt})
        timings[f"{name} training"] = time.time() - start
        start = time.time()
        results[name] = localise([(config, ckpt, None)], CLASSIFIER, cls_ckpt, data_root=data)
        print(format_result(results[name]))
        atomic_write_json(os.path.join(work_dir, f"{name.lower()}.json"), results[name])
        if plot and name == "PCR":
            plot_result(results[name], plot)
        timings[f"{name} test"] = time.time() - start
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


def run_demo(work_dir: str, seeds: Sequence[int] = (0,), *,
             epochs: Sequence[int] | None = None, data_root: str | None = None,
             plot: str | None = None, threads: int | None = None) -> list[dict[str, Any]]:
    """The whole demo (see the module docstring): one run per seed; prints the table and
    writes it with the runs' results under ``work_dir``. Returns the runs.

    ``epochs``: the classifier's and each localiser's (default: the tiny configs');
    ``plot``: the PNG of boxes (default ``work_dir/boxes.png``).
    """
    import torch
    from vggkit.fileio import atomic_write_json, atomic_write_text
    if not threads:
        torch.set_num_threads(1)  # as fast for these tiny nets, and immune to busy cores
    start = time.time()
    data = write_canvases(data_root or canvas_root())
    print(f"vggkit localise --demo: canvases in {data} ({time.time() - start:.0f} s)", flush=True)
    runs = []
    plot = plot or os.path.join(work_dir, "boxes.png")
    for seed in seeds:
        runs.append(run_seed(data, os.path.join(work_dir, f"seed{seed}"), seed,
                             tuple(epochs) if epochs else None,
                             plot if seed == seeds[0] else None))
    text = format_table(runs) + f"\n\n  total {time.time() - start:.0f} s; boxes: {plot}"
    print(text)
    atomic_write_text(os.path.join(work_dir, "summary.txt"), text + "\n")
    atomic_write_json(os.path.join(work_dir, "summary.json"), [  # per-image guesses: NAME.json
        {**r, "results": {n: {k: v for k, v in res.items() if k != "images"}
                          for n, res in r["results"].items()}} for r in runs])
    return runs
