"""The paper's test protocols (Sect. 3.2) as evaluation strategies.

A strategy turns images already rescaled to one test scale Q (uint8 tensors
3×H×W with min(H, W) == Q) into softmax posteriors N×C; :meth:`EvalStrategy.__call__`
averages them over a list of scales. Built-in strategies, registered by name in
``EVAL_STRATEGIES`` by the built-in plugin, :mod:`vggkit.builtins`:

* ``center``: the centre ``crop×crop`` crop through the FC net.
* ``dense``: the fully-convolutional net over the whole image, class score map
  spatially averaged, softmax, averaged with the horizontal flip.
* ``multicrop``: a regular 5×5 grid of crops × 2 flips (50 per scale).
* ``dense+multicrop``: the mean of the two posteriors.

``crop`` is the model's training crop size (``model.input_size``: 224 for the
paper's nets). ``model`` is anything called like a VGG: the VGG itself (eager),
or a :class:`~vggkit.inference.runners.CompiledNet` running ``model(crops)``
and ``model.dense(images)`` on the backend chosen for each; a strategy names
the outputs it calls in :attr:`EvalStrategy.outputs`, so that they are built
before the images come. A plugin adds a strategy by subclassing
:class:`CropStrategy` (override :meth:`CropStrategy.offsets`) or :class:`EvalStrategy` (override
:meth:`EvalStrategy.scale_posteriors`) and registering the class through the
``vggkit_register_eval_strategies`` hook.
"""
from __future__ import annotations

import abc
import math
import weakref
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggkit.engine.scales import check_scales
from vggkit.inference.batching import size_batches
from vggkit.inference.pass_cap import PassCap, pass_cap

Preprocess = Mapping[str, Any]


class UnknownStrategyError(KeyError):
    """A strategy name that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _normalize(x: Tensor, preprocess: Preprocess | None, device: torch.device) -> Tensor:
    from vggkit.models.preprocess import normalize
    return normalize(x.to(device, non_blocking=True), preprocess)


class EvalStrategy(abc.ABC):
    """Base class: multi-scale averaging of per-scale softmax posteriors.

    Args:
        batch_size: network inputs (crops, or whole images counting each flip)
            per forward pass.
        flip: also evaluate the horizontally flipped input and average.
        pass_crops: at most this many crops of ``model.input_size``² per pass
            (dense: as many pixels), over the cap that memory allows on the
            running machine (:func:`~vggkit.inference.pass_cap.pass_cap`;
            ``$VGGKIT_PASS_CROPS`` sets it for every strategy). None: derived.
    """

    #: registry name, set by subclasses (used in messages and result keys)
    name: str = ""
    default_flip: bool = True
    #: the outputs the strategy calls: 'logits' (``model(x)``), 'dense' (``model.dense(x)``)
    outputs: tuple[str, ...] = ("logits", "dense")
    #: the outputs whose passes it caps with :meth:`pass_pixels` (derived in :meth:`prepare`)
    capped_outputs: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 32, flip: bool | None = None,
                 pass_crops: int | None = None) -> None:
        for what, value in (("batch_size", batch_size), ("pass_crops", pass_crops)):
            if value is not None and value < 1:
                raise ValueError(f"{what} must be >= 1, got {value}")
        self.batch_size = int(batch_size)
        self.flip = self.default_flip if flip is None else bool(flip)
        self.pass_crops = None if pass_crops is None else int(pass_crops)
        # model -> {(output, pass_crops): PassCap}, filled by _pass_cap
        self._caps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def pass_pixels(self, model: nn.Module, output: str) -> int | None:
        """Input pixels one pass of ``output`` may hold (None: only ``batch_size`` counts)."""
        return self._pass_cap(model, output).pixels

    def prepare(self, model: nn.Module) -> None:
        """Derive the pass caps now, before the images."""
        for output in self.capped_outputs:
            self._pass_cap(model, output)

    def _pass_cap(self, model: nn.Module, output: str) -> PassCap:
        """:func:`pass_cap` of ``output`` under :attr:`pass_crops`, derived once per model.

        It is asked for every batch of images; kept per model object, weakly, so that
        the passes do not change with memory coming and going, another model derives
        its own, and a collected model's id cannot pass its cap on to a new one. So
        ``$VGGKIT_PASS_CROPS`` is read once per model and output (at :meth:`prepare`).
        """
        caps = self._caps.setdefault(model, {})
        slot = (output, self.pass_crops)
        if slot not in caps:
            caps[slot] = pass_cap(model, output, override=self.pass_crops)
        return caps[slot]

    @abc.abstractmethod
    def scale_posteriors(self, model: nn.Module, images: Sequence[Tensor],
                         preprocess: Preprocess | None) -> Tensor:
        """Posteriors N×C (float32, on CPU) of ``images`` rescaled to one Q."""

    @torch.inference_mode()
    def __call__(self, model: nn.Module, views: Mapping[int, Sequence[Tensor]],
                 scales: Sequence[int], preprocess: Preprocess | None = None) -> Tensor:
        """Posteriors averaged over ``scales``.

        Args:
            model: a VGG (``forward``, ``dense``, ``input_size``) in eval mode.
            views: Q -> the N images rescaled to smallest side Q (uint8 3×H×W).
            scales: the test scales to average over (each a key of ``views``).
            preprocess: the checkpoint's preprocessing record.
        """
        scales = check_scales(scales, int(model.input_size))
        missing = [q for q in scales if q not in views]
        if missing:
            raise KeyError(f"no images rescaled to Q={missing[0]}; have {sorted(views)}")
        total = None
        for q in scales:
            post = self.scale_posteriors(model, views[q], preprocess)
            total = post if total is None else total + post
        return total / len(scales)


def grid_offsets(length: int, crop: int, n: int = 5) -> list[int]:
    """``n`` crop offsets along one axis, evenly spaced from 0 to ``length - crop``.

    Positions are rounded half up and the second half mirrors the first, so the
    grid covers both borders and is symmetric under a horizontal flip.
    Example: ``grid_offsets(301, 224)`` = ``[0, 19, 39, 58, 77]``.
    """
    span = length - crop
    if span < 0:
        raise ValueError(f"a {crop}-pixel crop does not fit in {length} pixels")
    if n == 1:
        return [span // 2]
    first = [math.floor(i * span / (n - 1) + 0.5) for i in range((n + 1) // 2)]
    return first + [span - o for o in reversed(first[: n // 2])]


class CropStrategy(EvalStrategy):
    """Crops of size ``model.input_size`` through the FC net, posteriors averaged.

    Subclasses choose the crop positions with :meth:`offsets`. Crops of all
    images of a call are batched together, ``batch_size`` crops at a time, or
    fewer when the pass cap is lower: ``pass_crops`` if given, else what the
    memory available allows (:func:`~vggkit.inference.pass_cap.pass_cap`).
    """

    outputs = ("logits",)
    capped_outputs = ("logits",)

    @abc.abstractmethod
    def offsets(self, height: int, width: int, crop: int) -> list[tuple[int, int]]:
        """(top, left) of every crop of an ``height×width`` image."""

    def _crops(self, images: Sequence[Tensor], crop: int) -> Iterator[tuple[int, int, int, bool]]:
        for i, img in enumerate(images):
            for top, left in self.offsets(img.shape[-2], img.shape[-1], crop):
                yield i, top, left, False
                if self.flip:
                    yield i, top, left, True

    def scale_posteriors(self, model: nn.Module, images: Sequence[Tensor],
                         preprocess: Preprocess | None) -> Tensor:
        crop, device = int(model.input_size), _device(model)
        sums: Tensor | None = None
        counts = torch.zeros(len(images))
        jobs = list(self._crops(images, crop))
        # Normalisation is elementwise, so it commutes with cropping and flipping:
        # normalise each whole image once (on the model's device) and cut the
        # crops from it, instead of normalising every one of its (overlapping)
        # crops. Jobs come image by image, so only images still in use are kept.
        normed: dict[int, Tensor] = {}
        # every crop has one size: one bucket, cut into passes in job order
        for idx in size_batches([(crop, crop)] * len(jobs), self.batch_size,
                                self.pass_pixels(model, "logits")):
            chunk = [jobs[j] for j in idx]
            first = chunk[0][0]
            for i in [k for k in normed if k < first]:
                del normed[i]
            for i in dict.fromkeys(c[0] for c in chunk):
                if i not in normed:
                    normed[i] = _normalize(images[i][None], preprocess, device)[0]
            batch = torch.stack([
                normed[i][:, t:t + crop, l:l + crop].flip(-1) if f
                else normed[i][:, t:t + crop, l:l + crop] for i, t, l, f in chunk])
            post = F.softmax(model(batch).float(), 1).cpu()
            if sums is None:
                sums = torch.zeros(len(images), post.shape[1])
            index = torch.tensor([c[0] for c in chunk])
            sums.index_add_(0, index, post)
            counts.index_add_(0, index, torch.ones(len(chunk)))
        return sums / counts[:, None]


class CenterCrop(CropStrategy):
    """``center``: the centre crop (no flip unless ``flip=True``)."""

    name = "center"
    default_flip = False

    def offsets(self, height: int, width: int, crop: int) -> list[tuple[int, int]]:
        return [(grid_offsets(height, crop, 5)[2], grid_offsets(width, crop, 5)[2])]


class MultiCrop(CropStrategy):
    """``multicrop``: a regular ``grid×grid`` grid of crops (5×5 in the paper) × 2 flips.

    Args:
        grid: crops per axis.
    """

    name = "multicrop"

    def __init__(self, batch_size: int = 32, flip: bool | None = None, grid: int = 5,
                 pass_crops: int | None = None) -> None:
        super().__init__(batch_size, flip, pass_crops)
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.grid = int(grid)

    def offsets(self, height: int, width: int, crop: int) -> list[tuple[int, int]]:
        return [(t, l) for t in grid_offsets(height, crop, self.grid)
                for l in grid_offsets(width, crop, self.grid)]


class Dense(EvalStrategy):
    """``dense``: the fully-convolutional net over the whole image (Sect. 3.2).

    Images of equal size are stacked into one batch (the caller orders images
    by aspect ratio so that buckets are large); each flip counts as one input
    towards ``batch_size`` and towards the pixel cap per pass (``pass_crops``
    crops' worth, else derived as for :class:`CropStrategy`, on the score map's runner).
    """

    name = "dense"
    outputs = ("dense",)
    capped_outputs = ("dense",)

    def scale_posteriors(self, model: nn.Module, images: Sequence[Tensor],
                         preprocess: Preprocess | None) -> Tensor:
        device = _device(model)
        inputs = 2 if self.flip else 1  # per image
        cap = self.pass_pixels(model, "dense")
        out: Tensor | None = None
        for idx in size_batches([tuple(img.shape[-2:]) for img in images],
                                max(1, self.batch_size // inputs),
                                None if cap is None else cap // inputs):
            # normalise before mirroring (elementwise, so equal): half the work
            x = _normalize(torch.stack([images[i] for i in idx]), preprocess, device)
            if self.flip:
                x = torch.cat([x, x.flip(-1)])
            scores = model.dense(x).float().mean((2, 3))
            post = F.softmax(scores, 1).cpu()
            if self.flip:
                post = (post[:len(idx)] + post[len(idx):]) / 2
            if out is None:
                out = torch.empty(len(images), post.shape[1])
            out[idx] = post
        return out


class Combined(EvalStrategy):
    """The mean of several strategies' posteriors (``dense+multicrop``).

    Args:
        parts: strategy names (or instances) to average.
        batch_size, flip, pass_crops: passed to the parts built from names.
    """

    name = "combined"
    parts_default: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 32, flip: bool | None = None,
                 parts: Sequence[str | EvalStrategy] | None = None,
                 pass_crops: int | None = None) -> None:
        super().__init__(batch_size, flip, pass_crops)
        names = list(parts) if parts is not None else list(self.parts_default)
        if len(names) < 2:
            raise ValueError(f"a combined strategy needs at least two parts, got {names}")
        kwargs = {"batch_size": batch_size, **({} if flip is None else {"flip": flip}),
                  **({} if pass_crops is None else {"pass_crops": pass_crops})}
        self.parts = [p if isinstance(p, EvalStrategy) else build_strategy(p, **kwargs)
                      for p in names]

    @property
    def outputs(self) -> tuple[str, ...]:  # type: ignore[override]
        """The outputs its parts call."""
        return tuple(dict.fromkeys(o for p in self.parts for o in strategy_outputs(p)))

    def prepare(self, model: nn.Module) -> None:
        """Its parts' pass caps (see :meth:`EvalStrategy.prepare`)."""
        for part in self.parts:
            prepare_strategy(part, model)

    def combine(self, posteriors: Sequence[Tensor]) -> Tensor:
        """The combination of the parts' posteriors (their mean)."""
        return torch.stack(list(posteriors)).mean(0)

    def scale_posteriors(self, model: nn.Module, images: Sequence[Tensor],
                         preprocess: Preprocess | None) -> Tensor:
        return self.combine([p.scale_posteriors(model, images, preprocess) for p in self.parts])


class DenseMultiCrop(Combined):
    """``dense+multicrop``: the mean of dense and multi-crop posteriors (Table 5)."""

    name = "dense+multicrop"
    parts_default = ("dense", "multicrop")


def strategy_outputs(strategy: Any) -> tuple[str, ...]:
    """The net outputs ``strategy`` calls (a plain callable may call both)."""
    return tuple(getattr(strategy, "outputs", ("logits", "dense")))


def prepare_strategy(strategy: Any, model: nn.Module) -> None:
    """``strategy.prepare(model)``: its pass caps derived before the images (a plain
    callable registered as a strategy has none)."""
    prepare = getattr(strategy, "prepare", None)
    if callable(prepare):
        prepare(model)


def strategy_names() -> list[str]:
    """Names of every registered strategy (after loading plugins)."""
    from vggkit.registry import EVAL_STRATEGIES
    return EVAL_STRATEGIES.known_names()


def build_strategy(name: str, **kwargs: Any) -> EvalStrategy:
    """The strategy registered as ``name``, built with ``kwargs``.

    Raises:
        UnknownStrategyError: listing the known names.
    """
    from vggkit.registry import EVAL_STRATEGIES
    cls = EVAL_STRATEGIES.get(name)
    if cls is None:
        raise UnknownStrategyError(
            f"unknown evaluation strategy '{name}'; known: {', '.join(strategy_names())}. "
            "A plugin adds one through the vggkit_register_eval_strategies hook")
    strategy = cls(**kwargs) if isinstance(cls, type) else cls
    if not isinstance(strategy, EvalStrategy) and not callable(strategy):
        raise TypeError(f"evaluation strategy '{name}' is {strategy!r}, not an EvalStrategy")
    if isinstance(strategy, EvalStrategy):
        strategy.name = name  # the registered name, also for subclasses of built-ins
    return strategy
