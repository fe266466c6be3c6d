"""Figures and verdicts of the recipe check: the curves of a run, its milestones, the
error of the (d) nets at the test scales of Tables 3 and 4, and the verdict rules."""
from __future__ import annotations

import glob
import json
import math
import os
import statistics
from typing import Any, Mapping, Sequence

#: the error milestones the report counts steps to (10 classes: chance is 90 %)
MILESTONES = (80.0, 50.0)
#: "learned": final error at least this far under chance (10 classes: under 80 %, the first
#: milestone); "stalled": never this far under it
LEARNED_BELOW_CHANCE, STALLED_WITHIN = 10.0, 5.0
#: two runs' final errors closer than this are "as good" (one seed: epoch-to-epoch noise)
FINAL_MARGIN = 2.0
#: the smallest difference of (d) counted as one: at least the seeds' spread, never under this
MIN_MARGIN = 1.0


def curves(run_dir: str, epochs: int) -> dict[str, list]:
    """The run's training loss (from the curves hook's copy in the final checkpoint) and its
    validation errors per epoch (from the runner's scalar logs: the final epoch's validation
    runs after its checkpoint is written, so the checkpoint's copy lacks it)."""
    from vggkit.safe_load import torch_load
    from vggkit.engine.recipe_check.runs import final_checkpoint
    history = dict(torch_load(final_checkpoint(run_dir, epochs)).get("meta", {}).get(
        "vggkit_curves") or {})
    by_epoch: dict[int, tuple[float, float]] = {}
    # one folder per (re)start, named by its start time: later ones win
    for path in sorted(glob.glob(os.path.join(run_dir, "*", "vis_data", "scalars.json"))):
        with open(path) as f:
            for row in map(json.loads, filter(str.strip, f)):
                if "top1_error" in row:
                    by_epoch[int(row["step"])] = (row["top1_error"], row.get("top5_error", math.nan))
    if by_epoch:
        epochs_seen = sorted(by_epoch)
        history.update(val_epoch=epochs_seen, top1_error=[by_epoch[e][0] for e in epochs_seen],
                       top5_error=[by_epoch[e][1] for e in epochs_seen])
    return history


def summarise(history: Mapping[str, list], steps_per_epoch: int) -> dict[str, float]:
    """First, best and final validation top-1 error, and the SGD steps after which the error
    was first under each of :data:`MILESTONES` (nan: never within the budget)."""
    errs = list(history.get("top1_error") or [math.nan])
    epochs = list(history.get("val_epoch") or [math.nan])
    out = {"first": errs[0], "best": min(errs), "final": errs[-1]}
    for m in MILESTONES:
        under = [e for e, v in zip(epochs, errs) if v < m]
        out[f"steps_under_{m:g}"] = under[0] * steps_per_epoch if under else math.nan
    return out


def learned(s: Mapping[str, float], chance: float) -> bool:
    return s["final"] <= chance - LEARNED_BELOW_CHANCE


def stalled(s: Mapping[str, float], chance: float) -> bool:
    return s["best"] >= chance - STALLED_WITHIN


def _steps(s: Mapping[str, float]) -> float:
    """Steps to the first milestone, infinite when never reached (so 'never' is slowest)."""
    v = s[f"steps_under_{MILESTONES[0]:g}"]
    return math.inf if math.isnan(v) else v


def _mean(values: Sequence[Mapping[str, float]], key: str = "final") -> float:
    return statistics.fmean(v[key] for v in values)


def verdict_a(a: Sequence[Mapping[str, float]], chance: float) -> tuple[str, str]:
    """(a): every seed of A learns. ``a``: one summary per seed."""
    finals = ", ".join(f"{s['final']:.1f}" for s in a)
    if all(learned(s, chance) for s in a):
        return "reproduced", f"A's final error {finals} % is at least {LEARNED_BELOW_CHANCE:g} " \
            f"points under chance ({chance:.0f} %)"
    if any(stalled(s, chance) for s in a):
        return "not reproduced", f"A stayed within {STALLED_WITHIN:g} points of chance " \
            f"({chance:.0f} %) in a seed: final {finals} %"
    return "inconclusive", f"A left chance but ended at {finals} %, less than " \
        f"{LEARNED_BELOW_CHANCE:g} points under it: the budget is too short to tell"


def verdict_b(random: Mapping[str, float], from_a: Mapping[str, float],
              a: Sequence[Mapping[str, float]], chance: float) -> tuple[str, str]:
    """(b): E from random init is slower than (or stalls where) E from A learns."""
    if not learned(a[0], chance):
        return "inconclusive", "A, which E_from_A starts from, did not learn"
    figures = (f"E_random: final {random['final']:.1f} %, steps to < {MILESTONES[0]:g} % "
               f"{_fmt_steps(random)}; E_from_A: final {from_a['final']:.1f} %, "
               f"{_fmt_steps(from_a)}")
    slower = _steps(random) > _steps(from_a) or random["final"] > from_a["final"] + FINAL_MARGIN
    if learned(from_a, chance):
        if slower:
            how = "stalls" if stalled(random, chance) else "is slower"
            return "reproduced", f"E from random init {how} and E from A learns ({figures})"
        return "not reproduced", f"E from random init learns as fast as from A ({figures})"
    if stalled(from_a, chance):
        random_did = "stalls as well" if stalled(random, chance) else "does leave chance"
        return "not reproduced", f"initialising E from A did not take it off chance within " \
            f"the budget, and E from random init {random_did} ({figures})"
    return "inconclusive", f"E from A left chance but did not learn within the budget " \
        f"({figures})"


def verdict_c(glorot: Mapping[str, float], chance: float) -> tuple[str, str]:
    """(c): Glorot E learns without pre-training."""
    figure = f"final {glorot['final']:.1f} %, steps to < {MILESTONES[0]:g} % {_fmt_steps(glorot)}"
    if learned(glorot, chance):
        return "reproduced", f"Glorot E learns: {figure}"
    if stalled(glorot, chance):
        return "not reproduced", f"Glorot E stayed at chance: {figure}"
    return "inconclusive", f"Glorot E left chance but did not get {LEARNED_BELOW_CHANCE:g} " \
        f"points under it: {figure}"


def _fmt_steps(s: Mapping[str, float]) -> str:
    v = s[f"steps_under_{MILESTONES[0]:g}"]
    return "never" if math.isnan(v) else f"{v:.0f}"


def verdict_d(tests: Mapping[str, Sequence[Mapping[str, float]]], jittered: str,
              fixed: Sequence[str], settings: Sequence[str] = ("table3", "table4")
              ) -> tuple[str, str, dict[str, Any]]:
    """(d): the jittered net beats every fixed-S net at Table 3's and Table 4's test scales.

    ``tests[run]``: one ``{setting: top-1 error}`` per seed. A difference of seed means
    counts when it exceeds the margin: the largest seed-to-seed difference of any net at
    that setting, at least :data:`MIN_MARGIN`. Reproduced: jittering wins every
    comparison; not reproduced: it loses one; inconclusive: otherwise (within the noise).
    """
    rows, wins, losses = {}, 0, 0
    for setting in settings:
        spreads = [max(t[setting] for t in ts) - min(t[setting] for t in ts)
                   for ts in tests.values() if len(ts) > 1]
        margin = max([MIN_MARGIN, *spreads])
        jit = statistics.fmean(t[setting] for t in tests[jittered])
        for name in fixed:
            other = statistics.fmean(t[setting] for t in tests[name])
            gain = other - jit
            outcome = "win" if gain > margin else "loss" if -gain > margin else "tie"
            wins, losses = wins + (outcome == "win"), losses + (outcome == "loss")
            rows[f"{setting}:{name}"] = {"jittered": jit, "fixed": other, "margin": margin,
                                         "outcome": outcome}
    total = len(rows)
    measured = any(len(ts) > 1 for ts in tests.values())
    margin_is = ("the largest seed-to-seed difference, at least " if measured else
                 "one seed per net, so no measured spread: the floor of ") + f"{MIN_MARGIN:g} point"
    said = "; ".join(f"{k}: {v['jittered']:.1f} vs {v['fixed']:.1f} % ({v['outcome']}, margin "
                     f"{v['margin']:.1f})" for k, v in rows.items())
    if wins == total:
        return "reproduced", f"jittered S beats every fixed S at every test setting by more " \
            f"than the margin ({margin_is}) ({said})", rows
    if losses:
        return "not reproduced", f"jittered S is worse than a fixed S by more than the margin " \
            f"({margin_is}) in {losses} of {total} comparisons ({said})", rows
    return "inconclusive", f"jittered S wins {wins} of {total} comparisons, the rest within " \
        f"the margin ({margin_is}) ({said})", rows


def test_at_scales(config: str, checkpoint: str, data_root: str, scales: Sequence[int],
                   combos: Mapping[str, Sequence[int]], strategy: str = "dense"
                   ) -> dict[str, float]:
    """Top-1 error of ``strategy`` for each named set of test scales in ``combos``.

    The evaluation library of ``vggkit test``: the net runs once per Q of ``scales``;
    a set of Q averages those posteriors, as ``vggkit test --scales`` does.
    """
    import numpy as np

    from vggkit.evaluation import build_strategy, errors, evaluate, load_model, load_test_set
    from vggkit.evaluation.loop import result_key
    entries = [load_model(config, checkpoint, "cpu", [q], config) for q in scales]
    test_set = load_test_set(config_of(config), data_root, config)
    strategies = {strategy: build_strategy(strategy, batch_size=64, pass_crops=64)}
    merged, _ = evaluate(entries, strategies, test_set.paths, images_per_batch=64, workers=0,
                         progress=False)
    by_q = {q: merged[result_key(i, strategy)] for i, q in enumerate(scales)}
    return {name: float(errors(np.mean([by_q[q] for q in qs], 0), test_set.labels)["top1_error"])
            for name, qs in combos.items()}


def config_of(path: str) -> Any:
    from mmengine.config import Config
    return Config.fromfile(path)


def chance_error(num_classes: int) -> float:
    """Top-1 error of guessing, in %."""
    return 100.0 * (1 - 1 / num_classes)




def load_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)
