"""``vggkit localise`` / ``tools/localise.py``: Appendix A's localisation error, or its demo.

Examples::

    vggkit localise configs/loc/vgg16_pcr.py work_dirs/vgg16_pcr/epoch_20.pth \\
        --cls-config configs/vgg16_d.py --cls-checkpoint work_dirs/vgg16_d/epoch_74.pth \\
        --data-root data/ilsvrc --scales 256 384 512 --out res.json --plot boxes.png
    # fusion (Table 9): the union of two nets' boxes, each net at its own Q, then merging
    vggkit localise --localiser configs/loc/vgg16_pcr.py pcr256.pth 256 \\
        --localiser configs/loc/vgg16_pcr_s384.py pcr384.pth 352 384 \\
        --cls-config configs/vgg19_jitter.py --cls-checkpoint vgg19_jitter.pth --data-root data/ilsvrc
    vggkit localise --demo            # digits on cluttered canvases, a few minutes on a CPU
"""
from __future__ import annotations

import argparse
import sys

from vggkit.commands import (MAX_THREADS, add_cfg_options, at_most, check_output_file, path_text,
                             positive_int, run_command, scale_side, seed_int, torch_device)
from vggkit.errors import UserError
from vggkit.localisation import PROTOCOLS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit localise", description="Single-object localisation (Appendix A): a box "
        "regression net (or several, fused: the union of their boxes, then merging) and a "
        "classification net applied to a test set; top-1/top-5 localisation error (ILSVRC: "
        "class among the guesses and box IoU >= 0.5) per protocol, against box baselines. "
        "--demo trains and evaluates the whole system on digits.")
    p.add_argument("config", nargs="?", help="config of the localisation net (configs/loc/...); "
                   "its test_dataloader names the test set")
    p.add_argument("checkpoint", nargs="?", help="checkpoint of the localisation net")
    p.add_argument("--localiser", nargs="+", action="append", default=[],
                   metavar=("CONFIG CKPT", "Q"),
                   help="a localisation net to fuse (repeat for more; with or instead of CONFIG "
                   "CHECKPOINT): the merging runs on the union of all nets' boxes, as the paper's "
                   "fusion. Q ... after CKPT are this net's test scales (default: --scales, else "
                   "from its training scale). The first net's test set is used")
    p.add_argument("--cls-config", help="config of the classification net")
    p.add_argument("--cls-checkpoint", help="checkpoint of the classification net, whose class "
                   "posteriors rank the guesses and weigh the boxes")
    p.add_argument("--data-root", help="test-set root, overriding the config's (with --demo: "
                   "where the canvases are written, default ~/.cache/vggkit/loc-digits-v1)")
    p.add_argument("--scales", nargs="+", type=scale_side, metavar="Q",
                   help="test scales (smallest image side) of every localisation net without its "
                   "own. Default: from each net's training scale, as vggkit test does")
    p.add_argument("--protocol", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS),
                   help="center: one central crop per scale; dense: the nets applied fully "
                   "convolutionally, boxes merged greedily (default: both)")
    p.add_argument("--flip", action="store_true", help="add each image's mirror image")
    p.add_argument("--merge-iou", type=float, default=0.5, metavar="IOU",
                   help="greedy merging joins boxes overlapping at least this much "
                   "(default: %(default)s)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images")
    p.add_argument("--device", type=torch_device, help="torch device (default: cuda if there is a GPU, else cpu)")
    p.add_argument("--threads", type=at_most(MAX_THREADS),
                   help="torch CPU threads (default: torch's; 1 with --demo)")
    p.add_argument("--out", metavar="FILE", help="write settings, errors and per-image guesses "
                   "as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a PNG of predicted and true boxes")
    p.add_argument("--num-plot", type=positive_int, default=12, metavar="N",
                   help="images in --plot (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo = p.add_argument_group("demo (--demo: no positional arguments)")
    demo.add_argument("--demo", action="store_true", help="write digit canvases, train a "
                      "classifier and SCR/PCR localisers with tools/train.py, evaluate them")
    demo.add_argument("--work-dir", type=path_text, default="work_dirs/localise_demo",
                      help="demo outputs (default: %(default)s)")
    demo.add_argument("--seeds", nargs="+", type=seed_int, default=[0],
                      help="one demo run per seed (training and canvases' order)")
    demo.add_argument("--epochs", nargs=2, type=positive_int, metavar=("CLS", "LOC"),
                      help="training epochs of the classifier and of each localiser "
                      "(default: the tiny configs')")
    return add_cfg_options(p)


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit localise", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_output_file(args.out, "--out")
    check_output_file(args.plot, "--plot")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.demo:
        if args.config or args.checkpoint or args.localiser:
            raise UserError("--demo takes no CONFIG CHECKPOINT or --localiser: it trains its "
                            "own nets")
        from vggkit.localisation.demo import run_demo
        run_demo(args.work_dir, args.seeds, epochs=args.epochs, data_root=args.data_root,
                 plot=args.plot, threads=args.threads)
        return 0
    # the --localiser nets stand in for CONFIG CHECKPOINT
    wanted = ("cls_config", "cls_checkpoint") if args.localiser and not args.config \
        and not args.checkpoint else ("config", "checkpoint", "cls_config", "cls_checkpoint")
    missing = [n for n in wanted if not getattr(args, n)]
    if missing:
        raise UserError("missing " + ", ".join(m.replace("_", "-") if m.startswith("cls") else
                                               m.upper() for m in missing)
                        + ": give CONFIG CHECKPOINT (or --localiser CONFIG CKPT [Q ...], "
                        "repeatable) --cls-config CFG --cls-checkpoint CKPT (or --demo)")
    from vggkit.localisation.api import format_result, localise, plot_result
    result = localise(localiser_specs(args), args.cls_config, args.cls_checkpoint,
                      data_root=args.data_root, scales=args.scales, protocols=args.protocol,
                      flip=args.flip, merge_iou=args.merge_iou, limit=args.limit,
                      device=args.device, cfg_options=args.cfg_options,
                      progress=not args.no_progress)
    print(format_result(result))
    if args.out:
        from vggkit.fileio import atomic_write_json
        atomic_write_json(args.out, result)
    if args.plot:
        plot_result(result, args.plot, args.num_plot)
    return 0


def localiser_specs(args: argparse.Namespace) -> list[tuple[str, str, list[int] | None]]:
    """``(config, checkpoint, own scales or None)`` of every localisation net: the positional
    CONFIG CHECKPOINT first, then each ``--localiser CONFIG CKPT [Q ...]``."""
    specs = [(args.config, args.checkpoint, None)] if args.config else []
    for values in args.localiser:
        if len(values) < 2:
            raise UserError(f"--localiser {' '.join(values)}: give CONFIG CKPT [Q ...], a config "
                            "and a checkpoint, then optionally the net's test scales")
        scales = []
        for q in values[2:]:
            if not q.isdigit() or int(q) < 1:
                raise UserError(f"--localiser {values[0]} {values[1]}: '{q}' is not a test scale "
                                "Q (a positive integer); give CONFIG CKPT [Q ...] and put the "
                                "positional CONFIG CHECKPOINT before the options")
            scales.append(int(q))
        specs.append((values[0], values[1], scales or None))
    return specs


if __name__ == "__main__":
    sys.exit(main())
