"""Digits on cluttered canvases: a localisation set whose true boxes are known.

Each canvas (``64-96`` pixels a side, not square) holds one of scikit-learn's
8x8 digit scans, upscaled to 30-70 % of the canvas's short side and pasted
at a random place, over clutter: dark noise, a few random lines
and fragments of other digits (a random half of another scan, dimmer). The
true box is the digit's ink: the extent of its non-zero pixels in the 8x8
scan, scaled like the scan. Train and validation canvases use disjoint scans.

Written as an image folder ``ROOT/{train,val}/<digit>/NNNNN.png`` (the
classifier's layout) with ``ROOT/{train,val}_boxes.csv`` (``BoxList``'s).
"""
from __future__ import annotations

import csv
import io
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["make_canvas", "write_canvases", "ink_box"]

CANVAS = (64, 96)     # side range of a canvas, pixels
DIGIT = (0.45, 0.8)   # side range of a pasted digit, fraction of the canvas's short side
FRAGMENT = (16, 48)   # side range of the digit a fragment is cut from, pixels


def ink_box(scan: np.ndarray) -> tuple[int, int, int, int]:
    """``(xmin, ymin, xmax, ymax)`` of the non-zero pixels of a scan (continuous coordinates)."""
    rows, cols = np.flatnonzero(scan.any(1)), np.flatnonzero(scan.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape
    region = canvas[y:y + h, x:x + w]
    np.maximum(region, patch[:region.shape[0], :region.shape[1]], out=region)


def _scan(image8: np.ndarray, side: int) -> np.ndarray:
    grey = Image.fromarray((image8 * (255.0 / 16.0)).astype(np.uint8))
    return np.asarray(grey.resize((side, side), Image.BICUBIC), dtype=np.float32)


def make_canvas(rng: np.random.Generator, digit: np.ndarray, others: np.ndarray
                ) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """One RGB canvas with ``digit`` (an 8x8 scan, values 0-16) and its ink box."""
    w, h = (int(v) for v in rng.integers(CANVAS[0], CANVAS[1] + 1, size=2))
    canvas = rng.uniform(0, 40, size=(h, w)).astype(np.float32)
    img = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        draw.line([tuple(int(v) for v in rng.integers(0, (w, h))) for _ in range(2)],
                  fill=int(rng.integers(50, 120)), width=int(rng.integers(1, 3)))
    canvas = np.asarray(img, dtype=np.float32).copy()
    for _ in range(int(rng.integers(1, 3))):  # fragments: half of another scan, dimmer
        other = _scan(others[rng.integers(len(others))], int(rng.integers(*FRAGMENT)))
        half = other[: len(other) // 2] if rng.random() < 0.5 else other[:, : len(other) // 2]
        _paste(canvas, half * rng.uniform(0.25, 0.5), int(rng.integers(0, w - half.shape[1])),
               int(rng.integers(0, h - half.shape[0])))
    side = int(round(rng.uniform(*DIGIT) * min(w, h)))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    _paste(canvas, _scan(digit, side), x, y)
    x0, y0, x1, y1 = ink_box(digit)
    f = side / 8.0
    box = (x + x0 * f, y + y0 * f, x + x1 * f, y + y1 * f)
    rgb = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).convert("RGB")
    return rgb, box


def _split(root: str, name: str, rng: np.random.Generator, images: np.ndarray,
           labels: np.ndarray, count: int) -> None:
    rows = []
    for n in range(count):
        i = int(rng.integers(len(images)))
        img, box = make_canvas(rng, images[i], images)
        rel = os.path.join(name, str(int(labels[i])), f"{n:05d}.png")
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        img.save(os.path.join(root, rel))
        rows.append([rel, str(int(labels[i]))] + [f"{v:.2f}" for v in box])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([["path", "class", "xmin", "ymin", "xmax", "ymax"], *rows])
    with open(os.path.join(root, f"{name}_boxes.csv"), "w", encoding="utf-8") as f:
        f.write(buffer.getvalue())


def write_canvases(root: str, n_train: int = 1000, n_val: int = 300, seed: int = 0) -> str:
    """Write the canvases under ``root`` once (complete or not at all); returns ``root``.

    The scans are split 80/20 before pasting, so validation digits are unseen.
    """
    if os.path.isfile(os.path.join(root, "val_boxes.csv")):
        return root
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    cut = int(0.8 * len(order))
    tmp = f"{root}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for name, part, count in (("train", order[:cut], n_train), ("val", order[cut:], n_val)):
        _split(tmp, name, rng, digits.images[part], digits.target[part], count)
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root
