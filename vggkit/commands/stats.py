"""``vggkit stats`` / ``tools/dataset_stats.py``: mean RGB and PCA colour statistics of a training set."""
from __future__ import annotations

import argparse
import os

import numpy as np

from vggkit.commands import check_output_file, non_negative_int, run_command, scale_side_or_zero, seed_int
from vggkit.data import bad_images
from vggkit.errors import plural
from vggkit.fileio import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vggkit stats``; returns the exit status."""
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
    parser.add_argument("--scale", type=scale_side_or_zero, default=256,
                        help="rescale each image to this smallest side first (default 256; "
                        "0 = native size)")
    parser.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _run(args: argparse.Namespace) -> int:
    check_output_file(args.out, "--out")
    from vggkit.data.stats import compute_stats, training_image_paths
    paths = training_image_paths(args.data_root)
    if args.num_images and args.num_images < len(paths):
        chosen = np.random.default_rng(args.seed).choice(len(paths), args.num_images,
                                                         replace=False)
        paths = [paths[i] for i in sorted(chosen)]
    stats = compute_stats(paths, args.scale or None, progress=not args.no_progress)
    stats.update(data_root=os.path.abspath(args.data_root), seed=args.seed)
    atomic_write_json(args.out, stats)
    skipped = bad_images.summary()["count"]
    print(f"wrote {args.out}: mean RGB {[round(m, 3) for m in stats['mean']]}, eigval "
          f"{[round(e, 5) for e in stats['eigval']]} from {plural(stats['n_images'], 'image')}"
          + (f" ({plural(skipped, 'bad file')} skipped)" if skipped else ""))
    return 0
