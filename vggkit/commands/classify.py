"""``vggkit classify`` / ``tools/classify.py``: the top-k class names of images.

Examples::

    vggkit classify cat.jpg photos/ --weights vgg16.torchvision
    vggkit classify photos/ configs/tiny/vgg_a_tiny.py work_dirs/tiny/epoch_2.pth --topk 3 --json
"""
from __future__ import annotations

import argparse
import json
import sys

from vggkit.commands import (MAX_BATCH, at_most, positive_int, run_command, scale_side,
                             torch_device)
from vggkit.errors import UserError

PROTOCOLS = ("center", "dense", "multicrop")  # vggkit.evaluation.classify's, without torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit classify", description="Print the top-k class names of images with their "
        "probabilities, one block per image.",
        epilog="examples: vggkit classify cat.jpg --weights vgg16.torchvision; "
               "vggkit classify photos/ CONFIG CKPT --topk 3 --json")
    p.add_argument("inputs", nargs="+", metavar="IMAGE",
                   help="image files or folders (every image under them); with CONFIG CKPT "
                        "instead of --weights, the last two are the config and checkpoint")
    p.add_argument("--weights", metavar="NAME",
                   help="published weights by name ('vggkit weights list'): ImageNet-1k names")
    p.add_argument("--topk", type=positive_int, default=5, metavar="K",
                   help="classes per image (default: %(default)s)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="center",
                   help="the paper's test protocol (default: %(default)s, torchvision's)")
    p.add_argument("--scales", nargs="+", type=scale_side, metavar="Q",
                   help="test scales averaged over (default: the publisher's, or from the "
                        "checkpoint's training scale)")
    p.add_argument("--batch-size", type=at_most(MAX_BATCH), default=32,
                   help="network inputs per forward pass (default: %(default)s)")
    p.add_argument("--device", type=torch_device, default="cpu", help="default: %(default)s")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {image, predictions: [{class, probability}]}")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit classify", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    images, config, checkpoint = args.inputs, None, None
    if args.weights is None:
        if len(images) < 3:
            raise UserError("give IMAGE... CONFIG CKPT, or IMAGE... --weights NAME "
                            "('vggkit weights list' shows the names)")
        images, config, checkpoint = images[:-2], images[-2], images[-1]
    from vggkit.evaluation.classify import classify, expand_images, image_name
    items = expand_images(images)  # listed once: the names printed are the images classified
    predictions = classify(items, args.weights, config=config, checkpoint=checkpoint,
                           topk=args.topk, protocol=args.protocol, scales=args.scales,
                           device=args.device, batch_size=args.batch_size)
    results = [(image_name(x, i), top) for i, (x, top) in enumerate(zip(items, predictions))]
    if args.json:
        print(json.dumps([{"image": name, "predictions": [
            {"class": c, "probability": round(p, 6)} for c, p in top]}
            for name, top in results], indent=2))
        return 0
    for n, (name, top) in enumerate(results):
        print(("\n" if n else "") + f"{name}:")
        for c, p in top:
            print(f"  {p:8.2%}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
