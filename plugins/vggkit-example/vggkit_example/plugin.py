"""A vggkit plugin is a module of functions decorated with ``vggkit.hookimpl``."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

import vggkit

# ITU-R 601-2 luma, the weights PIL's convert('L') uses, so the numpy and PIL
# paths agree.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class RandomGrayscale(BaseTransform):
    """With probability ``prob``, replace the image by its grey level (kept 3-channel).

    Works on ``results['img']`` given as a PIL image or an H×W×3 uint8 array,
    returning the same kind, so it fits anywhere in a vggkit pipeline.
    """

    def __init__(self, prob: float = 0.1) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomGrayscale: prob must lie in [0, 1], got {prob}")
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results["img"]
        if isinstance(img, Image.Image):
            results["img"] = img.convert("L").convert("RGB")
        else:
            grey = np.asarray(img, dtype=np.float32) @ _LUMA
            results["img"] = np.repeat(np.clip(grey + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        return results

    def __repr__(self) -> str:
        return f"RandomGrayscale(prob={self.prob})"


@vggkit.hookimpl
def vggkit_register_transforms(register):
    register(RandomGrayscale)
