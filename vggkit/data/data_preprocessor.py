"""Sect. 2: "the only pre-processing is subtracting the mean RGB value"."""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from vggkit.data.stats import load_stats
from vggkit.models.preprocess import IMAGENET_MEAN

__all__ = ["VGGDataPreprocessor"]


class VGGDataPreprocessor(BaseDataPreprocessor):
    """Move uint8 images to the device, stack, cast to float and normalise.

    ``(x - mean) / std`` per RGB channel (0-255 scale), then channels reversed
    if ``bgr`` -- the contract's preprocess record, whose dict is
    :attr:`preprocess` (the engine stores it in checkpoints). Images are moved
    as uint8 and cast on the device (4x less host-to-device traffic). Mixed
    precision is left to the runner's autocast: this always returns float32.

    Args:
        mean: RGB mean, 0-255; default ImageNet's (docs/paper.md#released-caffe-models).
        std: RGB std, 0-255; default 1 (the paper divides by nothing).
        bgr: reverse the channels after normalising (Caffe weights).
        stats_file: JSON of ``tools/dataset_stats.py``; its ``mean`` is used
            when ``mean`` is not given.
        channels_last: return the batch in ``torch.channels_last`` layout.
        non_blocking: passed to ``Tensor.to``.

    A batch whose images differ in size (test-time rescaling without a crop)
    cannot be stacked: ``inputs`` is then a list of 1x3xHxW tensors.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 bgr: bool = False, stats_file: str | os.PathLike | None = None,
                 channels_last: bool = False, non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        if mean is None:
            mean = load_stats(stats_file)["mean"] if stats_file is not None else IMAGENET_MEAN
        std = (1.0, 1.0, 1.0) if std is None else std
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"VGGDataPreprocessor needs 3 mean and 3 std values (R, G, B), got "
                             f"mean={list(mean)} std={list(std)}")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"VGGDataPreprocessor std must be positive, got {list(std)}")
        self.bgr = bool(bgr)
        self._record = {"mean": [float(m) for m in mean], "std": [float(v) for v in std],
                        "bgr": self.bgr}
        self.channels_last = bool(channels_last)
        # buffers follow .to(device) and are saved with the model's state
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(3, 1, 1), False)
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(3, 1, 1), False)

    @property
    def preprocess(self) -> dict[str, Any]:
        """The preprocess record ``{'mean', 'std', 'bgr'}`` these weights will expect."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._record.items()}

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGGDataPreprocessor expects RGB images N x 3 x H x W, got "
                             f"shape {tuple(x.shape)}")
        x = (x.float() - self.mean) / self.std
        if self.bgr:
            x = x.flip(1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data["inputs"]
        if isinstance(inputs, torch.Tensor):
            batch = inputs if inputs.ndim == 4 else inputs.unsqueeze(0)
            out: Any = self._normalize(batch)
        elif len({tuple(t.shape) for t in inputs}) == 1:
            out = self._normalize(torch.stack(list(inputs)))
        else:
            out = [self._normalize(t.unsqueeze(0)) for t in inputs]
        return {"inputs": out, "data_samples": data.get("data_samples")}
