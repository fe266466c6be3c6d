"""``vggkit describe ARCH``: a configuration's column of Table 1, its size and cost."""
from __future__ import annotations

import argparse
import json

from vggkit.commands import positive_int, run_command
from vggkit.models.archs import ALIASES, CONFIGS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggkit describe", description=__doc__.split("\n")[0])
    parser.add_argument("arch", help="configuration or alias: " + ", ".join([*CONFIGS, *ALIASES]))
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    parser.add_argument("--num-classes", type=positive_int, default=1000, help="outputs of fc8 (default 1000)")
    parser.add_argument("--input-size", type=positive_int, default=224,
                        help="crop size for shapes and multiply-adds (default 224)")
    parser.add_argument("--batch-norm", action="store_true", help="count BatchNorm after each conv")
    parser.add_argument("--fc-width", type=positive_int, default=4096, help="width of fc6/fc7 (default 4096)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit describe", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from vggkit.models.describe import describe, format_table
    info = describe(args.arch, args.num_classes, args.input_size, args.batch_norm, args.fc_width)
    print(json.dumps(info, indent=2) if args.json else format_table(info))
    return 0
