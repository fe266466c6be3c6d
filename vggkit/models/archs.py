"""Table 1 of the paper as data: the configurations A-E and their aliases.

No torch here, so ``vggkit describe --help`` lists the names without importing it;
:mod:`vggkit.models.vgg` turns the layers into a net.
"""
from __future__ import annotations

import re

#: Table 1 of the paper, one list of layers per configuration (columns A-E),
#: plus the "shallow B" control of Sect. 4.1 (each pair of 3x3 convs of B
#: replaced by one 5x5 conv).
CONFIGS: dict[str, list[str]] = {
    "A": ["conv3-64", "maxpool",
          "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "A-LRN": ["conv3-64", "LRN", "maxpool",
              "conv3-128", "maxpool",
              "conv3-256", "conv3-256", "maxpool",
              "conv3-512", "conv3-512", "maxpool",
              "conv3-512", "conv3-512", "maxpool"],
    "B": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "C": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv1-256", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool"],
    "D": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool"],
    "E": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool"],
    "shallow-B": ["conv5-64", "maxpool",
                  "conv5-128", "maxpool",
                  "conv5-256", "maxpool",
                  "conv5-512", "maxpool",
                  "conv5-512", "maxpool"],
}

#: alias -> (configuration, batch_norm)
ALIASES: dict[str, tuple[str, bool]] = {
    "vgg11": ("A", False), "vgg11_lrn": ("A-LRN", False), "vgg13": ("B", False),
    "vgg16_c": ("C", False), "vgg16": ("D", False), "vgg19": ("E", False),
    "vgg13_shallow": ("shallow-B", False),
    "vgg11_bn": ("A", True), "vgg13_bn": ("B", True), "vgg16_bn": ("D", True),
    "vgg19_bn": ("E", True),
}


def known_archs() -> list[str]:
    """Every name :func:`vggkit.factory.build_vgg` accepts."""
    return [*CONFIGS, *ALIASES]


def resolve_arch(arch: str) -> tuple[str, bool]:
    """Map a configuration name or alias (any case) to ``(config, batch_norm)``.

    Raises:
        ValueError: naming the unknown value and every known name.
    """
    by_lower = {k.lower(): (k, False) for k in CONFIGS}
    by_lower.update({k.lower(): v for k, v in ALIASES.items()})
    key = str(arch).lower()
    if key not in by_lower:  # 'shallow_b', 'a_lrn'
        key = key.replace("_", "-")
    if key not in by_lower:
        raise ValueError(f"unknown VGG arch '{arch}'; known: {', '.join(known_archs())}")
    return by_lower[key]


_CONV = re.compile(r"conv(\d+)-(\d+)")


def parse_layer(token: str) -> tuple[str, int, int]:
    """``'conv3-64'`` -> ``('conv', 3, 64)``; ``'maxpool'`` -> ``('maxpool', 2, 0)``."""
    match = _CONV.fullmatch(token)
    if match:
        return "conv", int(match.group(1)), int(match.group(2))
    if token == "maxpool":
        return "maxpool", 2, 0
    if token == "LRN":
        return "LRN", 5, 0
    raise ValueError(f"unknown layer '{token}' in a VGG configuration")
