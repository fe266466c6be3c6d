"""Starting a command that runs frozen nets (``tools/test.py``, ``tools/extract_features.py``):
the options they share and what those options set up, in one place."""
from __future__ import annotations

import argparse

from vggkit.commands import positive_int
from vggkit.inference.distributed import LAUNCHERS, choose_device, init_distributed


def add_launch_options(parser: argparse.ArgumentParser, sharing: str) -> argparse.ArgumentParser:
    """``--launcher``, ``--device``, ``--threads``, ``--no-progress``.

    ``sharing`` says what the processes of a distributed run share out.
    """
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none",
                        help=f"'pytorch' to run under torchrun: {sharing}")
    parser.add_argument("--device", help="torch device (default: cuda, under a launcher this "
                        "process's GPU cuda:LOCAL_RANK, if there is one, else cpu)")
    parser.add_argument("--threads", type=positive_int,
                        help="torch CPU threads (default: torch's choice); 1 is fastest for "
                        "small nets on a busy machine")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def launch(args: argparse.Namespace) -> str:
    """Set the threads, choose the device, join the launcher's process group; the device."""
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    device = choose_device(args.device, args.launcher)
    init_distributed(args.launcher, device)
    return device
