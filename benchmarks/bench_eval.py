"""The paper's test protocols (Sect. 3.2) on full-width VGG-16: vggkit's strategies vs a plain loop.

Contenders, same weights (torchvision's random init, seed 0), same rescaled
images (decoding excluded: both would share it):

* vggkit: ``build_strategy('dense' | 'multicrop')`` on the net as
  ``tools/test.py`` runs it (``evaluation.loop.compile_nets``: each output on
  the path 'auto' measured, bf16 weights cast once where the CPU computes
  bf16 natively; plain eager where this vggkit has no compiled evaluation),
  batch size ``--batch-size`` capped per pass by what memory allows
  (``inference.pass_cap.pass_cap``);
* vggkit's own fp32 dense path (the same with precision 'fp32'): the
  reference of the bf16 path's speed-up and of its agreement (top-1 and max
  posterior difference);
* plain torchvision, written as a competent user would: ``vgg16`` channels-last
  under ``torch.inference_mode()``; dense runs the image and its mirror as one
  batch through the features and the classifier turned into convolutions,
  multi-crop stacks the image's crops (normalised) into one batch.

A whole image at the paper's three scales costs minutes per path on the
2-core development machine (150 crops of 224×224 for multi-crop), so each
timed round evaluates one image at one Q, cycling through the scales
(``--rounds`` 6: two at each Q); multi-crop runs the 5×5 grid without flips
(25 crops, half the paper's 50: the flipped half costs the same again, crop
for crop). Rounds in rotated order after a warm-up of every shape; figures
are medians of the per-round ratio plain time ÷ vggkit time, with min-max.
The two must agree (max |posterior difference| of the warm-up: dense at
every Q, multi-crop at the first).

Per-pass crop cap: reported as vggkit derives and uses it
(``inference.pass_cap.pass_cap``, no copy here): half of the memory available
over one crop's activations, from the net's layer widths.

    python benchmarks/bench_eval.py [--rounds 6] [--batch-size 32]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (auto_said, command, cycle_medians, cycling, fmt_ratio,  # noqa: E402
                    headline, machine_header, make_jpegs, paired_rounds, torchvision_dense_head,
                    vgg16_pair, write_fragment)

from vggkit.evaluation.strategies import build_strategy, grid_offsets  # noqa: E402
from vggkit.inference.pass_cap import PassCap, pass_cap  # noqa: E402
from vggkit.inference.views import image_views  # noqa: E402


class PlainLoop:
    """A competent user's dense and multi-crop evaluation with torchvision's VGG-16."""

    def __init__(self, model, preprocess: dict, grid: int = 5, flip_crops: bool = False) -> None:
        self.model = model.to(memory_format=torch.channels_last)
        self.dense_head = torchvision_dense_head(model).to(memory_format=torch.channels_last)
        self.mean = torch.tensor(preprocess["mean"]).view(3, 1, 1)
        self.std = torch.tensor(preprocess["std"]).view(3, 1, 1)
        self.grid, self.flip_crops = grid, flip_crops

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def dense(self, img: torch.Tensor) -> torch.Tensor:
        x = self._norm(torch.stack([img, img.flip(-1)]))
        scores = self.dense_head(self.model.features(x)).mean((2, 3))
        return F.softmax(scores, 1).mean(0, keepdim=True)

    @torch.inference_mode()
    def multicrop(self, img: torch.Tensor, crop: int = 224) -> torch.Tensor:
        crops = [img[:, t:t + crop, l:l + crop] for t in grid_offsets(img.shape[1], crop, self.grid)
                 for l in grid_offsets(img.shape[2], crop, self.grid)]
        if self.flip_crops:
            crops += [c.flip(-1) for c in crops]
        return F.softmax(self.model(self._norm(torch.stack(crops))), 1).mean(0, keepdim=True)


def vggkit_net(model, preprocess: dict, scales: list[int], strategies: dict,
               precision: str = "auto"):
    """The net as ``tools/test.py`` runs it, and a description of its backends."""
    try:
        from vggkit.evaluation.loading import ModelEntry
        from vggkit.evaluation.loop import compile_nets
    except ImportError:
        return model, "eager (this vggkit evaluates eagerly)"
    entry = ModelEntry(model=model, preprocess=preprocess, scales=scales)
    compile_nets([entry], strategies, "auto", precision)
    choices = {o: f"{b} {p}" for o, (b, p) in getattr(entry.compiled, "choices", {}).items()}
    if len(set(choices.values())) == 1:
        return entry.net, f"auto → {next(iter(choices.values()))}"
    return entry.net, ", ".join(f"{o} auto → {c}" for o, c in choices.items()) or "eager"


def _crops(n: int | None) -> str:
    return "no cap" if n is None else f"{n} crop{'s' if n != 1 else ''}"


def cap_lines(cap: PassCap, batch_size: int) -> list[str]:
    """The report's section on the crops per pass vggkit used here."""
    if cap.source != "memory":
        return [f"vggkit's crops per pass: {_crops(cap.crops)} ({cap.source}), batch size "
                f"{batch_size}."]
    return [f"Derived on this machine by vggkit (`inference.pass_cap.pass_cap`): memory allows "
            f"**{_crops(cap.crops)} per pass** (half of {cap.available / 2**30:.1f} GiB "
            f"available over {cap.bytes_per_pixel * cap.crop ** 2 / 2**20:.1f} MiB of peak "
            f"activations per crop); with batch size {batch_size}: "
            f"{_crops(min(batch_size, cap.crops))} per pass."]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6,
                   help="paired timed rounds (default 6: two at each of the three Q)")
    p.add_argument("--scales", type=int, nargs="+", default=[256, 384, 512],
                   help="test scales Q, cycled over the rounds")
    p.add_argument("--batch-size", type=int, default=32,
                   help="vggkit's network inputs per pass before its CPU cap (tools/test.py's "
                        "default)")
    p.add_argument("--grid", type=int, default=5,
                   help="multi-crop grid per axis (the paper's 5; smaller for smoke tests)")
    p.add_argument("--flip-crops", action="store_true",
                   help="multi-crop with flips (the paper's 50 crops per Q; twice the time)")
    args = p.parse_args(argv)

    header = machine_header()
    tv, ours, preprocess = vgg16_pair()
    scales = list(args.scales)
    with tempfile.TemporaryDirectory() as tmp:
        img = Image.open(make_jpegs(tmp, 1)[0]).convert("RGB")
        views = image_views(img, scales)  # decoded and rescaled once: not timed
    ours_s = {"dense": build_strategy("dense", batch_size=args.batch_size),
              "multicrop": build_strategy("multicrop", batch_size=args.batch_size,
                                          flip=args.flip_crops, grid=args.grid)}
    start = time.perf_counter()
    (net, backends), said = auto_said(lambda: vggkit_net(ours, preprocess, scales, ours_s))
    setup_s = time.perf_counter() - start
    dense32 = {"dense": build_strategy("dense", batch_size=args.batch_size)}
    (net32, backends32), said32 = auto_said(lambda: vggkit_net(ours, preprocess, scales,
                                                               dense32, "fp32"))
    plain = PlainLoop(tv, preprocess, grid=args.grid, flip_crops=args.flip_crops)
    n_crops = args.grid ** 2 * (2 if args.flip_crops else 1)

    q_of = cycling(scales)

    def ours_fn(name):
        return lambda r: ours_s[name](net, {q: [views[q]] for q in q_of(r)}, q_of(r), preprocess)

    def plain_fn(name):
        method = getattr(plain, name)
        return lambda r: sum(method(views[q]) for q in q_of(r)) / len(q_of(r))

    def fp32_dense(r):
        return dense32["dense"](net32, {q: [views[q]] for q in q_of(r)}, q_of(r), preprocess)

    names = {"vggkit dense": ours_fn("dense"), "vggkit fp32 dense": fp32_dense,
             "plain dense": plain_fn("dense"),
             "vggkit multicrop": ours_fn("multicrop"), "plain multicrop": plain_fn("multicrop")}
    cap = pass_cap(net, "logits")
    # the warm-up sees every shape before timing: dense at every Q; crops are 224x224
    # at any Q, so multi-crop warms up at the first
    warm: dict[str, torch.Tensor] = {}
    rounds = paired_rounds(names, args.rounds, cycle=len(scales),
                           warmup={n: (lambda n=n: warm.setdefault(
                               n, names[n](-1 if "dense" in n else 0))) for n in names})
    t = rounds.times
    speed = {s: rounds.ratios(f"vggkit {s}")[f"plain {s}"] for s in ("dense", "multicrop")}
    speed["fp32 dense"] = rounds.ratios("vggkit dense")["vggkit fp32 dense"]
    diff = {s: float((warm[f"vggkit {s}"] - warm[f"plain {s}"]).abs().max())
            for s in ("dense", "multicrop")}
    diff["fp32 dense"] = float((warm["vggkit dense"] - warm["vggkit fp32 dense"]).abs().max())
    same_top1 = bool(torch.equal(warm["vggkit dense"].argmax(1),
                                 warm["vggkit fp32 dense"].argmax(1)))
    per_q = {n: cycle_medians(ts, scales) for n, ts in t.items()}
    cap_crops = min(args.batch_size, cap.crops or args.batch_size)
    lines = [
        f"## Evaluation strategies (Sect. 3.2), full-width VGG-16, Q = {scales}", "", header, "",
        f"Each timed round: one 500×375 image at one Q (cycling {scales}), {args.rounds} "
        "paired rounds in rotated order after a warm-up of every Q on every path; dense = the "
        f"image and its mirror through the fully-convolutional net; multi-crop = the "
        f"{args.grid}×{args.grid} grid of 224 crops"
        f"{' × 2 flips' if args.flip_crops else f' without flips ({n_crops} crops; the paper adds their mirrors: twice the time)'}. "
        "Speed-up = plain time ÷ vggkit time in the same round (>1: vggkit faster), median "
        "(min–max). Decoding excluded (shared).", "",
        f"vggkit: `build_strategy(...)` on the net as `tools/test.py` compiles it ({backends}; "
        f"setup incl. any probe {setup_s:.1f} s, not timed), batch size {args.batch_size}, "
        f"capped to {_crops(cap_crops)} per pass (vggkit's derived cap, below); vggkit fp32: "
        f"the dense strategy with precision 'fp32' ({backends32}). Plain: torchvision "
        f"vgg16 channels-last, inference_mode, dense image+mirror as one batch, all {n_crops} "
        "crops as one batch. 'auto' chose as it printed:", "",
        *[f"    {line}" for line in said + said32], "",
        "| strategy | path | " + " | ".join(f"median s at Q={q}" for q in scales)
        + " | vggkit speed-up | max abs posterior diff |",
        "|---|---|" + "---|" * len(scales) + "---|---|",
    ]
    for s in ("dense", "multicrop"):
        for who in ("vggkit", "vggkit fp32", "plain"):
            n = f"{who} {s}"
            if n not in per_q:
                continue
            vs = fmt_ratio(speed[s]) if who == "vggkit" else (
                f"{fmt_ratio(speed['fp32 dense'])} (auto over fp32)" if who == "vggkit fp32"
                else "—")
            shown = diff["fp32 dense"] if who == "vggkit fp32" else diff[s]
            lines.append(f"| {s} | {who} | " + " | ".join(f"{per_q[n][q]:.2f}" for q in scales)
                         + f" | {vs} | {shown:.1e} |")
    lines += ["", "Dense, vggkit auto against its own fp32 path: top-1 "
              f"{'the same' if same_top1 else 'DIFFERENT'} on the one image (at every Q of the "
              f"warm-up), max |posterior difference| {diff['fp32 dense']:.1e}."]
    sum_q = {n: sum(v.values()) for n, v in per_q.items()}
    mc_factor = 2 if not args.flip_crops else 1
    lines += [
        "", f"Per image at all {len(scales)} Q (sum of per-Q medians): dense "
        f"{sum_q['vggkit dense']:.1f} s (vggkit) / {sum_q['plain dense']:.1f} s (plain); the "
        f"multi-crop with flips ({2 * args.grid ** 2 * len(scales)} crops) "
        f"{mc_factor * sum_q['vggkit multicrop']:.0f} s / {mc_factor * sum_q['plain multicrop']:.0f} s"
        f"{f' (twice the measured {n_crops}-crop grid)' if mc_factor == 2 else ''}: multi-crop costs "
        f"{mc_factor * sum_q['vggkit multicrop'] / sum_q['vggkit dense']:.0f}× dense here.", "",
        "### Per-pass crop cap", "", *cap_lines(cap, args.batch_size), "",
        f"Command: `{command(argv)}`",
    ]
    path = f"build_strategy, {'CompiledNet ' if net is not ours else ''}{backends}"
    heads = [headline("eval dense: auto speed-up vs vggkit's own fp32 path", path,
                      speed["fp32 dense"], "× (>1: auto faster)"),
             headline("eval dense: speed-up vs plain torchvision loop", path, speed["dense"],
                      "× (>1: vggkit faster)"),
             headline(f"eval multi-crop, {n_crops} crops/Q: speed-up vs plain",
                      f"{path}, {_crops(cap_crops)}/pass", speed["multicrop"],
                      "× (>1: vggkit faster)")]
    write_fragment("eval", "\n".join(lines), {
        "headlines": heads, "times_s": t, "speedup": speed, "max_abs_diff": diff,
        "per_q_median_s": per_q, "pass_cap": dataclasses.asdict(cap),
        "cap_crops_vggkit": cap_crops,
        "backends": backends, "backends_fp32": backends32, "auto_said": said + said32,
        "same_top1_vs_fp32": same_top1,
        "setup_s": setup_s, "scales": scales, "rounds": args.rounds})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
