"""Sect. 2 of the paper: the VGG configurations A-E, their head and its dense view,
the initialisation schemes of Sect. 3.1, and conversion of published weights."""
from __future__ import annotations

from vggkit import lazy_exports

_EXPORTS = {
    "InitReport": "init", "init_from_checkpoint": "init", "initialize": "init",
    "load_checkpoint": "io", "read_checkpoint": "io", "save_checkpoint": "io",
    "DEFAULT_PREPROCESS": "preprocess", "normalize": "preprocess",
    "ALIASES": "archs", "CONFIGS": "archs",
    "VGG": "vgg", "VGGHead": "vgg", "known_archs": "vgg",
    # deprecated: the builder is vggkit.factory.build_vgg (vgg's __getattr__ says so)
    "build_vgg": "vgg",
}
__all__ = sorted(_EXPORTS)


# lazy: `import vggkit.models.archs` (the names `vggkit describe --help` lists) must
# not import torch
__getattr__ = lazy_exports(__name__, _EXPORTS)
