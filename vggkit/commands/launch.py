"""Starting a command that runs frozen nets (``tools/test.py``, ``tools/extract_features.py``):
the options they share and what those options set up, in one place. No torch at import:
building a command's parser (``--help``, argument errors) stays quick."""
from __future__ import annotations

import argparse

from vggkit.commands import MAX_THREADS, at_most, torch_device
from vggkit.inference.names import BACKENDS, LAUNCHERS, PRECISIONS


def add_launch_options(parser: argparse.ArgumentParser, sharing: str) -> argparse.ArgumentParser:
    """``--launcher``, ``--device``, ``--threads``, ``--no-progress``.

    ``sharing`` says what the processes of a distributed run share out.
    """
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none",
                        help=f"'pytorch' to run under torchrun: {sharing}")
    parser.add_argument("--device", type=torch_device, help="torch device (default: cuda, under a launcher this "
                        "process's GPU cuda:LOCAL_RANK, if there is one, else cpu)")
    parser.add_argument("--threads", type=at_most(MAX_THREADS),
                        help="torch CPU threads (default: torch's choice); 1 is fastest for "
                        "small nets on a busy machine")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def add_backend_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--backend`` and ``--precision``: how the nets run (default: measured 'auto')."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="'auto' (default): the fastest path measured on this machine that "
                        "agrees with fp32 eager, probed once per net at the batch and size it is "
                        "fed, and cached; 'eager' (plain PyTorch, channels-last); 'compile' "
                        "(torch.compile, needs a C++ compiler); 'onnxruntime' (CPU, fp32, if "
                        "installed); 'mkldnn' (oneDNN blocked layout, CPU, fp32, dense maps "
                        "only); 'jit' (TorchScript, fp32)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="'auto' (default): fp32, or with --backend auto also bf16 on CPUs "
                        "with AVX-512 BF16/AMX and fp16 on CUDA when measured faster and in "
                        "agreement; 'bf16'/'fp16' force the weights cast to that dtype once "
                        "(eager or compile backend)")
    return parser


def launch(args: argparse.Namespace) -> str:
    """Set the threads, choose the device, join the launcher's process group; the device."""
    from vggkit.inference.distributed import choose_device, init_distributed
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    device = choose_device(args.device, args.launcher)
    init_distributed(args.launcher, device)
    return device
