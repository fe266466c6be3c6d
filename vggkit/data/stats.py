"""``tools/dataset_stats.py``: mean RGB and RGB eigen-statistics of a training set.

The paper subtracts the training set's mean RGB (Sect. 2) and uses AlexNet's
PCA colour shift (Sect. 3.1); both need the set's statistics. This samples N
images, rescales each to smallest side ``--scale`` (the statistics of a
photograph barely depend on its scale; this bounds the time per image), and
accumulates pixel sums and cross-products in float64. The JSON it writes
(atomically) is read by ``PCALighting(stats_file=...)`` and
``VGGDataPreprocessor(stats_file=...)``; its keys are documented in
this module's :func:`load_stats`.

Keys (all RGB order):

* ``mean``: mean pixel, 0-255 scale (what the paper subtracts);
* ``std``: per-channel standard deviation, 0-255 scale;
* ``cov``: 3x3 covariance of pixel values, 0-255 scale;
* ``eigval``: eigenvalues of the covariance of pixels on the **0-1** scale,
  descending, the convention of AlexNet-style lighting code (fb.resnet.torch,
  mmpretrain) so that values compare with docs/paper.md#pca-colour-statistics;
* ``eigvec``: unit eigenvectors as **columns** (``eigvec[i][j]`` is channel i
  of vector j);
* ``n_images``, ``n_pixels``, ``data_root``: provenance.
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from vggkit.data import bad_images
from vggkit.data.io import BadImageError, read_image
from vggkit.data.transforms import rescale_isotropic

__all__ = ["IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "compute_stats", "load_stats"]

#: docs/paper.md#pca-colour-statistics: ImageNet eigen-statistics of [0, 1] pixels (columns are vectors)
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))
REQUIRED = ("mean", "eigval", "eigvec")


def load_stats(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a statistics JSON; errors name the file and the bad key."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            stats = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"dataset statistics file '{path}' not found; create it with "
                                f"`python tools/dataset_stats.py DATA_ROOT --out {path}`") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"dataset statistics file '{path}' is not valid JSON: {exc}") from exc
    missing = [k for k in REQUIRED if k not in stats]
    if missing:
        raise ValueError(f"dataset statistics file '{path}' lacks {missing}; regenerate it with "
                         "tools/dataset_stats.py")
    if len(stats["mean"]) != 3 or len(stats["eigval"]) != 3 or \
            [len(r) for r in stats["eigvec"]] != [3, 3, 3]:
        raise ValueError(f"dataset statistics file '{path}': mean and eigval need 3 values and "
                         "eigvec 3x3")
    return stats


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


def training_image_paths(data_root: str) -> list[str]:
    """The images the statistics are taken over: ``data_root/train/`` if it exists, else
    ``data_root`` (an image folder of class folders)."""
    from vggkit.data.datasets import ImageFolder
    train = os.path.join(data_root, "train")
    root = train if os.path.isdir(train) else data_root
    dataset = ImageFolder(root, lazy_init=True, serialize_data=False)
    dataset.full_init()
    return [dataset.get_data_info(i)["img_path"] for i in range(len(dataset))]
