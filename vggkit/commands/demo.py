"""``vggkit demo`` / ``make demo``: the whole job on scikit-learn's digits (see :mod:`vggkit.demo`)."""
from __future__ import annotations

import argparse
import os
import sys

from vggkit.commands import path_text, positive_int, run_command
from vggkit.demo import __doc__ as DEMO_DOC, format_table, run


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit demo", build_parser(), _run, argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggkit demo", description=DEMO_DOC.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=DEMO_DOC.split("\n\n", 1)[1])
    parser.add_argument("--work-dir", type=path_text, default="work_dirs/demo", help="where every output goes")
    parser.add_argument("--data-root", help="where the digits image folders are written "
                        "(default: $VGGKIT_CACHE or ~/.cache/vggkit, digits-v1)")
    parser.add_argument("--epochs", type=positive_int, default=15, help="training epochs on the source classes")
    parser.add_argument("--n-train", type=positive_int, default=10,
                        help="SVM training images per target class")
    parser.add_argument("--splits", type=positive_int, default=3, help="random transfer splits")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _run(args: argparse.Namespace) -> int:
    results = run(args.work_dir, args.epochs, args.n_train, args.splits, args.data_root,
                  progress=not args.no_progress)
    text = format_table(results)
    print(text)
    from vggkit.fileio import atomic_write_text
    atomic_write_text(os.path.join(args.work_dir, "summary.txt"), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
