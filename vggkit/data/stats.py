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

import argparse
import os
from typing import Sequence

import numpy as np

from vggkit.command import check_output_file, non_negative_int, run_command
from vggkit.data import bad_images
from vggkit.data.io import BadImageError, read_image
from vggkit.data.transforms import rescale_isotropic
from vggkit.fileio import atomic_write_json

__all__ = ["compute_stats", "main"]


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


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit stats", build_parser(), _run, argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggkit stats", description="Mean RGB and RGB covariance eigen-statistics of a "
        "training set, as JSON for PCALighting(stats_file=...) and "
        "VGGDataPreprocessor(stats_file=...).")
    parser.add_argument("data_root", help="image folder (DATA_ROOT/<class>/*) or an ImageNet "
                        "root whose train/ sub-folder is used")
    parser.add_argument("--out", required=True, help="JSON file to write (atomically)")
    parser.add_argument("--num-images", type=non_negative_int, default=10000,
                        help="images sampled uniformly without replacement (default 10000; "
                        "0 = all)")
    parser.add_argument("--scale", type=non_negative_int, default=256,
                        help="rescale each image to this smallest side first (default 256; "
                        "0 = native size)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _run(args: argparse.Namespace) -> int:
    check_output_file(args.out, "--out")
    paths = _image_paths(args.data_root)
    if args.num_images and args.num_images < len(paths):
        chosen = np.random.default_rng(args.seed).choice(len(paths), args.num_images,
                                                         replace=False)
        paths = [paths[i] for i in sorted(chosen)]
    stats = compute_stats(paths, args.scale or None, progress=not args.no_progress)
    stats.update(data_root=os.path.abspath(args.data_root), seed=args.seed)
    atomic_write_json(args.out, stats)
    skipped = bad_images.summary()["count"]
    print(f"wrote {args.out}: mean RGB {[round(m, 3) for m in stats['mean']]}, eigval "
          f"{[round(e, 5) for e in stats['eigval']]} from {stats['n_images']} images"
          + (f" ({skipped} bad files skipped)" if skipped else ""))
    return 0
