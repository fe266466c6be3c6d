"""Benchmark: vggkit's joint one-vs-rest SVM against scikit-learn's LinearSVC.

A Caltech-101-sized problem (Appendix B): 102 classes, 15 training images per
class (Caltech-101's smaller standard setting, 1,530 × 4,096 features; the
paper's 30 with ``--train-per-class 30`` doubles LinearSVC's time), 50 test
images per class, C chosen on held-out training images, then retrained on all. Both sides run the
same protocol (same held-out fold, same C grid, same rule ``selection.choose_C``,
same metric: mean class recall); LinearSVC uses its default settings.

LinearSVC takes 10-30 s a fit of 3,060 images here, so the default grid is
the one C both sides picked in earlier wider searches (C = 1): each round is a
held-out fit, its score and the retraining on all images. ``--C-grid`` and ``--folds`` widen
the search (vggkit's warm starts along the grid make more C cheap for it, not
for LinearSVC: a wider grid favours vggkit more).

Features are synthesised like fc7 descriptors (non-negative, sparse after a
ReLU, clustered by class, L2-normalised); no real Caltech features are on
this machine. After a warm-up on a tenth of the data, ``--rounds`` paired
rounds in rotated order; the figure is the median of the per-round ratio
LinearSVC time ÷ vggkit time, with min-max.

    python benchmarks/bench_svm.py [--rounds 5] [--C-grid 1] [--folds 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MIN_ROUNDS, command, fmt_ratio, headline, machine_header,  # noqa: E402
                    paired_rounds, write_fragment)

#: the C grid of the timed comparison: the C both sides chose in a 4-value search
#: (0.01..10); one LinearSVC fit per fold plus the retraining keeps a round near 30 s
COMPARISON_GRID = (1.0,)


def synth_features(n_classes: int = 102, dim: int = 4096, n_train: int = 30, n_test: int = 50,
                   separation: float = 0.18, seed: int = 0) -> tuple[np.ndarray, ...]:
    """fc7-like features: ReLU(shared + class prototype + noise), L2-normalised."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0.0, 1.0, dim)
    protos = rng.normal(0.0, 1.0, (n_classes, dim))

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), per_class)
        z = shared + separation * protos[y] + rng.normal(0.0, 1.0, (len(y), dim))
        x = np.maximum(z - 1.0, 0.0).astype(np.float32)  # ReLU with ~25% non-zeros
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
        return x, y

    return (*draw(n_train), *draw(n_test))


def mcr(scores: np.ndarray, labels: np.ndarray) -> float:
    from vggkit.transfer.metrics import confusion_matrix, mean_class_recall
    return mean_class_recall(confusion_matrix(scores.argmax(1), labels, scores.shape[1]))


def run_sklearn(Xtr, ytr, Xte, yte, grid, seed, n_folds=1) -> tuple[float, float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC
    from vggkit.transfer.folds import selection_folds
    from vggkit.transfer.selection import choose_C
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = {C: [] for C in grid}
        for fit, val in selection_folds(ytr, n_folds, seed=seed):
            for C in grid:
                scores[C].append(mcr(LinearSVC(C=C).fit(Xtr[fit], ytr[fit]).decision_function(Xtr[val]), ytr[val]))
        best, _ = choose_C(scores)
        model = LinearSVC(C=best).fit(Xtr, ytr)
    elapsed = time.perf_counter() - t
    return elapsed, mcr(model.decision_function(Xte), yte), best


def run_vggkit(Xtr, ytr, Xte, yte, grid, seed, n_folds=1) -> tuple[float, float, float]:
    from vggkit.transfer.selection import CGridEdgeWarning, train_with_selection
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CGridEdgeWarning)  # the chosen C is in the table
        res = train_with_selection(Xtr, ytr, mcr, C_grid=grid, seed=seed, n_folds=n_folds)
    elapsed = time.perf_counter() - t
    return elapsed, mcr(res.model.decision_function(Xte), yte), res.C


def _sk_version() -> str:
    import sklearn
    return sklearn.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="paired timed rounds")
    parser.add_argument("--classes", type=int, default=102, help="number of classes (102 = Caltech-101)")
    parser.add_argument("--train-per-class", type=int, default=15,
                        help="training images per class (Caltech-101: 15 or 30)")
    parser.add_argument("--dim", type=int, default=4096, help="feature dimension")
    parser.add_argument("--separation", type=float, default=0.18,
                        help="class separation of the synthetic features (0.18: ~90%% recall, as VGG on Caltech-101)")
    parser.add_argument("--C-grid", type=float, nargs="+", default=list(COMPARISON_GRID),
                        help="C values searched by both sides")
    parser.add_argument("--folds", type=int, default=1,
                        help="held-out folds both sides choose C on (1: a single 20%% hold-out)")
    args = parser.parse_args(argv)
    grid = tuple(args.C_grid)
    header = machine_header()
    Xtr, ytr, Xte, yte = synth_features(args.classes, args.dim, args.train_per_class,
                                        separation=args.separation)
    small = slice(0, None, 10)  # warm-up on a tenth of the data: imports, BLAS threads
    sk = f"scikit-learn {_sk_version()} LinearSVC (defaults, OvR)"
    vg = "vggkit selection.train_with_selection (joint kernel Newton)"
    rounds = paired_rounds(
        {sk: lambda r: run_sklearn(*((Xtr[small], ytr[small]) if r < 0 else (Xtr, ytr)), Xte, yte,
                                   grid[:1] if r < 0 else grid, 0, args.folds),
         vg: lambda r: run_vggkit(*((Xtr[small], ytr[small]) if r < 0 else (Xtr, ytr)), Xte, yte,
                                  grid[:1] if r < 0 else grid, 0, args.folds)},
        args.rounds)
    speed = rounds.ratios(vg)[sk]
    med = rounds.median()
    (_, sk_metric, sk_C), (_, vg_metric, vg_C) = rounds.outputs[sk], rounds.outputs[vg]
    diff = vg_metric - sk_metric
    search = "one 20% hold-out" if args.folds == 1 else f"{args.folds} folds"
    lines = [
        "## Linear SVM transfer (Caltech-101 size, C selection included)", "", header,
        f"numpy {np.__version__}.", "",
        f"{len(ytr)} × {Xtr.shape[1]} training features, {args.classes} classes, {len(yte)} test "
        f"images; synthetic fc7-like features (separation {args.separation}); C grid {list(grid)} "
        f"on {search}, then retrained on all. {args.rounds} paired rounds in rotated order after "
        "a warm-up on a tenth of the data; speed-up = LinearSVC time ÷ vggkit time in the same "
        "round, median (min–max).", "",
        "| solver | median s/round (min–max) | mean class recall (%) | chosen C |",
        "| --- | --- | ---: | ---: |",
        f"| {sk} | {med[sk]:.2f} ({min(rounds.times[sk]):.2f}–{max(rounds.times[sk]):.2f}) | "
        f"{sk_metric:.2f} | {sk_C:g} |",
        f"| {vg} | {med[vg]:.2f} ({min(rounds.times[vg]):.2f}–{max(rounds.times[vg]):.2f}) | "
        f"{vg_metric:.2f} | {vg_C:g} |", "",
        f"vggkit speed-up: **{fmt_ratio(speed)}** at a metric difference of {diff:+.2f} points.",
        "", f"Command: `{command(argv)}`",
    ]
    heads = [headline(f"SVM {len(ytr)}×{Xtr.shape[1]}, C grid {list(grid)}: speed-up vs "
                      "LinearSVC", "selection.train_with_selection", speed,
                      f"× (>1: vggkit faster; recall {diff:+.2f} pt)")]
    write_fragment("svm", "\n".join(lines), {
        "headlines": heads, "times_s": rounds.times, "speedup": speed,
        "metric": {"sklearn": sk_metric, "vggkit": vg_metric},
        "chosen_C": {"sklearn": sk_C, "vggkit": vg_C}, "grid": list(grid), "folds": args.folds})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
