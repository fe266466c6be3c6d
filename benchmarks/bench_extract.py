"""Dense multi-scale feature extraction: vggkit's engine vs a plain loop over timm's VGG-16.

Both do the paper's Appendix-B work per image: decode, rescale to each Q
(default 256, 384, 512), run VGG-16 densely up to fc7 (ReLU) on the image and
on its mirror, global-average-pool, flip-average, L2-normalise, average the
scales. Both use the same weights (timm's random init converted to vggkit's
layout), so the descriptors must agree (cosine reported). The two run
alternately in one process after a warm-up; the median of the repeats is
compared.

    python benchmarks/bench_extract.py [--images 2] [--repeats 3]

Full VGG-16 at Q = 512 costs ~100 GFLOP per pass: on 2 cores keep --images
small (the default run takes a few minutes). Writes benchmarks/results/extract.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, machine_line, make_jpegs, medians  # noqa: E402


def machine() -> str:
    """:func:`common.machine_line` and the load (the machine is shared)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{machine_line()}, load average {load:.1f} at start"


def build_models() -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """timm's VGG-16 (random init) and vggkit's VGG-16 holding the same weights."""
    import timm
    from vggkit.models import build_vgg
    from vggkit.models.converters import get_converter
    torch.manual_seed(0)
    theirs = timm.create_model("vgg16", pretrained=False).eval()
    ours_sd, meta = get_converter("timm").convert_with_meta(theirs.state_dict(), "D")
    ours = build_vgg("D", init="none")
    ours.load_state_dict(ours_sd)
    return theirs, ours.eval(), meta["preprocess"]


def timm_loop(model: torch.nn.Module, paths: list[str], scales: list[int],
              preprocess: dict) -> np.ndarray:
    """What a user writes by hand: one image, one scale, one flip at a time, fp32 NCHW."""
    import torchvision.transforms.functional as TF
    mean = torch.tensor(preprocess["mean"]).view(3, 1, 1)
    std = torch.tensor(preprocess["std"]).view(3, 1, 1)
    out = []
    with torch.no_grad():
        for path in paths:
            img = Image.open(path).convert("RGB")
            per_scale = []
            for q in scales:
                x = ((TF.pil_to_tensor(TF.resize(img, q)).float() - mean) / std)[None]
                d = sum(model.pre_logits(model.forward_features(v)).mean((2, 3))
                        for v in (x, x.flip(3))) / 2
                per_scale.append(F.normalize(d))
            out.append(F.normalize(torch.stack(per_scale).mean(0))[0])
    return torch.stack(out).numpy()


def engine_run(extractor, paths: list[str]) -> np.ndarray:
    """vggkit's path: decode + rescale (the runner's loader), then batched nets."""
    from vggkit.features.runner import load_shard
    prepared, _ = load_shard(extractor, paths)
    return extractor.describe(prepared)


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2,
                   help="500x375 images per run (every 3rd 375x500)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each side")
    p.add_argument("--scales", type=int, nargs="+", default=[256, 384, 512], help="test scales Q")
    p.add_argument("--batch-size", type=int, default=8, help="engine batch size")
    p.add_argument("--backend", default="auto",
                   choices=("auto", "onnxruntime", "mkldnn", "eager"), help="engine backend")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--out", default=os.path.join(RESULTS, "extract.md"),
                   help="markdown fragment to write")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from vggkit.features.extractor import FeatureExtractor, Net
    from vggkit.inference.backends import cpu_has_bf16
    from vggkit.fileio import atomic_write_text

    info = machine()
    theirs, ours, preprocess = build_models()
    bf16 = cpu_has_bf16()
    extractor = FeatureExtractor([Net(ours, preprocess, "vgg16")], scales=args.scales,
                                 aggregate="avg", batch_size=args.batch_size,
                                 precision="auto", backend=args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(tmp, args.images)
        # one-time costs out of the timing: the backend's conversion/export, then a warm-up
        # image at every scale on each side (allocators, per-shape kernel plans)
        start = time.perf_counter()
        extractor.setup()
        setup_s = time.perf_counter() - start
        engine_run(extractor, paths[:1]), timm_loop(theirs, paths[:1], args.scales, preprocess)
        times: dict[str, list[float]] = {"vggkit": [], "timm": []}
        results: dict[str, np.ndarray] = {}
        for r in range(args.repeats):
            order = ("vggkit", "timm") if r % 2 == 0 else ("timm", "vggkit")
            for side in order:
                if side == "vggkit":
                    t, results[side] = timed(lambda: engine_run(extractor, paths))
                else:
                    t, results[side] = timed(lambda: timm_loop(theirs, paths, args.scales,
                                                               preprocess))
                times[side].append(t)
                print(f"repeat {r}: {side:6s} {t:7.1f} s ({args.images / t:.3f} img/s)",
                      flush=True)
    med = medians(times)
    rate = {k: args.images / v for k, v in med.items()}
    ratio = rate["vggkit"] / rate["timm"]
    # runs alternate, so repeat r of both sides saw about the same machine load
    paired = [t / v for t, v in zip(times["timm"], times["vggkit"])]
    cos = cosine(results["vggkit"], results["timm"])
    precision_note = (f"bf16 autocast on (CPU has AVX-512 BF16/AMX)" if extractor.precision == "bf16"
                      else "fp32 (bf16 autocast off: this CPU has no AVX-512 BF16 or AMX, "
                           "emulated bf16 is slower)")
    backend_note = {"onnxruntime": "net exported once to ONNX, dynamic N/H/W",
                    "mkldnn": "oneDNN blocked layout, weights reordered once"}.get(
                        extractor.backend, "channels-last")
    command = "python benchmarks/bench_extract.py " + " ".join(argv if argv is not None
                                                                else sys.argv[1:])
    text = f"""### Dense multi-scale feature extraction (VGG-16, Q = {args.scales}, with flips)

Command: `{command.strip()}`
Machine: {info}

| | images/s (median of {args.repeats}) | seconds per run ({args.images} images) |
|---|---|---|
| timm VGG-16, plain loop (batch 1, fp32 NCHW) | {rate['timm']:.3f} | {', '.join(f'{t:.1f}' for t in times['timm'])} |
| vggkit engine (`tools/extract_features.py`) | {rate['vggkit']:.3f} | {', '.join(f'{t:.1f}' for t in times['vggkit'])} |

Ratio vggkit / timm: **{ratio:.2f}x** (goal >= 1.5x: {'met' if ratio >= 1.5 else 'not met'});
per alternating pair: {', '.join(f'{r:.2f}x' for r in paired)} (median {statistics.median(paired):.2f}x).
Descriptor agreement (min cosine, same weights): {cos:.5f}.
Engine: images of equal size batched with their mirrors (batch {2 * min(args.batch_size, args.images)}
at each Q), backend `{extractor.backend}` ({backend_note}; one-time setup {setup_s:.1f} s, not
in the timings), inference mode, {precision_note}. bf16-capable CPU: {bf16}.
"""
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
