"""Sect. 3.2 of the paper: test protocols (centre, dense, multi-crop, both; multi-scale),
model fusion, top-k error, and the test tool.

Modules: :mod:`~vggkit.evaluation.metrics` (``topk_error``, ``TopKError``),
:mod:`~vggkit.evaluation.strategies` (the strategies, ``build_strategy``),
:mod:`~vggkit.evaluation.scales` (the paper's default test scales),
:mod:`~vggkit.evaluation.posteriors` (save, load, fuse per-image posteriors),
:mod:`~vggkit.commands.test` and :mod:`~vggkit.commands.fuse` (CLIs).
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "topk_error": "metrics", "TopKError": "metrics",
    "build_strategy": "strategies", "EvalStrategy": "strategies", "CropStrategy": "strategies",
    "default_test_scales": "scales",
    "Posteriors": "posteriors", "fuse": "posteriors", "load_posteriors": "posteriors",
    "save_posteriors": "posteriors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # lazy: importing the built-in plugin (this package) must not import torch
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f"vggkit.evaluation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vggkit.evaluation' has no attribute '{name}'")
