"""How every vggkit command runs: parse, run, report bad input as one line.

Each command module defines ``build_parser()`` and a body ``run(args)`` and
its ``main(argv)`` is ``run_command(PROG, build_parser(), run, argv)``. A
user error (:func:`vggkit.errors.user_error`) prints ``PROG: error:
MESSAGE`` on one line and returns 2, the status argparse gives a bad
argument, which is one line too (:func:`one_line_errors`); ``--debug`` (or
``VGGKIT_DEBUG=1``) shows the traceback instead.
Numeric arguments are checked by argparse itself through the types below,
so ``--threads -2`` is refused before any work starts.
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, NoReturn, Optional, Sequence

from vggkit.config import parse_options, read_config, weights_config  # noqa: F401 - their old home
from vggkit.errors import USAGE_ERROR, UserError, report, user_error


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a command's parser ``--debug`` (once)."""
    if not any(a.dest == "debug" for a in parser._actions):  # noqa: SLF001 - no public lookup
        parser.add_argument("--debug", action="store_true",
                            help="show the full traceback of an error instead of one line "
                                 "(also VGGKIT_DEBUG=1)")
    return parser


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` and its sub-command parsers report a bad argument in one line.

    ``PROG: error: MESSAGE (see 'PROG --help')``, exit status 2: argparse's own
    7-14 usage lines before the error buried the one line saying what is wrong.
    """
    def error(message: str) -> NoReturn:
        parser.exit(USAGE_ERROR, f"{parser.prog}: error: {' '.join(message.split())} "
                                 f"(see '{parser.prog} --help')\n")

    parser.error = error  # type: ignore[method-assign]  # argparse calls self.error
    for action in parser._actions:  # noqa: SLF001 - sub-commands have no public lookup
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                one_line_errors(sub)
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
    args = one_line_errors(add_debug_flag(parser)).parse_args(argv)
    try:
        return int(body(args) or 0)
    except Exception as exc:  # noqa: BLE001 - classified below, bugs re-raised
        found = None if debugging(args) else user_error(exc)
        if found is None:
            raise
        return report(prog, found)


#: the largest count any option takes: C's int, which torch, numpy and PIL overflow beyond
MAX_COUNT = 2 ** 31 - 1


def _integer(text: str, minimum: int, what: str, maximum: int = MAX_COUNT) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is not {what}")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"{value} is more than {maximum}, the most this "
                                         "option takes")
    return value


def at_most(maximum: int, minimum: int = 1) -> Callable[[str], int]:
    """argparse type: an integer in ``minimum..maximum``, for counts that cost a process,
    a thread or memory each (``--workers 1e20`` forked until the machine stalled)."""
    what = {0: "a non-negative integer (>= 0)", 1: "a positive integer (>= 1)"}.get(
        minimum, f"an integer >= {minimum}")

    def check(text: str) -> int:
        return _integer(text, minimum, what, maximum)
    check.__name__ = f"integer {minimum}..{maximum}"  # argparse names the type in errors
    return check


#: bounds of the options that cost processes, threads or memory per unit
MAX_WORKERS, MAX_THREADS, MAX_BATCH = 256, 1024, 65536


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1, "a positive integer (>= 1)")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer (>= 0)")


def seed_int(text: str) -> int:
    """argparse type: a random seed, 0 <= seed < 2**32 (what numpy's generators take)."""
    value = _integer(text, 0, "a seed >= 0")
    if value >= 2 ** 32:
        raise argparse.ArgumentTypeError(f"{value} is not a seed below 2**32")
    return value


def path_text(text: str) -> str:
    """argparse type: a path that is not empty or blank (``--work-dir ''`` made runs write
    into the current directory and mmengine's log handler fail)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a directory or file name")
    return text


def torch_device(text: str) -> str:
    """argparse type: a torch device string ('cpu', 'cuda', 'cuda:1', ...), checked by torch."""
    import torch  # only when --device is given: --help stays free of torch
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"'{text}' is not a torch device (e.g. cpu, cuda, "
                                         "cuda:0)") from None
    return text


#: the largest image side Q a command accepts: 8x the paper's largest test scale (512);
#: beyond it a single image's activations take gigabytes and PIL's sizes overflow
MAX_SCALE = 4096


def scale_side(text: str) -> int:
    """argparse type: an image side Q in 1..:data:`MAX_SCALE` pixels."""
    value = positive_int(text)
    if value > MAX_SCALE:
        raise argparse.ArgumentTypeError(
            f"{value} is larger than {MAX_SCALE} pixels, the largest scale vggkit accepts "
            "(the paper's largest is 512)")
    return value


def scale_side_or_zero(text: str) -> int:
    """argparse type: 0 (keep the size) or :func:`scale_side`."""
    return 0 if non_negative_int(text) == 0 else scale_side(text)


def check_output_file(path: Optional[str], option: str) -> None:
    """Refuse an output file vggkit could not write, before any work, as ``cp`` does.

    Output *directories* (work dirs, feature stores) are created with their
    parents; an output *file* in a missing directory is more often a typo
    than a wish, and creating it silently put files in unexpected places.
    An existing directory at ``path`` or a directory (or file) vggkit may
    not write would otherwise fail only at the end, after the whole run.
    """
    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"{option} '{path}': directory '{parent}' does not exist; create it "
                        "first or choose another path")
    if os.path.isdir(path):
        raise UserError(f"{option} '{path}' is a directory; give a file path, e.g. "
                        f"{os.path.join(path, 'results.json')}")
    # files are written atomically: a temporary file in the directory, then a rename
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} '{path}': directory '{parent}' is not writable; choose "
                        "another path")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"{option} '{path}' is not writable; choose another path or change "
                        "its permissions")
    from vggkit.fileio import claim_output
    try:
        claim_output(path)
    except FileExistsError as exc:
        raise UserError(f"{option} {exc}") from None


def add_cfg_options(parser: argparse.ArgumentParser,
                    examples: str = "model.vgg.fc_width=1024 test_dataloader.dataset.cache=False "
                                    "(applied to every config read)"
                    ) -> argparse.ArgumentParser:
    """Give a command that reads configs ``--cfg-options KEY=VALUE ...`` (mmengine's syntax).

    An item without ``KEY=`` is an argparse error; the keys and values are
    checked against each config by :func:`vggkit.config.read_config` /
    :func:`vggkit.config.weights_config`.
    """
    from vggkit.engine.cfg_options import CfgOptionsAction
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, metavar="KEY=VALUE",
                        help=f"override config entries, e.g. {examples}; a key the config "
                             "has no place for is refused")
    return parser


def add_weights_option(parser: argparse.ArgumentParser, what: str) -> argparse.ArgumentParser:
    """``--weights NAME`` (repeatable): a catalogue entry standing in for ``CONFIG CKPT``."""
    parser.add_argument("--weights", action="append", default=[], metavar="NAME",
                        help=f"published weights by name ({what}); fetched and converted once, "
                             "see 'vggkit weights list'")
    return parser
