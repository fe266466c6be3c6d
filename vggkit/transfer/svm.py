"""One-vs-rest linear SVMs, all classes solved jointly (Appendix B classifier).

The problem per class ``k`` is LIBLINEAR's L2-regularised squared-hinge SVM
(scikit-learn ``LinearSVC``'s default) with a regularised bias feature::

    min_w  ½‖w_k‖² + ½b_k² + C Σ_i m_ik · max(0, 1 − y_ik (x_i·w_k + s·b_k))²

with ``y_ik = ±1`` and ``m_ik ∈ {0, 1}`` (0 drops an image from class k's
problem, e.g. a VOC "difficult" label). Two solvers, both vectorised over
the classes so that the work is a few large BLAS products:

* :func:`fit_ovr`, LIBLINEAR's primal truncated Newton (generalised Hessian,
  preconditioned CG, exact line search): Hessian-vector products for all
  unconverged classes are one pair ``X @ V``, ``X.T @ D``.
* :func:`_kernel_newton`, Newton in the span of the images, used by
  :func:`train_with_selection` when there are fewer images than dimensions
  (3,060 × 4,096 on Caltech-101): one Gram matrix serves every fold, the
  whole C grid and the retraining, and every product is n×n instead of n×d.

Classes stop independently; warm starts along the C grid make a whole grid
cost little more than one fit. C is chosen by stratified k-fold on the
training images, dealt several times when they are few (:func:`selection_folds`,
:func:`choose_C`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

#: 10^-3 .. 10^3 in half decades (3 significant digits): wide enough that the
#: few-shot optimum (often C ≥ 10 on L2-normalised features) is inside it
DEFAULT_C_GRID: tuple[float, ...] = tuple(float(f"{10.0 ** (e / 2):.3g}") for e in range(-6, 7))


@dataclass
class LinearOVR:
    """Weights of K one-vs-rest linear SVMs.

    Attributes:
        coef: ``(K, D)`` weights (sklearn's ``coef_`` layout).
        intercept: ``(K,)`` biases (already multiplied by the bias scale).
        C: the regularisation constant they were trained with.
        n_newton: Newton iterations each class took.
    """

    coef: np.ndarray
    intercept: np.ndarray
    C: float
    n_newton: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Scores ``(N, K)`` = X·wᵀ + b."""
        X = np.asarray(X, dtype=self.coef.dtype)
        return X @ self.coef.T + self.intercept


def ovr_targets(labels: np.ndarray, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """±1 targets and 0/1 masks ``(N, K)`` from labels.

    Args:
        labels: ``(N,)`` class indices, or ``(N, K)`` in {1, -1, 0} where 0
            (VOC "difficult") leaves the image out of that class's problem.
        n_classes: number of classes for single-label input (default max+1).
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        k = int(n_classes if n_classes is not None else labels.max() + 1)
        y = -np.ones((len(labels), k), dtype=np.float32)
        y[np.arange(len(labels)), labels] = 1.0
        return y, np.ones_like(y)
    y = np.where(labels > 0, 1.0, -1.0).astype(np.float32)
    return y, (labels != 0).astype(np.float32)


class _Problem:
    """Data of a joint fit: X (n×d), targets/masks (n×K), bias scale, C."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, M: np.ndarray, C: float,
                 bias_scale: float) -> None:
        self.X, self.Y, self.M, self.C, self.s = X, Y, M, float(C), float(bias_scale)

    def active(self, F: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The generalised-Hessian diagonal D: images inside the margin."""
        return ((1.0 - self.Y[:, cols] * F) > 0) * self.M[:, cols]

    def gradient(self, W: np.ndarray, b: np.ndarray, F: np.ndarray, D: np.ndarray,
                 cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        R = (2.0 * self.C) * D * (F - self.Y[:, cols])  # y² = 1 turns (yz−1)y into z−y
        return W[:, cols] + self.X.T @ R, b[cols] + self.s * R.sum(0)

    def hess_vec(self, D: np.ndarray, V: np.ndarray, vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = (2.0 * self.C) * D * (self.X @ V + self.s * vb)
        return V + self.X.T @ Z, vb + self.s * Z.sum(0)


def _dot(a: np.ndarray, b: np.ndarray, ab: np.ndarray, bb: np.ndarray) -> np.ndarray:
    """Column-wise inner products of (weights, bias) pairs."""
    return np.einsum("ij,ij->j", a, b) + ab * bb


def _cg(prob: _Problem, D: np.ndarray, gW: np.ndarray, gb: np.ndarray, diag: np.ndarray,
        diag_b: np.ndarray, xi: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Jacobi-preconditioned CG for H s = −g, one system per column, all at once."""
    sW, sb = np.zeros_like(gW), np.zeros_like(gb)
    rW, rb = -gW, -gb
    zW, zb = rW / diag, rb / diag_b
    pW, pb = zW.copy(), zb.copy()
    rz = _dot(rW, zW, rb, zb)
    gnorm = np.sqrt(_dot(gW, gW, gb, gb))
    run = np.arange(gW.shape[1])
    it = 0
    for it in range(1, max_iter + 1):
        rnorm = np.sqrt(_dot(rW[:, run], rW[:, run], rb[run], rb[run]))
        run = run[rnorm > xi * gnorm[run]]
        if run.size == 0:
            break
        HW, Hb = prob.hess_vec(D[:, run], pW[:, run], pb[run])
        alpha = rz[run] / np.maximum(_dot(pW[:, run], HW, pb[run], Hb), 1e-30)
        sW[:, run] += alpha * pW[:, run]
        sb[run] += alpha * pb[run]
        rW[:, run] -= alpha * HW
        rb[run] -= alpha * Hb
        zW[:, run] = rW[:, run] / diag[:, run]
        zb[run] = rb[run] / diag_b[run]
        rz_new = _dot(rW[:, run], zW[:, run], rb[run], zb[run])
        beta = rz_new / np.maximum(rz[run], 1e-30)
        rz[run] = rz_new
        pW[:, run] = zW[:, run] + beta * pW[:, run]
        pb[run] = zb[run] + beta * pb[run]
    return sW, sb, it


def _line_search(prob: _Problem, W: np.ndarray, b: np.ndarray, F: np.ndarray, PW: np.ndarray,
                 pb: np.ndarray, XP: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Exact step along the primal direction (PW, pb) with outputs XP."""
    wp = _dot(W[:, cols], PW, b[cols], pb)
    pp = _dot(PW, PW, pb, pb)
    return _exact_step(prob.Y[:, cols], prob.M[:, cols], prob.C, F, XP, wp, pp).astype(F.dtype)


def _exact_step(Y: np.ndarray, M: np.ndarray, C: float, F: np.ndarray, XP: np.ndarray,
                wp: np.ndarray, pp: np.ndarray, iters: int = 50) -> np.ndarray:
    """The root of the piecewise-linear φ'(t) of φ(t) = f(w + t·p), per column.

    ``wp`` = ⟨w, p⟩, ``pp`` = ⟨p, p⟩ (regulariser), ``F``/``XP`` the outputs and
    their change. φ is convex, so safeguarded Newton on φ' (bisection when a
    step leaves the bracket) finds the root; each step is O(N·K).
    """
    c2 = 2.0 * C

    def dphi(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Ft = F + t * XP
        aXP = (((1.0 - Y * Ft) > 0) * M) * XP
        return (wp + t * pp + c2 * np.einsum("ij,ij->j", aXP, Ft - Y),
                pp + c2 * np.einsum("ij,ij->j", aXP, XP))

    lo, hi = np.zeros_like(pp), np.ones_like(pp)
    for _ in range(60):  # grow the bracket until φ'(hi) ≥ 0
        grow = dphi(hi)[0] < 0
        if not grow.any():
            break
        lo, hi = np.where(grow, hi, lo), np.where(grow, 2.0 * hi, hi)
    t = hi.copy()
    for _ in range(iters):
        d1, d2 = dphi(t)
        if (np.abs(d1) <= 1e-9 * np.maximum(pp, 1e-30)).all():
            break
        lo, hi = np.where(d1 < 0, t, lo), np.where(d1 > 0, t, hi)
        t_new = t - d1 / np.maximum(d2, 1e-30)
        t_new = np.where((t_new < lo) | (t_new > hi), 0.5 * (lo + hi), t_new)
        done = np.abs(t_new - t) <= 1e-7 * np.maximum(np.abs(t), 1.0)
        t = t_new
        if done.all():
            break
    return t


def fit_ovr(X: np.ndarray, Y: np.ndarray, C: float, *, mask: np.ndarray | None = None,
            init: LinearOVR | None = None, tol: float = 1e-2, bias_scale: float = 1.0,
            max_newton: int = 100, max_cg: int = 200, cg_xi: float = 0.1) -> LinearOVR:
    """Train K one-vs-rest squared-hinge SVMs at once.

    Args:
        X: ``(N, D)`` features (computed in float32).
        Y: ``(N, K)`` targets in ±1 (see :func:`ovr_targets`).
        C: regularisation constant (LinearSVC's C).
        mask: ``(N, K)`` 0/1, 0 leaves image i out of class k's problem.
        init: warm start (e.g. the solution at a neighbouring C).
        tol: a class stops when ‖∇f‖ ≤ tol·‖w‖; at the optimum w equals the
            loss gradient, so this is relative and independent of C.
        bias_scale: value of the constant bias feature (LinearSVC's intercept_scaling).
        max_newton, max_cg: iteration caps; cg_xi: CG stops at ‖r‖ ≤ cg_xi·‖∇f‖.

    Returns:
        The trained :class:`LinearOVR`.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    M = np.ones_like(Y) if mask is None else np.asarray(mask, dtype=np.float32)
    n, d = X.shape
    K = Y.shape[1]
    if Y.shape != (n, K) or M.shape != (n, K):
        raise ValueError(f"targets {Y.shape} and mask {M.shape} must both be (N={n}, K)")
    prob = _Problem(X, Y, M, C, bias_scale)
    if init is not None:
        W = np.array(init.coef.T, dtype=np.float32)
        b = np.asarray(init.intercept, dtype=np.float32) / np.float32(bias_scale)
    else:
        W, b = np.zeros((d, K), np.float32), np.zeros(K, np.float32)
    F = X @ W + np.float32(bias_scale) * b
    Xsq = X * X  # for the Jacobi preconditioner diag(H)
    run = np.arange(K)
    newton = np.zeros(K, dtype=int)
    for _ in range(max_newton):
        Fr = F[:, run]
        D = prob.active(Fr, run)
        gW, gb = prob.gradient(W, b, Fr, D, run)
        gnorm = np.sqrt(_dot(gW, gW, gb, gb))
        wnorm = np.sqrt(_dot(W[:, run], W[:, run], b[run], b[run]))
        keep = gnorm > tol * np.maximum(wnorm, 1e-12)
        if not keep.any():
            break
        run, Fr, D, gW, gb = run[keep], Fr[:, keep], D[:, keep], gW[:, keep], gb[keep]
        D = D.astype(np.float32)
        diag = 1.0 + (2.0 * C) * (Xsq.T @ D)
        diag_b = 1.0 + (2.0 * C * bias_scale ** 2) * D.sum(0)
        PW, pb, _ = _cg(prob, D, gW, gb, diag, diag_b, cg_xi, max_cg)
        XP = X @ PW + np.float32(bias_scale) * pb
        t = _line_search(prob, W, b, Fr, PW, pb, XP, run)
        W[:, run] += t * PW
        b[run] += t * pb
        F[:, run] = Fr + t * XP
        newton[run] += 1
    return LinearOVR(coef=np.ascontiguousarray(W.T), intercept=b * np.float32(bias_scale),
                     C=float(C), n_newton=newton)


def holdout_split(labels: np.ndarray, fraction: float = 0.2,
                  seed: int | tuple[int, ...] = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified seeded split of training indices into (fit, held-out).

    Single-label: ``round(fraction·n_c)`` images of each class c are held out
    (at least one when the class has two or more). Multi-label: a seeded
    random ``fraction`` of the images.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    if labels.ndim == 2:
        perm = rng.permutation(n)
        n_val = max(1, int(round(fraction * n)))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.append(rng.permutation(idx)[:k])
    held = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=int)
    fit = np.setdiff1d(np.arange(n), held)
    return fit, held


def stratified_folds(labels: np.ndarray, n_folds: int = 5,
                     seed: int | tuple[int, ...] = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold partition of training indices: ``n_folds`` pairs (fit, held-out).

    Every image is held out exactly once, so 5 folds are the paper's "20 %
    held out" repeated until every image has served. Single-label: each
    class's images are shuffled and dealt to the folds in turn, carrying on
    from where the previous class stopped, so a fold holds ⌊n_c/k⌋ or
    ⌈n_c/k⌉ images of class c and the fold sizes differ by at most one; a
    class with a single image is never held out (a fit without the class
    says nothing about C). Multi-label: a seeded permutation cut into k parts.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds} (use holdout_split for one split)")
    labels = np.asarray(labels)
    n = len(labels)
    # folds beyond one per image would hold out nothing: --folds 2**31 built 2**31 empty ones
    n_folds = min(n_folds, max(n, 2))
    rng = np.random.default_rng(seed)
    fold = np.full(n, -1)
    if labels.ndim == 2:
        fold[rng.permutation(n)] = np.arange(n) % n_folds
    else:
        dealt = 0
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            if len(idx) >= 2:
                fold[rng.permutation(idx)] = (dealt + np.arange(len(idx))) % n_folds
                dealt += len(idx)
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_folds)]


#: held-out scorings per C that :func:`fold_repeats` aims at: the k folds are
#: dealt again with other seeds until every C has been scored on about this many
#: held-out images (capped at :data:`MAX_FOLD_REPEATS` passes)
SELECTION_IMAGES = 1000
MAX_FOLD_REPEATS = 10


def fold_repeats(n_images: int) -> int:
    """How many times :func:`selection_folds` deals the folds for ``n_images`` training images.

    Why repeat: with few images the held-out metric depends on which images
    land in which fold as much as on C. At 30 images per class of 5 classes
    (CIFAR-10 features, docs/transfer_cifar.md) one 5-fold pass chose C
    anywhere from 0.001 to 1,000 on splits whose test curves all peaked at
    C = 1-10, and lost up to 2 points against the best single C in
    hindsight; averaging over several deals removes that part of the noise.
    ``ceil(SELECTION_IMAGES / n)`` passes: 7 at 150 images, 1 from 1,000 on,
    where one pass is already steady and the search is the costly part.
    """
    return int(min(MAX_FOLD_REPEATS, max(1, -(-SELECTION_IMAGES // max(int(n_images), 1)))))


def selection_folds(labels: np.ndarray, n_folds: int | None = None, val_fraction: float = 0.2,
                    seed: int = 0, repeats: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (fit, held-out) pairs :func:`train_with_selection` chooses C on.

    ``n_folds`` None means ``round(1 / val_fraction)`` folds (5) by
    :func:`stratified_folds`; 1 means the single held-out ``val_fraction`` of
    :func:`holdout_split`. The folds are dealt ``repeats`` times (None:
    :func:`fold_repeats` of the number of images), the first deal with
    ``seed`` and deal r with the seed pair ``(seed, r)``, so the first deal
    is the one an unrepeated selection uses; the pairs come deal after deal.
    """
    n_folds = max(2, int(round(1.0 / val_fraction))) if n_folds is None else int(n_folds)
    repeats = fold_repeats(len(labels)) if repeats is None else int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for r in range(repeats):
        deal_seed = seed if r == 0 else (seed, r)
        out += ([holdout_split(labels, val_fraction, deal_seed)] if n_folds == 1
                else stratified_folds(labels, n_folds, deal_seed))
    return out


def _active_cg(K32: np.ndarray, Y: np.ndarray, act: np.ndarray, ridge: float, X0: np.ndarray,
               bound: np.ndarray, max_iter: int) -> np.ndarray:
    """CG for every class's Newton point (K_AA + r·I) β_A = y_A, β = 0 off A, all at once.

    One float32 product K·P per iteration serves all classes (masked to
    each A); column j stops once ‖residual‖ ≤ ``bound[j]``. ``X0`` (zero off
    A) warm-starts it: near the optimum β barely moves.
    """
    A = act.astype(np.float32)

    def op(V: np.ndarray, cols: np.ndarray | slice) -> np.ndarray:
        return A[:, cols] * (K32 @ V.astype(np.float32)) + ridge * V

    X = X0.copy()
    R = (Y * A) - op(X, slice(None))
    P = R.copy()
    rr = np.einsum("ij,ij->j", R, R)
    run = np.flatnonzero(np.sqrt(rr) > bound)
    for _ in range(max_iter):
        if run.size == 0:
            break
        Q = op(P[:, run], run)
        alpha = rr[run] / np.maximum(np.einsum("ij,ij->j", P[:, run], Q), 1e-300)
        X[:, run] += alpha * P[:, run]
        R[:, run] -= alpha * Q
        rr_new = np.einsum("ij,ij->j", R[:, run], R[:, run])
        P[:, run] = R[:, run] + (rr_new / np.maximum(rr[run], 1e-300)) * P[:, run]
        rr[run] = rr_new
        run = run[np.sqrt(rr_new) > bound[run]]
    return X


def _kernel_newton(K: np.ndarray, Y: np.ndarray, M: np.ndarray, C: float, B0: np.ndarray | None = None, *,
                   tol: float = 1e-2, max_newton: int = 50, max_cg: int = 50,
                   cg_eta: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method in the span of the training images, all classes at once.

    With w = Σ β_i x_i and K the kernel matrix including the bias feature
    (K = XXᵀ + s²), the Newton point for the current active set A (images
    inside the margin) solves (K_AA + I/2C) β_A = y_A, β = 0 off A (Keerthi
    & DeCoste 2005); an exact line search follows. The point comes from
    warm-started CG on all classes at once (:func:`_active_cg`, one K product
    per iteration), truncated at ‖2C·residual‖ ≤ cg_eta·‖r‖ as LIBLINEAR
    truncates its CG (a class whose inexact point is not a descent direction
    steps along −∇f instead). A class stops on :func:`fit_ovr`'s criterion
    ‖∇f‖ ≤ tol·‖w‖, which in the span reads rᵀKr ≤ tol²·βᵀKβ with
    r = β + 2C·D(F − y). The CG and norm products are float32; β, the
    outputs F = Kβ and the line search are float64 (float32 outputs put a
    floor of a few percent under ‖∇f‖/‖w‖ at large C and the line search
    stalls).

    Args:
        K: ``(n, n)`` kernel matrix with the bias feature.
        Y, M: ``(n, k)`` ±1 targets and 0/1 masks.
        C: regularisation constant.
        B0: warm start β (e.g. the solution at a neighbouring C); zeros if None.
        tol, max_newton: stopping tolerance and cap of the Newton loop.
        max_cg, cg_eta: CG cap and truncation.

    Returns:
        β ``(n, k)`` and the outputs F = Kβ ``(n, k)``.
    """
    n, k = Y.shape
    K = np.asarray(K, dtype=np.float64)
    K32 = K.astype(np.float32)
    Y = np.asarray(Y, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    if K.shape != (n, n) or M.shape != (n, k):
        raise ValueError(f"kernel {K.shape}, targets {Y.shape} and mask {M.shape} disagree on n={n}")
    B = np.zeros((n, k)) if B0 is None else np.array(B0, dtype=np.float64)
    F = K @ B
    run = np.arange(k)
    for _ in range(max_newton):
        Yr, Mr, Fr, Br = Y[:, run], M[:, run], F[:, run], B[:, run]
        act = ((1.0 - Yr * Fr) > 0) & (Mr > 0)
        R = Br + (2.0 * C) * act * (Fr - Yr)  # coefficients of ∇f = Σ r_i x_i
        KR = (K32 @ R.astype(np.float32)).astype(np.float64)
        gnorm = np.sqrt(np.maximum(np.einsum("ij,ij->j", R, KR), 0.0))
        wnorm = np.sqrt(np.maximum(np.einsum("ij,ij->j", Br, Fr), 0.0))
        keep = gnorm > tol * np.maximum(wnorm, 1e-12)
        if not keep.any():
            break
        run, Yr, Mr, Fr, Br, act, R, KR = (a[..., keep] for a in (run, Yr, Mr, Fr, Br, act, R, KR))
        bound = cg_eta / (2.0 * C) * np.sqrt(np.einsum("ij,ij->j", R, R))
        dB = _active_cg(K32, Yr, act, 1.0 / (2.0 * C), Br * act, bound, max_cg) - Br
        dF = K @ dB
        bad = np.flatnonzero(np.einsum("ij,ij->j", KR, dB) >= 0)  # ∇f·Δ ≥ 0: not downhill
        dB[:, bad], dF[:, bad] = -R[:, bad], -KR[:, bad]
        # βᵀKΔ = FᵀΔ and ΔᵀKΔ = ΔFᵀΔ: the line search needs no extra product
        t = _exact_step(Yr, Mr, C, Fr, dF, np.einsum("ij,ij->j", Fr, dB), np.einsum("ij,ij->j", dF, dB))
        B[:, run] = Br + t * dB
        F[:, run] = Fr + t * dF
    return B, F


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
    as below it, and the step up from the best smoothed C lost 0.4 points
    over 10 splits (pool5: 1.73 points below the best single C in hindsight
    with the step, 1.35 without).

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
    hindsight from up to 2.0 points to at most 1.4.
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
