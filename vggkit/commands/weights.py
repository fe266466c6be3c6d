"""``vggkit weights`` / ``tools/weights.py``: published VGG weights by name.

``list`` shows the catalogue (built-ins and plugins' entries) and what is
cached; ``get NAME`` fetches and converts into the vggkit cache (or, offline,
says which URL to fetch and where to put the file).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys

from vggkit.commands import run_command
from vggkit.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggkit weights", description=__doc__.split("\n\n")[0],
        epilog="examples: vggkit weights list; vggkit weights list 'vgg16*'; "
               "vggkit weights get vgg16.torchvision; VGGKIT_OFFLINE=1 vggkit weights get vgg16.caffe (prints where to put it)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,get}")
    listing = sub.add_parser("list", help="the catalogue, with cached / not cached")
    listing.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                         help="only the names matching this glob pattern, e.g. 'vgg16*' "
                              "(quote it from the shell; default: every name)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    get = sub.add_parser("get", help="fetch and convert into the vggkit cache; print the path")
    get.add_argument("names", nargs="+", metavar="NAME", help="catalogue names (vggkit weights list)")
    get.add_argument("--no-progress", action="store_true", help="hide the download progress bar")
    for action in (listing, get):  # also after the action: 'vggkit weights get NAME --debug'
        action.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show the full traceback of an error instead of one line")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vggkit weights``; returns the exit status."""
    return run_command("vggkit weights", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from vggkit import weights as w
    if args.action == "get":
        # catalogue names only (a path is no weights to fetch), all checked before any download
        entries = [w.get_weights_entry(name, files=False) for name in args.names]
        for name, entry in zip(args.names, entries):
            print(f"{name}: {w.fetch_weights(entry, progress=not args.no_progress)}")
        return 0
    rows, problems, old = [], [], []
    for name, entry in _matching(w.list_weights(), args.pattern).items():
        status, problem = w.cache_report(entry)
        problems += [problem] if problem else []
        checkpoint = w.cached_checkpoint(entry) or w.converted_path(entry)
        old += [str(checkpoint)] if checkpoint != w.converted_path(entry) else []
        rows.append({"name": name, **entry.as_dict(), "status": status, "problem": problem,
                     "checkpoint": str(checkpoint), "download_path": str(w.download_path(entry))})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
        offline = w.offline_reason()
        print(f"cache: {w.weights_dir()} (weights/ of $VGGKIT_CACHE, default ~/.cache/vggkit)"
              + (f"; downloads are off ({offline})" if offline else ""))
        if old:  # an earlier vggkit's layout: still read, so say where the files belong now
            print(f"read from the old location: {', '.join(old)}; move them (and their .json) "
                  f"into {w.weights_dir()}")
    for problem in problems:
        print(f"vggkit weights: warning: {problem}", file=sys.stderr)
    return 0


def _matching(entries: dict, pattern: str) -> dict:
    """The entries whose name matches the glob ``pattern`` (case-sensitive, as names are)."""
    found = {n: e for n, e in entries.items() if fnmatch.fnmatchcase(n, pattern)}
    if not found:  # as ls does: an empty listing would look like an empty catalogue
        raise UserError(f"no weights match '{pattern}'; known: {', '.join(entries)}")
    return found


def _print_table(rows: list[dict]) -> None:
    header = ("NAME", "ARCH", "SOURCE", "LICENCE", "ACC@1/ACC@5", "CHECKSUM", "STATUS")
    table = [header] + [(
        r["name"], r["arch"], r["converter"], r["licence"].split(";")[0],
        "/".join(f"{r['accuracy'][k]:.2f}" if k in r["accuracy"] else "-"
                 for k in ("acc@1", "acc@5")),
        r["hash_status"], r["status"]) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(n) for c, n in zip(row, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
