"""Appendix B of the paper: dense multi-scale penultimate-layer features.

* :mod:`~vggkit.features.descriptor` -- the descriptor as tensor functions
  (dense map, global average pool, flip average, L2 norm, avg/stack).
* :mod:`~vggkit.features.extractor` -- :class:`FeatureExtractor`: images -> descriptors,
  batched by rescaled size, on :mod:`vggkit.inference` (views, batching, backends).
* :mod:`~vggkit.features.regions` -- items that are regions of an image (a person box,
  or the whole image stacked with it): boxes, cropping, shared crops.
* :mod:`~vggkit.features.store` -- the resumable sharded store and
  :func:`load_features` (one call; ``np.load('DIR/features.npy')`` works too).
* :mod:`~vggkit.features.runner` -- shards of a task over ranks, resume, the writer lock.
* :mod:`~vggkit.features.lock` -- one writer per store (an OS file lock).
* :mod:`~vggkit.features.extraction` -- :func:`extract`: a task's images into a store in
  one call (what ``vggkit extract`` runs).
"""
from __future__ import annotations

from vggkit import lazy_exports
from vggkit.features.store import FeatureSet, load_features

__all__ = ["FeatureExtractor", "FeatureSet", "Net", "extract", "load_features"]

# The choices of `vggkit extract`, here (numpy only) so that its --help imports no torch.
#: the layer a descriptor is read at: the paper's fc7 (penultimate), or fc6 / pool5
LAYERS = ("fc7", "fc6", "pool5")
#: how the descriptors of several scales combine: averaged, or stacked end to end
AGGREGATES = ("avg", "stack")
#: an unreadable image: fail the run naming it, or skip it and list it in the manifest
BAD_IMAGE_MODES = ("strict", "skip")


# the extractor imports torch; keep `import vggkit.features` (numpy only) light
__getattr__ = lazy_exports(__name__, {"FeatureExtractor": "extractor", "Net": "extractor",
                                      "extract": "extraction"})
