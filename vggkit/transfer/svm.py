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
  :func:`vggkit.transfer.selection.train_with_selection` when there are fewer images than dimensions
  (3,060 × 4,096 on Caltech-101): one Gram matrix serves every fold, the
  whole C grid and the retraining, and every product is n×n instead of n×d.

Classes stop independently; warm starts along the C grid make a whole grid
cost little more than one fit. Choosing C is :mod:`vggkit.transfer.selection`'s
job, on the folds of :mod:`vggkit.transfer.folds`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from importlib import import_module

import numpy as np

from vggkit import renamed


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


# C selection and its folds moved to their own modules (issue 29: one job per file); the
# old names still work for a while, each use warning with the new one
_MOVED = {**dict.fromkeys(("holdout_split", "stratified_folds", "SELECTION_IMAGES",
                           "MAX_FOLD_REPEATS", "fold_repeats", "selection_folds"), "folds"),
          **dict.fromkeys(("DEFAULT_C_GRID", "CGridEdgeWarning", "SelectionResult", "choose_C",
                           "smooth_over_C", "check_C_grid", "train_with_selection"), "selection")}
__getattr__ = renamed(__name__, {
    name: (f"vggkit.transfer.{module}.{name}",
           partial(lambda m, n: getattr(import_module(f"vggkit.transfer.{m}"), n), module, name))
    for name, module in _MOVED.items()})
