"""``vggkit transfer`` / ``tools/svm_transfer.py``: linear-SVM transfer on a feature store (Appendix B)."""
from __future__ import annotations

import argparse
import os

from vggkit.commands import (check_output_file, parse_options, positive_int, run_command,
                             seed_int)
from vggkit.errors import UserError
from vggkit.fileio import atomic_write_json
from vggkit.transfer.experiment import format_table, run_transfer, write_plot
from vggkit.transfer.selection import DEFAULT_C_GRID, check_C_grid
from vggkit.transfer.task import TaskData, build_task


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vggkit transfer", description="One-vs-rest linear-SVM transfer on a "
                                "feature store (the paper's Appendix B): C chosen per split by k-fold "
                                "selection on the training images (20% held out per fold).")
    p.add_argument("--features", required=True, help="feature store directory (tools/extract_features.py --out)")
    p.add_argument("--task", default=None, help="transfer task name (default: the task recorded in the store)")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="task constructor option, e.g. n_train=10 for imagefolder (repeatable; "
                        "default: the options recorded in the store)")
    p.add_argument("--splits", type=positive_int, default=None, help="number of random splits (default: the protocol's)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the first split (split k uses seed+k)")
    p.add_argument("--out", default=None, help="results JSON (default: <features>/svm_results.json)")
    p.add_argument("--C-grid", type=float, nargs="+", default=list(DEFAULT_C_GRID),
                   help="C values (> 0) tried on each fold of each split's training images (default: "
                        "10^-3 .. 10^3 in half decades)")
    p.add_argument("--folds", type=positive_int, default=5,
                   help="stratified folds of each split's training images that C is chosen on; every "
                        "image is held out once, so 5 = the paper's 20%% held out, repeated 5 times "
                        "(1: a single 20%% held out)")
    p.add_argument("--no-oracle", action="store_true",
                   help="do not score every C on the test images (the oracle in hindsight reported beside the "
                        "chosen C, biased upwards: a reference, not a result); saves one pass over the C "
                        "grid per split on large data sets")
    p.add_argument("--plot", default=None, help="PNG: confusion matrix or per-class AP (default beside --out)")
    p.add_argument("--predictions", default=None,
                   help="directory for submission files when test labels are withheld (default beside --out)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit transfer", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from vggkit.features.store import load_features
    C_grid = check_C_grid(args.C_grid, "--C-grid")
    out = args.out or os.path.join(args.features, "svm_results.json")
    base = os.path.splitext(out)[0]
    plot = args.plot or base + ".png"
    # the given paths before the store is read; the defaults (in the store) once it is known to exist
    check_output_file(args.out, "--out")
    check_output_file(args.plot, "--plot")
    fs = load_features(args.features)
    check_output_file(out, "--out")
    check_output_file(plot, "--plot")
    name = args.task or fs.meta.get("task")
    if not name:
        raise UserError(f"the feature store '{args.features}' records no task; pass --task NAME")
    # the options the features were extracted with (e.g. context=whole+box), unless overridden
    stored = fs.meta.get("task_options") or {} if name == fs.meta.get("task") else {}
    task = build_task(name, **{**stored, **parse_options(args.task_option)})
    data = TaskData.from_features(fs)
    results = run_transfer(fs.features, data, task, n_splits=args.splits, seed=args.seed,
                           C_grid=tuple(C_grid), predictions_dir=args.predictions or base + "_submission",
                           n_folds=args.folds, oracle=not args.no_oracle,
                           source=f"the feature store '{args.features}'")
    results["features"] = os.path.abspath(args.features)
    results["feature_meta"] = {k: v for k, v in fs.meta.items() if not isinstance(v, (list, dict))
                               or k in ("scales", "configs")}
    print(format_table(results))
    atomic_write_json(out, results, indent=1)
    write_plot(results, plot, task.multilabel)
    print(f"results: {out}\nplot: {plot}")
    return 0
