"""VGG-16 (D, full width) inference at 224, batch 8, all cores: vggkit 'auto' vs the rest.

Side by side in one process, after a warm-up, ``--rounds`` paired rounds in
rotated order (round r starts at path r mod 4):

* torchvision ``vgg16`` eager fp32 under ``torch.inference_mode()``;
* the same, channels-last (model and input);
* ONNX Runtime on torchvision's own exported graph, default session options;
* vggkit ``compile_for_inference(model, 'logits', 'auto')`` -- whatever the
  autotuner measured fastest here (its probe runs first, into a fresh cache
  file under the results directory, and is reported).

Reported: per round, each path's time over torchvision eager's and over ORT's
of the same round; the median of those paired ratios, with min-max. Weights are
random (nothing is downloaded); the same weights are loaded into every model.

    python benchmarks/bench_inference.py [--rounds 5] [--batch 8]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line, write_fragment  # noqa: E402

from vggkit.inference import autotune  # noqa: E402
from vggkit.inference.runners import compile_for_inference  # noqa: E402
from vggkit.models import build_vgg  # noqa: E402
from vggkit.models.converters import get_converter  # noqa: E402


def paired(times: dict[str, list[float]], base: str) -> dict[str, tuple[float, float, float]]:
    """Median, min, max over rounds of ``time[path] / time[base]`` (same round)."""
    out = {}
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times[base])]
        out[name] = (statistics.median(ratios), min(ratios), max(ratios))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="paired timed rounds")
    parser.add_argument("--batch", type=int, default=8, help="images per forward pass")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import onnxruntime as ort
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None).eval()
    ours = build_vgg("vgg16", init="none").eval()
    ours.load_state_dict(get_converter("torchvision").convert(reference.state_dict(), "vgg16"))
    cl_model = torchvision.models.vgg16(weights=None).eval()
    cl_model.load_state_dict(reference.state_dict())
    cl_model = cl_model.to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, 224, 224)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(reference, x, buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])

    cache = os.path.join(tempfile.mkdtemp(prefix="vggkit-bench-"), "autotune.json")
    start = time.perf_counter()
    auto = compile_for_inference(ours, "logits", "auto", cache=cache)
    probe_s = time.perf_counter() - start
    import json
    with open(cache) as f:
        record = next(iter(json.load(f)["entries"].values()))
    picked = f"{record['backend']} {record['precision']}"

    def tv_eager():
        with torch.inference_mode():
            return reference(x)

    def tv_cl():
        with torch.inference_mode():
            return cl_model(x_cl)

    fns = {
        "torchvision eager fp32": tv_eager,
        "torchvision eager fp32 channels_last": tv_cl,
        "ONNX Runtime (torchvision graph)": lambda: session.run(None, {"x": x.numpy()}),
        f"vggkit auto ({picked})": lambda: auto(x),
    }
    names = list(fns)
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    vs_tv = paired(times, names[0])
    vs_ort = paired(times, names[2])
    med = {n: statistics.median(ts) for n, ts in times.items()}

    lines = [
        f"## VGG-16 inference, 224×224, batch {args.batch}, all cores", "",
        f"Machine: {machine_line()}", "",
        f"{args.rounds} paired rounds after a warm-up, rotated order; ratios are time over "
        "the reference's time in the same round (lower is faster): median (min–max).", "",
        "| path | median ms/batch | images/s | time ÷ torchvision eager | time ÷ ORT |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        a, b = vs_tv[n], vs_ort[n]
        lines.append(f"| {n} | {med[n] * 1e3:.0f} | {args.batch / med[n]:.2f} | "
                     f"{a[0]:.3f} ({a[1]:.3f}–{a[2]:.3f}) | {b[0]:.3f} ({b[1]:.3f}–{b[2]:.3f}) |")
    figures = ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(record["ms"].items(),
                                                              key=lambda kv: kv[1]))
    lines += [
        "", f"vggkit auto probe (batch 1 at 224, took {probe_s:.1f} s incl. exports): picked "
        f"**{picked}** ({figures}); rejected: {record['rejected'] or 'none'}.",
        "", f"Command: `python benchmarks/bench_inference.py --rounds {args.rounds} "
        f"--batch {args.batch}`", "",
    ]
    text = "\n".join(lines)
    print(text)
    write_fragment("inference", text, {
        "median_s": med, "times_s": times, "ratio_vs_torchvision_eager": vs_tv,
        "ratio_vs_ort": vs_ort, "auto_probe": record, "probe_s": probe_s,
        "machine": machine_line(), "rounds": args.rounds, "batch": args.batch})
    autotune.forget()
    return 0


if __name__ == "__main__":
    sys.exit(main())
