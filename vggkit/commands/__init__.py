"""How every vggkit command runs: parse, run, report bad input as one line.

Each command module defines ``build_parser()`` and a body ``run(args)`` and
its ``main(argv)`` is ``run_command(PROG, build_parser(), run, argv)``. A
user error (:func:`vggkit.errors.user_error`) prints ``PROG: error:
MESSAGE`` on one line and returns 2, the status argparse gives a bad
argument; ``--debug`` (or ``VGGKIT_DEBUG=1``) shows the traceback instead.
Numeric arguments are checked by argparse itself through the types below,
so ``--threads -2`` is refused before any work starts.
"""
from __future__ import annotations

import argparse
import ast
import os
from typing import Any, Callable, Optional, Sequence

from vggkit.errors import UserError, report, user_error


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a command's parser ``--debug`` (once)."""
    if not any(a.dest == "debug" for a in parser._actions):  # noqa: SLF001 - no public lookup
        parser.add_argument("--debug", action="store_true",
                            help="show the full traceback of an error instead of one line "
                                 "(also VGGKIT_DEBUG=1)")
    return parser


def debugging(args: Optional[argparse.Namespace] = None) -> bool:
    """``--debug`` was given or ``VGGKIT_DEBUG`` is set to anything but 0."""
    return bool(getattr(args, "debug", False)) or os.environ.get("VGGKIT_DEBUG", "0") not in ("", "0")


def run_command(prog: str, parser: argparse.ArgumentParser,
                body: Callable[[argparse.Namespace], Optional[int]],
                argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` with ``parser`` and return ``body(args)``'s exit status.

    A user error becomes one line on stderr and status 2; any other exception
    (a bug) propagates with its traceback.
    """
    args = add_debug_flag(parser).parse_args(argv)
    try:
        return int(body(args) or 0)
    except Exception as exc:  # noqa: BLE001 - classified below, bugs re-raised
        found = None if debugging(args) else user_error(exc)
        if found is None:
            raise
        return report(prog, found)


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is not {what}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1, "a positive integer (>= 1)")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer (>= 0)")


def check_output_file(path: Optional[str], option: str) -> None:
    """Refuse an output file whose directory does not exist, as ``cp`` does.

    Output *directories* (work dirs, feature stores) are created with their
    parents; an output *file* in a missing directory is more often a typo
    than a wish, and creating it silently put files in unexpected places.
    """
    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"{option} '{path}': directory '{parent}' does not exist; create it "
                        "first or choose another path")


def add_cfg_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a command that reads configs ``--cfg-options KEY=VALUE ...`` (mmengine's syntax)."""
    from mmengine.config import DictAction
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        help="override config entries, e.g. model.vgg.fc_width=1024 "
                             "test_dataloader.dataset.cache=False (applied to every config read)")
    return parser


def read_config(path: str, options: Optional[dict] = None) -> Any:
    """The mmengine ``Config`` at ``path`` with ``--cfg-options`` merged in."""
    from mmengine.config import Config
    if not os.path.isfile(path):
        raise UserError(f"config file '{path}' does not exist (configs are in configs/, e.g. "
                        "configs/vgg16_d.py or configs/tiny/vgg_a_tiny.py)")
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def add_weights_option(parser: argparse.ArgumentParser, what: str) -> argparse.ArgumentParser:
    """``--weights NAME`` (repeatable): a catalogue entry standing in for ``CONFIG CKPT``."""
    parser.add_argument("--weights", action="append", default=[], metavar="NAME",
                        help=f"published weights by name ({what}); fetched and converted once, "
                             "see 'vggkit weights list'")
    return parser


def weights_config(name: str, options: Optional[dict] = None) -> tuple[Any, str]:
    """``(config, checkpoint)`` standing in for a ``CONFIG CKPT`` pair of weights ``name``."""
    from vggkit.weights import config_for_weights, resolve_weights
    cfg = config_for_weights(name)
    if options:
        cfg.merge_from_dict(options)
    return cfg, resolve_weights(name)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``['n_train=10', 'metric=accuracy']`` -> ``{'n_train': 10, 'metric': 'accuracy'}``."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--task-option expects KEY=VALUE, got '{item}'")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value  # a bare word: a string
    return options
