"""The ``vggkit`` command: one subcommand per tool.

Each subcommand is a module function ``main(argv) -> int``; ``tools/*.py`` call
the same functions, so ``vggkit train CFG`` and ``tools/train.py CFG`` are one
code path.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings

#: subcommand -> (module with main(argv), one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "describe": ("vggkit.models.describe", "Table 1 column, parameters, MACs and receptive fields of a configuration"),
    "train": ("vggkit.engine.train", "train a VGG with mmengine (tools/train.py)"),
    "recipe-check": ("vggkit.engine.recipe_check", "Sect. 3.1's findings re-run at reduced scale on digits (tools/recipe_check.py)"),
    "test": ("vggkit.evaluation.test_tool", "evaluate with the paper's test protocols (tools/test.py)"),
    "fuse": ("vggkit.evaluation.fuse_tool", "fuse saved posteriors of several runs (model fusion)"),
    "extract": ("vggkit.features.extract_tool", "extract penultimate-layer features (tools/extract_features.py)"),
    "transfer": ("vggkit.transfer.svm_tool", "linear-SVM transfer on extracted features (tools/svm_transfer.py)"),
    "convert": ("vggkit.models.convert", "convert published weights (tools/convert_weights.py)"),
    "stats": ("vggkit.data.stats", "mean RGB and PCA colour statistics of a dataset (tools/dataset_stats.py)"),
    "demo": ("vggkit.demo", "the whole job on scikit-learn's digits (make demo)"),
}


def plugins_main(argv: list[str] | None = None) -> int:
    """``vggkit plugins``: what is loaded, from where, and what it registered."""
    parser = argparse.ArgumentParser(prog="vggkit plugins", description=plugins_main.__doc__)
    parser.add_argument("--all", action="store_true", help="include vggkit's built-in plugins")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)
    from vggkit.errors import report
    from vggkit.plugins import PluginError, plugin_infos
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            infos = plugin_infos(include_builtin=args.all)
    except PluginError as exc:
        return report("vggkit plugins", exc)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print("no third-party plugins installed (--all shows the built-in ones)")
    for info in infos:
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}  [{info.status}]  from {info.distribution or '(in-process)'}{version}")
        if info.error:
            print(f"    error: {info.error}")
        for kind, names in sorted(info.registered.items()):
            print(f"    {kind}: {', '.join(names)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="vggkit", description="VGG networks (Simonyan & Zisserman, ICLR 2015) as a toolkit.",
        epilog="Run 'vggkit COMMAND --help' for the options of a command.")
    parser.add_argument("command", choices=["plugins", *SUBCOMMANDS],
                        help="plugins: list loaded plugins; " + "; ".join(
                            f"{k}: {v[1]}" for k, v in SUBCOMMANDS.items()))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    ns = parser.parse_args(argv[:1])
    rest = argv[1:]
    if ns.command == "plugins":
        return plugins_main(rest)
    module = importlib.import_module(SUBCOMMANDS[ns.command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
