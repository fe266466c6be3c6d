"""The recipe check's report: tests of the (d) nets, verdicts, markdown, curves, JSON."""
from __future__ import annotations

import io
import math
import os
from typing import Any, Mapping, Sequence

from vggkit.engine.recipe_check import analysis
from vggkit.errors import plural
from vggkit.engine.recipe_check.runs import (BY_NAME, CONFIG, LR_CUTS, RUNS, Run,
                                             final_checkpoint, instances, milestones, multi_q,
                                             run_key, single_q)

#: the nets of (d): the jittered one and the fixed-S ones it is compared with
JITTERED, FIXED = "A_jit", ("A", "A_S48")
#: the Q every (d) net is also tested at, whatever its S: the range the jittered net saw
COMMON_Q = (32, 48, 64)


#: what :func:`write_report` writes into its ``out`` folder
REPORT_FILES = ("recipe_check.md", "recipe_check.png", "recipe_check.json")


def d_settings(name: str, crop: int) -> dict[str, list[int]]:
    """The test-scale sets of net ``name``: Table 3's and 4's rules for its S, and common ones."""
    scale = BY_NAME[name].scale
    out = {"table3": [single_q(scale)], "table4": multi_q(scale, crop)}
    out.update({f"Q={q}": [q] for q in COMMON_Q})
    out["Q=" + ",".join(map(str, COMMON_Q))] = list(COMMON_Q)
    return out


def test_d_nets(work_dir: str, data_root: str, trained: Sequence[tuple[Run, int]], epochs: int,
                crop: int = 32) -> dict[str, list[dict[str, float]]]:
    """Dense top-1 error of every trained (d) net and seed at its test-scale sets (cached)."""
    from vggkit.fileio import atomic_write_json
    out: dict[str, list[dict[str, float]]] = {}
    for run, seed in [(r, s) for r, s in trained if r.name in (JITTERED, *FIXED)]:
        run_dir = os.path.join(work_dir, run_key(run, seed))
        path = os.path.join(run_dir, "test_scales.json")
        if os.path.exists(path):
            result = analysis.load_json(path)
        else:
            combos = d_settings(run.name, crop)
            scales = sorted({q for qs in combos.values() for q in qs})
            result = analysis.test_at_scales(os.path.join(run_dir, os.path.basename(CONFIG)),
                                             final_checkpoint(run_dir, epochs), data_root,
                                             scales, combos)
            atomic_write_json(path, result)
        out.setdefault(run.name, []).append(result)
    return out


def judge(summary: Mapping[str, Mapping[str, float]], tests: Mapping[str, Sequence[Mapping]],
          seeds: Sequence[int], chance: float) -> dict[str, dict[str, Any]]:
    """The verdict of each finding with its reason (from the figures only)."""
    first = seeds[0]
    a = [summary[f"A_s{s}"] for s in seeds]
    out = {}
    for key, (verdict, reason) in {
            "a": analysis.verdict_a(a, chance),
            "b": analysis.verdict_b(summary[f"E_random_s{first}"], summary[f"E_from_A_s{first}"],
                                    a, chance),
            "c": analysis.verdict_c(summary[f"E_glorot_s{first}"], chance)}.items():
        out[key] = {"verdict": verdict, "reason": reason}
    verdict, reason, rows = analysis.verdict_d(tests, JITTERED, [n for n in FIXED if n in tests])
    out["d"] = {"verdict": verdict, "reason": reason, "comparisons": rows}
    return out


def write_report(*, work_dir: str, out: str, data_root: str, classes: list[str],
                 seeds: list[int], trained: Sequence[tuple[Run, int]], budget: Mapping[str, Any],
                 steps_per_epoch: int, n_train: int, command: str, minutes: float
                 ) -> dict[str, Any]:
    """Test the (d) nets, judge, and write OUT/recipe_check.{md,png,json}; returns the figures."""
    from vggkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
    from vggkit.machine import machine_line
    epochs = int(budget["epochs"])
    chance = analysis.chance_error(len(classes))
    keys = [run_key(r, s) for r, s in trained]
    histories = {k: analysis.curves(os.path.join(work_dir, k), epochs) for k in keys}
    summary = {k: analysis.summarise(h, steps_per_epoch) for k, h in histories.items()}
    tests = test_d_nets(work_dir, data_root, trained, epochs)
    verdicts = judge(summary, tests, seeds, chance)
    figures = {"command": command, "data_root": data_root, "classes": classes, "n_train": n_train,
               "chance_top1_error": chance, "seeds": seeds, "budget": dict(budget),
               "steps_per_epoch": steps_per_epoch, "lr_milestones_epochs": milestones(epochs),
               "summary": summary, "tests": tests, "verdicts": verdicts,
               "left_out": [run_key(r, s) for r, s in instances(seeds) if (r, s) not in trained],
               "machine": machine_line(), "load_average_15min": os.getloadavg()[2],
               "cpu_count": os.cpu_count(), "minutes": round(minutes, 1)}
    figures["markdown"] = markdown(figures)
    os.makedirs(out, exist_ok=True)
    md, png, js = (os.path.join(out, name) for name in REPORT_FILES)
    atomic_write_text(md, figures["markdown"])
    atomic_write_bytes(png, render(histories, steps_per_epoch, seeds))
    atomic_write_json(js, {k: v for k, v in figures.items() if k != "markdown"})
    return figures


def _num(v: float, digits: int = 1) -> str:
    return "never" if isinstance(v, float) and math.isnan(v) else f"{v:.{digits}f}"


def markdown(f: Mapping[str, Any]) -> str:
    """The report as markdown, from the figures only."""
    b, s, seeds = f["budget"], f["summary"], f["seeds"]
    epochs, spe = int(b["epochs"]), f["steps_per_epoch"]
    shared = f["load_average_15min"] > (f["cpu_count"] or 1)
    probe = b.get("probe_seconds_per_step")
    lines = [
        "# Recipe check: the paper's Sect. 3.1 in miniature", "",
        f"Command: `{f['command']}`  ",
        f"Seeds: {', '.join(map(str, seeds))} for A, A_jit (the (d) comparison, and A for (a)); "
        f"{seeds[0]} for the others.  ",
        f"Machine: {f['machine']}. This invocation: {f['minutes']:.1f} min (runs already in the "
        f"work dir are reused); 15-min load average at the end {f['load_average_15min']:.1f}"
        + (" — **a shared machine**: its times say nothing of a quiet one." if shared else "."),
        "",
        f"Data: `{f['data_root']}`, {len(f['classes'])} classes, {f['n_train']} training images "
        f"(chance: {f['chance_top1_error']:.0f} % top-1 error). Budget: {plural(epochs, 'epoch', 'epochs')} = "
        f"{plural(epochs * spe, 'SGD step')} of 64 images per run ({b['source']}"
        + (f" of `{b['set_by']}`" if b.get("set_by") else "") + ")"
        + (f"; the timing probe measured {', '.join(f'{a} {t:.3f} s' for a, t in probe.items())} "
           f"per step with {plural(b.get('probe_threads', 1), 'thread')}, which fits "
           f"{plural(b.get('probe_epochs', epochs), 'epoch', 'epochs')} per run in {b['minutes']:g} min with "
           f"{b['jobs']} at a time" if probe else "") + ".",
        "",
        "Recipe (configs/recipe_check/vgg_paper_small.py): width 1/4, FC 512 with dropout 0.5, "
        "32-pixel crops; init N(0, σ_l²) with σ_l = 0.01·√(full-size fan-in / fan-in) and zero "
        "biases (`init='paper_scaled'`: conv1_1 0.01, a middle conv 0.02, fc6 0.14); SGD lr "
        "0.01 per step (not scaled down for the batch), momentum 0.9, weight decay 5e-4; lr ÷ 10 "
        f"after epochs {', '.join(map(str, f['lr_milestones_epochs']))} "
        f"({' and '.join(f'{x:.0%}' for x in LR_CUTS)} of the budget); the training set's own "
        "mean RGB subtracted in 0–255; PCA lighting from its own colour statistics; flips; "
        "S = 32 with 4-pixel padding unless said. Validation: centre crop at Q = S "
        "(the middle of [S_min, S_max] for a jittered S).",
        "",
        f"Steps are SGD steps at the end of the first epoch whose validation error is under the "
        f"mark (validation once per epoch: {plural(spe, 'step')}). *Learned*: final error at least "
        f"{analysis.LEARNED_BELOW_CHANCE:g} points under chance; *stalled*: never "
        f"{analysis.STALLED_WITHIN:g} points under it.",
        "", "## (a)–(c): initialisation (validation top-1 error %)", "",
        "| run | seed | what | steps to < 80 % | steps to < 50 % | epoch 1 | best | final |",
        "|---|---|---|---|---|---|---|---|"]
    for run, seed in instances(seeds, [r.name for r in RUNS if r.name not in (*FIXED[1:], JITTERED)]):
        r = s[run_key(run, seed)]
        lines.append(f"| {run.name} | {seed} | {run.what} | {_num(r['steps_under_80'], 0)} | "
                     f"{_num(r['steps_under_50'], 0)} | {_num(r['first'])} | {_num(r['best'])} | "
                     f"{_num(r['final'])} |")
    settings = list(d_settings(JITTERED, 32))
    lines += ["", "## (d): scale jittering against a fixed S (dense evaluation, top-1 error %)", "",
              "Table 3's rule tests one Q: Q = S for a fixed S, the middle of [S_min, S_max] for "
              "a jittered S. Table 4's averages several: {S − S/8, S, S + S/8} (never under the "
              "32-pixel crop) for a fixed S, {S_min, middle, S_max} for a jittered S. The other "
              "columns test every net at the same Q.", "",
              "| run | S | seed | " + " | ".join(map(_setting_title, settings)) + " |",
              "|---|---|---|" + "---|" * len(settings)]
    d_nets = [n for n in (*FIXED, JITTERED) if n in f["tests"]]
    for name in d_nets:
        run = BY_NAME[name]
        for seed, t in zip(seeds, f["tests"][name]):
            lines.append(f"| {name} | {_scale_text(run.scale)} | {seed} | " +
                         " | ".join(f"{t[k]:.1f}" for k in settings) + " |")
        if len(f["tests"][name]) > 1:
            mean = {k: sum(t[k] for t in f["tests"][name]) / len(f["tests"][name]) for k in settings}
            lines.append(f"| {name} | {_scale_text(run.scale)} | mean | " +
                         " | ".join(f"**{mean[k]:.1f}**" for k in settings) + " |")
    lines += ["", "Test scales of Table 3 / Table 4 per net: " + "; ".join(
        f"{n} {d_settings(n, 32)['table3']} / {d_settings(n, 32)['table4']}"
        for n in d_nets) + "."]
    if f.get("left_out"):
        lines += ["", f"Not trained in this invocation (left out with `--runs`): "
                  f"{', '.join(f['left_out'])}."]
    lines += ["", "## Verdicts", ""]
    titles = {"a": "A learns from random initialisation",
              "b": "deep E from random init is slower or stalls; initialising it from A fixes it",
              "c": "Glorot initialisation trains E without pre-training",
              "d": "scale jittering beats a fixed S (Tables 3 and 4)"}
    for k in "abcd":
        v = f["verdicts"][k]
        lines.append(f"- **({k}) {titles[k]}: {v['verdict']}.** {v['reason']}.")
    lines += ["", "Curves: `recipe_check.png` (validation error against SGD steps; training loss)."
              " Every figure: `recipe_check.json`."]
    return "\n".join(lines) + "\n"


def _setting_title(key: str) -> str:
    return {"table3": "Table 3 (one Q)", "table4": "Table 4 (several Q)"}.get(key, key)


def _scale_text(scale: Any) -> str:
    return str(scale) if isinstance(scale, int) else f"[{scale[0]}, {scale[1]}]"


def render(histories: Mapping[str, Mapping[str, list]], steps_per_epoch: int,
           seeds: Sequence[int]) -> bytes:
    """PNG: validation error against steps for (a)–(c) and for (d); training loss."""
    import torch
    from matplotlib.figure import Figure
    fig = Figure(figsize=(15, 4.2), dpi=100)
    ax_init, ax_scale, ax_loss = fig.subplots(1, 3)
    colours = {r.name: f"C{i}" for i, r in enumerate(RUNS)}
    for key, h in histories.items():
        name, seed = key.rsplit("_s", 1)
        style = "-" if int(seed) == seeds[0] else "--"
        steps = [e * steps_per_epoch for e in h.get("val_epoch", [])]
        for ax, members in ((ax_init, ("A", "E_random", "E_from_A", "E_glorot")),
                            (ax_scale, (*FIXED, JITTERED))):
            if name in members:
                ax.plot(steps, h.get("top1_error", []), style, marker="o", ms=3,
                        color=colours[name], label=key)
        loss = torch.tensor(h.get("loss", []), dtype=torch.float64)
        if len(loss) >= 50 and int(seed) == seeds[0]:  # the per-batch loss is noisy
            loss = loss.unfold(0, 50, 1).mean(1)
            ax_loss.plot(range(50, len(loss) + 50), loss.tolist(), lw=0.8, color=colours[name],
                         label=key)
    for ax, title in ((ax_init, "(a)–(c): validation top-1 error (%)"),
                      (ax_scale, "(d): validation top-1 error (%), Q = S or mid-S")):
        ax.set(title=title, xlabel="SGD step", ylim=(0, 100))
        ax.axhline(80, color="grey", lw=0.5, ls=":")
        ax.axhline(50, color="grey", lw=0.5, ls=":")
        ax.legend(fontsize=7)
    ax_loss.set(title="training loss (mean of 50 steps), first seed", xlabel="SGD step")
    ax_loss.legend(fontsize=7)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.12, wspace=0.18)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
