"""Sect. 3.2 of the paper: test protocols (centre, dense, multi-crop, both; multi-scale),
model fusion, top-k error, and the test tool.

Modules: :mod:`~vggkit.evaluation.strategies` (the strategies, ``build_strategy``),
:mod:`~vggkit.evaluation.loading` (a net and a test set from configs),
:mod:`~vggkit.evaluation.loop` (every net × strategy over the images, sharded; each
net on its measured fastest backend),
:mod:`~vggkit.evaluation.metrics` (``topk_error``, ``TopKError``, error tables),
:mod:`~vggkit.evaluation.posteriors` (save, load, fuse per-image posteriors),
:mod:`~vggkit.evaluation.api` (``evaluate_nets``: all of it in one call, what
``vggkit test`` runs). They stand on
:mod:`vggkit.inference` (image views, batching, ranks); the test scales are in
:mod:`vggkit.engine.scales`.
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "topk_error": "metrics", "TopKError": "metrics", "errors": "metrics",
    "format_results": "metrics",
    "build_strategy": "strategies", "EvalStrategy": "strategies", "CropStrategy": "strategies",
    "ModelEntry": "loading", "TestSet": "loading", "load_model": "loading",
    "load_test_set": "loading", "check_classes": "loading",
    "evaluate": "loop", "result_key": "loop", "compile_nets": "loop",
    "Posteriors": "posteriors", "fuse": "posteriors", "load_posteriors": "posteriors",
    "save_posteriors": "posteriors",
    "evaluate_nets": "api", "folder_test_config": "api",
}
__all__ = sorted(_EXPORTS) + ["default_test_scales"]


def __getattr__(name: str) -> Any:
    # lazy: importing the built-in plugin (this package) must not import torch
    import importlib
    if name == "default_test_scales":  # the scales module is shared with training
        return importlib.import_module("vggkit.engine.scales").default_test_scales
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vggkit.evaluation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vggkit.evaluation' has no attribute '{name}'")
