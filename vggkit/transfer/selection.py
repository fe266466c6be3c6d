"""Choosing the SVMs' C on held-out folds of the training images, and the retraining at it.

The solvers are :mod:`vggkit.transfer.svm`'s; the folds, :mod:`vggkit.transfer.folds`'s.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from vggkit.transfer.folds import fold_repeats, selection_folds
from vggkit.transfer.svm import LinearOVR, _kernel_newton, fit_ovr, ovr_targets

#: 10^-3 .. 10^3 in half decades (3 significant digits): wide enough that the
#: few-shot optimum (often C ≥ 10 on L2-normalised features) is inside it
DEFAULT_C_GRID: tuple[float, ...] = tuple(float(f"{10.0 ** (e / 2):.3g}") for e in range(-6, 7))


#: Newton steps a fit of the C search may take. The held-out metric needs the
#: ranking of the classes, which settles long before the last digits of the
#: weights: on the Caltech-101-sized benchmark, 5 steps at C = 316 and 1,000
#: changed no held-out prediction, where the tolerance alone took 15 and 50+.
_SEARCH_MAX_NEWTON = 10


class CGridEdgeWarning(UserWarning):
    """The chosen C is the smallest or largest of the grid: the best may lie beyond it."""


@dataclass
class SelectionResult:
    """Outcome of :func:`train_with_selection`.

    Attributes:
        model: the SVMs retrained on all the training images at ``C``.
        C: the chosen regularisation constant.
        val_scores: per C, the held-out metric averaged over the folds (as measured;
            C was chosen on these smoothed over C, :func:`smooth_over_C`).
        fold_scores: per C, the held-out metric of each fold.
        plateau: the grid values whose smoothed mean ties the best exactly, C their centre
            from the best upwards (:func:`choose_C` with ``within_noise=False``).
        edge: 'low' or 'high' when ``C`` is the grid's smallest or largest value, else None.
        warning: the :class:`CGridEdgeWarning` message when ``edge`` is set, else None.
        test_scores: per C, the metric on the test images of the SVMs trained on all
            the training images (only when ``test`` was given; the oracle in hindsight).
        n_repeats: how many times the folds were dealt (:func:`selection_folds`);
            ``fold_scores`` holds ``n_folds`` scores per deal, deal after deal.
    """

    model: LinearOVR
    C: float
    val_scores: dict[float, float]
    fold_scores: dict[float, list[float]] = field(default_factory=dict)
    plateau: tuple[float, ...] = ()
    edge: str | None = None
    warning: str | None = None
    test_scores: dict[float, float] | None = None
    n_repeats: int = 1

    @property
    def n_folds(self) -> int:
        """How many held-out folds one deal has (each C was scored on ``n_folds × n_repeats``)."""
        return len(next(iter(self.fold_scores.values()), [])) // max(self.n_repeats, 1)

    @property
    def oracle_C(self) -> float | None:
        """The C with the best test metric in hindsight (ties: the smaller), or None."""
        finite = {c: v for c, v in (self.test_scores or {}).items() if np.isfinite(v)}
        return max(finite, key=lambda c: (finite[c], -c)) if finite else None


def choose_C(scores: Mapping[float, float | Sequence[float]], *,
             within_noise: bool = True) -> tuple[float, tuple[float, ...]]:
    """The C to retrain with, and the plateau of near-ties it was chosen from.

    The plateau is the contiguous run of grid values around the best mean
    held-out score whose mean is within the fold noise of the best: C is in
    it when its mean falls short of the best by no more than the standard
    error of its per-fold differences to the best (paired: both saw the same
    folds); with one value per C, only exact ties. The chosen C is the centre
    of the plateau's part from the best C upwards (the larger middle value
    when that part has an even number of values, but not the grid's last
    value when a smaller one is on offer: a plateau there goes on beyond the
    grid, so its end is no better than its inside).

    Why ties and near-ties go up, to a centre: with a few held-out images per
    class the metric moves in big steps and many C tie. The smallest tied C
    is where the SVMs begin to underfit (issue 10: with 2 held-out images per
    class every split chose C = 0.01, 54 % test recall against 72 % at
    C = 10), and the test metric falls steeply below the best C but slowly
    above it (few images in many dimensions are separable, and past the
    separating C the SVMs tend to the hard-margin ones), so under noise an
    error upwards costs less. The centre rather than the top keeps C away
    from where the plateau ends, which the noise places least reliably.
    Measured on five few-shot feature sets (5, 10, 20 training images per
    class, 30-50 random splits each), this rule lost 0.8-1.8 points of test
    recall on average against the best C in hindsight; the plateau's plain
    centre lost 0.9-2.2 and the smallest tied C 1.1-2.6.

    :func:`train_with_selection` no longer goes up a noise plateau
    (``within_noise=False``): it smooths the fold scores over C and deals the
    folds several times instead. On CIFAR-10 features at 30 images per class
    (docs/transfer_cifar.md) the test curves fell as steeply above their peak
    as below it, so a step up from the best smoothed C lands where the test
    curve has already fallen.

    Args:
        scores: per C, the held-out metric (higher is better): one value, or
            one per fold (the same folds for every C). Folds where some C
            scored NaN are left out.
        within_noise: False makes the plateau the exact ties of the best mean
            only, as with one value per C.

    Returns:
        The chosen C and the plateau (ascending).
    """
    grid = sorted(scores)
    A = np.array([np.atleast_1d(np.asarray(scores[c], dtype=np.float64)) for c in grid])
    A = A[:, np.isfinite(A).all(0)]
    if A.shape[1] == 0:
        raise ValueError("the held-out metric is NaN on every fold for some C")
    means = A.mean(1)
    best = int(np.argmax(means))  # the smallest of exact ties: the centre below moves up from it
    slack = 1e-9 * max(1.0, abs(means[best]))  # float round-off is a tie, not a loss

    def near(i: int) -> bool:
        diff = A[best] - A[i]
        if not within_noise:
            return bool(diff.mean() <= slack)
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        return bool(diff.mean() <= se + slack)

    lo = hi = best
    while lo > 0 and near(lo - 1):
        lo -= 1
    while hi < len(grid) - 1 and near(hi + 1):
        hi += 1
    mid = (best + hi + 1) // 2
    if mid == len(grid) - 1 and best < hi:
        mid -= 1
    return grid[mid], tuple(grid[lo:hi + 1])


def smooth_over_C(scores: Mapping[float, Sequence[float]]) -> dict[float, list[float]]:
    """Each fold's held-out metric averaged with its neighbours on the ascending C grid.

    SVMs half a decade of C apart differ little, so the true held-out curve
    is smooth in C, and a jump between neighbours is mostly the noise of a few
    held-out images. The average of C with the next smaller and the next larger
    grid value (at an end of the grid, the end value counts twice) keeps a
    monotone curve monotone and a broad optimum where it is, but takes the
    spikes out. Measured on CIFAR-10 transfer features at 30 images per
    class (docs/transfer_cifar.md), it and the repeated folds of
    :func:`fold_repeats` brought the loss against the best single C in
    hindsight from 1.2-2.7 points (mean 1.8) to 0.4-1.7 (mean 1.2) on six
    feature sets; at this few images the held-out noise still costs more than
    1.5 points on two of them.
    """
    grid = sorted(scores)
    A = np.array([np.atleast_1d(np.asarray(scores[c], dtype=np.float64)) for c in grid])
    P = np.concatenate([A[:1], A, A[-1:]])
    S = (P[:-2] + P[1:-1] + P[2:]) / 3.0
    return {c: [float(v) for v in row] for c, row in zip(grid, S)}


def check_C_grid(C_grid: Sequence[float], option: str = "C_grid") -> list[float]:
    """The distinct values of ``C_grid``, ascending, if every one is a finite C > 0.

    C weighs the loss against the margin: C <= 0 turns the problem upside down
    (the solver returns NaN scores and choose_C picked C = -1 without a word),
    and inf or NaN is no weight at all. ``option`` names the grid in the error.
    """
    values = [float(c) for c in C_grid]
    bad = [c for c in values if not (np.isfinite(c) and c > 0)]
    if bad or not values:
        got = ", ".join(f"{c:g}" for c in bad) if bad else "no value"
        raise ValueError(f"{option}: every C must be > 0 and finite, got {got}; e.g. "
                         "--C-grid 0.01 0.1 1 10 100")
    return sorted(set(values))


def _edge_warning(C: float, grid: Sequence[float]) -> tuple[str | None, str | None]:
    """('low' | 'high' | None, message) for a C at an edge of an ascending grid."""
    if len(grid) < 2 or grid[0] < C < grid[-1]:
        return None, None
    edge = "low" if C == grid[0] else "high"
    return edge, (f"C = {C:g} was chosen at the {'lower' if edge == 'low' else 'upper'} edge of the C grid "
                  f"[{grid[0]:g} .. {grid[-1]:g}]: the held-out metric may improve beyond it; "
                  "widen the grid (--C-grid)")


class _PathSolver:
    """Fits along an ascending C grid on subsets of one training set.

    With fewer images than dimensions one Gram matrix (one BLAS call) serves
    every subset and C (:func:`_kernel_newton`; a solution is β, ``(n_subset, K)``);
    otherwise the primal :func:`fit_ovr` runs (a solution is a :class:`LinearOVR`).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, M: np.ndarray, bias_scale: float) -> None:
        self.X, self.Y, self.M, self.s = X, Y, M, float(bias_scale)
        self.gram: np.ndarray | None = None
        if X.shape[0] < X.shape[1]:
            self.gram = (X @ X.T).astype(np.float64)  # float32 BLAS for the one big product
            self.gram += self.s ** 2

    def path(self, idx: np.ndarray, grid: Sequence[float], tol: float, init: object = None,
             max_newton: int | None = None) -> list:
        """Solutions on images ``idx`` for each C of ``grid``, each warm-started from the last.

        ``max_newton`` caps the Newton steps of each fit (None: the solvers' own caps).
        """
        cap = {} if max_newton is None else {"max_newton": max_newton}
        # idx is sorted and unique (folds, arange), so all n of them are the whole Gram matrix: no copy
        Kidx = self.gram if self.gram is None or len(idx) == len(self.gram) else self.gram[np.ix_(idx, idx)]
        sols, prev = [], init
        for C in grid:
            if Kidx is None:
                prev = fit_ovr(self.X[idx], self.Y[idx], C, mask=self.M[idx], init=prev, tol=tol,
                               bias_scale=self.s, **cap)
            else:
                prev, _ = _kernel_newton(Kidx, self.Y[idx], self.M[idx], C, prev, tol=tol, **cap)
            sols.append(prev)
        return sols

    def decision(self, sol: object, idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Scores of training images ``rows`` under a solution fitted on ``idx``."""
        if self.gram is None:
            return sol.decision_function(self.X[rows])
        return self.gram[np.ix_(rows, idx)] @ sol

    def lift(self, sol: object, idx: np.ndarray) -> object:
        """The same classifier as a warm start on all images (the others enter with β = 0)."""
        if self.gram is None:
            return sol
        B = np.zeros((len(self.X), sol.shape[1]))
        B[idx] = sol
        return B

    def model(self, sol: object, idx: np.ndarray, C: float) -> LinearOVR:
        """The :class:`LinearOVR` of a solution fitted on ``idx``."""
        if self.gram is None:
            return sol
        coef = (self.X[idx].T @ sol.astype(np.float32)).T
        return LinearOVR(np.ascontiguousarray(coef), (self.s ** 2 * sol.sum(0)).astype(np.float32), float(C))


def train_with_selection(X: np.ndarray, labels: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float],
                         *, C_grid: Sequence[float] = DEFAULT_C_GRID, val_fraction: float = 0.2,
                         seed: int = 0, n_classes: int | None = None, tol: float = 1e-2,
                         search_tol: float | None = None, bias_scale: float = 1.0,
                         n_folds: int | None = None, repeats: int | None = None,
                         test: tuple[np.ndarray, np.ndarray] | None = None) -> SelectionResult:
    """The paper's protocol, repeated: pick C on held-out training images, retrain on all.

    The training images are cut into ``n_folds`` stratified folds
    (:func:`stratified_folds`), dealt ``repeats`` times with different seeds
    (:func:`selection_folds`); for each fold the SVMs are fitted on the
    others along the whole C grid (ascending, each C warm-started from the
    last, at most ``_SEARCH_MAX_NEWTON`` Newton steps) and scored on it.
    C is the best of the fold-averaged metric, each fold's curve first
    smoothed over neighbouring C (:func:`smooth_over_C`; exact ties go up to
    their centre, :func:`choose_C` with ``within_noise=False``), and the SVMs are
    retrained on all the images at that C, warm-started from the first
    fold's solution. A :class:`CGridEdgeWarning` is
    issued when C is an end of the grid. With fewer images than dimensions
    (the usual transfer case: 3,060 Caltech-101 images, 4,096-d fc7)
    everything runs in the span of the images: one Gram matrix XXᵀ serves
    every fold, every C and the retraining, and each fit is a few Newton
    steps on Gram-sized products (:func:`_kernel_newton`); otherwise the
    primal Newton-CG of :func:`fit_ovr` runs.

    Args:
        X: ``(N, D)`` training features.
        labels: ``(N,)`` class indices or ``(N, K)`` in {1, -1, 0}.
        score: ``score(decision_scores, labels) -> float``, higher is better
            (the task's metric on the held-out images).
        C_grid: candidate C values.
        val_fraction: share of the images one fold holds out; it sets the
            default ``n_folds`` and the held-out part when ``n_folds`` is 1.
        seed: seed of the folds.
        n_classes: number of classes for single-label ``labels``.
        tol: stopping tolerance of the final retraining (see :func:`fit_ovr`).
        search_tol: tolerance of the fits during the C search (default
            ``max(tol, 0.02)``: the held-out metric needs no more; the
            retraining is warm-started from it and runs at ``tol``).
        bias_scale: LinearSVC's intercept_scaling.
        n_folds: number of folds, every image held out once (default
            ``round(1 / val_fraction)``, 5); 1 holds out a single
            ``val_fraction`` (:func:`holdout_split`), the older protocol.
        repeats: how many times the folds are dealt, each deal with its own
            seed (None: :func:`fold_repeats`, more deals for fewer images).
        test: optional ``(X_test, labels_test)``: the SVMs are then trained on
            all the training images at every C of the grid (with the search's
            settings) and scored on these (``SelectionResult.test_scores``, the
            oracle in hindsight), for reporting only, never for choosing C; the
            chosen C's entry is the returned model's score.
    """
    labels = np.asarray(labels)
    Y, M = ovr_targets(labels, n_classes)
    X = np.ascontiguousarray(X, dtype=np.float32)
    search_tol = max(tol, 0.02) if search_tol is None else search_tol
    search = {"tol": search_tol, "max_newton": _SEARCH_MAX_NEWTON}
    grid = check_C_grid(C_grid)
    repeats = fold_repeats(len(labels)) if repeats is None else int(repeats)
    folds = selection_folds(labels, n_folds, val_fraction, seed, repeats)
    solver = _PathSolver(X, Y, M, bias_scale)
    fold_scores: dict[float, list[float]] = {C: [] for C in grid}
    first: tuple[list, np.ndarray] | None = None
    for fit_idx, val_idx in folds:
        if len(val_idx) == 0:
            continue
        sols = solver.path(fit_idx, grid, **search)
        first = first or (sols, fit_idx)
        for C, sol in zip(grid, sols):
            fold_scores[C].append(float(score(solver.decision(sol, fit_idx, val_idx), labels[val_idx])))
    if first is None:
        raise ValueError(f"no fold holds out any image ({len(labels)} training images, {len(folds)} folds)")
    best, plateau = choose_C(smooth_over_C(fold_scores), within_noise=False)
    everything = np.arange(len(labels))
    test_scores = None
    if test is None:
        warm = solver.lift(first[0][grid.index(best)], first[1])
    else:
        X_test, labels_test = np.asarray(test[0], dtype=np.float32), np.asarray(test[1])
        path = solver.path(everything, grid, **search)
        test_scores = {C: float(score(solver.model(sol, everything, C).decision_function(X_test), labels_test))
                       for C, sol in zip(grid, path)}
        warm = path[grid.index(best)]
    model = solver.model(solver.path(everything, [best], tol, warm)[0], everything, best)
    if test_scores is not None:  # the returned model's own score, so the chosen C's entry is what is reported
        test_scores[best] = float(score(model.decision_function(X_test), labels_test))
    edge, message = _edge_warning(best, grid)
    if message:
        warnings.warn(message, CGridEdgeWarning, stacklevel=2)
    return SelectionResult(model=model, C=best, val_scores={C: float(np.mean(v)) for C, v in fold_scores.items()},
                           fold_scores=fold_scores, plateau=plateau, edge=edge, warning=message,
                           test_scores=test_scores, n_repeats=repeats)
