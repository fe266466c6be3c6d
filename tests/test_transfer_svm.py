"""The joint one-vs-rest SVM against scikit-learn's LinearSVC on the same features."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.svm import LinearSVC

from vggkit.transfer.svm import fit_ovr, holdout_split, ovr_targets, train_with_selection


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)  # L2-normalised, as fc7
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, te = order[:1200], order[1200:]
    return X[tr], y[tr], X[te], y[te]


@pytest.mark.parametrize("C", [0.1, 1.0])
def test_matches_linearsvc(digits, C):
    Xtr, ytr, Xte, yte = digits
    ref = LinearSVC(C=C, tol=1e-6, max_iter=20000).fit(Xtr, ytr)
    Y, _ = ovr_targets(ytr)
    ours = fit_ovr(Xtr, Y, C, tol=1e-4)
    acc_ref = (ref.predict(Xte) == yte).mean()
    acc = (ours.decision_function(Xte).argmax(1) == yte).mean()
    assert abs(acc - acc_ref) <= 0.005
    agree = (np.sign(ours.decision_function(Xte)) == np.sign(ref.decision_function(Xte))).mean()
    assert agree >= 0.995
    # same problem, same optimum: the primal objectives agree
    def objective(W, b):
        F = Xtr @ W.T + b
        return 0.5 * (W ** 2).sum(1) + 0.5 * b ** 2 + C * (np.maximum(0, 1 - Y * F) ** 2).sum(0)
    np.testing.assert_allclose(objective(ours.coef.astype(np.float64), ours.intercept),
                               objective(ref.coef_, ref.intercept_), rtol=1e-3)


def test_mask_drops_images(digits):
    Xtr, ytr, _, _ = digits
    Y, M = ovr_targets(ytr)
    M[:, 0] = 0
    M[ytr == 0, 0] = 1
    M[ytr == 1, 0] = 1  # class 0's problem: 0 versus 1 only
    ours = fit_ovr(Xtr, Y, 1.0, mask=M, tol=1e-4)
    keep = (ytr == 0) | (ytr == 1)
    ref = LinearSVC(C=1.0, tol=1e-6, max_iter=20000).fit(Xtr[keep], (ytr[keep] == 0).astype(int))
    agree = (np.sign(ours.decision_function(Xtr[keep])[:, 0]) == np.sign(ref.decision_function(Xtr[keep])))
    assert agree.mean() >= 0.995


def test_holdout_is_stratified_and_seeded():
    y = np.repeat(np.arange(4), 30)
    fit, val = holdout_split(y, 0.2, seed=3)
    assert np.bincount(y[val]).tolist() == [6, 6, 6, 6]
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 120
    assert np.array_equal(val, holdout_split(y, 0.2, seed=3)[1])
    assert not np.array_equal(val, holdout_split(y, 0.2, seed=4)[1])


def test_selection_accuracy_close_to_linearsvc(digits):
    Xtr, ytr, Xte, yte = digits
    acc = lambda s, y: float((s.argmax(1) == y).mean())  # noqa: E731
    res = train_with_selection(Xtr, ytr, acc, C_grid=(0.1, 1.0, 10.0), seed=0)
    assert res.C in (0.1, 1.0, 10.0) and set(res.val_scores) == {0.1, 1.0, 10.0}
    ref = LinearSVC(C=res.C).fit(Xtr, ytr)
    ours = acc(res.model.decision_function(Xte), yte)
    assert abs(ours - (ref.predict(Xte) == yte).mean()) <= 0.01


def test_kernel_path_matches_linearsvc_when_fewer_images_than_dims(digits):
    # n < d and large C: the solver switches to exact Newton in the span of the images
    Xtr, ytr, Xte, yte = digits
    rng = np.random.default_rng(1)
    P = np.abs(rng.normal(size=(64, 300))).astype(np.float32)
    lift = lambda X: np.maximum(X @ P - 0.5 * (X @ P).mean(), 0)  # noqa: E731
    Xtr, Xte = lift(Xtr[:200]), lift(Xte)
    Xtr /= np.linalg.norm(Xtr, axis=1, keepdims=True)
    Xte /= np.linalg.norm(Xte, axis=1, keepdims=True)
    ytr = ytr[:200]
    res = train_with_selection(Xtr, ytr, lambda s, y: 0.0, C_grid=(1.0, 100.0))
    assert res.C == 1.0  # ties go to the smaller C
    ref = LinearSVC(C=1.0, tol=1e-6, max_iter=50000).fit(Xtr, ytr)
    agree = (np.sign(res.model.decision_function(Xte)) == np.sign(ref.decision_function(Xte))).mean()
    assert agree >= 0.99
    import vggkit.transfer.svm as svm
    Y, M = ovr_targets(ytr)
    for C in (0.1, 100.0):  # most images inside the margin, and few (ill-conditioned)
        B, _ = svm._kernel_newton(Xtr.astype(np.float64) @ Xtr.T + 1.0, Y, M, C, tol=1e-4)
        W, b = Xtr.T.astype(np.float64) @ B, B.sum(0)
        ref = LinearSVC(C=C, tol=1e-8, max_iter=200000).fit(Xtr, ytr)
        scores = Xte @ W + b
        assert (np.sign(scores) == np.sign(ref.decision_function(Xte))).mean() >= 0.99
        # same problem, same optimum: the primal objectives agree
        def objective(W, b):
            F = Xtr @ W + b
            return 0.5 * (W ** 2).sum(0) + 0.5 * b ** 2 + C * (np.maximum(0, 1 - Y * F) ** 2).sum(0)
        np.testing.assert_allclose(objective(W, b), objective(ref.coef_.T, ref.intercept_), rtol=1e-4)
