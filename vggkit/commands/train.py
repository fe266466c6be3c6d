"""``vggkit train`` / ``tools/train.py``: train a config of the paper with mmengine (Sect. 3.1).

Example:
    python tools/train.py configs/tiny/vgg_a_tiny.py --data-root ./my_images
    torchrun --nproc-per-node 8 tools/train.py configs/vgg19_jitter.py \\
        --data-root /data/imagenet --launcher pytorch
    python tools/train.py configs/finetune/vgg16_folder.py --data-root DIR \\
        --weights vgg16.torchvision
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from vggkit.commands import (add_cfg_options, add_debug_flag, path_text, positive_int,
                             run_command, seed_int)
from vggkit.engine.train import AMP_CHOICES, TRAIN_LAUNCHERS, build_runner, load_config  # noqa: F401
# build_runner and load_config: imported from here by callers of the old layout


class _TrainParser(argparse.ArgumentParser):
    """An argument parser that reads ``--amp`` before a non-mode as the bare flag."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(_bare_amp(argv), namespace)


def _bare_amp(argv: list[str]) -> list[str]:
    """``--amp`` followed by anything but a mode made ``--amp=auto``.

    ``--amp`` was a plain switch: ``tools/train.py --amp CONFIG`` must keep
    meaning auto AMP on CONFIG, where argparse would take CONFIG as the mode.
    """
    return ["--amp=auto" if arg == "--amp" and (i + 1 == len(argv) or argv[i + 1] not in
                                                AMP_CHOICES) else arg
            for i, arg in enumerate(argv)]


def build_parser() -> argparse.ArgumentParser:
    parser = _TrainParser(
        prog="vggkit train", description="Train a VGG net with the paper's recipe (Sect. 3.1).")
    parser.add_argument("config", help="config file, e.g. configs/vgg16_d.py")
    parser.add_argument("--data-root", help="dataset root (ImageNet: DIR/train/<wnid>/*.JPEG, "
                        "DIR/val/...; image folder: DIR/<class>/*.jpg or DIR/{train,val}/<class>/)")
    parser.add_argument("--weights", metavar="NAME", help="fine-tune published weights (a "
                        "'vggkit weights list' name or a checkpoint): conv1_1-fc7 and the "
                        "preprocessing from them, a new fc8 for the data's classes, e.g. "
                        "configs/finetune/vgg16_folder.py --weights vgg16.torchvision")
    parser.add_argument("--work-dir", type=path_text, help="where logs, checkpoints and curves.png go "
                        "(default ./work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                        help="resume from CKPT, or without a value from the newest checkpoint "
                        "of the work dir (mid-epoch checkpoints continue exactly)")
    parser.add_argument("--amp", nargs="?", const="auto", choices=AMP_CHOICES, metavar="MODE",
                        help="mixed precision. Without MODE ('auto'): fp16 with loss scaling on "
                        "CUDA, bf16 autocast on CPUs with AVX-512 BF16/AMX, else fp32 (emulated "
                        "bf16 is slower) with a note; 'bf16' or 'fp16' force that dtype")
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC memory format for weights and inputs")
    parser.add_argument("--launcher", choices=TRAIN_LAUNCHERS, default="none",
                        help="job launcher: none (one process), pytorch (torchrun), slurm (srun)")
    parser.add_argument("--seed", type=seed_int, help="random seed (overrides randomness.seed)")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic algorithms (exactly repeatable runs; slower on GPU)")
    parser.add_argument("--strict-health", action="store_true",
                        help="stop (exit 2) instead of warning when training has collapsed: "
                        "validation predicted as one class, loss stuck at ln(num_classes), or "
                        "fc7 constant across a batch")
    parser.add_argument("--layer-stats", type=positive_int, metavar="N",
                        help="record per-layer activation and gradient statistics of the first N "
                        "iterations in WORK_DIR/layer_stats.jsonl (where does a run collapse?)")
    add_cfg_options(parser, "batch_per_gpu=16 train_cfg.max_epochs=10")
    return add_debug_flag(parser)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``vggkit train``; returns the exit status."""
    return run_command("vggkit train", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from vggkit.engine.train import train
    train(args.config, **training_options(args))
    return 0


def training_options(args: argparse.Namespace) -> dict:
    """The keywords of :func:`vggkit.engine.train.load_config` from parsed ``args``."""
    return {k: getattr(args, k) for k in (
        "cfg_options", "data_root", "work_dir", "launcher", "weights", "amp", "channels_last",
        "seed", "deterministic", "resume", "strict_health", "layer_stats")}


if __name__ == "__main__":
    sys.exit(main())
