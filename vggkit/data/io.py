"""Decoding any image file to 8-bit RGB, or failing with the file's name.

Every mode Pillow can open becomes RGB by an explicit rule, not by
``convert('RGB')`` alone (which clips 16-bit values and drops alpha):

* ``L``, ``LA``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's
  own conversion to RGB;
* anything with alpha (``RGBA``, ``LA``, ``PA``, a palette or ``L``/``RGB``
  image with a ``transparency`` entry) is composited onto **black**
  (``background``): the colour becomes ``alpha/255 * colour``, i.e.
  premultiplied alpha. Black is chosen because a fully transparent pixel then
  carries no colour at all, whatever garbage the file stores under it
  (``convert('RGB')`` would expose that garbage);
* 16-bit greyscale (``I;16``, ``I;16B``, ``I;16L``, ``I``): scaled to 0-255 as
  ``round(v * 255 / 65535)`` (not clipped at 255);
* 32-bit float ``F``: taken to be on the 0-1 scale, multiplied by 255.

The EXIF orientation tag is applied (``ImageOps.exif_transpose``). Any exception the
decoder raises is a :class:`BadImageError` naming the file (see :func:`decoding`). Files larger
than ``Image.MAX_IMAGE_PIXELS`` pixels (decompression bombs) are refused: the
warning Pillow gives between 1x and 2x the limit is an error here too.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps

__all__ = ["BadImageError", "decoding", "find_bad_image", "image_size", "read_image", "to_rgb",
           "ORIGINAL_SIZE_KEY"]

#: ``img.info`` key holding the (width, height) of the image before draft-mode
#: reduction (after EXIF rotation), so transforms can keep the paper's geometry.
ORIGINAL_SIZE_KEY = "vggkit_original_size"

_TRUNCATED_LOCK = threading.Lock()
_DRAFT_FACTORS = (8, 4, 2)


class BadImageError(OSError):
    """An image file that cannot be used: unreadable, truncated, undecodable or a bomb."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"bad image file '{self.path}': {reason}")

    def __reduce__(self):  # picklable across dataloader workers
        return (type(self), (self.path, self.reason))


def read_image(path: str | os.PathLike, *, strict: bool = True, min_side: int | None = None,
               background: Sequence[int] = (0, 0, 0)) -> Image.Image:
    """Decode ``path`` to an RGB ``PIL.Image`` (EXIF-rotated, any mode converted).

    Args:
        path: image file.
        strict: if False, a truncated file is decoded as far as its data go
            (Pillow fills the rest with grey) instead of raising.
        min_side: the smallest side the caller will rescale to; JPEGs whose
            smallest side is at least twice as large are decoded at 1/2, 1/4 or
            1/8 size by libjpeg's DCT scaling (``Image.draft``), never below
            ``min_side``. The size before that reduction is kept in
            ``img.info[ORIGINAL_SIZE_KEY]``.
        background: RGB colour transparent pixels are composited onto.

    Raises:
        BadImageError: naming the file, for a missing, unreadable, truncated
            (when ``strict``) or too-large (decompression bomb) image, and for any
            other exception the decoder raises (see :func:`decoding`).
    """
    path = os.fspath(path)
    with decoding(path):
        with Image.open(path) as img:
            _check_pixels(path, img.size)
            original = img.size
            if min_side is not None:
                _draft(img, int(min_side))
            _load(img, strict)
            decoded = img.size
            ImageOps.exif_transpose(img, in_place=True)  # no copy when upright
            if img.size != decoded:  # EXIF orientation 5-8 swaps the axes
                original = (original[1], original[0])
            rgb = to_rgb(img, background)
    rgb.info[ORIGINAL_SIZE_KEY] = original
    return rgb


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` from the file's header alone (no pixels decoded).

    Raises:
        BadImageError: naming the file, under the same rule as :func:`read_image`.
    """
    path = os.fspath(path)
    with decoding(path):
        with Image.open(path) as img:
            _check_pixels(path, img.size)
            return img.size


@contextlib.contextmanager
def decoding(path: str) -> Iterator[None]:
    """Turn whatever a decoder raises inside the block into :class:`BadImageError`.

    Pillow's plugins raise far more than ``OSError`` on hostile files (``NotImplementedError``
    for a DDS pixel format, ``struct.error``, ``KeyError``, ...); any exception is a bad image.
    Only interrupts (not ``Exception`` subclasses) and ``MemoryError`` pass through: they
    say nothing about the file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (BadImageError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(path, f"decompression bomb refused ({exc})") from exc
    except Image.DecompressionBombWarning as exc:
        raise BadImageError(path, f"decompression bomb refused ({exc}); raise "
                            "PIL.Image.MAX_IMAGE_PIXELS if the image is genuine") from exc
    except FileNotFoundError as exc:
        raise BadImageError(path, "file not found") from exc
    except Exception as exc:
        raise BadImageError(path, f"{type(exc).__name__}: {exc}") from exc


# how torch's DataLoader re-raises a worker's BadImageError: its traceback as text
_WORKER_MESSAGE = re.compile(r"BadImageError: bad image file '(?P<path>.+?)': (?P<reason>[^\n]*)")


def find_bad_image(exc: BaseException | None) -> BadImageError | None:
    """The :class:`BadImageError` behind ``exc``, following ``__cause__``/``__context__``.

    A DataLoader worker's error arrives as a ``RuntimeError`` holding the worker's
    traceback as text; the error is rebuilt from its last line.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, BadImageError):
            return exc
        matches = list(_WORKER_MESSAGE.finditer(str(exc)))
        if matches:
            return BadImageError(matches[-1]["path"], matches[-1]["reason"].rstrip())
        exc = exc.__cause__ or exc.__context__
    return None


def _check_pixels(path: str, size: tuple[int, int]) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise BadImageError(path, f"decompression bomb refused: {size[0]}x{size[1]} pixels "
                            f"exceeds PIL.Image.MAX_IMAGE_PIXELS={limit}")


def _draft(img: Image.Image, min_side: int) -> None:
    """Ask libjpeg for the largest DCT reduction keeping the short side >= min_side."""
    if img.format != "JPEG" or min_side <= 0:
        return
    w, h = img.size
    for factor in _DRAFT_FACTORS:
        # Pillow rounds the reduced size up: ceil(side / factor).
        if -(-min(w, h) // factor) >= min_side:
            # Pillow takes the largest of 8, 4, 2, 1 <= side // requested;
            # side // (side // f) lies in [f, 2f), so this picks exactly f.
            img.draft(None, (w // factor, h // factor))
            return


def _load(img: Image.Image, strict: bool) -> None:
    if strict:
        img.load()
        return
    # LOAD_TRUNCATED_IMAGES is a module global in Pillow: hold a lock so a
    # tolerant read in one thread does not make another thread's read lenient.
    with _TRUNCATED_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            img.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def to_rgb(img: Image.Image, background: Sequence[int] = (0, 0, 0)) -> Image.Image:
    """Convert a loaded image of any mode to 8-bit RGB (see the module docstring)."""
    mode = img.mode
    if mode == "RGB":
        if "transparency" not in img.info:
            return img
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr = np.clip(np.rint(np.asarray(img, dtype=np.float64) * 255.0), 0, 255)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, tuple(int(c) for c in background) + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")
