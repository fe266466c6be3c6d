"""Training-pipeline throughput: vggkit vs torchvision vs mmpretrain, images/s on one core.

Both pipelines do the paper's Sect. 3.1 augmentation from a JPEG file to a
uint8 3x224x224 tensor: decode, isotropic rescale to S drawn uniformly from
[256, 512], random 224 crop, random horizontal flip.

* vggkit: ``LoadScaleCrop((256, 512), 224) + RandomFlip + PackInputs`` (the
  crop is computed in original coordinates and only it is resampled; JPEG
  draft-mode decoding when S <= half the smallest side, which never happens
  for 500x375 images and S >= 256, so it does not help here);
* vggkit, unfused: ``LoadImage + IsotropicRescale + RandomCrop + RandomFlip +
  PackInputs`` (the textbook order, for reference);
* torchvision: ``Image.open().convert('RGB')`` + ``Resize(S)`` (S drawn per
  image) + ``RandomCrop(224)`` + ``RandomHorizontalFlip()`` + ``PILToTensor()``;
* mmpretrain 1.2 (its own transforms, default backends, as in its configs):
  mmcv ``LoadImageFromFile()`` (cv2 decode) + mmcv ``RandomChoiceResize(
  scales=range(256, 513), resize_type=ResizeEdge, edge='short')`` (mmpretrain's
  ``ResizeEdge`` short side -> S, cv2 bilinear, with S drawn uniformly per image
  from the 257 integers in [256, 512] -- the closest equivalent: mmpretrain has
  no scale-jitter transform of its own, and mmcv's ``RandomResize`` draws a
  (w, h) pair instead of one isotropic S) + mmpretrain ``RandomCrop(crop_size=224)``
  + mmcv ``RandomFlip(prob=0.5, direction='horizontal')`` + mmpretrain
  ``PackInputs()``. cv2 is limited to one thread (``cv2.setNumThreads(1)``).
  Its tensor is in BGR order (mmpretrain swaps channels later, in the data
  preprocessor); everything else is the same work.

Test images: scikit-learn's two sample photographs, cropped/resized to
500x375 (ImageNet's typical size), with noise variations, saved as JPEG q90.
Single process, ``torch.set_num_threads(1)``. Each round runs every pipeline
``--passes`` times over the images, in rotated order, after a warm-up pass;
figures are the median of the per-round ratio other time ÷ vggkit (fused)
time, with min-max.

    python benchmarks/bench_pipeline.py [--rounds 5] [--images 24] [--passes 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import (MIN_ROUNDS, command, fmt_ratio, headline, machine_header,  # noqa: E402
                    make_jpegs, paired_rounds, write_fragment)


def vggkit_pipeline(fused: bool):
    from mmcv.transforms import Compose
    from vggkit.data.packing import PackInputs
    from vggkit.data.transforms import (IsotropicRescale, LoadImage, LoadScaleCrop,
                                        RandomCrop, RandomFlip)
    if fused:
        steps = [LoadScaleCrop((256, 512), 224), RandomFlip(0.5), PackInputs()]
    else:
        steps = [LoadImage(), IsotropicRescale((256, 512)), RandomCrop(224), RandomFlip(0.5),
                 PackInputs()]
    pipeline = Compose(steps)
    return lambda path: pipeline({"img_path": path})["inputs"]


def torchvision_pipeline():
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    rest = T.Compose([T.RandomCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()])

    def run(path: str) -> torch.Tensor:
        with Image.open(path) as f:
            img = f.convert("RGB")
        s = int(np.random.randint(256, 513))  # scale jittering; Resize has no random S
        return rest(F.resize(img, s, interpolation=T.InterpolationMode.BILINEAR))
    return run


def mmpretrain_pipeline():
    import cv2
    from mmcv.transforms import Compose, LoadImageFromFile, RandomChoiceResize, RandomFlip
    from mmpretrain.datasets.transforms import PackInputs, RandomCrop, ResizeEdge
    cv2.setNumThreads(1)
    pipeline = Compose([LoadImageFromFile(),
                        RandomChoiceResize(scales=list(range(256, 513)), resize_type=ResizeEdge,
                                           edge="short"),
                        RandomCrop(crop_size=224),
                        RandomFlip(prob=0.5, direction="horizontal"),
                        PackInputs()])
    return lambda path: pipeline({"img_path": path})["inputs"]


def passes(fn, paths: list[str], n: int) -> None:
    for _ in range(n):
        for p in paths:
            out = fn(p)
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24, help="number of test JPEGs")
    parser.add_argument("--passes", type=int, default=2, help="passes over the images per round")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="paired timed rounds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    np.random.seed(0)
    header = machine_header()
    ours = "vggkit LoadScaleCrop (fused)"
    pipelines = {ours: vggkit_pipeline(True), "vggkit unfused": vggkit_pipeline(False),
                 "torchvision": torchvision_pipeline(), "mmpretrain": mmpretrain_pipeline()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(tmp, args.images)
        rounds = paired_rounds({k: (lambda _r, fn=fn: passes(fn, paths, args.passes))
                                for k, fn in pipelines.items()}, args.rounds)
    n = args.images * args.passes
    rate = {k: n / v for k, v in rounds.median().items()}
    speed = rounds.ratios(ours)  # other time / vggkit time: vggkit's speed-up over it
    rows = ["| pipeline | images/s (1 core, median of rounds) | vggkit (fused) speed-up over it |",
            "|---|---|---|"]
    for name, v in rate.items():
        rows.append(f"| {name} | {v:.0f} | {'—' if name == ours else fmt_ratio(speed[name])} |")
    text = ("## Training pipeline (decode + rescale S in [256, 512] + 224 crop + flip)\n\n"
            f"{header}\n\n"
            f"{args.images} JPEGs of 500x375 / 375x500 (q90), {args.passes} passes per round, "
            f"{args.rounds} paired rounds in rotated order after a warm-up, single process, torch "
            "threads 1. Speed-up = the other pipeline's time ÷ vggkit's (fused) in the same round "
            "(>1: vggkit faster), median (min–max). mmpretrain 1.2 pipeline: LoadImageFromFile + "
            "RandomChoiceResize(ResizeEdge short, S in 256..512) + RandomCrop(224) + "
            "RandomFlip(0.5) + PackInputs, cv2 backends, 1 cv2 thread.\n\n"
            + "\n".join(rows) + f"\n\nCommand: `{command(argv)}`\n")
    heads = [headline("pipeline, 1 core: speed-up vs torchvision", ours, speed["torchvision"],
                      "× (>1: vggkit faster)"),
             headline("pipeline, 1 core: speed-up vs mmpretrain (cv2)", ours, speed["mmpretrain"],
                      "× (>1: vggkit faster)")]
    write_fragment("pipeline", text, {"headlines": heads, "images_per_s": rate,
                                      "speedup": speed, "times_s": rounds.times})
    return 0


if __name__ == "__main__":
    sys.exit(main())
