"""The ``vggkit`` command: one subcommand per module of :mod:`vggkit.commands`.

Each command module has ``build_parser()``, a body and ``main(argv) -> int``
run through :func:`vggkit.commands.run_command`; ``tools/*.py`` are 3-line shims
calling the same ``main``, so ``vggkit train CFG`` and ``tools/train.py CFG``
are one code path.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from vggkit.commands import one_line_errors

#: subcommand -> (module with main(argv), one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "describe": ("vggkit.commands.describe", "Table 1 column, parameters, MACs and receptive fields of a configuration"),
    "train": ("vggkit.commands.train", "train a VGG with mmengine (tools/train.py)"),
    "recipe-check": ("vggkit.commands.recipe_check", "Sect. 3.1's findings re-run at reduced scale on digits (tools/recipe_check.py)"),
    "test": ("vggkit.commands.test", "evaluate with the paper's test protocols (tools/test.py)"),
    "classify": ("vggkit.commands.classify", "top-k class names of images with probabilities (tools/classify.py)"),
    "fuse": ("vggkit.commands.fuse", "fuse saved posteriors of several runs (model fusion; tools/fuse.py)"),
    "localise": ("vggkit.commands.localise", "single-object localisation error of box-regression nets, or its demo (Appendix A; tools/localise.py)"),
    "extract": ("vggkit.commands.extract", "extract penultimate-layer features (tools/extract_features.py)"),
    "transfer": ("vggkit.commands.transfer", "linear-SVM transfer on extracted features (tools/svm_transfer.py)"),
    "export": ("vggkit.commands.export", "write a net as an ONNX or TorchScript file (tools/export.py)"),
    "convert": ("vggkit.commands.convert", "convert published weights (tools/convert_weights.py)"),
    "weights": ("vggkit.commands.weights", "published weights by name: list, get (tools/weights.py)"),
    "stats": ("vggkit.commands.stats", "mean RGB and PCA colour statistics of a dataset (tools/dataset_stats.py)"),
    "demo": ("vggkit.commands.demo", "the whole job on scikit-learn's digits (make demo)"),
    "plugins": ("vggkit.commands.plugins", "list loaded plugins and what they registered"),
}


def version() -> str:
    """The installed distribution's version (what pip reports), else the package's own."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version
    try:
        return dist_version("vggkit")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from vggkit import __version__
        return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="vggkit", description="VGG networks (Simonyan & Zisserman, ICLR 2015) as a toolkit.",
        epilog="Run 'vggkit COMMAND --help' for the options of a command.")
    parser.add_argument("command", choices=list(SUBCOMMANDS),
                        help="; ".join(
                            f"{k}: {v[1]}" for k, v in SUBCOMMANDS.items()))
    parser.add_argument("--version", action="store_true", help="print vggkit's version and exit")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":  # handled before argparse: the command positional is required
        print(f"vggkit {version()}")
        return 0
    ns = one_line_errors(parser).parse_args(argv[:1])
    rest = argv[1:]
    module = importlib.import_module(SUBCOMMANDS[ns.command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
