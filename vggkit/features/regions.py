"""Regions: the part of an image a descriptor describes (App. B, VOC action: the person box).

An item of a task is usually a whole image. A task may instead give each item
one or more *regions*, each a pixel box or ``None`` for the whole image; the
item's descriptor is then the stack of its regions' descriptors
(:meth:`vggkit.features.extractor.FeatureExtractor.describe_items`), e.g.
``(None, person_box)``: the whole image stacked with the person box, the
paper's 84.0 mAP setting. A box region is cut out of the decoded image and
then described exactly like an image (rescaled to every Q, dense net, pool,
flip average, L2), so its descriptor equals that of the same crop saved as a
file of its own.

A box is ``(left, top, right, bottom)`` in pixels of the decoded, upright
image, half-open as in ``PIL.Image.crop``: a VOC box ``xmin..xmax`` (1-based,
inclusive) is ``(xmin - 1, ymin - 1, xmax, ymax)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from vggkit.errors import UserError

if TYPE_CHECKING:  # the store and TaskData use this module: they need no imaging library
    from PIL import Image

#: left, top, right, bottom (pixels, half-open)
Box = tuple[int, int, int, int]
#: a box, or None for the whole image
Region = Optional[Box]
#: the regions whose descriptors one item stacks, in order
ItemRegions = tuple[Region, ...]


class RegionError(UserError, ValueError):
    """A region that is malformed or does not lie inside its image."""


def as_region(region: object, where: str = "") -> Region:
    """``region`` as a :data:`Region` (a box of 4 ints with positive area, or None).

    Raises:
        RegionError: naming ``where`` and the fault.
    """
    if region is None:
        return None
    at = f" ({where})" if where else ""
    try:
        values = list(region)  # type: ignore[call-overload]
        box = tuple(int(v) for v in values)
        whole = len(box) == 4 and all(b == v for b, v in zip(box, values))
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise RegionError(f"region {region!r}{at} is not a box (left, top, right, bottom) of "
                          "integer pixels nor None (the whole image)")
    left, top, right, bottom = box
    if left < 0 or top < 0:
        raise RegionError(f"box {box}{at} starts outside the image (negative coordinate)")
    if right <= left or bottom <= top:
        raise RegionError(f"box {box}{at} has zero area (it needs left < right and top < bottom)")
    return box  # type: ignore[return-value]


def as_item_regions(regions: Sequence[Sequence[object]], ids: Sequence[str]) -> list[ItemRegions]:
    """Check the per-item regions of the items ``ids``: each a non-empty tuple, all of one length.

    One length, because the stacked descriptors of all items must have one dimension.
    """
    if len(regions) != len(ids):
        raise ValueError(f"regions has {len(regions)} entries for {len(ids)} items")
    out = [tuple(as_region(r, f"item '{i}'") for r in item) for i, item in zip(ids, regions)]
    lengths = {len(item) for item in out}
    if 0 in lengths or len(lengths) > 1:
        raise ValueError(f"every item needs the same number (>= 1) of regions; got {sorted(lengths)}")
    return out


def regions_per_item(regions: Sequence[ItemRegions] | None) -> int:
    """How many descriptors one item stacks (1 when items are whole images)."""
    return len(regions[0]) if regions else 1


def crop_region(img: Image.Image, region: Region, path: str = "") -> Image.Image:
    """The part of ``img`` inside ``region`` (``img`` itself for None).

    Raises:
        RegionError: naming ``path``, the box and the image size when the box
            is malformed or reaches beyond the image.
    """
    region = as_region(region, f"of '{path}'" if path else "")
    if region is None:
        return img
    left, top, right, bottom = region
    width, height = img.size
    if right > width or bottom > height:
        raise RegionError(f"box {region} reaches beyond the {width}x{height} image "
                          f"'{path}'; boxes are (left, top, right, bottom) pixels of the "
                          "upright image: fix the box or the image")
    return img.crop(region)


def unique_crops(paths: Sequence[str], regions: Sequence[ItemRegions] | None
                 ) -> tuple[list[tuple[str, Region]], list[tuple[int, ...]]]:
    """The distinct ``(path, region)`` crops of the items, and each item's crop indices.

    Several items often share a crop (the whole image of every person in it),
    which is then described once. Crops are grouped by path in the order paths
    first appear, so an image is decoded once for all its crops; with no
    regions the crops are the paths in their own order (the same batches, the
    same bytes as describing the paths directly).
    """
    regions = regions if regions is not None else [(None,)] * len(paths)
    by_path: dict[str, dict[Region, None]] = {}
    for path, item in zip(paths, regions):
        crops = by_path.setdefault(path, {})
        for region in item:
            crops.setdefault(region, None)
    keys = [(path, region) for path, crops in by_path.items() for region in crops]
    index = {key: k for k, key in enumerate(keys)}
    items = [tuple(index[(path, region)] for region in item) for path, item in zip(paths, regions)]
    return keys, items
