"""``vggkit describe ARCH``: a configuration's column of Table 1, its size and cost.

For every layer: the paper's notation, output shape, parameters, multiply-adds
and the receptive field, so the paper's argument is visible -- two stacked
3x3 convs see 5x5, three see 7x7 (conv1_1: 3, conv1_2: 5, pool1: 6, ...).
Everything is computed from the table, without building the net.
"""
from __future__ import annotations

from typing import Any

from vggkit.models.archs import ALIASES, CONFIGS
from vggkit.models.vgg import parse_layer, resolve_arch


def _layer(name: str, notation: str, shape: tuple[int, int, int], params: int, macs: int,
           rf: int, jump: int) -> dict[str, Any]:
    return {"name": name, "notation": notation, "output": list(shape), "params": params,
            "macs": macs, "receptive_field": rf, "stride": jump}


def describe(arch: str, num_classes: int = 1000, input_size: int = 224, batch_norm: bool = False,
             fc_width: int = 4096) -> dict[str, Any]:
    """Table 1 column, per-layer shapes, parameters, multiply-adds and receptive fields.

    Multiply-adds count the weight layers (convs and FCs) on one
    ``input_size`` crop; ReLU, pooling, LRN and BN are not counted.
    """
    config, bn_alias = resolve_arch(arch)
    batch_norm = batch_norm or bn_alias
    stride = 2 ** sum(parse_layer(t)[0] == "maxpool" for t in CONFIGS[config])
    if input_size < stride:  # pool5 would be 0x0 and every figure after it meaningless
        raise ValueError(f"input size {input_size} is too small: the max-pools of configuration "
                         f"{config} divide it by {stride}, so pool5 would be empty; the minimum "
                         f"is {stride}")
    channels, size, rf, jump = 3, input_size, 1, 1
    block, position, layers, last_conv_rf = 1, 0, [], 0
    for token in CONFIGS[config]:
        kind, k, width = parse_layer(token)
        if kind == "conv":
            position += 1
            params = width * channels * k * k + width + (2 * width if batch_norm else 0)
            macs = size * size * width * channels * k * k  # stride 1, 'same' padding
            rf, channels = rf + (k - 1) * jump, width
            last_conv_rf = rf
            layers.append(_layer(f"conv{block}_{position}", token, (width, size, size), params,
                                 macs, rf, jump))
        elif kind == "LRN":
            layers.append(_layer(f"lrn{block}", "LRN", (channels, size, size), 0, 0, rf, jump))
        else:
            rf, jump, size = rf + (k - 1) * jump, jump * 2, size // 2
            layers.append(_layer(f"pool{block}", token, (channels, size, size), 0, 0, rf, jump))
            block, position = block + 1, 0
    fan_in = channels * size * size
    for name, out in (("fc6", fc_width), ("fc7", fc_width), ("fc8", num_classes)):
        if name == "fc6":
            rf = rf + (size - 1) * jump
        layers.append(_layer(name, f"FC-{out}", (out, 1, 1), fan_in * out + out, fan_in * out,
                             rf, jump))
        fan_in = out
    aliases = [a for a, (c, bn) in ALIASES.items() if c == config and bn == batch_norm]
    return {"arch": config, "aliases": aliases, "batch_norm": batch_norm,
            "weight_layers": sum(1 for l in layers if l["params"] and not l["name"].startswith("lrn")),
            "input_size": input_size, "num_classes": num_classes,
            "params": sum(l["params"] for l in layers), "macs": sum(l["macs"] for l in layers),
            "receptive_field": last_conv_rf, "layers": layers}


def format_table(info: dict[str, Any]) -> str:
    """The human-readable form printed by ``vggkit describe``."""
    name = f"{info['arch']}{' (BN)' if info['batch_norm'] else ''}"
    lines = [f"VGG configuration {name} ({', '.join(info['aliases']) or 'no alias'}): "
             f"{info['weight_layers']} weight layers, input {info['input_size']}x"
             f"{info['input_size']} RGB",
             f"{'layer':<9}{'Table 1':<11}{'output':>16}{'params':>14}{'MACs':>12}{'RF':>6}"]
    for layer in info["layers"]:
        shape = "x".join(str(d) for d in layer["output"])
        lines.append(f"{layer['name']:<9}{layer['notation']:<11}{shape:>16}"
                     f"{layer['params']:>14,}{layer['macs'] / 1e6:>11.1f}M"
                     f"{layer['receptive_field']:>6}")
    lines.append(f"total: {info['params']:,} parameters, {info['macs'] / 1e9:.2f} G multiply-adds "
                 f"at {info['input_size']}, receptive field of the last conv "
                 f"{info['receptive_field']}x{info['receptive_field']}")
    return "\n".join(lines)
