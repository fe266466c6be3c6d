"""The catalogue of published VGG weights: one :class:`WeightsEntry` per name.

Entries arrive through the ``vggkit_register_weights`` hook (vggkit's own
from :mod:`vggkit.builtins`), so a plugin adds weights exactly as it adds a
transform::

    @vggkit.hookimpl
    def vggkit_register_weights(register):
        register(WeightsEntry(name="vgg16.places365", arch="D", ...))

Every fact below is the publisher's own, with the page it was read from in
``reference`` (accuracy) and ``hash_source`` (checksum). A publisher that
gives no checksum gets ``sha256=None``: nothing is invented.
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from vggkit.errors import UserError

_HEX = re.compile(r"[0-9a-f]{8,64}")
#: fc8 outputs of ImageNet-1k (ILSVRC-2012) weights, every built-in entry's
IMAGENET_CLASSES = 1000


def imagenet_categories() -> list[str]:
    """ImageNet-1k's 1000 class names in the synset order every publisher's fc8 uses.

    torchvision ships them with its models (what ``weights.meta['categories']``
    holds), so no download; imported on first use because torchvision loads torch.
    """
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    return list(_IMAGENET_CATEGORIES)


class WeightsError(UserError):
    """Weights that cannot be named, found, fetched or checked; the message says why."""


class UnknownWeightsError(WeightsError, KeyError):
    """A name that is neither a catalogue entry nor an existing file."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class WeightsEntry:
    """Published weights: where they are, how to check and convert them, what they score.

    Args:
        name: catalogue name, ``<model>.<publisher>`` (e.g. ``vgg16.torchvision``).
        arch: vggkit configuration or alias (``'D'``, ``'vgg16_bn'``, ...).
        urls: where to download the published file, tried in order.
        filename: the published file's name.
        converter: the ``WEIGHT_CONVERTERS`` name reading its layout.
        sha256: the sha256 as published: the full hex digest or a prefix of it
            (torchvision's and mmpretrain's file names carry 8 digits); None if
            the publisher gives none.
        hash_source: where that checksum is published (or why there is none).
        num_classes: outputs of fc8.
        build_args: further :func:`~vggkit.factory.build_vgg` arguments the
            weights need (empty for the paper's full-size nets).
        test_scales: the publisher's test scales Q (smallest image side).
        accuracy: reported ImageNet-1k val accuracy in %, ``{'acc@1', 'acc@5'}``.
        accuracy_note: the protocol of ``accuracy``.
        licence: the weights' licence (and the code's, where different).
        source: the publisher.
        reference: the page the catalogue's facts were read from.
        publisher_cache: the publisher's download cache to look in first:
            ``'torch_hub'`` (``$TORCH_HOME/hub/checkpoints``), ``'hf_hub'``
            (needs ``hf_repo``) or None.
        hf_repo: the Hugging Face hub repository (``'timm/vgg16.tv_in1k'``).
        classes: the class names in fc8's order; empty: ImageNet-1k's when
            ``num_classes`` is 1000 (:attr:`categories` gives torchvision's list),
            else the class indices as names (a plugin should give them).

    Calling an entry builds its VGG with the weights loaded
    (``entry(**build_vgg_kwargs)``), which is what ``WEIGHTS.build`` does.
    """

    name: str
    arch: str
    urls: tuple[str, ...]
    filename: str
    converter: str
    sha256: str | None = None
    hash_source: str = ""
    num_classes: int = 1000
    build_args: Mapping[str, Any] = field(default_factory=dict)
    test_scales: tuple[int, ...] = (256,)
    accuracy: Mapping[str, float] = field(default_factory=dict)
    accuracy_note: str = ""
    licence: str = ""
    source: str = ""
    reference: str = ""
    publisher_cache: str | None = None
    hf_repo: str | None = None
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from vggkit.models.archs import resolve_arch
        if not self.name or any(c.isspace() or c in "/\\" for c in self.name):
            raise ValueError(f"weights name {self.name!r} must be non-empty, without spaces "
                             "or slashes")
        resolve_arch(self.arch)  # ValueError naming the known archs
        for key in ("urls", "test_scales", "classes"):  # lists are welcome; stored as tuples
            object.__setattr__(self, key, tuple(getattr(self, key)))
        if not self.urls or not self.filename or "/" in self.filename:
            raise ValueError(f"weights '{self.name}' need urls and a plain filename")
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", self.sha256.lower())
            if not _HEX.fullmatch(self.sha256):
                raise ValueError(f"weights '{self.name}': sha256 {self.sha256!r} is not 8 to "
                                 "64 hex digits (a published digest or its prefix)")
        if self.publisher_cache not in (None, "torch_hub", "hf_hub"):
            raise ValueError(f"weights '{self.name}': publisher_cache must be 'torch_hub', "
                             f"'hf_hub' or None, got {self.publisher_cache!r}")
        if self.publisher_cache == "hf_hub" and not self.hf_repo:
            raise ValueError(f"weights '{self.name}': publisher_cache 'hf_hub' needs hf_repo")
        if self.classes and len(self.classes) != self.num_classes:
            raise ValueError(f"weights '{self.name}': {len(self.classes)} class names for "
                             f"num_classes={self.num_classes}; give one name per class")

    def __hash__(self) -> int:  # build_args/accuracy are dicts: hash by name
        return hash(self.name)

    @property
    def __name__(self) -> str:  # what register(entry) names it by
        return self.name

    def __call__(self, **kwargs: Any) -> Any:
        # the builder sits above the catalogue (vggkit.factory imports it): found by name at
        # call time, so that the catalogue, which is data, imports nothing above it
        import importlib
        build_vgg = importlib.import_module("vggkit.factory").build_vgg
        return build_vgg(kwargs.pop("arch", self.arch), weights=self.name, **kwargs)

    @property
    def preprocess(self) -> dict[str, Any]:
        """The input normalisation the weights expect (the converter's record)."""
        from vggkit.models.converters import get_converter
        return dict(get_converter(self.converter).preprocess)

    @property
    def categories(self) -> list[str]:
        """The class names in fc8's order, as torchvision's ``weights.meta['categories']``."""
        if self.classes:
            return list(self.classes)
        if self.num_classes == IMAGENET_CLASSES:
            return imagenet_categories()
        return [str(i) for i in range(self.num_classes)]

    def transform(self) -> Any:
        """The preprocessing of a PIL image for these weights (:class:`WeightsTransform`)."""
        from vggkit.weights.transform import WeightsTransform
        return WeightsTransform(int(self.test_scales[0]), int(entry_shape(self)["input_size"]),
                                self.preprocess)

    @property
    def hash_status(self) -> str:
        """What is checked: ``'sha256'``, ``'sha256 prefix 397923af'`` or ``'none published'``."""
        if self.sha256 is None:
            return "none published"
        return "sha256" if len(self.sha256) == 64 else f"sha256 prefix {self.sha256}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), with the preprocessing record."""
        out = asdict(self)
        out.update(urls=list(self.urls), test_scales=list(self.test_scales),
                   classes=list(self.classes),
                   build_args=dict(self.build_args), accuracy=dict(self.accuracy),
                   hash_status=self.hash_status, preprocess=self.preprocess)
        return out


def get_weights_entry(name: str, files: bool = True) -> WeightsEntry:
    """The catalogue entry ``name`` (built-in or a plugin's, optionally qualified).

    ``files``: whether the caller also takes a checkpoint path (as ``build_vgg``
    does), which the error for an unknown name then mentions.
    """
    from vggkit.registry import WEIGHTS
    entry = WEIGHTS.get(name)
    if entry is None:
        known = weights_names()
        near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        what = "no such file and no catalogue entry" if files else "not a catalogue name"
        raise UnknownWeightsError(f"unknown weights '{name}'{hint}: {what}; known: "
                                  f"{', '.join(known)} ('vggkit weights list' describes them)")
    return entry


#: build_vgg arguments besides arch and num_classes that shape the weights
SHAPE_ARGS = ("fc_width", "width_mult", "input_size")


def vgg_defaults() -> dict[str, Any]:
    """``{argument: default}`` of :class:`~vggkit.models.vgg.VGG`: the shapes weights
    have when an entry's ``build_args`` leave them out."""
    import inspect

    from vggkit.models.vgg import VGG
    return {k: p.default for k, p in inspect.signature(VGG).parameters.items()}


def entry_shape(entry: WeightsEntry) -> dict[str, Any]:
    """What the converted checkpoint records: arch, batch_norm, num_classes and SHAPE_ARGS."""
    from vggkit.models.archs import resolve_arch
    config, bn = resolve_arch(entry.arch)
    defaults = vgg_defaults()
    return {"arch": config, "batch_norm": bn, "num_classes": entry.num_classes,
            **{k: entry.build_args.get(k, defaults[k]) for k in SHAPE_ARGS}}


def weights_names() -> list[str]:
    """The catalogue's names: built-ins, then each plugin's (qualified, ``plugin.name``,
    where a built-in or another plugin has the same name)."""
    from vggkit.registry import WEIGHTS
    WEIGHTS.load_plugins()
    names = list(WEIGHTS.module_dict)
    claims = Counter(n for c in WEIGHTS.plugins.values() for n in c)
    for plugin, components in WEIGHTS.plugins.items():
        names += [n if claims[n] == 1 and n not in WEIGHTS.module_dict else f"{plugin}.{n}"
                  for n in components]
    return names


def list_weights() -> dict[str, WeightsEntry]:
    """Every catalogue entry by the name that selects it, built-ins first."""
    return {n: get_weights_entry(n) for n in weights_names()}


# -- the built-in catalogue -----------------------------------------------------------
TORCHVISION_PY = "https://github.com/pytorch/vision/blob/main/torchvision/models/vgg.py"
_TV_HASH = ("sha256 prefix in the published file name (torch.hub checks it), "
            + TORCHVISION_PY)
#: torchvision name -> (vggkit arch, file hash prefix, acc@1, acc@5), from TORCHVISION_PY
_TORCHVISION = {
    "vgg11": ("A", "8a719046", 69.020, 88.628),
    "vgg11_bn": ("vgg11_bn", "6002323d", 70.370, 89.810),
    "vgg13": ("B", "19584684", 69.928, 89.246),
    "vgg13_bn": ("vgg13_bn", "abd245e5", 71.586, 90.374),
    "vgg16": ("D", "397923af", 71.592, 90.382),
    "vgg16_bn": ("vgg16_bn", "6c64b313", 73.360, 91.516),
    "vgg19": ("E", "dcbb9e9d", 72.376, 90.876),
    "vgg19_bn": ("vgg19_bn", "c79401a0", 74.218, 91.842),
}


def _torchvision(model: str) -> WeightsEntry:
    arch, prefix, top1, top5 = _TORCHVISION[model]
    filename = f"{model}-{prefix}.pth"
    return WeightsEntry(
        name=f"{model}.torchvision", arch=arch,
        urls=(f"https://download.pytorch.org/models/{filename}",), filename=filename,
        converter="torchvision", sha256=prefix, hash_source=_TV_HASH,
        test_scales=(256,), accuracy={"acc@1": top1, "acc@5": top5},
        accuracy_note="single 224 centre crop of the image resized to 256 (torchvision's "
                      "ImageClassification preset)",
        licence="BSD-3-Clause", source="torchvision (IMAGENET1K_V1)", reference=TORCHVISION_PY,
        publisher_cache="torch_hub")


def _caffe(depth: int, arch: str, gist: str, single_top5_err: float) -> WeightsEntry:
    filename = f"VGG_ILSVRC_{depth}_layers.caffemodel"
    return WeightsEntry(
        name=f"vgg{depth}.caffe", arch=arch,
        urls=(f"http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/{filename}",),
        filename=filename, converter="caffe", sha256=None,
        hash_source=f"none published: the Caffe Model Zoo gist https://gist.github.com/"
                    f"ksimonyan/{gist} gives the URL but no checksum",
        test_scales=(256, 384, 512),
        # the paper's Table 4 (errors 24.8 / 7.5), which the gist cites
        accuracy={"acc@1": 75.2, "acc@5": 92.5},
        accuracy_note=f"dense evaluation, Q in {{256, 384, 512}}, ILSVRC-2012 val (paper "
                      f"Table 4: top-1/top-5 error 24.8/7.5; the gist: top-5 error "
                      f"{single_top5_err}% dense at Q = 384)",
        licence="CC BY 4.0", source="Oxford VGG (the paper's released model, Caffe)",
        reference=f"https://gist.github.com/ksimonyan/{gist}; "
                  "http://www.robots.ox.ac.uk/~vgg/research/very_deep/")


TIMM_VGG16_REV = "3394518cba29aee1ea82a49d971be90d2dd1dab7"  # "Add model", 2023-04-25

BUILTIN_WEIGHTS: tuple[WeightsEntry, ...] = (
    *(_torchvision(m) for m in _TORCHVISION),
    _caffe(16, "D", "211839e770f7b538e2d8", 8.1),
    _caffe(19, "E", "3785162f95cd2d5fee77", 8.0),
    WeightsEntry(
        name="vgg16.timm", arch="D",
        urls=(f"https://huggingface.co/timm/vgg16.tv_in1k/resolve/{TIMM_VGG16_REV}/"
              "model.safetensors",),
        filename="model.safetensors", converter="timm",
        sha256="57b026918159a6bf9faf8405c3a551903768e7138989d9c6224a14227203fad8",
        hash_source="Git LFS sha256 of model.safetensors, https://huggingface.co/timm/"
                    "vgg16.tv_in1k/blob/main/model.safetensors",
        test_scales=(256,), accuracy={"acc@1": 71.592, "acc@5": 90.382},
        accuracy_note="torchvision's weights (the card: 'original torchvision weights'); "
                      "torchvision's figures, single 224 crop (crop_pct 0.875)",
        licence="BSD-3-Clause (weights, Hugging Face card); Apache-2.0 (timm code)",
        source="timm vgg16.tv_in1k (Hugging Face hub)",
        reference="https://huggingface.co/timm/vgg16.tv_in1k; "
                  "https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/"
                  "vgg.py",
        publisher_cache="hf_hub", hf_repo="timm/vgg16.tv_in1k"),
    WeightsEntry(
        name="vgg16.mmpretrain", arch="D",
        urls=("https://download.openmmlab.com/mmclassification/v0/vgg/"
              "vgg16_batch256_imagenet_20210208-db26f1a5.pth",),
        filename="vgg16_batch256_imagenet_20210208-db26f1a5.pth", converter="mmpretrain",
        sha256="db26f1a5",
        hash_source="sha256 prefix in the published file name (tools/model_converters/"
                    "publish_model.py appends sha256[:8]); configs/vgg/metafile.yml gives "
                    "no other checksum, https://github.com/open-mmlab/mmpretrain/blob/main/"
                    "configs/vgg/metafile.yml",
        test_scales=(256,), accuracy={"acc@1": 71.62, "acc@5": 90.49},
        accuracy_note="single 224 centre crop after resizing the short side to 256",
        licence="Apache-2.0", source="mmpretrain (vgg16_b32x8_imagenet)",
        reference="https://github.com/open-mmlab/mmpretrain/blob/main/configs/vgg/metafile.yml",
        publisher_cache="torch_hub"),
)


def transform(name: str) -> Any:
    """The preprocessing transform of the weights ``name`` ('vggkit weights list'), e.g.
    ``transform('vgg16.torchvision')(img)[None]`` is the batch ``build_vgg('D',
    weights='vgg16.torchvision')`` expects. Raises UnknownWeightsError for another name."""
    return get_weights_entry(name, files=False).transform()
