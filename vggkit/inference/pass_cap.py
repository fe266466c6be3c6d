"""How many crops one evaluation pass may hold: the user's number, else what memory allows.

A pass's activations must fit in memory: ``--batch-size 1000`` crops of
VGG-16 would ask for 24 GB. So a pass holds at most the crops whose peak
activations (from the net's layer widths) fit in :data:`MEMORY_SHARE` of the
memory available.

No timing. This module used to probe the time per crop of passes of 1, 2, 4,
... crops on the running machine and keep the smallest pass within 5 % of the
best. On VGG-16 it measured a flat curve (ONNX Runtime, 2-core AMD EPYC:
0.448, 0.442, 0.449 s per crop at 1, 2, 4 crops; README and issue 26), so it
changed no time, while it cost 8-32 s per machine, net, output and backend
and ~250 lines. Without it a pass holds ``batch_size`` crops, which a bf16
path with its weights cast once turns into fewer, larger matrix products.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

#: share of the available memory one pass's activations may take: the backend's arena,
#: the weights, the loader's images and the rest of the machine need the remainder
MEMORY_SHARE = 0.5
#: a user's crops per pass (``none``: only the batch size counts), over the memory bound
PASS_CROPS_ENV = "VGGKIT_PASS_CROPS"


@dataclass(frozen=True)
class PassCap:
    """How many crops of ``crop×crop`` one evaluation pass may hold, and why.

    ``source``: 'override' (a strategy's ``pass_crops`` or ``$VGGKIT_PASS_CROPS``),
    'memory' (``by_memory``: crops whose activations, ``bytes_per_pixel`` ×
    crop² each, fit in :data:`MEMORY_SHARE` of ``available`` bytes) or 'none'
    (nothing bounds it: only the batch size counts; ``crops`` is then None).
    """

    crops: int | None
    crop: int
    source: str
    by_memory: int | None = None
    bytes_per_pixel: float | None = None
    available: int | None = None

    @property
    def pixels(self) -> int | None:
        """The cap in input pixels (what :func:`size_batches` takes), or None."""
        return None if self.crops is None else self.crops * self.crop ** 2


def activation_bytes_per_pixel(model: nn.Module) -> float | None:
    """Peak activation bytes per input pixel of ``model.features``, from its layer widths.

    Each layer holds its input and output at once (an in-place layer only
    its output); a layer's maps have its width in channels and the area left
    by the strides before it. The peak over the layers, times the parameters'
    element size. VGG-16: conv1_2, (64 + 64) × 4 B = 512 B per pixel, 24.5 MiB
    per 224×224 crop. The head is left out: after five pools it holds ~1 % of
    that (fc6 of VGG-16: 0.6 values per input pixel). None when the model
    has no ``features`` stack with a convolution.
    """
    features = getattr(model, "features", None)
    layers = [m for m in features.modules() if not list(m.children())] \
        if isinstance(features, nn.Module) else []
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    if not convs:
        return None
    channels, area, peak = convs[0].in_channels, 1.0, 0.0  # area: map pixels per input pixel
    for layer in layers:
        out_channels, out_area = _maps_after(layer, channels, area)
        held_input = 0.0 if getattr(layer, "inplace", False) else channels * area
        peak = max(peak, held_input + out_channels * out_area)
        channels, area = out_channels, out_area
    param = next(model.parameters(), None)
    return peak * (param.element_size() if param is not None else 4)


def _maps_after(layer: nn.Module, channels: int, area: float) -> tuple[int, float]:
    """Channels and area (map pixels per input pixel) after ``layer``."""
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels, area / _stride_area(layer.stride)
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        return channels, area / _stride_area(layer.stride)
    return channels, area  # elementwise: ReLU, batch norm, LRN, dropout


def _stride_area(stride: int | Sequence[int]) -> int:
    return math.prod(stride) if isinstance(stride, (tuple, list)) else int(stride) ** 2


def available_memory(device: torch.device) -> int | None:
    """Bytes the passes on ``device`` may draw on now, or None if unknown.

    CUDA: the device's free memory. CPU: MemAvailable, split over the ranks of
    this machine (``LOCAL_WORLD_SIZE``, as torchrun sets it), which evaluate at once.
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    available = _mem_available()
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return None if available is None else available // ranks


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # no /proc: free pages only (page cache not counted), the safe side
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_crops(bytes_per_pixel: float | None, available: int | None, crop: int) -> int | None:
    """Crops whose activations fit in :data:`MEMORY_SHARE` of ``available`` bytes (at least 1)."""
    if not bytes_per_pixel or available is None:
        return None
    return max(1, int(available * MEMORY_SHARE // (bytes_per_pixel * crop * crop)))


def _forced(override: int | None) -> tuple[bool, int | None]:
    """Whether the user set the crops per pass (argument, else environment), and to what."""
    if override is not None:
        return True, int(override)
    value = os.environ.get(PASS_CROPS_ENV, "").strip().lower()
    if value in ("", "auto"):
        return False, None
    if value in ("none", "off"):
        return True, None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{PASS_CROPS_ENV}={value!r}: give a number of crops per pass >= 1, "
                         "'none' (only the batch size counts) or 'auto'")
    return True, int(value)


def pass_cap(model: Any, output: str = "logits", *, override: int | None = None,
             **_: Any) -> PassCap:
    """The crops of ``model.input_size``² one evaluation pass of ``output`` may hold.

    ``model`` is what the strategies run: a VGG or a
    :class:`~vggkit.inference.runners.CompiledNet` (its ``model`` counts);
    ``output`` 'logits' or 'dense' (capped at the same pixels). The user's
    ``override`` (a strategy's ``pass_crops``), else ``$VGGKIT_PASS_CROPS``
    (a count, or 'none'), else the memory bound. (``cache`` and
    ``collective``, which the timing probe took, are accepted and unused.)
    """
    crop = int(model.input_size)
    forced, crops = _forced(override)
    if forced:
        return PassCap(crops, crop, "override" if crops else "none")
    net = getattr(model, "model", model)
    param = next(net.parameters(), None)
    per_pixel = activation_bytes_per_pixel(net)
    available = available_memory(param.device if param is not None else torch.device("cpu"))
    by_memory = memory_crops(per_pixel, available, crop)
    return PassCap(by_memory, crop, "memory" if by_memory else "none", by_memory, per_pixel,
                   available)


def pass_pixels(model: Any, output: str = "logits", override: int | None = None) -> int | None:
    """The input pixels of one evaluation pass of ``output`` (:func:`pass_cap`), or None."""
    return pass_cap(model, output, override=override).pixels
