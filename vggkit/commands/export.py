"""``vggkit export`` / ``tools/export.py``: write a VGG as an ONNX or TorchScript file.

Example:
    vggkit export --weights vgg16.torchvision --format onnx --output vgg16.onnx
    vggkit export configs/tiny/vgg_a_tiny.py work_dirs/vgg_a_tiny/epoch_10.pth \\
        --format torchscript --output-kind dense --output tiny_dense.pt
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from vggkit.commands import (add_cfg_options, add_debug_flag, add_weights_option,
                             check_output_file, read_config, run_command, weights_config)
from vggkit.errors import UserError

FORMATS = ("onnx", "torchscript")  # vggkit.inference.export's, without importing torch
OUTPUT_KINDS = ("logits", "dense", "fc7", "pool5")


DESCRIPTION = ("Write a VGG net as an ONNX or TorchScript file: input 'image' (N x 3 x H x W, "
               "normalised as the weights expect), output 'out'; dynamic batch, and for dense "
               "outputs dynamic height and width.")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vggkit export", description=DESCRIPTION)
    p.add_argument("pair", nargs="*", metavar="CONFIG CKPT",
                   help="config and checkpoint of the net; or --weights NAME")
    add_weights_option(p, "instead of CONFIG CKPT")
    p.add_argument("--format", choices=FORMATS, required=True, help="file format")
    p.add_argument("--output", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--output-kind", choices=OUTPUT_KINDS, default="logits",
                   help="'logits' of the net's crop (default; dynamic batch), or over a whole "
                        "image the class score map 'dense', the 'fc7' or the 'pool5' map "
                        "(dynamic batch, height and width)")
    add_cfg_options(p)
    return add_debug_flag(p)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``vggkit export``; returns the exit status."""
    return run_command("vggkit export", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    given = [*args.pair, *(f"--weights {w}" for w in args.weights)]
    if len(args.pair) not in (0, 2) or len(args.pair) // 2 + len(args.weights) != 1:
        raise UserError(f"give one net, CONFIG CKPT or --weights NAME, not {given or 'none'}; "
                        "e.g. vggkit export --weights vgg16.torchvision --format onnx "
                        "--output vgg16.onnx")
    check_output_file(args.output, "--output")
    from vggkit.inference.export import export_net
    from vggkit.models.from_config import build_from_config
    if args.weights:
        config, checkpoint = weights_config(args.weights[0], args.cfg_options)
        source = f"weights '{args.weights[0]}'"
    else:
        config, checkpoint = read_config(args.pair[0], args.cfg_options), args.pair[1]
        source = f"config '{args.pair[0]}'"
        if not os.path.isfile(checkpoint):
            raise UserError(f"checkpoint '{checkpoint}' does not exist; give the .pth file a "
                            "training run wrote (e.g. work_dirs/NAME/epoch_N.pth)")
    model = build_from_config(config, checkpoint, source)[0]
    export_net(model, args.output, args.format, args.output_kind)
    print(f"vggkit export: wrote {args.output} ({args.format}, output {args.output_kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
