"""The extraction engine: images -> Appendix-B descriptors, batched by size.

:class:`FeatureExtractor` holds one or several nets (Net-D & Net-E stack) and
the descriptor settings. :meth:`FeatureExtractor.prepare` decodes an image and
rescales it to every Q (CPU work that a background thread can overlap with the
nets); :meth:`FeatureExtractor.describe` runs the nets.

Speed levers (measured in ``benchmarks/bench_extract.py``):

* images of equal rescaled size are stacked into one batch, and each image
  runs together with its mirror (batch 2n);
* on CPU, ONNX Runtime when installed (the net exported once with dynamic
  batch and image size), else:
* ``torch.inference_mode``; on CPU the net is converted once to oneDNN's
  blocked layout (``torch.utils.mkldnn.to_mkldnn``: weights reordered once,
  activations stay blocked between layers), else channels-last memory format;
* bf16 autocast only where the CPU has AVX-512 BF16 or AMX
  (:func:`cpu_has_bf16`), since emulated bf16 is slower than fp32.

Batches are formed from a fixed list of images (a shard), sorted by size then
position, so the same shard always gives the same batches and the same bytes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from vggkit.features.descriptor import AGGREGATES, LAYERS, combine, flip_pooled
from vggkit.models.runtime import compile_for_inference, onnxruntime_available

PRECISIONS = ("auto", "fp32", "bf16")
BACKENDS = ("auto", "onnxruntime", "mkldnn", "eager")
#: leaf modules oneDNN's blocked tensors run through (anything else: eager backend)
_MKLDNN_LEAVES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.Dropout)

#: one prepared image: Q -> uint8 tensor 3 x H x W of the image rescaled to Q
Prepared = dict[int, Tensor]


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX), per /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """'auto' -> 'bf16' on CPUs with native bf16, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; choose one of {PRECISIONS}")
    if precision != "auto":
        return precision
    return "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"


def mkldnn_ready(model: nn.Module) -> bool:
    """Whether every layer of ``model`` runs on oneDNN blocked tensors (LRN does not)."""
    leaves = [m for m in model.modules() if not list(m.children())]
    return (torch.backends.mkldnn.is_available()
            and all(isinstance(m, _MKLDNN_LEAVES) for m in leaves))


class MkldnnNet:
    """A VGG converted to oneDNN's blocked layout, with the dense API of the original.

    ``to_mkldnn`` replaces layers in place, so by default the net is copied
    and the caller's model is left untouched; ``copy=False`` saves the memory.
    """

    def __init__(self, model: nn.Module, copy: bool = True) -> None:
        import copy as copy_module
        import warnings
        from torch.utils import mkldnn
        relu = model.pre_logits_relu
        if copy:
            model = copy_module.deepcopy(model)
        with warnings.catch_warnings():  # its modules are TorchScript, which warns on use
            warnings.simplefilter("ignore", FutureWarning)
            self.model = mkldnn.to_mkldnn(model.eval())
        self.pre_logits_relu = relu

    def dense_pre_logits(self, x: Tensor, layer: str = "fc7") -> Tensor:
        return self.model.dense_pre_logits(x.to_mkldnn(), layer=layer).to_dense()


def min_side(model: nn.Module, layer: str) -> int:
    """Smallest image side the dense map of ``layer`` of a VGG needs."""
    return 32 if layer == "pool5" else int(model.head.kernel_size) * 32


class OrtNet:
    """One layer's dense map of a VGG, run by ONNX Runtime (:mod:`vggkit.models.runtime`).

    ONNX Runtime's CPU convolutions (MLAS, blocked layout) beat PyTorch's on
    the AVX2 machines measured (``benchmarks/bench_extract.py``). The net is
    exported once per net and process, with dynamic N, H and W.
    """

    def __init__(self, model: nn.Module, layer: str, relu: bool, threads: int) -> None:
        self.layer_map = compile_for_inference(model, layer, "onnxruntime", threads=threads,
                                               example_size=min_side(model, layer), relu=relu)


@dataclass
class Net:
    """One frozen VGG and the preprocessing its weights expect.

    Attributes:
        model: a :class:`vggkit.models.vgg.VGG` in eval mode.
        preprocess: record for :func:`vggkit.models.preprocess.normalize`.
        name: shown in messages (e.g. the checkpoint path).
    """

    model: nn.Module
    preprocess: dict[str, Any]
    name: str = "net"

    def width(self, layer: str) -> int:
        """Channels of ``layer``'s map."""
        return int(self.model.num_features if layer == "pool5" else self.model.fc_width)

    def min_side(self, layer: str) -> int:
        """Smallest image side the dense map of ``layer`` needs."""
        return min_side(self.model, layer)


#: pixels per batch at most (before mirroring): bounds activation memory at large Q
#: (4 images of 683 x 512: conv1 maps of the 8 passes take ~0.7 GB in fp32)
MAX_BATCH_PIXELS = 4 * 683 * 512


def size_batches(sizes: Sequence[tuple[int, int]], batch_size: int,
                 max_pixels: int | None = None) -> list[list[int]]:
    """Indices grouped by equal size, in index order within a size, chunked.

    A chunk holds at most ``batch_size`` images and ``max_pixels`` pixels (at
    least one image). The result depends only on the arguments: the same
    images always make the same batches.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(i)
    batches = []
    for size in sorted(groups):
        members = groups[size]
        step = batch_size
        if max_pixels is not None:
            step = max(1, min(batch_size, max_pixels // (size[0] * size[1])))
        batches += [members[s:s + step] for s in range(0, len(members), step)]
    return batches


def to_tensor(img: Image.Image) -> Tensor:
    """RGB PIL image -> uint8 tensor 3 x H x W."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)


@dataclass
class FeatureExtractor:
    """Appendix-B descriptors of images from one or several nets.

    Args:
        nets: the nets; several nets stack their descriptors.
        scales: the test scales Q (smallest image side).
        aggregate: 'avg' or 'stack' over scales.
        layer: 'fc7', 'fc6' or 'pool5'.
        relu: fc6/fc7 after their ReLU.
        batch_size: images per batch (each runs with its mirror: 2x that).
        precision: 'fp32', 'bf16' or 'auto'.
        backend: 'onnxruntime' (CPU fp32, if installed), 'mkldnn' (oneDNN
            blocked layout, CPU fp32), 'eager' or 'auto' (the first that applies).
        channels_last: eager backend: run convs in channels-last memory format.
        own_nets: the extractor may convert the nets in place (no second copy
            of the weights); the tool sets it, notebooks keep the default.
        device: torch device of the nets.
    """

    nets: list[Net]
    scales: Sequence[int] = (256, 384, 512)
    aggregate: str = "avg"
    layer: str = "fc7"
    relu: bool = True
    batch_size: int = 8
    precision: str = "fp32"
    backend: str = "auto"
    channels_last: bool = True
    device: str = "cpu"
    own_nets: bool = False
    _ready: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.scales = tuple(int(q) for q in self.scales)
        if not self.nets:
            raise ValueError("FeatureExtractor needs at least one net")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregation '{self.aggregate}'; choose one of {AGGREGATES}")
        if self.layer not in LAYERS:
            raise ValueError(f"unknown layer '{self.layer}'; choose one of {LAYERS}")
        if not self.scales or len(set(self.scales)) != len(self.scales):
            raise ValueError(f"scales must be distinct and non-empty, got {list(self.scales)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.precision = resolve_precision(self.precision, self.device)
        self.backend = self._resolve_backend()
        for net in self.nets:
            need = net.min_side(self.layer)
            if min(self.scales) < need:
                raise ValueError(
                    f"scale Q={min(self.scales)} is too small for {net.name}: its {self.layer} "
                    f"map needs a smallest side >= {need} (input_size "
                    f"{net.model.input_size}); use --scales of at least {need}")
            if self.layer == "fc7":
                net.model.pre_logits_relu = self.relu  # the model reads it in dense_pre_logits

    @property
    def dim(self) -> int:
        """Length of the stored descriptor."""
        per_scale = len(self.scales) if self.aggregate == "stack" else 1
        return sum(net.width(self.layer) * per_scale for net in self.nets)

    def _resolve_backend(self) -> str:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend '{self.backend}'; choose one of {BACKENDS}")
        cpu_fp32 = torch.device(self.device).type == "cpu" and self.precision == "fp32"
        ort = cpu_fp32 and onnxruntime_available()
        mkl = (cpu_fp32 and not (self.layer == "fc6" and not self.relu)
               and all(mkldnn_ready(net.model) for net in self.nets))
        if self.backend == "onnxruntime" and not ort:
            raise ValueError("backend 'onnxruntime' needs a CPU device, fp32 and the "
                             "onnxruntime package (pip install onnxruntime); use --backend eager")
        if self.backend == "mkldnn" and not mkl:
            raise ValueError("backend 'mkldnn' needs a CPU device, fp32, layers oneDNN runs "
                             "(no LRN) and not fc6 before ReLU; use --backend eager")
        if self.backend == "auto":
            return "onnxruntime" if ort else "mkldnn" if mkl else "eager"
        return self.backend

    def setup(self) -> None:
        """Prepare the nets for inference (conversion, export); done by the first describe."""
        if self._ready:
            return
        self._runners: list[Any] = []
        for net in self.nets:
            net.model.eval()
            if self.backend == "onnxruntime":
                self._runners.append(OrtNet(net.model, self.layer, self.relu,
                                            torch.get_num_threads()))
                continue
            if self.backend == "mkldnn":
                self._runners.append(MkldnnNet(net.model, copy=not self.own_nets))
                continue
            self._runners.append(net.model)
            net.model.to(self.device)
            if self.channels_last:
                net.model.to(memory_format=torch.channels_last)
        self._ready = True

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- work ---------------------------------------------------------------------
    def prepare(self, img: Image.Image) -> Prepared:
        """``img`` rescaled isotropically to every Q, as uint8 tensors."""
        from vggkit.data.transforms import rescale_isotropic
        return {q: to_tensor(rescale_isotropic(img, q)) for q in self.scales}

    def _pooled(self, k: int, batch: list[Tensor]) -> Tensor:
        from vggkit.models.preprocess import normalize
        x = normalize(torch.stack(batch).to(self.device), self.nets[k].preprocess)
        if self.channels_last and self.backend == "eager":
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return flip_pooled(self._runners[k], x, self.layer, self.relu).float().cpu()

    def describe(self, images: Sequence[Prepared | None],
                 progress: Callable[[float], Any] | None = None) -> np.ndarray:
        """Descriptors N x :attr:`dim` float32 (unit rows) of prepared images.

        ``None`` entries (images that could not be read) get zero rows.
        ``progress(k)`` is called with the fraction of images done since the last call.
        """
        self.setup()
        ok = [i for i, p in enumerate(images) if p is not None]
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        if not ok:
            return out
        steps = len(self.scales) * len(self.nets)
        blocks = []
        with torch.inference_mode():
            for k, net in enumerate(self.nets):
                per_scale = []
                for q in self.scales:
                    arrays = [images[i][q] for i in ok]
                    pooled = torch.empty(len(ok), net.width(self.layer))
                    sizes = [tuple(a.shape[1:]) for a in arrays]
                    for idx in size_batches(sizes, self.batch_size, MAX_BATCH_PIXELS):
                        pooled[idx] = self._pooled(k, [arrays[i] for i in idx])
                        if progress is not None:
                            progress(len(idx) / steps)
                    per_scale.append(pooled)
                blocks.append(combine(per_scale, self.aggregate))
            out[ok] = combine(blocks, "stack").numpy()
        return out

    def describe_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Descriptors of PIL images (convenience for notebooks)."""
        return self.describe([self.prepare(img) for img in images])

