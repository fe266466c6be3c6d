"""Test images: decode once, rescale to every test scale Q, order by aspect ratio."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset


def to_uint8_tensor(img: Image.Image) -> Tensor:
    """An RGB PIL image as a uint8 tensor 3×H×W."""
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def rescale_views(img: Image.Image, scales: Sequence[int]) -> dict[int, Tensor]:
    """``img`` rescaled isotropically to smallest side Q, for every Q in ``scales``."""
    from vggkit.data.transforms import rescale_isotropic
    return {int(q): to_uint8_tensor(rescale_isotropic(img, int(q))) for q in dict.fromkeys(scales)}


def aspect_order(paths: Sequence[str]) -> list[int]:
    """Indices of ``paths`` sorted by aspect ratio (then size), from file headers only.

    Images of equal aspect ratio and size rescale to equal sizes, so dense
    evaluation can stack them into one batch. Unreadable headers sort last;
    the image itself is reported when it is decoded.
    """
    from vggkit.data.io import BadImageError, image_size
    keys = []
    for i, path in enumerate(paths):
        try:
            w, h = image_size(path)
            keys.append((0, round(w / h, 3), w, h, i))
        except (BadImageError, ZeroDivisionError):
            keys.append((1, 0.0, 0, 0, i))
    return [k[-1] for k in sorted(keys)]


class RescaledImages(Dataset):
    """``(index, {Q: uint8 3×H×W})`` for each image: decoding runs in loader workers.

    Args:
        paths: image files.
        scales: every test scale any model or strategy needs.
        fast_decode: let libjpeg decode large JPEGs at a reduced size (never
            below the smallest Q); faster but not bit-identical to a full decode.
    """

    def __init__(self, paths: Sequence[str], scales: Sequence[int], fast_decode: bool = False) -> None:
        self.paths = list(paths)
        self.scales = sorted({int(q) for q in scales})
        self.fast_decode = fast_decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, dict[int, Tensor]]:
        from vggkit.data.io import read_image
        min_side = self.scales[0] if self.fast_decode else None
        img = read_image(self.paths[index], min_side=min_side)
        return index, rescale_views(img, self.scales)


def collate_views(items: list[tuple[int, dict[int, Tensor]]]) -> tuple[list[int], dict[int, list[Tensor]]]:
    """Batch ``RescaledImages`` items without stacking (sizes differ)."""
    indices = [i for i, _ in items]
    views: dict[int, list[Tensor]] = {}
    for _, item in items:
        for q, t in item.items():
            views.setdefault(q, []).append(t)
    return indices, views
