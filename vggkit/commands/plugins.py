"""``vggkit plugins``: what is loaded, from where, and what it registered."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import asdict

from vggkit.commands import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggkit plugins", description=__doc__)
    parser.add_argument("--all", action="store_true", help="include vggkit's built-in plugin")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vggkit plugins``; returns the exit status."""
    return run_command("vggkit plugins", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from vggkit.plugins import plugin_infos
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = plugin_infos(include_builtin=args.all)  # a PluginError is a user error
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        return 0
    if not infos:
        print("no third-party plugins installed (--all shows the built-in plugin)")
    for info in infos:
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}  [{info.status}]  from {info.distribution or '(in-process)'}{version}")
        if info.error:
            print(f"    error: {info.error}")
        for kind, names in sorted(info.registered.items()):
            print(f"    {kind}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
