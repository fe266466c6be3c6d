"""Sect. 3.1/3.2 transforms on mmcv's results dict.

Convention: ``results['img']`` is always an RGB ``PIL.Image.Image`` from
loading until :class:`~vggkit.data.packing.PackInputs` turns it into a uint8
tensor (Pillow is the fastest CPU resizer, and keeping one type avoids a copy
per transform). Randomness comes from ``numpy.random``'s global state, which
mmengine seeds per dataloader worker, so a fixed ``randomness.seed`` gives the
same crops on every run.

Geometry of the paper: the image is rescaled isotropically so that its
smallest side is the training scale ``S`` (fixed, or drawn uniformly per image
from the integers of ``[S_min, S_max]``: scale jittering), then one
``crop x crop`` window is taken at a position drawn uniformly over the
rescaled image. :class:`RandomScaleCrop` produces exactly that distribution
but resizes only the window (the box is mapped back to original coordinates),
and :class:`LoadScaleCrop` adds JPEG draft-mode decoding.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from vggkit.data import bad_images as bad_images_log
from vggkit.data.io import ORIGINAL_SIZE_KEY, BadImageError, read_image

__all__ = ["rescale_isotropic", "rescaled_size", "parse_scale", "LoadImage",
           "IsotropicRescale", "RandomCrop", "CenterCrop", "RandomFlip", "TestRescale",
           "RandomScaleCrop", "LoadScaleCrop", "check_pipeline"]

def rescaled_size(width: int, height: int, smallest_side: int) -> tuple[int, int]:
    """(width, height) after isotropic rescaling to ``smallest_side`` (long side rounded)."""
    if width <= height:
        return smallest_side, max(smallest_side, int(height * smallest_side / width + 0.5))
    return max(smallest_side, int(width * smallest_side / height + 0.5)), smallest_side


def rescale_isotropic(img: Image.Image, smallest_side: int) -> Image.Image:
    """Bilinear isotropic rescale so that ``min(img.size) == smallest_side`` exactly."""
    size = rescaled_size(img.width, img.height, int(smallest_side))
    if size == img.size:
        return img
    return img.resize(size, Image.BILINEAR)


def parse_scale(scale: int | Sequence[int], crop: int | None = None,
                name: str = "scale") -> tuple[int, int]:
    """``S`` or ``(S_min, S_max)`` as ``(S_min, S_max)``; checks ``S_min >= crop``.

    Raises:
        ValueError: naming the bad value and the fix.
    """
    if isinstance(scale, (int, np.integer)):
        lo = hi = int(scale)
    elif isinstance(scale, Sequence) and len(scale) == 2 and all(
            isinstance(s, (int, np.integer)) for s in scale):
        lo, hi = int(scale[0]), int(scale[1])
    else:
        raise ValueError(f"{name} must be an integer S or a pair of integers (S_min, S_max), "
                         f"got {scale!r}")
    if lo < 1:
        raise ValueError(f"{name} must be positive, got {scale!r}")
    if lo > hi:
        raise ValueError(f"{name}=({lo}, {hi}): S_min > S_max; write ({hi}, {lo})")
    if crop is not None and lo < crop:
        raise ValueError(f"{name}={scale!r} is smaller than the crop size {crop}: the paper "
                         f"requires S >= crop (e.g. S >= 224 for 224 crops); raise S_min to "
                         f"{crop} or lower the crop")
    return lo, hi


def _check_crop(size: int, name: str = "crop") -> int:
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{name} must be a positive integer, got {size!r}")
    return int(size)


def draw_scale(lo: int, hi: int) -> int:
    return lo if lo == hi else int(np.random.randint(lo, hi + 1))


def set_img(results: dict, img: Image.Image) -> dict:
    results["img"] = img
    results["img_shape"] = (img.height, img.width)
    return results


class LoadImage(BaseTransform):
    """Read ``results['img_path']`` with :func:`~vggkit.data.io.read_image`.

    Args:
        bad_images: 'strict' raises :class:`BadImageError` naming the file;
            'skip' records it (:mod:`vggkit.data.bad_images`) and returns
            ``None``, which makes mmengine datasets fetch another sample.
            vggkit's own datasets catch the error themselves, by their own
            ``bad_images`` policy, so inside them the default is right.
        min_side: passed to ``read_image`` (JPEG draft-mode decoding).
    """

    def __init__(self, bad_images: str = "strict", min_side: int | None = None) -> None:
        self.bad_images = bad_images_log.check_policy(bad_images)
        self.min_side = min_side

    def _read(self, results: dict, min_side: int | None) -> Image.Image | None:
        try:
            return read_image(results["img_path"], min_side=min_side)
        except BadImageError as exc:
            if self.bad_images == "strict":
                raise
            bad_images_log.record(exc.path, exc.reason)
            return None

    def transform(self, results: dict) -> dict | None:
        img = self._read(results, self.min_side)
        if img is None:
            return None
        w, h = img.info.get(ORIGINAL_SIZE_KEY, img.size)
        results["ori_shape"] = (h, w)
        return set_img(results, img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bad_images={self.bad_images!r}, min_side={self.min_side})"


class IsotropicRescale(BaseTransform):
    """Rescale to smallest side S: fixed, or uniform integer in ``[S_min, S_max]`` per image."""

    def __init__(self, scale: int | Sequence[int] = 256) -> None:
        self.scale = parse_scale(scale)

    def transform(self, results: dict) -> dict:
        s = draw_scale(*self.scale)
        results["scale"] = s
        return set_img(results, rescale_isotropic(results["img"], s))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale})"


class RandomCrop(BaseTransform):
    """A ``size x size`` window at a uniformly drawn position."""

    def __init__(self, size: int = 224) -> None:
        self.size = _check_crop(size, "size")

    def transform(self, results: dict) -> dict:
        img = results["img"]
        if img.width < self.size or img.height < self.size:
            raise ValueError(f"RandomCrop({self.size}) got a {img.width}x{img.height} image "
                             f"'{results.get('img_path', '')}': rescale to S >= {self.size} first")
        x0 = int(np.random.randint(0, img.width - self.size + 1))
        y0 = int(np.random.randint(0, img.height - self.size + 1))
        results["crop_box"] = (x0, y0, x0 + self.size, y0 + self.size)
        return set_img(results, img.crop(results["crop_box"]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """The central ``size x size`` window (the image must be at least that large)."""
    if img.width < size or img.height < size:
        raise ValueError(f"center crop {size} of a {img.width}x{img.height} image: rescale to "
                         f"a smallest side >= {size} first")
    x0, y0 = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((x0, y0, x0 + size, y0 + size))


class CenterCrop(BaseTransform):
    """The central ``size x size`` window."""

    def __init__(self, size: int = 224) -> None:
        self.size = _check_crop(size, "size")

    def transform(self, results: dict) -> dict:
        return set_img(results, center_crop(results["img"], self.size))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class RandomFlip(BaseTransform):
    """Horizontal flip with probability ``prob``."""

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomFlip prob must lie in [0, 1], got {prob}")
        self.prob = float(prob)

    def transform(self, results: dict) -> dict:
        flip = bool(np.random.rand() < self.prob)
        results["flip"] = flip
        if flip:
            set_img(results, results["img"].transpose(Image.FLIP_LEFT_RIGHT))
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob})"


class TestRescale(BaseTransform):
    """Sect. 3.2: rescale to test scale Q, optionally then a centre crop."""

    __test__ = False  # not a pytest class

    def __init__(self, scale: int = 256, crop: int | None = None) -> None:
        self.scale = parse_scale(scale, crop, name="Q")[0]
        self.crop = None if crop is None else _check_crop(crop)

    def transform(self, results: dict) -> dict:
        img = rescale_isotropic(results["img"], self.scale)
        results["scale"] = self.scale
        if self.crop is not None:
            img = center_crop(img, self.crop)
        return set_img(results, img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, crop={self.crop})"


class RandomScaleCrop(BaseTransform):
    """Fused ``IsotropicRescale(scale) + RandomCrop(crop)``: resizes only the crop.

    S and the window position are drawn exactly as the two-step pipeline draws
    them (S uniform in ``[S_min, S_max]``, top-left corner uniform over the
    ``rescaled - crop + 1`` positions per axis); the window is then mapped back
    to the source image and resampled straight to ``crop x crop``. Pillow's
    bilinear filter places its taps at the same source coordinates in both
    cases, so the pixels equal the two-step result up to rounding.

    ``pad`` > 0 draws the window over the rescaled image padded with ``pad``
    black pixels on every side (corner uniform in ``[-pad, rescaled - crop +
    pad]`` per axis): at ``scale=crop`` that is torchvision's
    ``RandomCrop(crop, padding=pad)``, the usual augmentation for images
    already at the crop size (CIFAR), where scale jittering can only zoom in.
    """

    def __init__(self, scale: int | Sequence[int] = (256, 512), crop: int = 224,
                 pad: int = 0) -> None:
        self.crop = _check_crop(crop)
        self.scale = parse_scale(scale, self.crop)
        if not isinstance(pad, (int, np.integer)) or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        self.pad = int(pad)

    def scale_crop(self, img: Image.Image, s: int,
                   source_size: tuple[int, int] | None = None) -> tuple[Image.Image, tuple]:
        """Crop of ``img`` rescaled to S; geometry from ``source_size`` (w, h) if given.

        ``source_size`` is the full-resolution size when ``img`` was decoded
        smaller (draft mode), so the distribution never depends on decoding.
        """
        w, h = source_size or img.size
        rw, rh = rescaled_size(w, h, s)
        p = self.pad
        x0 = int(np.random.randint(-p, rw - self.crop + p + 1))
        y0 = int(np.random.randint(-p, rh - self.crop + p + 1))
        window = (x0, y0, x0 + self.crop, y0 + self.crop)
        # the part of the window inside the rescaled image (all of it when pad=0)
        ix0, iy0 = max(x0, 0), max(y0, 0)
        ix1, iy1 = min(x0 + self.crop, rw), min(y0 + self.crop, rh)
        sx, sy = img.width / rw, img.height / rh
        box = (ix0 * sx, iy0 * sy, ix1 * sx, iy1 * sy)
        out = img.resize((ix1 - ix0, iy1 - iy0), Image.BILINEAR, box=box)
        if out.size != (self.crop, self.crop):
            canvas = Image.new(out.mode, (self.crop, self.crop))  # black, as torchvision pads
            canvas.paste(out, (ix0 - x0, iy0 - y0))
            out = canvas
        return out, window

    def transform(self, results: dict) -> dict:
        s = draw_scale(*self.scale)
        img, box = self.scale_crop(results["img"], s)
        results["scale"], results["crop_box"] = s, box
        return set_img(results, img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, crop={self.crop}, pad={self.pad})"


class LoadScaleCrop(RandomScaleCrop):
    """``LoadImage + RandomScaleCrop`` with JPEG draft-mode decoding.

    S is drawn before decoding, so a JPEG whose smallest side is at least 2S is
    decoded at 1/2, 1/4 or 1/8 size (never below S); the crop geometry uses
    the full-resolution size, so S and the window stay the paper's.
    """

    def __init__(self, scale: int | Sequence[int] = (256, 512), crop: int = 224,
                 bad_images: str = "strict", pad: int = 0) -> None:
        super().__init__(scale, crop, pad)
        self.loader = LoadImage(bad_images)

    def transform(self, results: dict) -> dict | None:
        s = draw_scale(*self.scale)
        img = self.loader._read(results, s)
        if img is None:
            return None
        w, h = img.info.get(ORIGINAL_SIZE_KEY, img.size)
        results["ori_shape"] = (h, w)
        img, box = self.scale_crop(img, s, (w, h))
        results["scale"], results["crop_box"] = s, box
        return set_img(results, img)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(scale={self.scale}, crop={self.crop}, pad={self.pad}, "
                f"bad_images={self.loader.bad_images!r})")



def check_pipeline(pipeline: Sequence[dict | Any]) -> None:
    """Check a pipeline config before anything runs: S >= crop across steps.

    Building each transform already checks its own values (``S_min > S_max``,
    the fused transforms' ``S >= crop``); this catches the two-step form,
    ``IsotropicRescale(scale=(200, 300))`` followed by ``RandomCrop(224)``,
    which would otherwise fail at the first sample.

    Raises:
        ValueError: naming the transforms and values at fault.
    """
    smallest: tuple[int, str] | None = None
    for step in pipeline:
        cfg = step if isinstance(step, dict) else {"type": type(step).__name__, **vars(step)}
        kind = str(cfg.get("type", "")).rsplit(".", 1)[-1]
        if kind in ("IsotropicRescale", "TestRescale") and "scale" in cfg:
            smallest = (parse_scale(cfg["scale"])[0], kind)
        elif kind in ("RandomCrop", "CenterCrop") and smallest is not None:
            size = cfg.get("size", 224)
            if smallest[0] < size:
                raise ValueError(f"{smallest[1]} rescales to a smallest side of {smallest[0]}, "
                                 f"smaller than {kind}(size={size}): the paper requires "
                                 f"S >= crop; raise the scale to at least {size}")
