"""One builder above the models and the weights (the timm way).

:func:`build_vgg` builds a VGG of Table 1 (:class:`vggkit.models.vgg.VGG`) and, given
``weights``, loads published weights by name (:mod:`vggkit.weights`). The models know
nothing of catalogues, downloads or caches; the weights know the models only as the
net their checkpoints fit.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # torch: imported when a net is built, not with this module
    from vggkit.models.vgg import VGG


def build_vgg(arch: str, num_classes: Optional[int] = None, *, weights: Optional[str] = None,
              **kwargs: Any) -> VGG:
    """Build a VGG net of Table 1; ``kwargs`` are :class:`~vggkit.models.vgg.VGG`'s
    (``batch_norm``, ``width_mult``, ``fc_width``, ``init``, ...).

    ``weights`` loads published weights by name, ``build_vgg('D',
    weights='vgg16.torchvision')`` (see ``vggkit weights list``), fetched and
    converted once into the vggkit cache, or a vggkit checkpoint by path. The
    arch must be the weights' own; num_classes (default 1000) and the shape
    arguments default to theirs.

    Example:
        >>> model = build_vgg('D', num_classes=10, width_mult=0.125, fc_width=64)
    """
    if weights is not None:
        from vggkit.weights.resolve import build_with_weights
        return build_with_weights(weights, arch, num_classes, kwargs)
    from vggkit.models.vgg import VGG
    return VGG(arch, 1000 if num_classes is None else num_classes, **kwargs)


def build_defaults() -> dict[str, Any]:
    """``{argument: default}`` of :func:`build_vgg`: VGG's own arguments, then ``weights``
    (what a config's ``model.vgg`` may set)."""
    from vggkit.models.vgg import VGG
    return {**{k: p.default for k, p in inspect.signature(VGG).parameters.items()},
            "arch": inspect.Parameter.empty, "num_classes": None, "weights": None}
