"""AlexNet's PCA colour augmentation ("lighting"), Sect. 3.1 of the paper.

Each time an image is used, ``alpha ~ N(0, std)`` (3 values) is drawn and
``eigvec @ (alpha * eigval) * eigval_scale`` is added to every pixel. The
eigenvalues follow the convention of docs/paper.md#pca-colour-statistics (pixels on the 0-1
scale); the pipeline works on 0-255 pixels, hence ``eigval_scale=255`` (the
same as mmpretrain's ``Lighting`` with its 0-255 eigenvalues).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from vggkit.data.stats import IMAGENET_EIGVAL, IMAGENET_EIGVEC, load_stats

__all__ = ["PCALighting"]


class PCALighting(BaseTransform):
    """Add ``sum_i alpha_i * lambda_i * p_i`` (x 255) to every RGB pixel.

    Args:
        eigval: eigenvalues (0-1 pixel scale); default the ImageNet values of docs/paper.md#pca-colour-statistics.
        eigvec: 3x3, eigenvectors as columns; default the same table's.
        std: standard deviation of alpha (0.1 in AlexNet and the paper).
        stats_file: JSON of ``tools/dataset_stats.py``; overrides eigval/eigvec.
        eigval_scale: multiplies the shift (255 for 0-255 pixels).
    """

    def __init__(self, eigval: Sequence[float] | None = None,
                 eigvec: Sequence[Sequence[float]] | None = None, std: float = 0.1,
                 stats_file: str | os.PathLike | None = None, eigval_scale: float = 255.0) -> None:
        if stats_file is not None:
            stats = load_stats(stats_file)
            eigval, eigvec = stats["eigval"], stats["eigvec"]
        self.eigval = np.asarray(IMAGENET_EIGVAL if eigval is None else eigval, dtype=np.float64)
        self.eigvec = np.asarray(IMAGENET_EIGVEC if eigvec is None else eigvec, dtype=np.float64)
        if self.eigval.shape != (3,) or self.eigvec.shape != (3, 3):
            raise ValueError(f"PCALighting needs 3 eigenvalues and a 3x3 eigenvector matrix, got "
                             f"shapes {self.eigval.shape} and {self.eigvec.shape}")
        if std < 0:
            raise ValueError(f"PCALighting std must be >= 0, got {std}")
        self.std = float(std)
        self.eigval_scale = float(eigval_scale)

    def shift(self, alpha: Sequence[float]) -> np.ndarray:
        """The RGB offset (0-255 units) for given ``alpha``."""
        return self.eigvec @ (np.asarray(alpha, dtype=np.float64) * self.eigval) * self.eigval_scale

    def transform(self, results: dict) -> dict:
        alpha = np.random.normal(0.0, self.std, size=3) if self.std > 0 else np.zeros(3)
        offset = self.shift(alpha)
        results["lighting_shift"] = offset
        arr = np.asarray(results["img"], dtype=np.float32) + offset.astype(np.float32)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
        results["img"] = img
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(eigval={self.eigval.tolist()}, std={self.std}, "
                f"eigval_scale={self.eigval_scale})")
