"""Helpers of the engine tests: small real JPEG image folders, and a test of them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("red_hstripes", "green_vstripes", "blue_disc")


def draw(kind: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """One image of a class: coloured stripes or a disc on noise, random phase/position."""
    img = rng.integers(0, 60, size=(h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    period = int(rng.integers(6, 10))
    phase = int(rng.integers(0, period))
    if kind == "red_hstripes":
        mask, colour = ((yy + phase) // (period // 2)) % 2 == 0, (230, 40, 40)
    elif kind == "green_vstripes":
        mask, colour = ((xx + phase) // (period // 2)) % 2 == 0, (40, 220, 40)
    else:
        cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
        mask, colour = (yy - cy) ** 2 + (xx - cx) ** 2 < (min(h, w) // 3) ** 2, (40, 60, 230)
    img[mask] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_folder(root: Path, per_class: int = 12, seed: int = 0,
                      classes: tuple[str, ...] = CLASSES) -> Path:
    """``root/<class>/<i>.jpg``: real JPEG files, sizes around 64 x 48 (both orientations)."""
    rng = np.random.default_rng(seed)
    for kind in classes:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(rng.integers(56, 90)), int(rng.integers(48, 80))
            Image.fromarray(draw(kind, rng, w, h)).save(root / kind / f"{i:03d}.jpg", quality=92)
    return root


def make_split_folder(root: Path, train: int = 12, val: int = 6) -> Path:
    """``root/train/<class>/`` and ``root/val/<class>/`` with different images."""
    make_image_folder(root / "train", train, seed=0)
    make_image_folder(root / "val", val, seed=1)
    return root


def env(**extra: str) -> dict[str, str]:
    """Environment of a training subprocess: vggkit importable, one thread per process."""
    out = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    out.update(extra)
    return out


def run_train(args: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``python tools/train.py ARGS`` in a subprocess (fresh mmengine global state)."""
    return subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), *args], env=env(),
                          cwd=kw.pop("cwd", None), capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_make_image_folder_writes_decodable_jpegs(tmp_path):
    root = make_image_folder(tmp_path, per_class=2)
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 2 * len(CLASSES)
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and min(im.size) >= 48
