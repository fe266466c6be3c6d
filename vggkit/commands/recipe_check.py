"""``vggkit recipe-check`` / ``tools/recipe_check.py``: the paper's Sect. 3.1 in miniature
(see :mod:`vggkit.engine.recipe_check`)."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional

from vggkit.commands import MAX_WORKERS, at_most, path_text, positive_int, run_command, seed_int
from vggkit.engine import recipe_check
from vggkit.engine.recipe_check import digits_root
from vggkit.engine.recipe_check.runs import RUNS


def positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of minutes") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of minutes")
    return value


def build_parser() -> argparse.ArgumentParser:
    doc = recipe_check.__doc__ or ""
    p = argparse.ArgumentParser(prog="vggkit recipe-check", description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc.split("\n\n", 1)[1])
    p.add_argument("--data-root", type=path_text,
                   help="image folder with train/<class>/ and val/<class>/ (default: "
                   "scikit-learn's digits, written once)")
    p.add_argument("--work-dir", type=path_text, default="work_dirs/recipe_check",
                   help="the runs' checkpoints and logs (rerun to resume)")
    p.add_argument("--out", type=path_text,
                   help="folder for recipe_check.md, .png and .json (default: the work dir; "
                   "the project's own report is made with --out docs)")
    p.add_argument("--minutes", type=positive_minutes, default=30.0,
                   help="time budget of the training on this machine; a timing probe turns it "
                   "into epochs per run (default %(default)s)")
    p.add_argument("--epochs", type=positive_int, help="epochs per run, instead of the probe's")
    p.add_argument("--jobs", type=at_most(MAX_WORKERS), default=1,
                   help="runs trained at once, each in its own process with its share of the "
                   "cores (default %(default)s: one after another in this process; 2 pays on "
                   "2 or more cores)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1],
                   help="seeds of the runs of (d); the other runs use the first "
                   "(default: 0 1)")
    p.add_argument("--runs", nargs="+", choices=[r.name for r in RUNS], metavar="RUN",
                   help="train only these runs (E_from_A needs A); the report needs all of "
                   f"{', '.join(r.name for r in RUNS)}")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    return run_command("vggkit recipe-check", build_parser(), _run, argv)


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelt out (the report's record of how it was made)."""
    words = ["vggkit", "recipe-check"]
    if args.data_root:
        words += ["--data-root", args.data_root]
    words += ["--work-dir", args.work_dir, "--out", args.out]
    words += ["--epochs", str(args.epochs)] if args.epochs else ["--minutes", f"{args.minutes:g}"]
    words += ["--jobs", str(args.jobs), "--seeds", *map(str, args.seeds)]
    return shlex.join(words + (["--runs", *args.runs] if args.runs else []))


def _run(args: argparse.Namespace) -> int:
    command = command_line(args)
    result = recipe_check.check(
        data_root=args.data_root or digits_root(), work_dir=args.work_dir, out=args.out, minutes=args.minutes,
        epochs=args.epochs, jobs=args.jobs, seeds=args.seeds, runs=args.runs, command=command)
    if result is not None:
        print(result["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
