"""``vggkit recipe-check`` / ``tools/recipe_check.py``: Sect. 3.1's findings re-run at reduced scale (see :mod:`vggkit.engine.recipe_check`)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional

from vggkit.commands import path_text, positive_int, run_command, seed_int
from vggkit.engine import recipe_check
from vggkit.engine.recipe_check import (RUNS, curves, digits_root, final_checkpoint, render, report,
                                        summarise, test_at_scales, train_argv, verdicts)
from vggkit.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vggkit recipe-check", description=recipe_check.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=recipe_check.__doc__.split("\n\n", 1)[1])
    p.add_argument("--work-dir", type=path_text, default="work_dirs/recipe_check",
                   help="where the runs' checkpoints and logs go (rerun to resume)")
    p.add_argument("--out", type=path_text, default="docs", help="folder for recipe_check.md and recipe_check.png")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per run")
    p.add_argument("--width", type=float, default=0.25, help="width multiplier of the copies")
    p.add_argument("--literal-init", action="store_true",
                   help="init std 0.01 whatever the width (default 0.01/sqrt(width))")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed of every run")
    p.add_argument("--runs", nargs="+", choices=[r.name for r in RUNS], metavar="RUN",
                   help="only these runs (E_from_A needs A); the report needs all")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    return run_command("vggkit recipe-check", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from vggkit.commands.train import parse_args
    from vggkit.engine.train import build_runner, load_config
    from vggkit.fileio import atomic_write_bytes, atomic_write_text
    from vggkit.machine import machine_line
    if not 0 < args.width <= 1:
        raise UserError(f"--width must be in (0, 1], got {args.width}")
    start = time.time()
    data_root = digits_root()
    runs = {r.name: r for r in RUNS if not args.runs or r.name in args.runs}
    for run in runs.values():
        if not os.path.exists(final_checkpoint(os.path.join(args.work_dir, run.name), args.epochs)):
            print(f"\n=== recipe-check: {run.name}: {run.what} ===", flush=True)
            # the library, not train's main: a bad value is then one line of recipe-check's
            build_runner(load_config(parse_args(train_argv(
                run, args.work_dir, data_root, args.epochs, args.width, args.literal_init,
                args.seed)))).train()
    if len(runs) < len(RUNS):
        return 0
    histories = {n: curves(os.path.join(args.work_dir, n), args.epochs) for n in runs}
    summary = {n: summarise(h) for n, h in histories.items()}
    tests = {n: test_at_scales(os.path.join(args.work_dir, n), args.epochs, data_root, args.work_dir)
             for n in ("A", "A_fixed_S")}
    v = verdicts(summary, tests, chance=90.0)
    os.makedirs(args.out, exist_ok=True)
    text = report(runs, summary, tests, v, args, machine_line(), (time.time() - start) / 60)
    atomic_write_text(os.path.join(args.out, "recipe_check.md"), text)
    atomic_write_bytes(os.path.join(args.out, "recipe_check.png"), render(histories))
    atomic_write_text(os.path.join(args.out, "recipe_check.json"),
                      json.dumps({"summary": summary, "tests": tests, "verdicts": v}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
