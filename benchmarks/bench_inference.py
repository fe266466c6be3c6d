"""VGG-16 (D, full width) inference at 224, all cores: vggkit 'auto' vs the paths a user picks.

Side by side in one process, after a warm-up, ``--rounds`` paired rounds in
rotated order (round r starts at path r mod 4):

* torchvision ``vgg16`` eager fp32 under ``torch.inference_mode()``;
* the same, channels-last (model and input);
* ONNX Runtime on torchvision's own exported graph, default session options;
* vggkit ``compile_for_inference(model, 'logits', 'auto')`` -- whatever the
  autotuner measured fastest here (its probe runs first, into a fresh cache
  file, and is reported).

Reported: per round, each path's time over torchvision eager's and over ORT's
of the same round; the median of those paired ratios, with min-max. Weights are
random (nothing is downloaded); the same weights are loaded into every model.

    python benchmarks/bench_inference.py [--rounds 5] [--batch 4]
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import tempfile
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MIN_ROUNDS, command, fmt_ratio, headline, inverse, machine_header,  # noqa: E402
                    paired_rounds, vgg16_pair, write_fragment)

from vggkit.inference import autotune  # noqa: E402
from vggkit.inference.runners import compile_for_inference  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="paired timed rounds")
    parser.add_argument("--batch", type=int, default=4, help="images per forward pass")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import onnxruntime as ort

    header = machine_header()
    reference, ours, _ = vgg16_pair()
    cl_model = copy.deepcopy(reference).to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
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
    with open(cache) as f:
        record = next(iter(json.load(f)["entries"].values()))
    picked = f"{record['backend']} {record['precision']}"

    def tv_eager(_r):
        with torch.inference_mode():
            return reference(x)

    def tv_cl(_r):
        with torch.inference_mode():
            return cl_model(x_cl)

    vg = f"vggkit auto ({picked})"
    fns = {
        "torchvision eager fp32": tv_eager,
        "torchvision eager fp32 channels_last": tv_cl,
        "ONNX Runtime (torchvision graph)": lambda _r: session.run(None, {"x": x.numpy()}),
        vg: lambda _r: auto(x),
    }
    names = list(fns)
    rounds = paired_rounds(fns, args.rounds)
    vs_tv, vs_ort, med = rounds.ratios(names[0]), rounds.ratios(names[2]), rounds.median()

    lines = [
        f"## VGG-16 inference, 224×224, batch {args.batch}, all cores", "", header, "",
        f"{args.rounds} paired rounds after a warm-up, rotated order; ratios are time over "
        "the reference's time in the same round (lower is faster): median (min–max).", "",
        "| path | median ms/batch | images/s | time ÷ torchvision eager | time ÷ ORT |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        cells = ["1 (reference)" if n == base else fmt_ratio(r[n], 3)
                 for base, r in ((names[0], vs_tv), (names[2], vs_ort))]
        lines.append(f"| {n} | {med[n] * 1e3:.0f} | {args.batch / med[n]:.2f} | "
                     f"{cells[0]} | {cells[1]} |")
    figures = ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(record["ms"].items(),
                                                              key=lambda kv: kv[1]))
    lines += [
        "", f"vggkit auto probe (batch 1 at 224, took {probe_s:.1f} s incl. exports): picked "
        f"**{picked}** ({figures}); rejected: {record.get('rejected') or 'none'}.",
        "", f"Command: `{command(argv)}`", "",
    ]
    path = f"compile_for_inference auto → {picked}, batch {args.batch}"
    heads = [headline("inference 224: speed-up vs torchvision eager", path,
                      inverse(vs_tv[vg]), "× (>1: vggkit faster)"),
             headline("inference 224: speed-up vs ONNX Runtime", path,
                      inverse(vs_ort[vg]), "× (>1: vggkit faster)")]
    write_fragment("inference", "\n".join(lines), {
        "headlines": heads, "median_s": med, "times_s": rounds.times,
        "ratio_vs_torchvision_eager": vs_tv, "ratio_vs_ort": vs_ort, "auto_probe": record,
        "probe_s": probe_s, "rounds": args.rounds, "batch": args.batch})
    autotune.forget()
    return 0


if __name__ == "__main__":
    sys.exit(main())
