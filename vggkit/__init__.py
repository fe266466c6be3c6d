"""vggkit: the VGG paper (Simonyan & Zisserman, ICLR 2015) as a plugin-based toolkit."""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable

from vggkit.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "build_vgg", "classify", "extract_features", "hookimpl",
           "load_checkpoint", "save_checkpoint"]


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562): ``exports`` maps a name to the submodule,
    relative to ``package``, that defines it, imported on first use."""
    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module '{package}' has no attribute '{name}'")
    return __getattr__


def renamed(module: str, names: dict[str, tuple[str, Callable[[], Any]]]) -> Callable[[str], Any]:
    """A module's ``__getattr__`` (PEP 562) that still serves renamed or moved names:
    ``names`` maps an old name to ``(its new name, a function returning the object)``; each
    use warns (DeprecationWarning) naming the new one."""
    def __getattr__(name: str) -> Any:
        if name in names:
            new, get = names[name]
            warnings.warn(f"{module}.{name} is deprecated; use {new}", DeprecationWarning,
                          stacklevel=2)
            return get()
        raise AttributeError(f"module '{module}' has no attribute '{name}'")
    return __getattr__


# `import vggkit` does not load torch (~3 s), so every `--help`, argument error and
# plugin module's `import vggkit` is quick; the model zoo waits until asked.
__getattr__ = lazy_exports(__name__, {"build_vgg": "factory", "load_checkpoint": "models",
                                      "save_checkpoint": "models",
                                      "extract_features": "features.api",
                                      "classify": "evaluation.classify"})
