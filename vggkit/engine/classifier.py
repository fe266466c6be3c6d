"""The paper's classifier as an mmengine model: a VGG trained with softmax loss.

Sect. 3.1: "multinomial logistic regression" (cross-entropy) over the fc8
logits of a 224 crop. The data preprocessor (mean-RGB subtraction, batching,
device) is the data area's ``VGGDataPreprocessor``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

MODES = ("loss", "predict", "tensor")
AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _labels(data_samples: Sequence[BaseDataElement], device: torch.device) -> Tensor:
    if not data_samples or any(getattr(s, "gt_label", None) is None for s in data_samples):
        raise ValueError("mode='loss' needs data_samples with gt_label (the pipeline's "
                         "PackInputs sets it from the dataset's labels)")
    return torch.cat([torch.as_tensor(s.gt_label).reshape(-1)[:1] for s in data_samples]).to(
        device=device, dtype=torch.long)


class VGGClassifier(BaseModel):
    """``self.vgg = build_vgg(**vgg)`` trained with cross-entropy.

    Args:
        vgg: keyword arguments of :func:`vggkit.factory.build_vgg`, e.g.
            ``dict(arch='D', init='from_checkpoint', init_checkpoint='a.pth')``.
        data_preprocessor: mmengine config of the preprocessor, usually
            ``dict(type='VGGDataPreprocessor', mean=[...])``.
        channels_last: keep weights and inputs in NHWC memory (faster convs on
            recent GPUs and CPUs with oneDNN).
        autocast: 'bfloat16' or 'float16' to run forward under
            ``torch.autocast`` of the input's device -- the CPU path of
            ``--amp`` (mmengine's AmpOptimWrapper is CUDA-only).
        init_cfg: mmengine init config (normally None: ``build_vgg`` already
            initialises per the paper).
    """

    def __init__(self, vgg: dict, data_preprocessor: Optional[dict] = None,
                 channels_last: bool = False, autocast: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        from vggkit.factory import build_vgg
        from vggkit.models.from_config import check_vgg_arguments
        if not isinstance(vgg, dict) or "arch" not in vgg:
            raise ValueError(f"VGGClassifier needs vgg=dict(arch=..., ...) (build_vgg kwargs), "
                             f"got {vgg!r}")
        check_vgg_arguments(vgg)
        if autocast is not None and autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be None or one of {sorted(AUTOCAST_DTYPES)}, "
                             f"got {autocast!r}")
        self.vgg = build_vgg(**vgg)
        self.channels_last = channels_last
        self.autocast = autocast
        if channels_last:
            self.vgg.to(memory_format=torch.channels_last)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # A converted or saved bare VGG (build_vgg's keys, 'features.0.weight') lacks the
        # 'vgg.' of this module's keys, and mmengine's load_from strips only 'module.':
        # without this, load_from=converted.pth would load nothing, with a warning.
        # Torch hands every submodule the same dict, so renaming here reaches self.vgg.
        ours = prefix + "vgg."
        bare = [k for k in state_dict if k.startswith(prefix + "features.")
                or k.startswith(prefix + "head.")]
        if bare and not any(k.startswith(ours) for k in state_dict):
            for key in bare:
                state_dict[ours + key[len(prefix):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)

    @contextlib.contextmanager
    def _precision(self, inputs: Tensor) -> Iterator[None]:
        if self.autocast is None:
            yield
            return
        with torch.autocast(device_type=inputs.device.type,
                            dtype=AUTOCAST_DTYPES[self.autocast]):
            yield

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = "tensor") -> Any:
        """``loss`` -> {'loss': ce}; ``predict`` -> data samples with
        ``pred_score`` (softmax) and ``pred_label``; ``tensor`` -> logits."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self._precision(inputs):
            logits = self.vgg(inputs)
        logits = logits.float()  # loss and softmax in fp32 whatever the autocast
        if mode == "tensor":
            return logits
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, _labels(data_samples, logits.device))}
        return self._predictions(logits, data_samples)

    @staticmethod
    def _predictions(logits: Tensor, data_samples: Optional[list]) -> list[BaseDataElement]:
        scores = logits.softmax(dim=1)
        samples = data_samples if data_samples is not None else [
            BaseDataElement() for _ in range(len(scores))]
        for sample, score in zip(samples, scores):
            sample.set_field(score.detach(), "pred_score")
            sample.set_field(score.argmax().reshape(1).detach(), "pred_label")
        return samples
