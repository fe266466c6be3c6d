"""Shared by every benchmark: real-sized test JPEGs, the machine, alternating timing.

Benchmarks run vggkit and the alternative in one process, alternating, after a
warm-up, and report medians: the machine is shared and noisy, so only ratios
measured side by side mean anything.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Callable

import numpy as np
from PIL import Image

from vggkit.machine import machine_info, machine_line  # noqa: F401  (used by every benchmark)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def make_jpegs(directory: str, count: int, seed: int = 0) -> list[str]:
    """Write ``count`` ImageNet-sized (500×375 or 375×500) JPEGs, quality 90.

    Made from scikit-learn's two sample photographs (no download): random 4:3
    windows, every third one portrait, with noise so no two files are equal.
    """
    from sklearn.datasets import load_sample_images
    rng = np.random.default_rng(seed)
    bases = load_sample_images().images  # two 427×640 photographs
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(count):
        base = Image.fromarray(bases[i % len(bases)])
        w = int(rng.integers(480, 569))
        h = w * 3 // 4
        x0, y0 = int(rng.integers(0, 640 - w + 1)), int(rng.integers(0, 427 - h + 1))
        img = base.crop((x0, y0, x0 + w, y0 + h)).resize((500, 375), Image.BILINEAR)
        if i % 3 == 2:
            img = img.transpose(Image.ROTATE_90)
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 4 + i % 5, img.size[::-1] + (3,))
        path = os.path.join(directory, f"img_{i:03d}.jpg")
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def time_alternating(fns: dict[str, Callable[[], object]], repeats: int = 5,
                     warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, alternating between them each round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in times.items()}


def write_fragment(name: str, markdown: str, data: dict | None = None) -> str:
    """Write ``results/<name>.md`` (and ``.json``) atomically; return the .md path."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.md")
    items = [(path, markdown)]
    if data is not None:
        items.append((os.path.join(RESULTS, f"{name}.json"), json.dumps(data, indent=2)))
    for target, text in items:
        tmp = f"{target}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    return path
