"""vggkit: the VGG paper (Simonyan & Zisserman, ICLR 2015) as a plugin-based toolkit."""
from __future__ import annotations

from typing import Any

from vggkit.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "build_vgg", "extract_features", "hookimpl", "load_checkpoint"]


def __getattr__(name: str) -> Any:
    # `import vggkit` does not load torch (~3 s), so every `--help`, argument error
    # and plugin module's `import vggkit` is quick; the model zoo waits until asked.
    if name in ("build_vgg", "load_checkpoint"):
        from vggkit import models
        return getattr(models, name)
    if name == "extract_features":
        from vggkit.features.api import extract_features
        return extract_features
    raise AttributeError(f"module 'vggkit' has no attribute '{name}'")
