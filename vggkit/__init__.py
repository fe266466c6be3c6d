"""vggkit: the VGG paper (Simonyan & Zisserman, ICLR 2015) as a plugin-based toolkit."""
from __future__ import annotations

from typing import Any

from vggkit import safe_load as _safe_load  # noqa: F401  (torch>=2.6 fix for mmengine)
from vggkit.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "build_vgg", "extract_features", "hookimpl", "load_checkpoint"]


def __getattr__(name: str) -> Any:
    # `import vggkit` loads torch (the safe loader patches torch.load for
    # mmengine) but not the model zoo, which waits until a model is asked for.
    if name in ("build_vgg", "load_checkpoint"):
        from vggkit import models
        return getattr(models, name)
    if name == "extract_features":
        from vggkit.features.api import extract_features
        return extract_features
    raise AttributeError(f"module 'vggkit' has no attribute '{name}'")
