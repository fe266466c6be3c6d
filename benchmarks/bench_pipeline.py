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
Runs alternate between pipelines, after a warm-up; the median of the repeats
is reported. Single process, ``torch.set_num_threads(1)``.

    python benchmarks/bench_pipeline.py [--repeats 5] [--images 24] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import machine_line, make_jpegs, write_fragment  # noqa: E402


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


def time_once(fn, paths: list[str], passes: int) -> float:
    start = time.perf_counter()
    for _ in range(passes):
        for p in paths:
            out = fn(p)
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    return passes * len(paths) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24, help="number of test JPEGs")
    parser.add_argument("--passes", type=int, default=4, help="passes over the images per run")
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs per pipeline")
    parser.add_argument("--out", default=None,
                        help="directory for pipeline.md/.json (default: benchmarks/results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    np.random.seed(0)
    pipelines = {"vggkit LoadScaleCrop (fused)": vggkit_pipeline(True),
                 "vggkit unfused": vggkit_pipeline(False),
                 "torchvision": torchvision_pipeline(),
                 "mmpretrain": mmpretrain_pipeline()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(tmp, args.images)
        for fn in pipelines.values():  # warm-up: page cache, imports, allocators
            time_once(fn, paths, 1)
        runs: dict[str, list[float]] = {k: [] for k in pipelines}
        for _ in range(args.repeats):
            for name, fn in pipelines.items():
                runs[name].append(time_once(fn, paths, args.passes))
    median = {k: statistics.median(v) for k, v in runs.items()}
    base, mmp = median["torchvision"], median["mmpretrain"]
    rows = ["| pipeline | images/s (1 core, median) | min-max | vs torchvision | vs mmpretrain |",
            "|---|---|---|---|---|"]
    for name, v in median.items():
        rows.append(f"| {name} | {v:.0f} | {min(runs[name]):.0f}-{max(runs[name]):.0f} "
                    f"| {v / base:.2f}x | {v / mmp:.2f}x |")
    ours = median["vggkit LoadScaleCrop (fused)"]
    command = "python benchmarks/bench_pipeline.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    machine = machine_line()
    text = ("## Training pipeline (decode + rescale S in [256, 512] + 224 crop + flip)\n\n"
            f"{args.images} JPEGs of 500x375 / 375x500 (q90), {args.passes} passes x "
            f"{args.repeats} alternating repeats, single process, torch threads 1; {machine}.\n"
            f"Command: `{command.strip()}`. mmpretrain 1.2 pipeline: LoadImageFromFile + "
            "RandomChoiceResize(ResizeEdge short, S in 256..512) + RandomCrop(224) + "
            "RandomFlip(0.5) + PackInputs, cv2 backends, 1 cv2 thread.\n\n"
            + "\n".join(rows) + "\n\n"
            f"vggkit (fused) / mmpretrain: **{ours / mmp:.2f}x**; "
            f"vggkit (fused) / torchvision: **{ours / base:.2f}x**.\n")
    print(text)
    data = {"runs": runs, "median": median, "machine": machine,
            "ratio_vggkit_mmpretrain": ours / mmp, "ratio_vggkit_torchvision": ours / base}
    if args.out is None:
        write_fragment("pipeline", text, data)
    else:
        os.makedirs(args.out, exist_ok=True)
        for ext, body in (("md", text), ("json", json.dumps(data, indent=2))):
            with open(os.path.join(args.out, f"pipeline.{ext}"), "w") as f:
                f.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
