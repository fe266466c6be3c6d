"""VGG-16 (D, full width) inference at 224, all cores: vggkit 'auto' vs the paths a user picks.

Side by side in one process, after a warm-up, ``--rounds`` paired rounds in
rotated order, batch ``--batch``:

* torchvision ``vgg16`` eager fp32 under ``torch.inference_mode()`` (the reference);
* the same, channels-last (model and input);
* ONNX Runtime on torchvision's own exported graph, default session options;
* on a CPU with native bf16 (AVX-512 BF16 or AMX; ``--bf16`` forces them
  elsewhere, where bf16 is emulated and slow): torchvision with its weights
  cast to bf16 once (``model.to(torch.bfloat16)``), channels-last, and the
  same under ``torch.compile`` (inductor, ``freezing=True``) where a C++
  compiler is present -- what a user at the machine's limit writes;
* vggkit ``compile_for_inference(model, 'logits', 'auto', batch=B)`` -- the
  path the autotuner measured fastest here (its probe runs first, into a fresh
  cache file; its printed choice and figures are recorded);
* vggkit ``compile_for_inference(model, 'logits', 'compile')`` where a compiler is present.

Reported: per path, its time over torchvision eager's and over ORT's of the
same round, median with min-max, and its cosine with torchvision eager's
logits; the machine's limit (2048² matmul GFLOP/s in fp32 and bf16, and the
VGG-16 images/s they bound at 30.9 GFLOP per image). Weights are random
(nothing is downloaded); the same weights are loaded into every model.

    python benchmarks/bench_inference.py [--rounds 5] [--batch 8] [--bf16]
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MIN_ROUNDS, auto_said, command, cpu_flags, fmt_ratio, headline,  # noqa: E402
                    inverse, machine_header, matmul_limit, native_bf16, paired_rounds,
                    vgg16_pair, write_fragment)

from vggkit.inference import autotune  # noqa: E402
from vggkit.inference.backends import compiler_available  # noqa: E402
from vggkit.inference.runners import compile_for_inference  # noqa: E402


def user_bf16(reference: torch.nn.Module, x: torch.Tensor, compiled: bool) -> tuple:
    """What a user at the bf16 limit writes: weights cast once, channels-last, inference
    mode; or that under ``torch.compile`` (inductor, frozen weights). The path, its input,
    and the seconds its first call took (the compilation)."""
    model = copy.deepcopy(reference).to(torch.bfloat16).to(memory_format=torch.channels_last)
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    if compiled:
        model.requires_grad_(False)
        net = torch.compile(model, options={"freezing": True})

        def run(_r):
            with torch.no_grad():
                return net(xb)
    else:
        def run(_r):
            with torch.inference_mode():
                return model(xb)
    start = time.perf_counter()
    run(-1)
    return run, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="paired timed rounds")
    parser.add_argument("--batch", type=int, default=8, help="images per forward pass")
    parser.add_argument("--bf16", action="store_true",
                        help="the bf16 rows even without native bf16 (emulated: slow)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import onnxruntime as ort

    header = machine_header()
    bf16_rows, compiler = native_bf16() or args.bf16, compiler_available(torch.device("cpu"))
    limit = matmul_limit()
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
    auto, said = auto_said(lambda: compile_for_inference(ours, "logits", "auto", cache=cache,
                                                         batch=args.batch))
    probe_s = time.perf_counter() - start
    picked = autotune.choose("auto", "auto", "cpu", models=[ours], cache=cache,
                             batch=args.batch)  # the same key: read back, not probed
    picked = " ".join(picked)

    def tv_eager(_r):
        with torch.inference_mode():
            return reference(x)

    def tv_cl(_r):
        with torch.inference_mode():
            return cl_model(x_cl)

    vg = f"vggkit auto ({picked})"
    fns = {"torchvision eager fp32": tv_eager,
           "torchvision eager fp32 channels_last": tv_cl,
           "ONNX Runtime (torchvision graph)": lambda _r: session.run(None, {"x": x.numpy()})[0]}
    setup = {vg: probe_s}
    tv_bf16 = "torchvision, weights cast to bf16 once, channels_last"
    if bf16_rows:
        fns[tv_bf16], setup[tv_bf16] = user_bf16(reference, x, compiled=False)
        if compiler:
            name = "torchvision bf16 channels_last, torch.compile (inductor, freezing)"
            fns[name], setup[name] = user_bf16(reference, x, compiled=True)
    fns[vg] = lambda _r: auto(x)
    if compiler:
        precision = "bf16" if bf16_rows else "fp32"
        name = f"vggkit compile {precision}"
        start = time.perf_counter()
        compiled = compile_for_inference(ours, "logits", "compile", precision=precision,
                                         batch=args.batch)
        setup[name] = time.perf_counter() - start
        fns[name] = lambda _r: compiled(x)
    names = list(fns)
    rounds = paired_rounds(fns, args.rounds)
    vs_tv, vs_ort, med = rounds.ratios(names[0]), rounds.ratios(names[2]), rounds.median()
    ref_out = torch.as_tensor(rounds.outputs[names[0]]).float()
    cosine = {n: F.cosine_similarity(torch.as_tensor(o).float(), ref_out).min().item()
              for n, o in rounds.outputs.items()}

    lines = [
        f"## VGG-16 inference, 224×224, batch {args.batch}, all cores", "", header, "",
        f"{args.rounds} paired rounds after a warm-up, rotated order; ratios are time over "
        "the reference's time in the same round (lower is faster): median (min–max). Cosine: "
        "the lowest over the batch against torchvision eager fp32's logits.", "",
        "| path | median ms/batch | images/s | time ÷ torchvision eager | time ÷ ORT | cosine |",
        "|---|---|---|---|---|---|",
    ]
    for n in names:
        cells = ["1 (reference)" if n == base else fmt_ratio(r[n], 3)
                 for base, r in ((names[0], vs_tv), (names[2], vs_ort))]
        lines.append(f"| {n} | {med[n] * 1e3:.0f} | {args.batch / med[n]:.2f} | "
                     f"{cells[0]} | {cells[1]} | {cosine[n]:.5f} |")
    lines += [
        "", (f"The machine's limit: a 2048² matmul runs at {limit['bf16_gflops']:.0f} GFLOP/s "
             f"in bf16 and {limit['fp32_gflops']:.0f} in fp32, so VGG-16 (30.9 GFLOP per image) "
             f"is bound at {limit['bf16_vgg16_img_per_s']:.1f} images/s in bf16 and "
             f"{limit['fp32_vgg16_img_per_s']:.1f} in fp32."
             if bf16_rows else  # emulated bf16 is no limit of the machine's
             f"The machine's limit: a 2048² matmul runs at {limit['fp32_gflops']:.0f} GFLOP/s in "
             f"fp32, so VGG-16 (30.9 GFLOP per image) is bound at "
             f"{limit['fp32_vgg16_img_per_s']:.1f} images/s.")
        + f" CPU flags: {' '.join(cpu_flags())}.",
        "", f"vggkit auto (probe at batch {autotune.probe_batch(args.batch)}, 224; took "
        f"{probe_s:.1f} s incl. exports, not timed) picked **{picked}**, as it printed:", "",
        *[f"    {line}" for line in said], "",
        "Set-up of the other paths (not timed; compile: once per process): "
        + ", ".join(f"{n} {s:.1f} s" for n, s in setup.items() if n != vg) + "."
        if len(setup) > 1 else "",
        "" if bf16_rows else "bf16 rows not run: this CPU has no native bf16 (they need "
        "AVX-512 BF16 or AMX; `--bf16` runs them emulated).",
        "", f"Command: `{command(argv)}`", "",
    ]
    path = f"compile_for_inference auto → {picked}, batch {args.batch}"
    heads = [headline("inference 224: speed-up vs torchvision eager", path,
                      inverse(vs_tv[vg]), "× (>1: vggkit faster)"),
             headline("inference 224: speed-up vs ONNX Runtime", path,
                      inverse(vs_ort[vg]), "× (>1: vggkit faster)")]
    if bf16_rows:
        heads.append(headline("inference 224: speed-up vs torchvision bf16 cast once", path,
                              inverse(rounds.ratios(tv_bf16)[vg]),
                              "× (parity: vggkit at the bf16 limit)"))
    write_fragment("inference", "\n".join(lines), {
        "headlines": heads, "median_s": med, "times_s": rounds.times, "cosine": cosine,
        "ratio_vs_torchvision_eager": vs_tv, "ratio_vs_ort": vs_ort,
        "auto": {"picked": picked, "said": said, "probe_s": probe_s,
                 "record": next(iter(autotune._read(cache)[autotune.ENTRIES].values()))},
        "setup_s": setup, "limit": limit, "rounds": args.rounds, "batch": args.batch})
    autotune.forget()
    return 0


if __name__ == "__main__":
    sys.exit(main())
