"""``tools/extract_features.py`` / ``vggkit extract``: Appendix-B features into a store.

Examples::

    vggkit extract photos/ --weights vgg16.torchvision --out feats/photos
    tools/extract_features.py configs/vgg16_d.py d.pth configs/vgg19_e.py e.pth \\
        --task voc2007 --data-root data/VOCdevkit/VOC2007 --out feats/voc07-de

Each ``CONFIG CKPT`` pair, and each ``--weights NAME``, is one net
(``cfg.model.vgg`` holds its ``build_vgg`` arguments; the checkpoint's recorded
preprocessing is applied); several nets stack their descriptors. The task
plugin lists the images and gives the default scales and aggregation; the
default task, ``folder``, takes any folder of images, with or without class
sub-folders.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from vggkit.commands import (MAX_BATCH, add_cfg_options, add_weights_option, at_most, parse_options,
                             positive_int, run_command, scale_side)
from vggkit.errors import UserError
from vggkit.features import AGGREGATES, BAD_IMAGE_MODES, LAYERS
from vggkit.commands.launch import add_launch_options, launch
from vggkit.inference.names import BACKENDS, PRECISIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit extract", description="Extract the paper's Appendix-B image descriptors "
        "(dense net over the whole image at scale Q, global average pool, flip average, L2 "
        "norm, scales averaged or stacked, nets stacked) into a resumable feature store.")
    p.add_argument("pairs", nargs="*", metavar="CONFIG CKPT",
                   help="pairs of an mmengine config (cfg.model.vgg = build_vgg kwargs) and a "
                        "checkpoint; several nets stack their descriptors. With --weights and "
                        "no --data-root, the one argument is the folder of images")
    add_weights_option(p, "a net, after the CONFIG CKPT pairs")
    p.add_argument("--task", default="folder", help="registered transfer task, e.g. caltech101, "
                   "voc2007, imagefolder (`vggkit plugins` lists them); default 'folder': any "
                   "folder of images, with or without class sub-folders")
    p.add_argument("--data-root", help="the task's data directory")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="task constructor option, e.g. context=whole+box for voc2012_action "
                        "(repeatable; recorded in the store's settings)")
    p.add_argument("--scales", type=scale_side, nargs="+", metavar="Q",
                   help="test scales Q (smallest image side); default: the task's")
    p.add_argument("--aggregate", choices=AGGREGATES,
                   help="combine scales by averaging or stacking; default: the task's")
    p.add_argument("--layer", choices=LAYERS, default="fc7",
                   help="descriptor layer (default fc7, the paper's penultimate layer)")
    p.add_argument("--relu", action=argparse.BooleanOptionalAction, default=True,
                   help="fc6/fc7 after their ReLU (default) or before (--no-relu)")
    p.add_argument("--out", help="store directory (default work_dirs/features/TASK)")
    p.add_argument("--batch-size", type=at_most(MAX_BATCH), default=8,
                   help="images of equal rescaled size per batch; each runs with its mirror")
    p.add_argument("--shard-size", type=positive_int, default=256,
                   help="images per shard: the unit of resuming and of distribution")
    p.add_argument("--bad-images", choices=BAD_IMAGE_MODES, default="strict",
                   help="'strict' stops at an unreadable image; 'skip' stores a zero row, "
                        "lists it in the manifest and leaves it out of load_features")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="'auto': measured with --backend auto (bf16 is offered only on CPUs "
                        "with AVX-512 BF16/AMX, fp16 on CUDA); bf16 and fp16 run the eager "
                        "backend. Resuming a store, 'auto' takes the store's precision")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="'onnxruntime' (CPU, fp32, if installed); 'mkldnn': oneDNN blocked "
                        "layout (CPU, fp32); 'jit': TorchScript (fp32); 'eager': plain PyTorch; "
                        "'auto': the fastest that agrees with fp32 eager, measured once per "
                        "machine and net (see the README's Speed section). Resuming a store, "
                        "'auto' takes the path that wrote it")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="eager backend: channels-last memory format")
    p.add_argument("--keep-shards", action="store_true",
                   help="keep shards/ after features.npy is assembled")
    add_launch_options(p, "ranks write disjoint shards")
    return add_cfg_options(p)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tools/extract_features.py``; returns the exit code.

    User errors (a bad path, image, task name or a store of other settings)
    print one line and return 2.
    """
    return run_command("vggkit extract", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    if args.weights and args.data_root is None and len(args.pairs) == 1:
        args.data_root, args.pairs = args.pairs[0], []  # vggkit extract DIR --weights NAME
    if len(args.pairs) % 2:
        raise UserError(f"expected CONFIG CKPT pairs, got {len(args.pairs)} paths: {args.pairs}")
    if not args.pairs and not args.weights:
        raise UserError("no net given: pass CONFIG CKPT pairs or --weights NAME "
                        "('vggkit weights list' shows the names)")
    if args.data_root is None:
        raise UserError("no images given: pass --data-root DIR (or 'vggkit extract DIR "
                        "--weights NAME')")
    return extract(args)


def extract(args: argparse.Namespace) -> int:
    """Run the extraction of parsed ``args`` (see :func:`build_parser`)."""
    from vggkit.features.extraction import extract as extract_store
    device = launch(args)
    extract_store(args.data_root, list(zip(args.pairs[0::2], args.pairs[1::2])), args.weights,
                  task=args.task, task_options=parse_options(args.task_option), out=args.out,
                  scales=args.scales, aggregate=args.aggregate, layer=args.layer,
                  relu=args.relu, batch_size=args.batch_size, shard_size=args.shard_size,
                  bad_images=args.bad_images, precision=args.precision, backend=args.backend,
                  channels_last=args.channels_last, keep_shards=args.keep_shards,
                  device=device, cfg_options=args.cfg_options, progress=not args.no_progress)
    return 0


def __getattr__(name: str) -> Any:
    # load_net's old home: it moved below the commands, to vggkit.features.extraction
    if name == "load_net":
        from vggkit.features.extraction import load_net
        return load_net
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
