"""``vggkit convert`` / ``tools/convert_weights.py``: published VGG weights <-> vggkit.

Import: ``--src NAME IN OUT`` (torchvision, timm, mmpretrain, caffe or a plugin's converter) writes a vggkit
checkpoint ``{'state_dict', 'meta'}`` whose ``meta['preprocess']`` records the
input normalisation the weights expect (applied automatically by every tool
that loads it). Export: ``--dst NAME IN OUT``
turns a vggkit checkpoint back into the other library's layout, exactly.
"""
from __future__ import annotations

import argparse
import sys

from vggkit.commands import check_output_file, run_command
from vggkit.errors import plural


def converter_names() -> list[str]:
    """Names of the registered weight converters.

    The parser lists them, so ``--help`` loads the plugins (and with them torch): a
    plugin's converter is as much a choice as a built-in one.
    """
    from vggkit.registry import WEIGHT_CONVERTERS
    return sorted(WEIGHT_CONVERTERS.known_names())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggkit convert", description=__doc__.split("\n\n")[0],
        epilog="examples: vggkit convert --src torchvision vgg16-397923af.pth vgg16.pth; "
               "vggkit convert --src caffe VGG_ILSVRC_16_layers.caffemodel vgg16_caffe.pth; "
               "vggkit convert --dst torchvision vgg16.pth vgg16_tv.pth")
    way = parser.add_mutually_exclusive_group(required=True)
    known = converter_names()  # built-in and plugins' converters alike
    way.add_argument("--src", choices=known, help="import weights published in this layout")
    way.add_argument("--dst", choices=known, help="export a vggkit checkpoint to this layout")
    parser.add_argument("--arch", default=None,
                        help="configuration (A, B, C, D, E, vgg16, vgg16_bn, ...); inferred "
                             "from the weights' shapes when omitted")
    parser.add_argument("--to-rgb", action="store_true",
                        help="caffe only: reverse conv1_1's BGR input channels so the net takes "
                             "RGB (default: keep BGR weights and record bgr=True)")
    parser.add_argument("input", help="weights file to read (.pth/.pt/.bin/.safetensors/"
                                      ".caffemodel, or a vggkit checkpoint with --dst)")
    parser.add_argument("output", help="file to write (written atomically)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit convert", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_output_file(args.output, "OUTPUT")
    from vggkit.models.converters import ConversionError, export_weights, import_weights
    if args.src:
        if args.to_rgb and args.src != "caffe":
            raise ConversionError("--to-rgb applies to --src caffe only")
        meta = import_weights(args.src, args.input, args.output, args.arch, args.to_rgb)
        print(f"converted {args.src} weights '{args.input}' -> '{args.output}': "
              f"arch {meta['arch']}, batch_norm {meta['batch_norm']}, "
              f"{plural(meta['num_classes'], 'class')}, preprocess {meta['preprocess']}")
    else:
        meta = export_weights(args.dst, args.input, args.output)
        print(f"exported '{args.input}' (arch {meta.get('arch')}) -> {args.dst} "
              f"'{args.output}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
