"""The end of every pipeline: PIL image -> uint8 tensor + data sample."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement
from PIL import Image

__all__ = ["PackInputs", "to_tensor"]

DEFAULT_META_KEYS = ("img_path", "ori_shape", "img_shape", "scale", "flip", "crop_box",
                     "sample_idx")


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """RGB PIL image (or H x W x 3 uint8 array) -> uint8 tensor 3 x H x W."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H x W x 3), got an array of shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class PackInputs(BaseTransform):
    """``dict(inputs=uint8 3xHxW, data_samples=BaseDataElement)``.

    The data sample holds ``gt_label`` (LongTensor of shape [1]) when the
    results have one, and the ``meta_keys`` present as metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if results.get("gt_label") is not None:
            sample.gt_label = torch.as_tensor(results["gt_label"], dtype=torch.long).reshape(-1)
        return {"inputs": to_tensor(results["img"]), "data_samples": sample}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(meta_keys={self.meta_keys})"
