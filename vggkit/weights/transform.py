"""``vggkit.weights.transform(name)``: a PIL image to the tensor published weights expect.

The analogue of torchvision's ``weights.transforms()``: rescale the smallest
side to the publisher's first test scale Q, cut the centre crop of the net's
input size and normalise with the weights' own record (mean, std, BGR). It is
the ``center`` test protocol of :mod:`vggkit.evaluation.strategies` at one
scale, built from the same pieces, so a transformed image through the net
gives exactly ``vggkit classify --protocol center``'s posteriors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from PIL import Image
from torch import Tensor

if TYPE_CHECKING:  # the catalogue makes transforms of its entries: it imports this module
    from vggkit.weights.catalogue import WeightsEntry


@dataclass(frozen=True)
class WeightsTransform:
    """PIL image -> normalised float32 tensor ``3 x crop_size x crop_size``.

    Args:
        resize_size: the smallest image side after (bilinear, isotropic) rescaling.
        crop_size: the side of the centre crop (the net's input size).
        preprocess: the weights' normalisation record ``{'mean', 'std', 'bgr'}``
            on the 0-255 scale (:mod:`vggkit.models.preprocess`).
    """

    resize_size: int
    crop_size: int
    preprocess: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from vggkit.models.preprocess import check_record
        if not 1 <= self.crop_size <= self.resize_size:
            raise ValueError(f"crop_size {self.crop_size} must be in 1..resize_size "
                             f"({self.resize_size}): the crop is cut from the rescaled image")
        object.__setattr__(self, "preprocess", check_record(self.preprocess))

    @classmethod
    def for_entry(cls, entry: WeightsEntry) -> "WeightsTransform":
        """The transform of catalogue entry ``entry``: its first test scale and input size."""
        return entry.transform()

    def __call__(self, img: Image.Image) -> Tensor:
        from vggkit.evaluation.strategies import CenterCrop
        from vggkit.inference.views import image_views
        from vggkit.models.preprocess import normalize
        if not isinstance(img, Image.Image):
            raise TypeError(f"expected a PIL image, got {type(img).__name__}; read files with "
                            "vggkit.data.io.read_image")
        x = image_views(img, [self.resize_size])[self.resize_size]
        # the center protocol's own crop position, so the two cannot drift apart
        (top, left), = CenterCrop().offsets(x.shape[-2], x.shape[-1], self.crop_size)
        crop = x[:, top:top + self.crop_size, left:left + self.crop_size]
        return normalize(crop[None], self.preprocess)[0]

    def __repr__(self) -> str:
        p = self.preprocess
        return (f"WeightsTransform(resize_size={self.resize_size}, crop_size={self.crop_size}, "
                f"mean={p['mean']}, std={p['std']}, bgr={p['bgr']}, interpolation=bilinear)")
