"""``vggkit.extract_features``: Appendix-B descriptors of images in one call, for notebooks."""
from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
from PIL import Image

from vggkit.features.regions import Region

ImageLike = Union[str, os.PathLike, Image.Image]


def extract_features(images: Union[ImageLike, Sequence[ImageLike]], weights: str = "vgg16.torchvision",
                     *, scales: Sequence[int] = (256, 384, 512), aggregate: str = "avg",
                     layer: str = "fc7", batch_size: int = 8, device: str = "cpu",
                     backend: str = "auto", precision: str = "auto",
                     regions: Sequence[Region] | None = None) -> np.ndarray:
    """The N x D descriptors (unit rows, float32) of ``images`` with published ``weights``.

    Args:
        images: paths (a folder: every image in it, as ``vggkit extract DIR``
            lists them) or PIL images, or one of them.
        weights: a catalogue name ('vggkit weights list') or a vggkit checkpoint.
        scales, aggregate, layer: the paper's descriptor (defaults: fc7 after its
            ReLU, Q = 256, 384, 512 averaged, the VOC setting).
        regions: per image (after folders are listed), a pixel box
            ``(left, top, right, bottom)`` to describe instead of the whole
            image, or None (:mod:`vggkit.features.regions`).

    Images that cannot be read raise :class:`vggkit.data.io.BadImageError`
    naming the file.
    """
    from vggkit.data.io import read_image
    from vggkit.features.extractor import FeatureExtractor, Net
    from vggkit.models.from_config import build_from_config
    from vggkit.weights import config_for_weights, resolve_weights
    if isinstance(images, (str, os.PathLike, Image.Image)):
        images = [images]
    paths_or_images: list[ImageLike] = []
    for item in images:
        if isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
            from vggkit.transfer.task import build_task
            paths_or_images += build_task("folder").scan(os.fspath(item)).paths
        else:
            paths_or_images.append(item)
    if os.path.isfile(weights):
        raise ValueError(f"'{weights}' is a file: load it with vggkit.load_checkpoint into "
                         "build_vgg(...) and use FeatureExtractor; extract_features takes "
                         "catalogue names ('vggkit weights list')")
    config, checkpoint = config_for_weights(weights), resolve_weights(weights)
    model, meta, _ = build_from_config(config, checkpoint, f"weights '{weights}'")
    extractor = FeatureExtractor([Net(model=model, preprocess=dict(meta["preprocess"]),
                                      name=weights)], scales=scales, aggregate=aggregate,
                                 layer=layer, batch_size=batch_size, device=device,
                                 backend=backend, precision=precision, own_nets=True)
    pil = [read_image(os.fspath(x)) if not isinstance(x, Image.Image) else x.convert("RGB")
           for x in paths_or_images]
    names = [f"image {i}" if isinstance(x, Image.Image) else os.fspath(x)
             for i, x in enumerate(paths_or_images)]
    return extractor.describe_images(pil, regions, names)
