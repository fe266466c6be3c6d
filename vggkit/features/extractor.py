"""The feature extractor: images -> Appendix-B descriptors, batched by size.

:class:`FeatureExtractor` holds one or several nets (Net-D & Net-E stack) and
the descriptor settings. :meth:`FeatureExtractor.prepare` rescales an image to
every Q (CPU work that a background thread can overlap with the nets);
:meth:`FeatureExtractor.describe` runs the nets. An item that stacks several
regions of an image (:mod:`vggkit.features.regions`) is described by
:meth:`FeatureExtractor.describe_items` from its prepared crops.

Speed levers (measured in ``benchmarks/bench_extract.py``):

* images of equal rescaled size are stacked into one batch, and each image
  runs together with its mirror (batch 2n);
* backend 'auto' is the fastest path measured on this machine that agrees
  with fp32 eager (:mod:`vggkit.inference.autotune`: ONNX Runtime, oneDNN
  blocked layout, eager channels-last; with precision 'auto' also bf16 weights
  cast once where the CPU has AVX-512 BF16 or AMX), probed once, at the middle
  scale on an image and its mirror, and cached.

Batches are those of a fixed list of images (a shard), by size then position
(:func:`~vggkit.inference.batching.size_batches`), so the same shard always
gives the same batches and the same bytes. A batch runs as soon as its last
image is decoded (:meth:`FeatureExtractor.describe_stream`): that changes the
order of the batches, never their contents.
"""
from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from vggkit.features import AGGREGATES, LAYERS
from vggkit.features.descriptor import combine, flip_pooled, with_mirrors
from vggkit.features.regions import Region, crop_region
from vggkit.inference.autotune import choice
from vggkit.inference.batching import MAX_BATCH_PIXELS, size_batches
from vggkit.inference.runners import compile_for_inference
from vggkit.inference.views import Views, image_views
from vggkit.models.preprocess import normalize_

#: one prepared image (an alias of :data:`vggkit.inference.views.Views`)
Prepared = Views


def min_side(model: nn.Module, layer: str) -> int:
    """Smallest image side the dense map of ``layer`` of a VGG needs."""
    return 32 if layer == "pool5" else int(model.head.kernel_size) * 32


class SizeBatcher:
    """:func:`~vggkit.inference.batching.size_batches` of inputs that arrive one at a time.

    :meth:`add` hands out a batch as soon as its last input is in, :meth:`rest`
    the batches left unfilled at the end. Together they are exactly the
    batches ``size_batches`` makes of all the inputs (in another order), so a
    descriptor's bytes do not depend on when its image arrived.
    """

    def __init__(self, batch_size: int, max_pixels: int | None = None) -> None:
        self.batch_size, self.max_pixels = batch_size, max_pixels
        self._open: dict[tuple[int, int], list[int]] = {}
        self._full: dict[tuple[int, int], int] = {}

    def add(self, index: int, size: tuple[int, int]) -> list[int] | None:
        """Input ``index`` of ``size`` is in: its batch if that is now full, else None."""
        members = self._open.setdefault(size, [])
        members.append(index)
        return self._open.pop(size) if len(members) == self._length(size) else None

    def rest(self) -> list[list[int]]:
        """The batches not full at the end, by size (all inputs are in)."""
        return [self._open.pop(size) for size in sorted(self._open)]

    def _length(self, size: tuple[int, int]) -> int:
        # a full batch of this size, by size_batches' own rule (batch size and pixel cap)
        if size not in self._full:
            # a probe as long as the pixel cap allows, not batch_size long: a huge
            # --batch-size made this list itself exhaust memory
            if self.max_pixels is None:
                self._full[size] = self.batch_size
            else:
                n = min(self.batch_size, self.max_pixels // (size[0] * size[1]) + 1)
                self._full[size] = len(size_batches([size] * n, self.batch_size,
                                                    self.max_pixels)[0])
        return self._full[size]


def stack_regions(rows: np.ndarray, items: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Descriptors of items, each the stack of the ``rows`` of its regions' crops.

    ``items[i]`` lists the indices into ``rows`` of item i's regions
    (:func:`vggkit.features.regions.unique_crops`). Several regions are
    stacked by the normalisation rule of :mod:`~vggkit.features.descriptor`
    (each block unit, the whole re-normalised); a one-region item gets its
    crop's row as it is. Returns N x (regions per item * row length) float32.
    """
    per_item = {len(item) for item in items}
    if per_item == {1} or not items:
        return rows[[item[0] for item in items]]
    if len(per_item) > 1:
        raise ValueError(f"every item needs the same number of regions; got {sorted(per_item)}")
    blocks = [torch.from_numpy(rows[[item[r] for item in items]]) for r in range(len(items[0]))]
    return combine(blocks, "stack").numpy()


def pass_pixels(q: int, batch_size: int) -> int:
    """Input pixels of the largest pass at scale ``q``: a batch of square ``q x q`` images
    (the fewest pixels an image at Q has), as :func:`size_batches` cuts it, with mirrors."""
    per_image = q * q
    images = max(1, min(batch_size, MAX_BATCH_PIXELS // per_image))
    return 2 * images * per_image


def check_scale_memory(nets: Sequence[Net], scales: Sequence[int], batch_size: int,
                       device: str) -> None:
    """Refuse scales whose passes cannot fit in memory, before anything is probed or written.

    A pass at Q holds at least one ``Q x Q`` image and its mirror; its peak
    activations (:func:`~vggkit.inference.pass_cap.activation_bytes_per_pixel`)
    may take :data:`~vggkit.inference.pass_cap.MEMORY_SHARE` of the memory
    available now. Past that, Q=100000 asks for hundreds of GB and dies in
    the allocator with a traceback, and Q in the thousands swaps for hours.

    Raises:
        ValueError: naming the largest Q, the memory it needs and the largest Q that fits.
    """
    from vggkit.inference.pass_cap import (MEMORY_SHARE, activation_bytes_per_pixel,
                                           available_memory)
    available = available_memory(torch.device(device))
    per_pixel = max((activation_bytes_per_pixel(net.model) or 0.0 for net in nets), default=0.0)
    if available is None or not per_pixel:
        return  # unknown: nothing to judge by
    budget, q = available * MEMORY_SHARE, max(scales)
    if pass_pixels(q, batch_size) * per_pixel <= budget:
        return
    fits, low, high = 0, 1, q  # the largest Q that fits (needs grow with Q)
    while low <= high:
        mid = (low + high) // 2
        if pass_pixels(mid, batch_size) * per_pixel <= budget:
            fits, low = mid, mid + 1
        else:
            high = mid - 1
    gb = 1e9
    raise ValueError(
        f"scale Q={q} needs about {pass_pixels(q, batch_size) * per_pixel / gb:.1f} GB of "
        f"activations per pass (a {q}x{q} image and its mirror, --batch-size {batch_size}), more "
        f"than {MEMORY_SHARE:.0%} of the {available / gb:.1f} GB available on {device}; use "
        f"--scales of at most {fits}" + ("" if q * q >= MAX_BATCH_PIXELS else
                                         " or a smaller --batch-size"))


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
        precision: 'fp32', 'bf16', 'fp16' (CUDA) or 'auto'.
        backend: 'onnxruntime' (CPU fp32, if installed), 'mkldnn' (oneDNN
            blocked layout, CPU fp32), 'jit' (TorchScript, fp32), 'eager' or
            'compile' (torch.compile, where a C++ compiler is present) or
            'auto' (the fastest of those that agrees with fp32 eager, measured
            once per machine and net: :mod:`vggkit.inference.autotune`).
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
    _probed: list | None = field(default=None, init=False, repr=False)

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
        for net in self.nets:
            need = net.min_side(self.layer)
            if min(self.scales) < need:
                raise ValueError(
                    f"scale Q={min(self.scales)} is too small for {net.name}: its {self.layer} "
                    f"map needs a smallest side >= {need} (input_size "
                    f"{net.model.input_size}); use --scales of at least {need}")
            if self.layer == "fc7":
                net.model.pre_logits_relu = self.relu  # the model reads it in dense_pre_logits
        check_scale_memory(self.nets, self.scales, self.batch_size, self.device)
        # 'auto' is measured among the backends that take images of any size (every Q and
        # aspect ratio reaches the same runner), on what the nets are fed: an image and its
        # mirror at the middle scale; the probe's runners of the winner are kept for setup
        self.backend, self.precision, self._probed = choice(
            self.backend, self.precision, self.device, models=[n.model for n in self.nets],
            output=self.layer, relu=self.relu,
            example_size=statistics.median_low(self.scales), batch=2, dynamic_size=True)

    @property
    def dim(self) -> int:
        """Length of the descriptor of one image or region (an item stacking k regions: k x this)."""
        per_scale = len(self.scales) if self.aggregate == "stack" else 1
        return sum(net.width(self.layer) * per_scale for net in self.nets)

    def setup(self) -> None:
        """Prepare the nets for inference (conversion, export); done by the first describe."""
        if self._ready:
            return
        # ONNX Runtime exports each net once with dynamic N, H and W
        if self._probed is not None and self.channels_last:  # the probe's own runners
            self._runners, self._probed, self._ready = self._probed, None, True
            return
        self._runners = [compile_for_inference(
            net.model, self.layer, self.backend, device=self.device, precision=self.precision,
            channels_last=self.channels_last, threads=torch.get_num_threads(),
            example_size=net.min_side(self.layer), relu=self.relu, in_place=self.own_nets)
            for net in self.nets]
        self._ready = True

    # -- work ---------------------------------------------------------------------
    def prepare(self, img: Image.Image, region: Region = None, path: str = "") -> Prepared:
        """``img`` (or its ``region``, a pixel box) rescaled isotropically to every Q, uint8.

        A region is cut out first, then treated exactly like an image;
        ``path`` names the image in the error of a box beyond it.
        """
        return image_views(crop_region(img, region, path), self.scales)

    def _pooled(self, k: int, views: list[torch.Tensor]) -> torch.Tensor:
        """Net k's flip-averaged, globally pooled maps of equal-sized uint8 views: N x C."""
        # the images and their mirrors as one 2N batch, built in uint8 (a quarter of the
        # bytes of float) and then normalised once, in place: the stack, normalise and
        # mirror copies fell from 1.06-1.59 s to 0.43-0.55 s per 96 images of the tiny
        # VGG-D/16 case (docs/extraction_overhead.md). Not one mixed-dtype
        # torch.sub(uint8, mean): no vectorised path, measured 3x slower.
        batch = with_mirrors(torch.stack(views)).to(self.device)
        batch = normalize_(batch.float(), self.nets[k].preprocess)
        return flip_pooled(self._runners[k], batch).float().cpu()

    def describe(self, images: Sequence[Prepared | None],
                 progress: Callable[[float], Any] | None = None) -> np.ndarray:
        """Descriptors N x :attr:`dim` float32 (unit rows) of prepared images.

        ``None`` entries (images that could not be read) get zero rows.
        ``progress(k)`` is called with the fraction of images done since the last call.
        """
        return self.describe_stream([images], len(images), progress)

    def describe_stream(self, chunks: Iterable[Sequence[Prepared | None]], count: int,
                        progress: Callable[[float], Any] | None = None) -> np.ndarray:
        """:meth:`describe` of ``count`` prepared images that arrive in chunks, in order.

        A batch runs as soon as its last image is in, so the nets start while
        a thread still decodes the later images
        (:func:`vggkit.features.runner.run_extraction`). The batches are those
        of all ``count`` images (:class:`SizeBatcher`): the result does not
        depend on how the images are chunked.
        """
        self.setup()
        views: list[Prepared | None] = []
        batchers = {q: SizeBatcher(self.batch_size, MAX_BATCH_PIXELS) for q in self.scales}
        with torch.inference_mode():
            # pooled[k][q]: net k's pooled maps at scale Q, one row per image
            pooled = [{q: torch.empty(count, net.width(self.layer)) for q in self.scales}
                      for net in self.nets]

            def run(q: int, batch: list[int]) -> None:
                for k, per_scale in enumerate(pooled):
                    per_scale[q][batch] = self._pooled(k, [views[i][q] for i in batch])
                    if progress is not None:
                        progress(len(batch) / (len(self.scales) * len(self.nets)))

            for image in itertools.chain.from_iterable(chunks):
                if len(views) == count:
                    raise ValueError(f"more than the {count} images announced arrived")
                views.append(image)
                if image is None:  # unreadable: a zero row
                    continue
                for q in self.scales:
                    batch = batchers[q].add(len(views) - 1, tuple(image[q].shape[1:]))
                    if batch is not None:
                        run(q, batch)
            if len(views) != count:
                raise ValueError(f"{len(views)} images arrived, {count} announced")
            for q, batcher in batchers.items():
                for batch in batcher.rest():
                    run(q, batch)
            return self._combined(pooled, [i for i, v in enumerate(views) if v is not None],
                                  count)

    def _combined(self, pooled: list[dict[int, torch.Tensor]], ok: list[int],
                  count: int) -> np.ndarray:
        """The descriptors of the rows ``ok`` of each net's pooled maps (zero rows elsewhere)."""
        out = np.zeros((count, self.dim), dtype=np.float32)
        if ok:
            blocks = [combine([per_scale[q][ok] for q in self.scales], self.aggregate)
                      for per_scale in pooled]
            out[ok] = combine(blocks, "stack").numpy()
        return out

    def describe_items(self, crops: Sequence[Prepared | None], items: Sequence[tuple[int, ...]],
                       progress: Callable[[float], Any] | None = None) -> np.ndarray:
        """Descriptors of items, each the stack of the descriptors of its regions.

        ``crops`` are the prepared regions (whole images or boxes), each
        described once; ``items[i]`` lists the indices into ``crops`` of item
        i's regions (:func:`stack_regions`). Returns N x (regions per item *
        :attr:`dim`) float32.
        """
        return stack_regions(self.describe(crops, progress), items)

    def describe_images(self, images: Sequence[Image.Image], regions: Sequence[Region] | None = None,
                        names: Sequence[str] | None = None) -> np.ndarray:
        """Descriptors of PIL images, or of one region (a pixel box or None) of each.

        A convenience for notebooks; ``names`` (e.g. the files) are used in errors.
        """
        regions = regions if regions is not None else [None] * len(images)
        names = names if names is not None else [f"image {i}" for i in range(len(images))]
        if len(regions) != len(images):
            raise ValueError(f"{len(regions)} regions given for {len(images)} images")
        return self.describe([self.prepare(img, r, name)
                              for img, r, name in zip(images, regions, names)])
