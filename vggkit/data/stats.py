"""``tools/dataset_stats.py``: mean RGB and RGB eigen-statistics of a training set.

The paper subtracts the training set's mean RGB (Sect. 2) and uses AlexNet's
PCA colour shift (Sect. 3.1); both need the set's statistics. This samples N
images, rescales each to smallest side ``--scale`` (the statistics of a
photograph barely depend on its scale; this bounds the time per image), and
accumulates pixel sums and cross-products in float64. The JSON it writes
(atomically) is read by ``PCALighting(stats_file=...)`` and
``VGGDataPreprocessor(stats_file=...)``; its keys are documented in
:mod:`vggkit.data.stats_file`.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from vggkit.data import bad_images
from vggkit.data.io import BadImageError, read_image
from vggkit.data.transforms import rescale_isotropic

__all__ = ["compute_stats"]


def compute_stats(paths: Sequence[str], scale: int | None = 256,
                  progress: bool = True) -> dict:
    """Statistics of the pixels of ``paths`` (bad files are skipped and logged)."""
    from tqdm import tqdm
    total = np.zeros(3)
    outer = np.zeros((3, 3))
    n_pixels = n_images = 0
    for path in tqdm(paths, desc="dataset statistics", unit="img", disable=not progress):
        try:
            img = read_image(path, min_side=scale)
        except BadImageError as exc:
            bad_images.record(exc.path, exc.reason)
            continue
        if scale:
            img = rescale_isotropic(img, scale)
        x = np.asarray(img, dtype=np.float64).reshape(-1, 3)
        total += x.sum(0)
        outer += x.T @ x
        n_pixels += len(x)
        n_images += 1
    if n_images == 0:
        raise ValueError("no readable image among the sampled files")
    mean = total / n_pixels
    cov = outer / n_pixels - np.outer(mean, mean)
    # eigen-statistics on the 0-1 scale: the convention of docs/paper.md#pca-colour-statistics
    eigval, eigvec = np.linalg.eigh(cov / 255.0 ** 2)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
    # eigenvectors are defined up to sign: make each one's largest entry positive
    signs = np.sign(eigvec[np.abs(eigvec).argmax(0), range(3)])
    eigvec = eigvec * np.where(signs == 0, 1, signs)
    return {"mean": mean.tolist(), "std": np.sqrt(np.diag(cov)).tolist(), "cov": cov.tolist(),
            "eigval": eigval.tolist(), "eigvec": eigvec.tolist(), "n_images": n_images,
            "n_pixels": int(n_pixels), "scale": scale}


def _image_paths(data_root: str) -> list[str]:
    from vggkit.data.datasets import ImageFolder
    train = os.path.join(data_root, "train")
    root = train if os.path.isdir(train) else data_root
    dataset = ImageFolder(root, lazy_init=True, serialize_data=False)
    dataset.full_init()
    return [dataset.get_data_info(i)["img_path"] for i in range(len(dataset))]
