"""Cost of the paper's test protocols: vggkit's batched strategies vs a plain torch loop.

For each strategy (centre, dense, multi-crop, dense+multi-crop) at the same
scales Q, both implementations compute the same posteriors from the same
pre-rescaled images (decoding is excluded: both would share it):

* vggkit: ``build_strategy(name)`` -- dense stacks images of equal rescaled
  size, multi-crop runs crops of several images in batches of ``--batch-size``;
* plain: what one writes by hand -- one image at a time; per scale, dense runs
  the image and its mirror as a batch of 2, multi-crop stacks that image's 50
  crops into one batch.

Implementations alternate within each repeat, after one warm-up round; the
median over repeats is reported. The two must agree (max |difference| is
printed). Output: a markdown fragment (default ``benchmarks/results/eval.md``).

    python benchmarks/bench_eval.py                 # VGG-16 at width 1/16, ~2 min on 2 idle cores
    python benchmarks/bench_eval.py --width-mult 1 --images 2 --repeats 2   # full VGG-16
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, machine_line, make_jpegs, medians  # noqa: E402

from vggkit.inference.views import image_views as rescale_views  # noqa: E402
from vggkit.evaluation.strategies import build_strategy, grid_offsets  # noqa: E402
from vggkit.fileio import atomic_write_text  # noqa: E402
from vggkit.models import DEFAULT_PREPROCESS, build_vgg, normalize  # noqa: E402

STRATEGIES = ("center", "dense", "multicrop", "dense+multicrop")


def plain_center(model, img: torch.Tensor, crop: int) -> torch.Tensor:
    t, l = (img.shape[1] - crop + 1) // 2, (img.shape[2] - crop + 1) // 2
    x = normalize(img[None, :, t:t + crop, l:l + crop], DEFAULT_PREPROCESS)
    return F.softmax(model(x), 1)[0]


def plain_dense(model, img: torch.Tensor, crop: int) -> torch.Tensor:
    x = normalize(torch.stack([img, img.flip(-1)]), DEFAULT_PREPROCESS)
    return F.softmax(model.dense(x).mean((2, 3)), 1).mean(0)


def plain_multicrop(model, img: torch.Tensor, crop: int) -> torch.Tensor:
    crops = [img[:, t:t + crop, l:l + crop] for t in grid_offsets(img.shape[1], crop)
             for l in grid_offsets(img.shape[2], crop)]
    x = normalize(torch.stack(crops + [c.flip(-1) for c in crops]), DEFAULT_PREPROCESS)
    return F.softmax(model(x), 1).mean(0)


def plain_both(model, img: torch.Tensor, crop: int) -> torch.Tensor:
    return (plain_dense(model, img, crop) + plain_multicrop(model, img, crop)) / 2


PLAIN: dict[str, Callable] = {"center": plain_center, "dense": plain_dense,
                              "multicrop": plain_multicrop, "dense+multicrop": plain_both}


@torch.inference_mode()
def run_plain(name, model, views, scales, crop) -> torch.Tensor:
    n = len(views[scales[0]])
    return torch.stack([sum(PLAIN[name](model, views[q][i], crop) for q in scales) / len(scales)
                        for i in range(n)])


def load_images(n: int) -> list[Image.Image]:
    """``n`` ImageNet-sized photos (:func:`common.make_jpegs`), decoded once."""
    with tempfile.TemporaryDirectory() as tmp:
        return [Image.open(p).convert("RGB") for p in make_jpegs(tmp, n)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="D", help="VGG configuration (default: %(default)s)")
    p.add_argument("--width-mult", type=float, default=0.0625,
                   help="conv width multiplier; 1 = the paper's net (default: %(default)s)")
    p.add_argument("--fc-width", type=int,
                   help="width of fc6/fc7; default 4096 x width-mult, the paper's proportions "
                   "(a narrow net with a 4096-wide head would make dense cost mostly fc7)")
    p.add_argument("--images", type=int, default=4, help="test images (default: %(default)s)")
    p.add_argument("--scales", type=int, nargs="+", default=[256, 384, 512],
                   help="test scales Q (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=50,
                   help="vggkit's network inputs per pass; 50 = the plain loop's multi-crop "
                   "batch, so only batching across images differs (default: %(default)s)")
    p.add_argument("--strategies", nargs="+", default=["center", "dense", "multicrop"],
                   help="strategies to time; dense+multicrop costs their sum "
                   "(default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default=os.path.join(RESULTS, "eval.md"),
                   help="markdown fragment to write (default: %(default)s)")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fc_width = args.fc_width or max(64, round(4096 * args.width_mult))
    model = build_vgg(args.arch, num_classes=1000, width_mult=args.width_mult, fc_width=fc_width,
                      init="kaiming").eval()
    crop = model.input_size
    views: dict[int, list[torch.Tensor]] = {}
    for img in load_images(args.images):
        for q, t in rescale_views(img, args.scales).items():
            views.setdefault(q, []).append(t)
    ours = {n: build_strategy(n, batch_size=args.batch_size) for n in args.strategies}
    times: dict[tuple[str, str], list[float]] = {}
    diffs: dict[str, float] = {}
    for rep in range(args.repeats + 1):  # round 0 is the warm-up
        for name in args.strategies:
            impls = [("vggkit", lambda: ours[name](model, views, args.scales, DEFAULT_PREPROCESS)),
                     ("plain", lambda: run_plain(name, model, views, args.scales, crop))]
            if rep % 2:
                impls.reverse()  # alternate who runs first
            results = {}
            for impl, fn in impls:
                start = time.perf_counter()
                results[impl] = fn()
                if rep:
                    times.setdefault((name, impl), []).append(time.perf_counter() - start)
            diffs[name] = float((results["vggkit"] - results["plain"]).abs().max())
            if rep:
                print(f"repeat {rep} {name:16s} vggkit {times[(name, 'vggkit')][-1]:.2f}s "
                      f"plain {times[(name, 'plain')][-1]:.2f}s", flush=True)

    med = medians(times)
    n = args.images
    lines = [
        "### Evaluation strategies (Sect. 3.2): cost per image",
        "",
        f"VGG-{args.arch} at width x{args.width_mult:g}, fc6/fc7 width {fc_width}, 1000 classes; "
        f"{n} images "
        f"(500x375, every 3rd 375x500), Q = {args.scales}, vggkit batch size {args.batch_size}; "
        f"median of {args.repeats} alternating repeats after a warm-up; decoding excluded. "
        f"Machine: {machine_line()}, shared with other jobs. "
        "Command: `" + " ".join(["python benchmarks/bench_eval.py",
                                  *(sys.argv[1:] if argv is None else argv)]) + "`.",
        "",
        "| strategy | net inputs / image | vggkit s/image | plain loop s/image | vggkit images/s "
        "| plain images/s | speed-up | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    per_image = {"center": len(args.scales), "dense": 2 * len(args.scales),
                 "multicrop": 50 * len(args.scales), "dense+multicrop": 52 * len(args.scales)}
    for name in args.strategies:
        o, pl = med[(name, "vggkit")] / n, med[(name, "plain")] / n
        lines.append(f"| {name} | {per_image.get(name, '?')} | {o:.3f} | {pl:.3f} | {1 / o:.2f} | "
                     f"{1 / pl:.2f} | {pl / o:.2f}x | {diffs[name]:.1e} |")
    if "dense" in args.strategies and "multicrop" in args.strategies:
        ratio = med[("multicrop", "vggkit")] / med[("dense", "vggkit")]
        lines += ["", f"Multi-crop costs {ratio:.1f}x dense per image at the same scales "
                  f"(150 crops of {crop}x{crop} vs 6 whole-image passes)."]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out, text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
