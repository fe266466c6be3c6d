"""``vggkit convert`` / ``tools/convert_weights.py``: published VGG weights <-> vggkit.

Import: ``--src {torchvision,timm,mmpretrain,caffe} IN OUT`` writes a vggkit
checkpoint ``{'state_dict', 'meta'}`` whose ``meta['preprocess']`` records the
input normalisation the weights expect (applied automatically by every tool
that loads it). Export: ``--dst {torchvision,timm,mmpretrain,caffe} IN OUT``
turns a vggkit checkpoint back into the other library's layout, exactly.
"""
from __future__ import annotations

import argparse
from typing import Any

from vggkit.command import check_output_file, run_command
from vggkit.checkpoint import HASH_FORMAT_KEY, HASH_KEY
from vggkit.models.converters import ConversionError, WeightConverter
from vggkit.models.io import read_checkpoint, save_checkpoint

SOURCES = ("torchvision", "timm", "mmpretrain", "caffe")


def get_converter(name: str, **kwargs: Any) -> WeightConverter:
    """The converter registered as ``name`` (via the plugins' WEIGHT_CONVERTERS)."""
    from vggkit.plugins import load_plugins
    from vggkit.registry import WEIGHT_CONVERTERS
    load_plugins()
    cls = WEIGHT_CONVERTERS.get(name)
    if cls is None:
        raise ConversionError(f"no weight converter '{name}'; known: "
                              f"{', '.join(WEIGHT_CONVERTERS.known_names())}")
    return cls(**kwargs)


def import_weights(src: str, path: str, out: str, arch: str | None = None,
                   to_rgb: bool = False) -> dict[str, Any]:
    """Convert ``path`` (``src`` layout) to a vggkit checkpoint ``out``; returns meta.

    The checkpoint records ``path``'s sha256 (``meta['source_sha256']``) and
    the sha256 of each converted tensor (``meta['state_dict_sha256']``).
    """
    converter = get_converter(src, **({"to_rgb": True} if to_rgb else {}))
    state_dict, meta = converter.convert_with_meta(path, arch)
    save_checkpoint(out, state_dict, meta)
    return meta


def export_weights(dst: str, path: str, out: str) -> dict[str, Any]:
    """Write vggkit checkpoint ``path`` in ``dst``'s layout to ``out``; returns meta."""
    from vggkit.models.converters import _model_for
    state_dict, meta = read_checkpoint(path)
    arch = meta.get("arch")
    if arch is None:
        raise ConversionError(f"checkpoint '{path}' records no meta['arch']; cannot export it")
    model = _model_for(state_dict, arch)
    converter = get_converter(dst)
    theirs = converter.export(state_dict, model)
    # our content hash names our keys: it would not describe the exported file
    kept = {k: v for k, v in meta.items() if k not in (HASH_KEY, HASH_FORMAT_KEY)}
    converter.write(theirs, out, {**kept, "conv_names": list(model.conv_names)})
    return meta


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggkit convert", description=__doc__.split("\n\n")[0],
        epilog="examples: vggkit convert --src torchvision vgg16-397923af.pth vgg16.pth; "
               "vggkit convert --src caffe VGG_ILSVRC_16_layers.caffemodel vgg16_caffe.pth; "
               "vggkit convert --dst torchvision vgg16.pth vgg16_tv.pth")
    way = parser.add_mutually_exclusive_group(required=True)
    way.add_argument("--src", choices=SOURCES, help="import weights published in this layout")
    way.add_argument("--dst", choices=SOURCES, help="export a vggkit checkpoint to this layout")
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
    if args.src:
        if args.to_rgb and args.src != "caffe":
            raise ConversionError("--to-rgb applies to --src caffe only")
        meta = import_weights(args.src, args.input, args.output, args.arch, args.to_rgb)
        print(f"converted {args.src} weights '{args.input}' -> '{args.output}': "
              f"arch {meta['arch']}, batch_norm {meta['batch_norm']}, "
              f"{meta['num_classes']} classes, preprocess {meta['preprocess']}")
    else:
        meta = export_weights(args.dst, args.input, args.output)
        print(f"exported '{args.input}' (arch {meta.get('arch')}) -> {args.dst} "
              f"'{args.output}'")
    return 0
