"""``vggkit.classify``: the top-k class names of images, with probabilities.

The net is a catalogue entry (``weights='vgg16.torchvision'``: ImageNet-1k's
names, the publisher's scales and normalisation) or a trained ``CONFIG CKPT``
pair (the class names its checkpoint records). The posteriors are those of the
paper's test protocols (:mod:`vggkit.evaluation.strategies`: ``center``,
``dense``, ``multicrop``) on images decoded and rescaled as ``vggkit test``
does (:mod:`vggkit.inference.views`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch
from PIL import Image

from vggkit.errors import UserError
from vggkit.evaluation.loading import ModelEntry, load_model, recorded_classes
from vggkit.evaluation.strategies import build_strategy

ImageLike = Union[str, os.PathLike, Image.Image]
#: one image's prediction: (class name, probability), most probable first
Prediction = list[tuple[str, float]]


def expand_images(images: Union[ImageLike, Sequence[ImageLike]]) -> list[ImageLike]:
    """``images`` as a flat list: a folder becomes every image under it (as
    ``vggkit extract DIR`` lists them); a missing path is refused by name."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        images = [images]
    out: list[ImageLike] = []
    for item in images:
        if isinstance(item, Image.Image):
            out.append(item)
        elif os.path.isdir(item):
            from vggkit.transfer.task import build_task
            out += build_task("folder").scan(os.fspath(item)).paths
        elif os.path.isfile(item):
            out.append(os.fspath(item))
        else:
            raise UserError(f"image '{os.fspath(item)}' does not exist; give image files or "
                            "folders of images")
    if not out:
        raise UserError("no images to classify; give image files or folders of images")
    return out


def image_name(item: ImageLike, index: int) -> str:
    """How an image is named in output: its path, or ``image N`` for a PIL image."""
    return f"image {index}" if isinstance(item, Image.Image) else os.fspath(item)


@dataclass
class Classifier:
    """A net, its class names and a test protocol: posteriors of images."""

    entry: ModelEntry
    classes: list[str]
    strategy: Any
    images_per_batch: int = 8

    @torch.inference_mode()
    def posteriors(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """N x C posteriors, averaged over the entry's scales."""
        from vggkit.data.io import read_image
        from vggkit.inference.views import image_views
        self.entry.model.eval()
        rows = []
        for start in range(0, len(images), self.images_per_batch):
            chunk = [read_image(os.fspath(x)) if not isinstance(x, Image.Image) else x
                     for x in images[start:start + self.images_per_batch]]
            views = [image_views(img, self.entry.scales) for img in chunk]
            by_scale = {q: [v[q] for v in views] for q in self.entry.scales}
            rows.append(self.strategy(self.entry.net, by_scale, self.entry.scales,
                                      self.entry.preprocess))
        return torch.cat(rows)

    def top(self, posteriors: torch.Tensor, k: int) -> list[Prediction]:
        """The ``k`` most probable classes of every row of ``posteriors``."""
        probs, idx = posteriors.topk(min(k, posteriors.shape[1]), dim=1)
        return [[(self.classes[int(i)], float(p)) for p, i in zip(pr, ix)]
                for pr, ix in zip(probs, idx)]


def load_classifier(weights: str | None = None, config: Any = None,
                    checkpoint: str | None = None, *, protocol: str = "center",
                    scales: Sequence[int] | None = None, device: str = "cpu",
                    batch_size: int = 32) -> Classifier:
    """The :class:`Classifier` of catalogue ``weights`` or of ``config`` + ``checkpoint``,
    the net on the path 'auto' resolves for each output the protocol calls
    (:func:`~vggkit.evaluation.loop.compile_nets`).

    Raises:
        UserError: neither or both nets given, a file given as ``weights``, an
            unknown weights name or protocol.
    """
    if (weights is None) == (config is None and checkpoint is None) or \
            (config is None) != (checkpoint is None):
        raise UserError("give weights=NAME ('vggkit weights list' shows the names) or "
                        "config and checkpoint, not both")
    try:
        strategy = build_strategy(protocol, batch_size=batch_size)
    except KeyError as exc:
        raise UserError(str(exc)) from None
    if weights is not None:
        if os.path.isfile(weights):
            raise UserError(f"--weights '{weights}' is a file: give it with its config as "
                            "CONFIG CKPT; --weights takes catalogue names ('vggkit weights "
                            "list')")
        from vggkit.weights import config_for_weights, get_weights_entry, resolve_weights
        cfg = config_for_weights(weights)  # an unknown name is refused before any fetch
        ckpt = resolve_weights(weights)
        entry = load_model(cfg, ckpt, device, list(scales or cfg.test_scales),
                           f"weights:{weights}")
        classes = get_weights_entry(weights).categories
    else:
        if isinstance(config, str):
            from vggkit.config import read_config
            config = read_config(config)
        if not os.path.isfile(checkpoint):
            raise UserError(f"checkpoint '{checkpoint}' does not exist")
        entry = load_model(config, checkpoint, device, list(scales) if scales else None,
                           getattr(config, "filename", "") or "config")
        n = int(entry.model.num_classes)
        # a checkpoint without recorded names (e.g. converted weights) is named by index
        classes = recorded_classes(entry.meta) or [str(i) for i in range(n)]
        if len(classes) != n:
            raise UserError(f"checkpoint '{checkpoint}' records {len(classes)} class names "
                            f"but its net predicts {n}; use the checkpoint of this config")
    from vggkit.evaluation.loop import compile_nets
    compile_nets([entry], {protocol: strategy})  # each output on its 'auto' path
    return Classifier(entry, classes, strategy)


def classify(images: Union[ImageLike, Sequence[ImageLike]], weights: str | None = None, *,
             config: Any = None, checkpoint: str | None = None, topk: int = 5,
             protocol: str = "center", scales: Sequence[int] | None = None,
             device: str = "cpu", batch_size: int = 32) -> list[Prediction]:
    """Per image, the ``topk`` most probable ``(class name, probability)``, best first.

    Args:
        images: image paths, folders (every image under them) or PIL images, or one.
        weights: a catalogue name ('vggkit weights list'); or else
        config, checkpoint: a trained net (a config path or mmengine Config, and
            its checkpoint), named by the classes the checkpoint records.
        topk: how many classes per image (at most the net's).
        protocol: the paper's test protocol: ``center`` (a centre crop, what
            torchvision's ``weights.transforms()`` feeds), ``dense`` (the
            fully-convolutional net over the whole image) or ``multicrop``.
        scales: test scales Q averaged over (default: the publisher's, or from
            the checkpoint's training scale).

    Example::

        >>> vggkit.classify("cat.jpg", weights="vgg16.torchvision", topk=1)
        [[('tabby', 0.61)]]
    """
    if int(topk) < 1:
        raise UserError(f"topk must be at least 1, got {topk}")
    items = expand_images(images)
    net = load_classifier(weights, config, checkpoint, protocol=protocol, scales=scales,
                          device=device, batch_size=batch_size)
    return net.top(net.posteriors(items), int(topk))
