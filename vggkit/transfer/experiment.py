"""Linear-SVM transfer on stored features (Appendix B); the CLI is ``vggkit transfer``.

For each protocol split: C is chosen by stratified k-fold on the training
images (each fold holds out 20 %; the folds are dealt several times when the
images are few, :func:`vggkit.transfer.folds.fold_repeats`), the one-vs-rest
SVMs are retrained on the whole training part and scored on the test part
with the task's metric; the
oracle (the grid's best C on the test part, in hindsight) is reported beside
it, as a reference for the selection only: it has seen the test labels, so it
is biased upwards (:data:`ORACLE_NOTE`). Prints a table, writes the results
(with the splits) as JSON and a PNG (confusion matrix, or per-class AP bars).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vggkit.fileio import atomic_savefig
from vggkit.transfer.selection import DEFAULT_C_GRID, train_with_selection
from vggkit.transfer.task import ProtocolError, Split, TaskData, TransferTask

#: what the oracle figures are, in the results JSON ('oracle_note') and the printed table
ORACLE_NOTE = ("oracle: the grid's best C chosen on the test images, in hindsight; biased upwards "
               "(it has seen the test labels), so a reference for the C selection, not a result")


def run_transfer(features: np.ndarray, data: TaskData, task: TransferTask, *, n_splits: int | None = None,
                 seed: int = 0, C_grid: tuple[float, ...] = DEFAULT_C_GRID,
                 predictions_dir: str | None = None, n_folds: int | None = None,
                 oracle: bool = True, source: str = "the features") -> dict[str, Any]:
    """Run the task's protocol on ``features`` (rows aligned with ``data``); returns the results.

    Input that would give a number without meaning is refused first, naming
    ``source`` (e.g. the feature store): a non-finite feature row, or
    single-label images of fewer than 2 classes (100 % by construction).
    Splits that repeat an earlier one are kept, with a warning.

    Per split the record holds the chosen C and, under 'selection', the chosen
    C's test metric next to the oracle's (the grid's best C on the test images
    in hindsight; None when the test labels are withheld or ``oracle`` is
    False, which saves a pass over the C grid per split), the plateau C was
    chosen from and any edge-of-grid warning.
    """
    features = np.asarray(features, dtype=np.float32)
    _check_finite(features, data, source)
    splits = task.splits(data, n_splits, seed)
    labels = np.asarray(data.labels)
    n_classes = len(data.classes)
    _check_classes(labels, data, task, source)

    def score(s: np.ndarray, y: np.ndarray) -> float:
        return float(task.evaluate(s, y)[task.metric_name])

    runs = []
    for split in splits:
        res = train_with_selection(features[split.train], labels[split.train], score, C_grid=C_grid,
                                   seed=split.seed or seed, n_classes=n_classes, n_folds=n_folds,
                                   test=(features[split.test], labels[split.test]) if oracle else None)
        scores = res.model.decision_function(features[split.test])
        metrics = task.evaluate(scores, labels[split.test])
        written = task.write_predictions(data, split, scores, predictions_dir) if predictions_dir else []
        best = res.oracle_C
        runs.append({"split": split.to_dict(data), "C": res.C,
                     "selection": {"C": res.C, "test_metric": metrics[task.metric_name],
                                   "oracle_C": best,
                                   "oracle_test_metric": None if best is None else res.test_scores[best],
                                   "plateau": list(res.plateau), "edge": res.edge, "warning": res.warning},
                     "val_scores": {str(c): v for c, v in res.val_scores.items()},
                     "val_fold_scores": {str(c): v for c, v in res.fold_scores.items()},
                     "test_scores": {str(c): v for c, v in (res.test_scores or {}).items()},
                     "metrics": metrics, "prediction_files": written})
    values = np.array([r["metrics"][task.metric_name] for r in runs], dtype=np.float64)
    oracle_values = [r["selection"]["oracle_test_metric"] for r in runs]
    known = all(v is not None for v in oracle_values)
    return {"task": task.name, "metric": task.metric_name, "classes": data.classes,
            **_mean_std("", values),
            **({**_mean_std("oracle_", oracle_values), "oracle_note": ORACLE_NOTE} if known else {}),
            "per_split": [float(v) for v in values], "C_grid": sorted(float(c) for c in C_grid),
            "n_folds": res.n_folds if runs else None, "fold_repeats": res.n_repeats if runs else None,
            "warnings": [f"{r['split']['name']}: {r['selection']['warning']}" for r in runs
                         if r["selection"]["warning"]] + _repeated_splits(splits),
            "splits": runs}


def _check_finite(features: np.ndarray, data: TaskData, source: str) -> None:
    """Refuse NaN or inf in the features: the SVMs would score them as chance, silently."""
    # a float64 row sum is finite exactly when the float32 row is: no N x D boolean copy
    bad = np.flatnonzero(~np.isfinite(features.sum(axis=1, dtype=np.float64)))
    if bad.size:
        shown = ", ".join(repr(data.ids[i]) for i in bad[:3]) + (", ..." if bad.size > 3 else "")
        raise ValueError(f"{source}: {bad.size} of {len(features)} feature rows are not finite "
                         f"(NaN or inf), e.g. {shown}; extract the features again (check the "
                         "net's weights and those images)")


def _check_classes(labels: np.ndarray, data: TaskData, task: TransferTask, source: str) -> None:
    """Refuse single-label images of fewer than 2 classes: one class is 100 % whatever the SVM."""
    if labels.ndim != 1:
        return
    present = np.unique(labels)
    if len(present) < 2:
        names = ", ".join(repr(data.classes[int(c)]) for c in present) or "none"
        raise ProtocolError(f"task '{task.name}' needs images of at least 2 classes to train "
                            f"classifiers, but {source} has images of {len(present)} ({names}); "
                            "extract features of a folder with one sub-folder per class")


def _repeated_splits(splits: list[Split]) -> list[str]:
    """A warning per split with the same training and test images as an earlier one.

    Few images allow few different random splits; a repeat still gives a
    valid figure, but the mean counts it twice and the std understates the spread.
    """
    first: dict[tuple[bytes, bytes], str] = {}
    out = []
    for split in splits:
        key = (np.sort(split.train).tobytes(), np.sort(split.test).tobytes())
        if key in first:
            out.append(f"{split.name}: the same training and test images as {first[key]}; the "
                       "mean counts them twice and the std understates the spread (fewer --splits "
                       "or more images)")
        first.setdefault(key, split.name)
    return out


def _mean_std(prefix: str, values: Any) -> dict[str, float]:
    """``{prefix+'mean': …, prefix+'std': …}`` over splits (std 0 for one split)."""
    v = np.asarray(values, dtype=np.float64)
    return {f"{prefix}mean": float(np.mean(v)), f"{prefix}std": float(np.std(v)) if len(v) > 1 else 0.0}


def format_table(results: dict[str, Any], top: int = 10) -> str:
    """The printed table: metric and chosen C per split next to the oracle's, mean ± std, weakest classes."""
    m = results["metric"]
    lines = [f"task {results['task']}  metric {m} (%)",
             f"C chosen on {results.get('n_folds') or 1} held-out fold(s) of each split's training images"
             + (f", dealt {results['fold_repeats']} times" if (results.get("fold_repeats") or 1) > 1 else ""),
             *([ORACLE_NOTE] if "oracle_mean" in results else []),
             f"{'split':<16}{m:>20}{'C':>10}{'oracle C':>10}{'oracle ' + m:>{len(m) + 9}}"]
    width = len(m) + 9
    for r in results["splits"]:
        sel = r.get("selection") or {}
        known = sel.get("oracle_C") is not None
        oracle = f"{sel['oracle_C']:>10g}{sel['oracle_test_metric']:>{width}.2f}" if known else f"{'-':>10}{'-':>{width}}"
        flag = "  (grid edge)" if sel.get("edge") else ""
        lines.append(f"{r['split']['name']:<16}{r['metrics'][m]:>20.2f}{r['C']:>10g}{oracle}{flag}")
    mean = f"{'mean ± std':<16}{results['mean']:>13.2f} ± {results['std']:<4.2f}{'':>20}"
    if "oracle_mean" in results:
        mean += f"{results['oracle_mean']:>{width - 7}.2f} ± {results['oracle_std']:.2f}"
    lines.append(mean.rstrip())
    lines += [f"warning: {w}" for w in results.get("warnings", [])]
    per_class = np.nanmean([r["metrics"]["per_class"] for r in results["splits"]], axis=0)
    order = np.argsort(per_class)
    lines.append(f"per-class {m} (mean over splits), {min(top, len(order))} lowest:")
    lines += [f"  {results['classes'][k]:<30}{per_class[k]:8.2f}" for k in order[:top]]
    return "\n".join(lines)


def write_plot(results: dict[str, Any], path: str, multilabel: bool) -> None:
    """Confusion matrix (single-label, first split) or per-class AP bars (multi-label)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    classes = results["classes"]
    first = results["splits"][0]["metrics"]
    if multilabel:
        fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(classes)), 4))
        ax.bar(range(len(classes)), first["per_class"])
        ax.set_xticks(range(len(classes)), classes, rotation=90)
        ax.set_ylabel("AP (%)")
        ax.set_title(f"{results['task']}: mAP {results['mean']:.2f}")
    else:
        cm = np.asarray(first["confusion_matrix"], dtype=np.float64)
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(7, 6))
        im = ax.imshow(cm, cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, label="fraction of the true class")
        if len(classes) <= 30:
            ax.set_xticks(range(len(classes)), classes, rotation=90)
            ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{results['task']} {results['splits'][0]['split']['name']}: "
                     f"{results['metric']} {first[results['metric']]:.2f}")
    fig.tight_layout()
    try:
        atomic_savefig(path, fig, format="png", dpi=100)
    finally:
        plt.close(fig)
