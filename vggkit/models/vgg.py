"""VGG configurations A-E of Simonyan & Zisserman (Sect. 2, Table 1) and their head.

Table 1 is data (:data:`~vggkit.models.archs.CONFIGS`, written in the paper's own notation, e.g.
``'conv3-64'``, ``'conv1-256'``, ``'LRN'``, ``'maxpool'``) turned into layers by
one function, :func:`make_features`. The conv stack keeps torchvision's
``features.N`` indices so that converting torchvision weights is a renaming.

The head (fc6, fc7, fc8) is stored as convolutions -- fc6 a ``k x k`` conv with
``k = input_size // 32`` (7 at 224), fc7 and fc8 ``1 x 1`` convs -- and the FC
path uses the very same parameters through ``F.linear`` on a flattened view of
the weights, so the paper's dense evaluation (Sect. 3.2) needs no copying.
"""
from __future__ import annotations

import functools
import importlib
from typing import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from vggkit import renamed
from vggkit.models.archs import (ALIASES, CONFIGS, known_archs, parse_layer,  # noqa: F401
                                 resolve_arch)
from vggkit.models.init import initialize
from vggkit.models.lrn import LocalResponseNorm

DENSE_LAYERS = ("pool5", "fc6", "fc7")
def scaled(channels: int, width_mult: float) -> int:
    """Conv width after the width multiplier (at least 1 channel)."""
    return max(1, int(round(channels * width_mult)))


def make_features(config: list[str], *, batch_norm: bool = False, width_mult: float = 1.0,
                  in_channels: int = 3) -> tuple[nn.Sequential, dict[str, int], list[int]]:
    """Turn one column of Table 1 into layers.

    Returns:
        The ``nn.Sequential`` conv stack, the paper's layer names
        (``conv{block}_{i}`` -> index in the stack) and the index of each pool.
    """
    layers: list[nn.Module] = []
    names: dict[str, int] = {}
    pools: list[int] = []
    block, position = 1, 0
    for token in config:
        kind, size, width = parse_layer(token)
        if kind == "conv":
            out = scaled(width, width_mult)
            position += 1
            names[f"conv{block}_{position}"] = len(layers)
            layers.append(nn.Conv2d(in_channels, out, size, padding=size // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out
        elif kind == "LRN":
            layers.append(LocalResponseNorm())
        else:
            pools.append(len(layers))
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            block, position = block + 1, 0
    return nn.Sequential(*layers), names, pools


class VGGHead(nn.Module):
    """fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8, stored as convolutions.

    Args:
        in_channels: channels of the pool5 map (512 in the paper).
        kernel_size: spatial size of the pool5 map of a training crop (7 at 224).
        fc_width: width of fc6 and fc7 (4096 in the paper).
        num_classes: outputs of fc8.
        dropout: dropout ratio after fc6 and fc7.
    """

    def __init__(self, in_channels: int = 512, kernel_size: int = 7, fc_width: int = 4096,
                 num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.fc6 = nn.Conv2d(in_channels, fc_width, kernel_size)
        self.fc7 = nn.Conv2d(fc_width, fc_width, 1)
        self.fc8 = nn.Conv2d(fc_width, num_classes, 1)
        self.dropout = nn.Dropout(dropout)

    def _layer_out(self, layer: nn.Conv2d, x: Tensor, dense: bool) -> Tensor:
        if dense:
            return layer(x)
        # the FC view of the same parameters: no copy, no reshape of storage
        return F.linear(x.flatten(1), layer.weight.flatten(1), layer.bias)

    def fc6_out(self, x: Tensor, dense: bool) -> Tensor:
        """fc6 after ReLU (FC path: N x width; dense: N x width x h x w)."""
        return F.relu(self._layer_out(self.fc6, x, dense))

    def fc7_out(self, x: Tensor, dense: bool) -> Tensor:
        """fc7 before its ReLU."""
        return self._layer_out(self.fc7, self.dropout(self.fc6_out(x, dense)), dense)

    def logits(self, fc7: Tensor, dense: bool) -> Tensor:
        """fc8 applied to the fc7 output (before its ReLU)."""
        return self._layer_out(self.fc8, self.dropout(F.relu(fc7)), dense)

    def forward(self, x: Tensor, dense: bool = False) -> Tensor:
        return self.logits(self.fc7_out(x, dense), dense)


class VGG(nn.Module):
    """A VGG net of Table 1: conv stack ``features`` and fc head ``head``.

    Args:
        arch: configuration ('A', 'A-LRN', 'B', 'C', 'D', 'E', 'shallow-B') or an
            alias ('vgg16', 'vgg16_bn', ...); a ``_bn`` alias sets ``batch_norm``.
        num_classes: outputs of fc8.
        batch_norm: BatchNorm after every conv (torchvision's ``vgg*_bn``).
        dropout: dropout ratio after fc6 and fc7.
        fc_width: width of fc6 and fc7.
        width_mult: multiplier of the conv widths (1.0 = the paper).
        input_size: training crop size; fc6 is a ``input_size // 32`` square conv.
        init: 'paper' (N(0, init_std^2), biases 0), 'paper_scaled' (per layer
            init_std x sqrt(full-size fan-in / fan-in): a narrow copy keeps
            the full-size net's gain, :mod:`vggkit.models.init`), 'glorot',
            'kaiming', 'from_checkpoint' (needs ``init_checkpoint``) or 'none'.
        init_std: standard deviation of the 'paper' initialisation.
        init_random: the scheme of the layers 'from_checkpoint' does not copy.
        pre_logits_relu: :meth:`pre_logits` returns fc7 after its ReLU.
        adaptive_pool: the FC path average-pools any pool5 map to ``k x k``
            (torchvision's behaviour) instead of raising.
        init_checkpoint: checkpoint for ``init='from_checkpoint'``.
        init_conv_layers, init_fc_layers: layers copied by ``from_checkpoint``
            (``init_conv_layers=None``: every conv layer of the checkpoint).
        init_fc: FC layers ``from_checkpoint`` copies, instead of the last
            ``init_fc_layers``: ``('fc6', 'fc7')`` keeps fc8 random (fine-tuning).
    """

    def __init__(self, arch: str = "D", num_classes: int = 1000, *, batch_norm: bool = False,
                 dropout: float = 0.5, fc_width: int = 4096, width_mult: float = 1.0,
                 input_size: int = 224, init: str = "paper", init_std: float = 0.01,
                 pre_logits_relu: bool = True, adaptive_pool: bool = False,
                 init_checkpoint: str | None = None, init_conv_layers: int | None = 4,
                 init_fc_layers: int = 3, init_fc: Sequence[str] | None = None,
                 init_random: str = "paper") -> None:
        super().__init__()
        config, bn_alias = resolve_arch(arch)
        if input_size < 32:
            raise ValueError(f"input_size={input_size} is smaller than the net's stride 32")
        self.arch = config
        self.batch_norm = bool(batch_norm or bn_alias)
        self.num_classes = num_classes
        self.input_size = input_size
        self.fc_width = fc_width
        self.width_mult = width_mult
        self.pre_logits_relu = pre_logits_relu
        self.adaptive_pool = adaptive_pool
        self.features, self.conv_names, self.pool_indices = make_features(
            CONFIGS[config], batch_norm=self.batch_norm, width_mult=width_mult)
        self.num_features = self.features[self.conv_names[list(self.conv_names)[-1]]].out_channels
        self.head = VGGHead(self.num_features, input_size // 32, fc_width, num_classes, dropout)
        initialize(self, init, std=init_std, checkpoint=init_checkpoint,
                   conv_layers=init_conv_layers, fc_layers=init_fc_layers, fc=init_fc,
                   random=init_random)

    # -- conv stack --------------------------------------------------------------
    def forward_features(self, x: Tensor) -> Tensor:
        """The pool5 map, N x C x H/32 x W/32."""
        return self.features(x)

    def forward_levels(self, x: Tensor) -> list[Tensor]:
        """The five maps after each max-pool (strides 2, 4, 8, 16, 32)."""
        levels, start = [], 0
        for end in self.pool_indices:
            x = self.features[start:end + 1](x)
            levels.append(x)
            start = end + 1
        return levels

    # -- FC path -----------------------------------------------------------------
    def _fc_input(self, x: Tensor) -> Tensor:
        feat = self.forward_features(x)
        k = self.head.kernel_size
        if tuple(feat.shape[-2:]) == (k, k):
            return feat
        if self.adaptive_pool:
            return F.adaptive_avg_pool2d(feat, k)
        raise ValueError(
            f"the FC path of VGG-{self.arch} (input_size={self.input_size}) needs a {k}x{k} "
            f"pool5 map, i.e. a {k * 32}x{k * 32} input; got input "
            f"{x.shape[-2]}x{x.shape[-1]} giving pool5 {feat.shape[-2]}x{feat.shape[-1]}. "
            "Use model.dense(x) for a class score map of a whole image (the paper's dense "
            "evaluation), or build with adaptive_pool=True for torchvision's behaviour.")

    def forward_head(self, feat: Tensor, pre_logits: bool = False) -> Tensor:
        """fc6-fc8 on a ``k x k`` pool5 map; ``pre_logits`` stops after fc7."""
        fc7 = self.head.fc7_out(feat, dense=False)
        if pre_logits:
            return F.relu(fc7) if self.pre_logits_relu else fc7
        return self.head.logits(fc7, dense=False)

    def forward(self, x: Tensor) -> Tensor:
        """Logits N x classes of ``input_size`` crops."""
        return self.forward_head(self._fc_input(x))

    def pre_logits(self, x: Tensor) -> Tensor:
        """fc7 activations N x fc_width (after ReLU unless ``pre_logits_relu=False``)."""
        return self.forward_head(self._fc_input(x), pre_logits=True)

    # -- dense path (Sect. 3.2) --------------------------------------------------
    def _dense_input(self, x: Tensor) -> Tensor:
        feat = self.forward_features(x)
        k = self.head.kernel_size
        if feat.shape[-2] < k or feat.shape[-1] < k:
            raise ValueError(
                f"dense evaluation of VGG-{self.arch} needs an input of at least "
                f"{k * 32}x{k * 32}; got {x.shape[-2]}x{x.shape[-1]} (pool5 "
                f"{feat.shape[-2]}x{feat.shape[-1]} < fc6 kernel {k}). Rescale the image up.")
        return feat

    def dense(self, x: Tensor) -> Tensor:
        """Class score map N x classes x h x w, h = H/32 - k + 1 (1 x 1 at ``input_size``)."""
        return self.head(self._dense_input(x), dense=True)

    def dense_pre_logits(self, x: Tensor, layer: str = "fc7") -> Tensor:
        """The map of ``layer`` ('pool5', 'fc6' after ReLU, or 'fc7') over a whole image.

        'fc7' follows ``pre_logits_relu`` like :meth:`pre_logits`.
        """
        if layer not in DENSE_LAYERS:
            raise ValueError(f"unknown dense layer '{layer}'; choose one of {DENSE_LAYERS}")
        if layer == "pool5":
            return self.forward_features(x)
        feat = self._dense_input(x)
        if layer == "fc6":
            return self.head.fc6_out(feat, dense=True)
        fc7 = self.head.fc7_out(feat, dense=True)
        return F.relu(fc7) if self.pre_logits_relu else fc7

    def dense_layer(self, name: str) -> Callable[[Tensor], Tensor]:
        """A function image -> map of layer ``name`` (see :meth:`dense_pre_logits`)."""
        if name not in DENSE_LAYERS:
            raise ValueError(f"unknown dense layer '{name}'; choose one of {DENSE_LAYERS}")
        return functools.partial(self.dense_pre_logits, layer=name)

    def reset_classifier(self, num_classes: int) -> None:
        """A new fc8 with ``num_classes`` outputs, initialised as the paper's (N(0, 0.01^2),
        biases 0); conv1_1 to fc7 are kept. timm's name for fine-tuning on other classes.
        """
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
        old = self.head.fc8
        fc8 = nn.Conv2d(old.in_channels, num_classes, 1).to(old.weight.device, old.weight.dtype)
        nn.init.normal_(fc8.weight, 0.0, 0.01)
        nn.init.zeros_(fc8.bias)
        self.head.fc8, self.num_classes = fc8, num_classes

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, batch_norm={self.batch_norm}, num_classes={self.num_classes}, "
                f"input_size={self.input_size}, fc_width={self.fc_width}")


# build_vgg moved above the models and the weights, to vggkit.factory; it is found by name
# when asked for, so that the models import nothing from the layers above them
__getattr__ = renamed(__name__, {"build_vgg": (
    "vggkit.factory.build_vgg (or vggkit.build_vgg)",
    lambda: importlib.import_module("vggkit.factory").build_vgg)})
