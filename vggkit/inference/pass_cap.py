"""How many crops one evaluation pass may hold, derived on the running machine.

For the net, its output and the backend running it: from the memory available
and (on CPU) a short timing probe cached next to the 'auto' backend choice.

Why cap a CPU pass at all: once one crop keeps the cores busy, a larger batch
buys little more parallelism, while its activation maps outgrow the caches, so
past some size (which depends on the machine, the net and the backend) the
time per crop stops falling, or rises; and a pass's activations must fit in
memory. A constant cannot know that size; the probe measures it.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

#: crops per pass the throughput probe times, in order, until the time per crop stops
#: falling; up to the strategies' default batch size, so that a net still gaining at 32
#: (tiny, or on many cores) is not held below it
PROBE_CROPS = (1, 2, 4, 8, 16, 32)
#: timed passes per size, the best kept: a size's first pass may pay for fresh allocations
#: and the backend's first call at a new shape
PROBE_REPEATS = 2
#: ... and more passes, until this many seconds are spent on the size: a pass of a tiny
#: net takes milliseconds, which a busy machine's scheduling noise can multiply
PROBE_SECONDS = 0.1
#: sizes in a row gaining no more than TOLERANCE on the best before them that end the probe:
#: one slow size on a busy machine (measured: 0.58 s per crop at 1, 0.71 at 2, load 4.6 on
#: 2 cores) does not end it
PROBE_PATIENCE = 2
#: a pass within this factor of the best time per crop is as good; the smallest such pass
#: is kept (less memory; a larger one would only chase noise)
TOLERANCE = 1.05
#: share of the available memory one pass's activations may take: the backend's arena,
#: the weights, the loader's images and the rest of the machine need the remainder
MEMORY_SHARE = 0.5
#: a user's crops per pass (``none``: only the batch size counts), over any derived cap
PASS_CROPS_ENV = "VGGKIT_PASS_CROPS"
#: the section of the autotune cache file holding the measured crops per pass
CACHE_SECTION = "pass_caps"
_PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class PassCap:
    """How many crops of ``crop×crop`` one evaluation pass may hold, and why.

    ``source``: 'override' (a strategy's ``pass_crops`` or ``$VGGKIT_PASS_CROPS``),
    'measured' (the throughput probe, bounded by memory), 'memory' (memory
    alone: on CUDA, or with probing off) or 'none' (nothing bounds it: only the
    batch size counts; ``crops`` is then None). ``by_memory``: crops whose
    activations fit (``bytes_per_pixel`` × crop² each, in ``available`` bytes);
    ``by_speed``: the probe's pick among ``s_per_crop`` (seconds per crop by
    crops per pass).
    """

    crops: int | None
    crop: int
    source: str
    by_memory: int | None = None
    by_speed: int | None = None
    s_per_crop: Mapping[int, float] = field(default_factory=dict)
    bytes_per_pixel: float | None = None
    available: int | None = None
    when: str | None = None  # when the probe ran (the cached record's stamp)

    @property
    def pixels(self) -> int | None:
        """The cap in input pixels (what :func:`size_batches` takes), or None."""
        return None if self.crops is None else self.crops * self.crop ** 2

    def message(self, what: str) -> str:
        """'vggkit pass cap: 4 crops of 224x224 for D(fc4096)/logits on onnxruntime fp32 (...)'."""
        times = ", ".join(f"{k}: {t * 1e3:.3g}" for k, t in self.s_per_crop.items())
        memory = "unknown" if self.by_memory is None else f"{self.by_memory}"
        return (f"vggkit pass cap: {self.crops} crop{'s' if self.crops != 1 else ''} of "
                f"{self.crop}x{self.crop} per pass for "
                f"{what} (ms per crop by crops per pass: {times}; smallest within "
                f"{TOLERANCE - 1:.0%} of the best: {self.by_speed}; memory allows {memory})")


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


def fastest_pass(s_per_crop: Mapping[int, float]) -> int:
    """The smallest pass within :data:`TOLERANCE` of the best time per crop.

    Example: 1 → 1.0 s, 2 → 0.6, 4 → 0.55, 8 → 0.54 per crop gives 4 (0.55 ≤ 1.05 × 0.54).
    """
    best = min(s_per_crop.values())
    return min(k for k, t in s_per_crop.items() if t <= TOLERANCE * best)


def time_per_crop(time_pass: Callable[[int], float], sizes: Sequence[int]) -> dict[int, float]:
    """Seconds per crop of passes of ``sizes`` crops, in order, stopping early.

    ``time_pass(k)`` gives the seconds of one pass of ``k`` crops. The probe
    stops after :data:`PROBE_PATIENCE` sizes in a row none faster per crop than
    every smaller one by more than :data:`TOLERANCE`: time per crop has stopped
    falling, and :func:`fastest_pass` would not pick a larger pass (1.0, 0.6,
    0.55, 0.54, 0.56 stops at the 0.56 and picks 4).
    """
    per_crop: dict[int, float] = {}
    stale = 0
    for k in sizes:
        best_before = min(per_crop.values(), default=math.inf)
        per_crop[k] = time_pass(k) / k
        stale = stale + 1 if per_crop[k] * TOLERANCE >= best_before else 0
        if stale >= PROBE_PATIENCE:
            break
    return per_crop


def pass_timer(run: Callable[[torch.Tensor], Any], crop: int, device: torch.device,
               largest: int, warmups: int = 1) -> Callable[[int], float]:
    """``time_pass(k)``: the best of :data:`PROBE_REPEATS` passes (or more, for at least
    :data:`PROBE_SECONDS`) of ``k`` random crops through ``run``, after ``warmups``
    passes of one crop (jit optimises on its second)."""
    x = torch.randn(largest, 3, crop, crop, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        for _ in range(warmups):
            run(x[:1])

    def time_pass(k: int) -> float:
        times: list[float] = []
        with torch.inference_mode():
            while len(times) < PROBE_REPEATS or sum(times) < PROBE_SECONDS:
                start = time.perf_counter()
                run(x[:k])
                times.append(time.perf_counter() - start)
        return min(times)
    return time_pass


def measure_pass(run: Callable[[torch.Tensor], Any], crop: int, device: torch.device,
                 max_crops: int, warmups: int = 1) -> dict:
    """The probe: time per crop of :data:`PROBE_CROPS` up to ``max_crops``; the record cached."""
    sizes = [k for k in PROBE_CROPS if k <= max_crops] or [1]
    per_crop = time_per_crop(pass_timer(run, crop, device, max(sizes), warmups), sizes)
    return {"crops": fastest_pass(per_crop), "crop": crop,
            "s_per_crop": {str(k): round(t, 6) for k, t in per_crop.items()}}


def _usable(record: dict) -> bool:
    return isinstance(record.get("crops"), int) and record["crops"] >= 1 \
        and isinstance(record.get("s_per_crop"), dict)


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


def _net_of(model: Any) -> tuple[nn.Module, torch.device]:
    """The eager net behind ``model`` and the device it runs on."""
    from vggkit.inference.runners import CompiledNet
    if isinstance(model, CompiledNet):
        return model.model, model.device
    param = next(model.parameters(), None)
    return model, param.device if param is not None else torch.device("cpu")


def _backend(model: Any, output: str) -> tuple[str, str]:
    """(backend, precision) running ``output`` of ``model`` (its runner built if need be)."""
    from vggkit.inference.runners import CompiledNet
    if isinstance(model, CompiledNet):
        model.runner(output)
        return model.choices[output]
    param = next(model.parameters(), None)
    return "eager", _PRECISION.get(param.dtype if param is not None else torch.float32, "?")


def pass_cap(model: Any, output: str = "logits", *, override: int | None = None,
             cache: str | os.PathLike | None = None, collective: bool = False) -> PassCap:
    """The crops of ``model.input_size``² one evaluation pass of ``output`` may hold.

    ``model`` is what the strategies run: a VGG (eager) or a
    :class:`~vggkit.inference.runners.CompiledNet`; ``output`` 'logits'
    (``model(crops)``) or 'dense' (``model.dense(images)``, capped at the same
    pixels). In order:

    1. the user's: ``override`` (a strategy's ``pass_crops``), else
       ``$VGGKIT_PASS_CROPS`` (a count, or 'none': only the batch size counts);
    2. memory: :data:`MEMORY_SHARE` of :func:`available_memory` over one crop's
       activations (:func:`activation_bytes_per_pixel` × crop²);
    3. on CPU with 'auto' measured (``VGGKIT_AUTOTUNE`` not off): the time per
       crop of passes of :data:`PROBE_CROPS` crops up to the memory bound, on
       the runner the strategy will call, stopping once it no longer falls
       over :data:`PROBE_PATIENCE` sizes (:func:`time_per_crop`); the smallest pass within :data:`TOLERANCE` of
       the best (:func:`fastest_pass`), bounded by the memory of 2.

    The probe's record is cached in the autotune cache file (section
    :data:`CACHE_SECTION`) under 'auto''s key (machine, ISA, threads, torch and
    ORT versions, the net's parameter shapes, output, crop size) plus the
    backend and precision, and later runs read it without timing; the cap is
    printed once per process. Each process derives its cap once per key, so
    its passes do not change with memory coming and going (building the key
    takes ~0.5 ms on VGG-16, so each strategy keeps a model's cap rather than ask
    per batch of images); in a process group
    with ``collective`` (every rank calling in the same order, as
    :func:`vggkit.evaluation.loop.compile_nets` does) rank 0 times and every
    rank takes its figures. On CUDA, or with probing off, memory alone caps
    the pass.

    Cost of the probe: a warm-up pass of one crop, then per size two passes
    (more for at least :data:`PROBE_SECONDS`) until it stops, e.g. 1, 2, 4, 8
    when time per crop stops falling at 2: 31 crops. A tiny test net (1/16
    width, 32-pixel crops): under a second per output. Full-width VGG-16 on
    ONNX Runtime, 2-core development machine: 23.5 s at load ~4 (0.67-0.78 s
    per crop; 1, 2, 4, 8 timed, 2 picked); idle (~0.25 s per crop) ~8 s for
    the same sizes, ~16 s if it runs to 16, ~32 s to 32 -- once per machine,
    net, output and backend, next to the 'auto' probe's ~20-40 s (ONNX export).
    """
    crop = int(model.input_size)
    forced, crops = _forced(override)
    if forced:
        return PassCap(crops, crop, "override" if crops else "none")
    from vggkit.inference import autotune
    net, device = _net_of(model)
    backend = _backend(model, output)
    probing = device.type == "cpu" and autotune.enabled()
    path = autotune.cache_path(cache)
    key = f"{autotune.probe_key(device, [net], output, None, crop)} | {' '.join(backend)}"
    return autotune.remember(("pass cap", path, key, probing), lambda: _derive(
        model, net, output, device, crop, backend, probing, path, key, collective))


def _derive(model: Any, net: nn.Module, output: str, device: torch.device, crop: int,
            backend: tuple[str, str], probing: bool, path: str, key: str,
            collective: bool) -> PassCap:
    """:func:`pass_cap` past the user's override: memory, then the (cached) probe."""
    from vggkit.inference import autotune
    from vggkit.inference.distributed import on_rank0
    per_pixel = activation_bytes_per_pixel(net)
    available = available_memory(device)
    by_memory = memory_crops(per_pixel, available, crop)
    known = {"crop": crop, "by_memory": by_memory, "bytes_per_pixel": per_pixel,
             "available": available}
    if not probing:
        return PassCap(by_memory, source="memory" if by_memory else "none", **known)

    def measure() -> dict:
        run = model if output == "logits" else model.dense
        return measure_pass(run, crop, device, by_memory or max(PROBE_CROPS),
                            autotune.WARMUPS.get(backend[0], 1))

    def fetch() -> dict:
        return autotune.remembered(path, key, measure, CACHE_SECTION, _usable)
    record = on_rank0(fetch) if collective else fetch()
    by_speed = int(record["crops"])
    cap = PassCap(min(by_speed, by_memory or by_speed), source="measured", by_speed=by_speed,
                  s_per_crop=dict(sorted((int(k), float(t))  # JSON sorts "16" before "2"
                                        for k, t in record["s_per_crop"].items())),
                  when=record.get("when"), **known)
    what = f"{autotune.model_signature([net]).split('#')[0]}/{output} on {' '.join(backend)}"
    autotune.say_once(f"pass cap | {key}", cap.message(what))
    return cap


def pass_pixels(model: Any, output: str = "logits", override: int | None = None) -> int | None:
    """The input pixels of one evaluation pass of ``output`` (:func:`pass_cap`), or None."""
    return pass_cap(model, output, override=override).pixels
