"""Dataset colour statistics: the JSON written by ``tools/dataset_stats.py``.

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
from typing import Any

#: docs/paper.md#pca-colour-statistics: ImageNet eigen-statistics of [0, 1] pixels (columns are vectors)
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))
#: ImageNet mean RGB, 0-255 (DEFAULT_PREPROCESS of vggkit.models.preprocess)
IMAGENET_MEAN = (123.68, 116.779, 103.939)

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
