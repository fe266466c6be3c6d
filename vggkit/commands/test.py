"""``tools/test.py`` / ``vggkit test``: the paper's test protocols on a test set.

Example (tiny net, CPU)::

    python tools/test.py configs/tiny.py work_dirs/tiny/epoch_2.pth \\
        --strategy center dense multicrop dense+multicrop --scales 32 48 64 --out results.json
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from vggkit.commands import (MAX_BATCH, MAX_WORKERS, add_cfg_options, add_weights_option, at_most,
                             positive_int, read_config, run_command, scale_side,
                             weights_config)
from vggkit.commands.fuse import add_outputs, check_outputs, write_outputs
from vggkit.errors import UserError
from vggkit.commands.launch import add_backend_options, add_launch_options, launch

DEFAULT_STRATEGY = "dense"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit test", description="Evaluate VGG nets with the paper's test protocols "
        "(Sect. 3.2): top-1/top-5 error per strategy and for the fusion of several nets.")
    p.add_argument("config", nargs="?", help="config file of the net (its model and "
                   "test_dataloader); omitted with --weights")
    p.add_argument("checkpoint", nargs="?", help="checkpoint: ours, a runner's, or converted "
                   "weights (tools/convert_weights.py); its recorded preprocessing is applied")
    add_weights_option(p, "instead of CONFIG CKPT; repeated or after them, a net to fuse. "
                       "The test set is then an image folder at --data-root, and the default "
                       "scales the publisher's")
    p.add_argument("--data-root", help="test-set root, overriding test_dataloader.dataset.data_root")
    p.add_argument("--strategy", nargs="+", default=[DEFAULT_STRATEGY], metavar="NAME",
                   help="one or more evaluation strategies by name: center, dense, multicrop, "
                   "dense+multicrop, or one a plugin registers (default: %(default)s)")
    p.add_argument("--scales", nargs="+", type=scale_side, metavar="Q",
                   help="test scales (smallest image side); posteriors are averaged over them. "
                   "Default: from the checkpoint's training scale S -> {S-32, S, S+32}, "
                   "[S_min, S_max] -> {S_min, (S_min+S_max)/2, S_max}. Applies to every net")
    p.add_argument("--fuse", nargs=2, action="append", default=[], metavar=("CONFIG", "CKPT"),
                   help="another net whose posteriors are averaged with this one's (model "
                   "fusion); repeat for more nets. Each uses its own default scales")
    p.add_argument("--fuse-posteriors", nargs="+", default=[], metavar="FILE",
                   help="posteriors saved by an earlier run (--save-posteriors) to fuse with "
                   "this run's, strategy by strategy, without re-running those nets")
    add_outputs(p, "write per-image posteriors (.npz with image ids) for later fusion")
    add_backend_options(p)
    add_launch_options(p, "one shard of the images per process")
    for flag, kind, default, what in (
            ("--batch-size", at_most(MAX_BATCH), 32,
             "network inputs (crops, or whole images with their flips) per forward pass"),
            ("--images-per-batch", at_most(MAX_BATCH), 16, "images decoded and evaluated together; "
             "dense evaluation stacks those of equal rescaled size"),
            ("--workers", at_most(MAX_WORKERS, 0), 2,
             "data-loader processes decoding and rescaling images")):
        p.add_argument(flag, type=kind, default=default, help=f"{what} (default: %(default)s)")
    p.add_argument("--pass-crops", type=positive_int, metavar="N",
                   help="at most N crops of 224x224 per forward pass on the CPU (default: "
                   "derived on this machine from memory and a cached timing probe; "
                   "$VGGKIT_PASS_CROPS=none lifts the cap)")
    p.add_argument("--fast-decode", action="store_true",
                   help="decode large JPEGs at reduced size (libjpeg draft; faster, not "
                   "bit-identical)")
    return add_cfg_options(p)


def _nets(args: argparse.Namespace) -> list[tuple[Any, str, Any, str]]:
    """``(config, checkpoint, scales, label)`` of every net: CONFIG CKPT, --fuse, --weights."""
    if (args.config is None) != (args.checkpoint is None) or (args.config is None
                                                            and not args.weights):
        raise UserError("give CONFIG CKPT, or --weights NAME ('vggkit weights list' shows "
                        "the names)")
    pairs = ([(args.config, args.checkpoint)] if args.config else []) + list(args.fuse)
    nets = [(read_config(c, args.cfg_options), k, args.scales, c) for c, k in pairs]
    for name in args.weights:
        cfg, ckpt = weights_config(name, args.cfg_options)
        nets.append((cfg, ckpt, args.scales or list(cfg.test_scales), f"weights:{name}"))
    return nets


def _test_config(args: argparse.Namespace) -> Any:
    """The config whose test_dataloader lists the test set: CONFIG's, or an image folder."""
    if args.config:
        return read_config(args.config, args.cfg_options)
    from vggkit.evaluation.api import folder_test_config
    return folder_test_config(args.data_root, args.cfg_options)


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit test", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_outputs(args)
    from vggkit.evaluation.api import evaluate_nets
    device = launch(args)
    results, posteriors = evaluate_nets(
        _nets(args), _test_config(args), args.strategy, data_root=args.data_root,
        source=args.config or "--weights", device=device, backend=args.backend,
        precision=args.precision, batch_size=args.batch_size,
        images_per_batch=args.images_per_batch, workers=args.workers,
        pass_crops=args.pass_crops, fast_decode=args.fast_decode,
        fuse_posteriors=args.fuse_posteriors, progress=not args.no_progress)
    if results is not None:  # None: not rank 0, which reports
        write_outputs(args, results, posteriors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
