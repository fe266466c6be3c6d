"""Stratified folds of the training images on which :mod:`vggkit.transfer.selection` chooses C."""
from __future__ import annotations

import numpy as np


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
    C = 1-10, and lost up to 2.7 points against the best single C in
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
