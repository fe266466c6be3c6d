"""Initialisation schemes of Sect. 3.1.

* ``paper``: weights ~ N(0, std^2), biases 0. The paper says "10^-2 variance";
  taken literally that is std 0.1, but Caffe practice (and the default here)
  is std 0.01, so ``std`` is a parameter.
* ``paper_scaled``: ``paper`` for a scaled-down copy (narrower, smaller crops):
  layer l gets std_l = std * sqrt(fan_in_full / fan_in_l), where fan_in_full
  is the same layer's fan-in in the paper's full-size net of the same
  configuration (width 1, FC 4096, 224 crops). A layer's output variance is
  fan_in x std^2 x its input's, so each layer keeps the full-size net's gain:
  conv1_1 (fan-in 27 at every width) keeps std, a 1/4-width middle conv gets
  2 std, and fc6 of a 32-pixel copy (fan-in 512 x 1 x 1 x width instead of
  512 x 7 x 7) gets std x sqrt(49 / width).
* ``glorot``: Glorot & Bengio (Xavier) uniform, biases 0 -- the paper notes it
  trains the deep nets without pre-training. Head layers use the fan of the
  FC layer they are (fan_out = out features, not out x k x k).
* ``kaiming``: He et al. normal (fan_out, ReLU), torchvision's choice.
* ``from_checkpoint``: ``random`` (default ``paper``) then :func:`init_from_checkpoint`
  -- the paper's pre-initialisation of deeper nets from net A.
* ``none``: leave PyTorch's defaults (e.g. to count parameters cheaply).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from vggkit.errors import plural
from vggkit.models.io import _foreign_layout, read_checkpoint

INIT_SCHEMES = ("paper", "paper_scaled", "glorot", "kaiming", "from_checkpoint", "none")
#: the schemes ``from_checkpoint`` can give the layers it does not copy
RANDOM_SCHEMES = ("paper", "paper_scaled", "glorot", "kaiming")
FC_LAYERS = ("fc6", "fc7", "fc8")
#: the full-size net whose per-layer gain ``paper_scaled`` keeps: the paper's FC width and crop
FULL_FC_WIDTH, FULL_INPUT_SIZE = 4096, 224


def full_size_fan_ins(arch: str) -> list[int]:
    """Fan-in of every conv of configuration ``arch`` at full size, then of fc6, fc7, fc8.

    The paper's net: Table 1's widths, 224-pixel crops (fc6 sees a 7 x 7 pool5
    map), 4096-wide FC layers.
    """
    from vggkit.models.archs import CONFIGS, parse_layer
    fan_ins, channels = [], 3
    for token in CONFIGS[arch]:
        kind, size, width = parse_layer(token)
        if kind == "conv":
            fan_ins.append(channels * size * size)
            channels = width
    k = FULL_INPUT_SIZE // 32
    return [*fan_ins, channels * k * k, FULL_FC_WIDTH, FULL_FC_WIDTH]


def scaled_stds(model: nn.Module, std: float) -> dict[nn.Conv2d, float]:
    """``paper_scaled``'s std of each conv (FC layers included) of a VGG ``model``."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    convs += [model.head.fc6, model.head.fc7, model.head.fc8]
    full = full_size_fan_ins(model.arch)
    return {conv: std * math.sqrt(f / conv.weight[0].numel()) for conv, f in zip(convs, full)}


def _init_conv(conv: nn.Conv2d, scheme: str, std: float, is_fc: bool) -> None:
    if scheme in ("paper", "paper_scaled"):  # paper_scaled: std is the layer's own
        nn.init.normal_(conv.weight, 0.0, std)
    elif scheme == "glorot":
        fan_in = conv.weight[0].numel()
        fan_out = conv.out_channels if is_fc else conv.out_channels * conv.weight[0, 0].numel()
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        nn.init.uniform_(conv.weight, -bound, bound)
    else:
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def initialize(model: nn.Module, scheme: str = "paper", *, std: float = 0.01,
               checkpoint: str | Mapping[str, Tensor] | None = None,
               conv_layers: int | None = 4, fc_layers: int = 3,
               fc: Sequence[str] | None = None, random: str = "paper") -> InitReport | None:
    """Initialise a VGG in place with ``scheme`` (see the module docstring).

    ``random`` is the scheme of the layers ``from_checkpoint`` leaves random.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init '{scheme}'; choose one of {INIT_SCHEMES}")
    if random not in RANDOM_SCHEMES:
        raise ValueError(f"unknown init_random '{random}'; choose one of {RANDOM_SCHEMES}")
    if scheme == "none":
        return None
    if scheme == "from_checkpoint" and checkpoint is None:
        raise ValueError("init='from_checkpoint' needs init_checkpoint=PATH (e.g. a trained net A)")
    drawn = random if scheme == "from_checkpoint" else scheme
    stds = scaled_stds(model, std) if drawn == "paper_scaled" else {}
    head = getattr(model, "head", None)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            is_fc = head is not None and any(module is m for m in head.children())
            _init_conv(module, drawn, stds.get(module, std), is_fc)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if scheme == "from_checkpoint":
        report = init_from_checkpoint(model, checkpoint, conv_layers,  # type: ignore[arg-type]
                                      fc_layers, fc=fc)
        print(report)
        return report
    return None


@dataclass
class InitReport:
    """What :func:`init_from_checkpoint` copied and what it left random."""

    source: str
    copied: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)
    random: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"init from checkpoint {self.source}: {plural(len(self.copied), 'layer')} copied, "
                 f"{len(self.random)} left random"]
        lines += [f"  copied  {dst:<8} <- {src:<8} {list(shape)}" for dst, src, shape in self.copied]
        lines += [f"  random  {name}" for name in self.random]
        return "\n".join(lines)


def source_conv_names(state_dict: Mapping[str, Tensor]) -> list[tuple[str, int]]:
    """``[('conv1_1', 0), ('conv2_1', 3), ...]`` inferred from a conv stack's keys.

    Pools hold no parameters, so blocks are found from the gaps of the
    ``features.N`` indices: a conv followed by anything but its own BN/ReLU
    (a pool, or LRN then pool) ends its block.
    """
    indices = sorted(int(k.split(".")[1]) for k, v in state_dict.items()
                     if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4)
    if not indices:
        raise ValueError("the checkpoint has no conv layers 'features.N.weight'")
    step = 3 if f"features.{indices[0] + 1}.running_mean" in state_dict else 2
    names, block, position = [], 1, 0
    for i, index in enumerate(indices):
        position += 1
        names.append((f"conv{block}_{position}", index))
        if i + 1 < len(indices) and indices[i + 1] - index > step:
            block, position = block + 1, 0
    return names


def copy_prefix(model_sd: dict[str, Tensor], source: Mapping[str, Tensor], dst: str, src: str,
                 what: str, hint: str) -> tuple[int, ...]:
    """Copy every tensor under ``src.`` into ``dst.``; shapes must agree."""
    if f"{src}.weight" not in source:
        raise ValueError(f"cannot copy {what}: the checkpoint has no '{src}.weight'. {hint}")
    pairs = [(k, f"{src}{k[len(dst):]}") for k in model_sd if k.startswith(dst + ".")]
    for dst_key, src_key in pairs:
        if src_key not in source:
            continue  # e.g. BN in the target only: it keeps its init
        if source[src_key].shape != model_sd[dst_key].shape:
            raise ValueError(f"cannot copy {what}: checkpoint '{src_key}' has shape "
                             f"{tuple(source[src_key].shape)} but model '{dst_key}' has "
                             f"{tuple(model_sd[dst_key].shape)}. {hint}")
        with torch.no_grad():
            model_sd[dst_key].copy_(source[src_key])
    return tuple(model_sd[f"{dst}.weight"].shape)


def fc_to_copy(fc_layers: int, fc: Sequence[str] | None = None) -> list[str]:
    """The FC layers :func:`init_from_checkpoint` copies: ``fc`` if given, else the last
    ``fc_layers`` of fc6-fc8 (net A -> B..E copies all three)."""
    if fc is None:
        return list(FC_LAYERS[len(FC_LAYERS) - fc_layers:]) if fc_layers else []
    unknown = [n for n in fc if n not in FC_LAYERS]
    if isinstance(fc, str) or unknown:
        raise ValueError(f"fc={fc!r} must list FC layers among {FC_LAYERS}, e.g. "
                         "('fc6', 'fc7') to keep fc8 random")
    return [n for n in FC_LAYERS if n in fc]


def init_from_checkpoint(model: nn.Module, path: str | Mapping[str, Tensor],
                         conv_layers: int | None = 4, fc_layers: int = 3, match: str = "name",
                         fc: Sequence[str] | None = None) -> InitReport:
    """Copy layers of a trained VGG into ``model`` (the paper: net A -> B..E).

    The first ``conv_layers`` conv layers of the checkpoint go, with
    ``match='name'``, to the model's layers of the same name (``conv{block}_{i}``):
    A's first four convs conv1_1, conv2_1, conv3_1, conv3_2 initialise the same
    four of net D, as in the paper. ``match='order'`` pairs the i-th conv with
    the i-th; ``conv_layers=None`` copies them all. The last ``fc_layers`` of
    fc6, fc7, fc8 are copied too, or, if given, the FC layers named in ``fc``:
    ``fc=('fc6', 'fc7')`` keeps everything but fc8, whose size is the class
    count (fine-tuning on other classes). Everything else keeps its current
    (random) initialisation.

    Returns:
        An :class:`InitReport` (print it for a table of copied/random layers).
    """
    if match not in ("name", "order"):
        raise ValueError(f"match must be 'name' or 'order', got '{match}'")
    if isinstance(path, Mapping):
        source, label = dict(path), "<state_dict>"
    else:
        source, label = read_checkpoint(path)[0], str(path)
    layout = _foreign_layout(source)
    if layout is not None:
        raise ValueError(f"checkpoint {label} has {layout}'s key layout; convert it with "
                         f"tools/convert_weights.py --src {layout} first")
    model_sd = dict(model.state_dict(keep_vars=True))
    sources = source_conv_names(source)
    if conv_layers is None:
        conv_layers = len(sources)
    if conv_layers > len(sources):
        raise ValueError(f"conv_layers={conv_layers} but checkpoint {label} has only "
                         f"{len(sources)} conv layers")
    targets = list(model.conv_names.items())
    report = InitReport(label)
    done: set[str] = set()
    for i, (src_name, src_index) in enumerate(sources[:conv_layers]):
        if match == "name":
            if src_name not in model.conv_names:
                raise ValueError(f"checkpoint {label} layer {src_name} has no counterpart in "
                                 f"VGG-{model.arch} (layers {list(model.conv_names)}); "
                                 "try match='order' or fewer conv_layers")
            dst_name = src_name
        else:
            dst_name = targets[i][0]
        shape = copy_prefix(model_sd, source, f"features.{model.conv_names[dst_name]}",
                             f"features.{src_index}", f"{src_name} -> {dst_name}",
                             "Do the nets have the same width_mult?")
        report.copied.append((dst_name, src_name, shape))
        done.add(dst_name)
    for name in fc_to_copy(fc_layers, fc):
        hint = ("fc8 depends on num_classes: pass fc=('fc6', 'fc7') (in a config "
                "model.vgg.init_fc=['fc6', 'fc7']) to keep it random."
                if name == "fc8" else "Do the nets have the same fc_width and input_size?")
        shape = copy_prefix(model_sd, source, f"head.{name}", f"head.{name}", name, hint)
        report.copied.append((name, name, shape))
        done.add(name)
    report.random = [n for n in [*model.conv_names, *FC_LAYERS] if n not in done]
    return report
