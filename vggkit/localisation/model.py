"""Appendix A: a VGG whose last FC layer regresses a box, as an mmengine model.

fc8 predicts ``(cx, cy, w, h)`` normalised to the input crop: 4 numbers
shared by all classes (``'single_class'``, SCR) or 4 per class
(``'per_class'``, PCR: 4000 outputs at 1000 classes, of which the loss
uses the ground-truth class's 4). The loss is Euclidean, as Caffe's
``EuclideanLoss``: ``1/(2N) sum_n ||pred_n - target_n||^2``.

Training starts from a trained classifier: every conv layer and fc6, fc7
are copied (fc8's shape differs), with ``vgg=dict(init='from_checkpoint',
init_checkpoint=CLASSIFIER)``; ``finetune='fc'`` freezes the conv layers.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from vggkit.localisation.boxes import clip_boxes, to_xyxy

REGRESSION = ("single_class", "per_class")
FINETUNE = ("all", "fc")
MODES = ("loss", "predict", "tensor")


def l2_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Euclidean loss ``1/(2N) sum ||pred - target||^2`` of N x 4 boxes."""
    return (pred - target).pow(2).sum() / (2 * max(len(pred), 1))


def class_boxes(out: Tensor, labels: Tensor) -> Tensor:
    """The box of class ``labels[n]`` of each sample: out N x C x 4 (C = 1 for SCR) -> N x 4."""
    if out.shape[1] == 1:
        return out[:, 0]
    return out[torch.arange(len(out), device=out.device), labels.to(out.device)]


def _field(samples: Optional[list], name: str, device: torch.device) -> Tensor:
    if not samples or any(getattr(s, name, None) is None for s in samples):
        raise ValueError(f"mode='loss' needs data_samples with {name} (the localisation "
                         "pipeline's PackBoxInputs sets gt_bbox and gt_label)")
    values = [torch.as_tensor(getattr(s, name)) for s in samples]
    return torch.stack([v.reshape(-1) for v in values]).to(device)


def init_from_classifier(vgg: Any, checkpoint: str, conv_layers: Optional[int] = None) -> Any:
    """Copy a trained classifier's conv layers (the first ``conv_layers``, default all)
    and fc6, fc7 into ``vgg``; fc8 keeps its init. Returns the init report."""
    from vggkit.models.init import copy_prefix, init_from_checkpoint
    from vggkit.models.io import read_checkpoint
    source = read_checkpoint(checkpoint)[0]
    report = init_from_checkpoint(vgg, source, conv_layers or len(vgg.conv_names), fc_layers=0)
    own = dict(vgg.state_dict(keep_vars=True))
    for name in ("fc6", "fc7"):  # init_from_checkpoint copies the *last* FC layers only
        shape = copy_prefix(own, source, f"head.{name}", f"head.{name}", name,
                             "Do the nets have the same fc_width and input_size?")
        report.copied.append((name, name, shape))
        report.random.remove(name)
    report.source = checkpoint
    return report


class VGGLocaliser(BaseModel):
    """``self.vgg``: a VGG whose fc8 regresses boxes; see the module docstring.

    Args:
        vgg: :func:`vggkit.factory.build_vgg` keyword arguments, ``num_classes``
            being the number of object classes (fc8 gets 4 or 4 x classes
            outputs). With ``init='from_checkpoint'`` the classifier at
            ``init_checkpoint`` gives every conv layer (or the first
            ``init_conv_layers``) and fc6, fc7; fc8 starts as the paper's init.
        regression: 'single_class' (SCR) or 'per_class' (PCR).
        finetune: 'all' layers, or 'fc' only (conv layers frozen).
        data_preprocessor: as :class:`vggkit.engine.classifier.VGGClassifier`'s.
    """

    def __init__(self, vgg: dict, regression: str = "per_class", finetune: str = "all",
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        from vggkit.factory import build_vgg
        if regression not in REGRESSION:
            raise ValueError(f"regression must be one of {REGRESSION}, got {regression!r}")
        if finetune not in FINETUNE:
            raise ValueError(f"finetune must be one of {FINETUNE}, got {finetune!r}")
        kwargs = dict(vgg)
        self.num_classes = int(kwargs.pop("num_classes", 0) or 0)
        if self.num_classes < 1:
            raise ValueError(f"VGGLocaliser needs vgg.num_classes >= 1, got "
                             f"{vgg.get('num_classes')!r}")
        self.regression, self.finetune = regression, finetune
        self.num_boxes = 1 if regression == "single_class" else self.num_classes
        checkpoint = kwargs.pop("init_checkpoint", None)
        conv_layers = kwargs.pop("init_conv_layers", None)
        kwargs.pop("init_fc_layers", None)  # fc6 and fc7 are always copied, never fc8
        if kwargs.get("init") == "from_checkpoint":
            kwargs["init"] = "paper"  # fc8 as the paper's random init; the rest is copied
        self.vgg = build_vgg(num_classes=4 * self.num_boxes, **kwargs)
        if vgg.get("init") == "from_checkpoint":
            if checkpoint is None:
                raise ValueError("vgg.init='from_checkpoint' needs vgg.init_checkpoint=PATH, the "
                                 "trained classifier")
            print(init_from_classifier(self.vgg, checkpoint, conv_layers))
        if finetune == "fc":
            self.vgg.features.requires_grad_(False)

    def train(self, mode: bool = True) -> "VGGLocaliser":
        super().train(mode)
        if self.finetune == "fc":  # frozen BN statistics stay frozen too
            self.vgg.features.eval()
        return self

    def boxes(self, inputs: Tensor) -> Tensor:
        """N x C x 4 normalised boxes of ``input_size`` crops (C = 1 for SCR)."""
        return self.vgg(inputs).float().view(len(inputs), self.num_boxes, 4)

    def dense(self, inputs: Tensor) -> Tensor:
        """Box map N x C x 4 x h x w over whole images (fc layers as convolutions).

        The box at ``(i, j)`` is normalised to the ``input_size`` window whose
        top-left corner is ``(32 j, 32 i)``; :func:`vggkit.localisation.
        inference.window_boxes` turns it into pixels.
        """
        out = self.vgg.dense(inputs).float()
        return out.view(len(inputs), self.num_boxes, 4, *out.shape[-2:])

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = "tensor") -> Any:
        """``loss`` -> {'loss': L2}; ``predict`` -> samples with ``pred_bboxes``
        (C x 4 normalised), ``pred_bbox`` (that of ``gt_label`` if known, else
        the first) in pixels of the input, clipped to it; ``tensor`` -> N x C x 4."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        out = self.boxes(inputs)
        if mode == "tensor":
            return out
        if mode == "loss":
            labels = _field(data_samples, "gt_label", out.device)[:, 0].long()
            return {"loss": l2_loss(class_boxes(out, labels), _field(data_samples, "gt_bbox",
                                                                     out.device))}
        samples = data_samples or [BaseDataElement() for _ in range(len(out))]
        height, width = inputs.shape[-2:]
        for sample, boxes in zip(samples, out.detach().cpu()):
            label = getattr(sample, "gt_label", None)
            known = label is not None and len(boxes) > 1
            row = int(torch.as_tensor(label).reshape(-1)[0]) if known else 0
            sample.set_field(boxes, "pred_bboxes")
            box = clip_boxes(to_xyxy(boxes[row].numpy(), width, height), width, height)
            sample.set_field(torch.as_tensor(box, dtype=torch.float32), "pred_bbox")
        return samples
