"""Views of a test image: decoded once, rescaled isotropically to every test scale Q.

Both test-time uses of a net (Sect. 3.2 evaluation and the Appendix-B
descriptor) apply it to the whole image rescaled so that its smallest side
is Q, for several Q. Decoding is the expensive part, so an image is decoded
once and every Q is cut from that one decode (:func:`read_views`). The
pixels stay uint8 until the net's own preprocessing record normalises them on
the net's device.
"""
from __future__ import annotations

from typing import Sequence

from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

#: one image's views: Q -> uint8 tensor 3 x H x W with min(H, W) == Q
Views = dict[int, Tensor]


def image_views(img: Image.Image, scales: Sequence[int]) -> Views:
    """``img`` rescaled isotropically to smallest side Q, for every distinct Q in ``scales``."""
    from vggkit.data.packing import to_tensor
    from vggkit.data.transforms import rescale_isotropic
    if img.mode != "RGB":  # read_image gives RGB; a caller's own PIL image may not be
        img = img.convert("RGB")
    return {int(q): to_tensor(rescale_isotropic(img, int(q))) for q in dict.fromkeys(scales)}


def read_views(path: str, scales: Sequence[int], min_side: int | None = None) -> Views:
    """The views of the image file ``path`` (one decode for all Q).

    ``min_side`` lets libjpeg decode a large JPEG at 1/2..1/8 size, never
    below it (:func:`vggkit.data.io.read_image`); None decodes at full size.
    Raises :class:`~vggkit.data.io.BadImageError` naming an unreadable file.
    """
    from vggkit.data.io import read_image
    return image_views(read_image(path, strict=True, min_side=min_side), scales)


def aspect_order(paths: Sequence[str]) -> list[int]:
    """Indices of ``paths`` sorted by aspect ratio (then size), from file headers only.

    Images of equal aspect ratio and size rescale to equal sizes at every Q,
    so visiting them together lets the dense net stack them into one batch.
    Unreadable headers sort last; the image itself is reported when decoded.
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
    """``(index, views)`` of image files, so that decoding runs in data-loader workers.

    Args:
        paths: image files.
        scales: every Q any net or strategy needs.
        fast_decode: decode large JPEGs at reduced size (never below the
            smallest Q); faster, but not bit-identical to a full decode.
    """

    def __init__(self, paths: Sequence[str], scales: Sequence[int],
                 fast_decode: bool = False) -> None:
        self.paths = list(paths)
        self.scales = sorted({int(q) for q in scales})
        self.fast_decode = fast_decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Views]:
        min_side = self.scales[0] if self.fast_decode else None
        return index, read_views(self.paths[index], self.scales, min_side)


def collate_views(items: list[tuple[int, Views]]) -> tuple[list[int], dict[int, list[Tensor]]]:
    """Batch :class:`RescaledImages` items without stacking (their sizes differ)."""
    indices = [i for i, _ in items]
    views: dict[int, list[Tensor]] = {}
    for _, item in items:
        for q, t in item.items():
            views.setdefault(q, []).append(t)
    return indices, views
