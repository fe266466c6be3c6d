"""Hook specifications: one hook per kind of component.

A plugin implements any of these with ``@vggkit.hookimpl``; each receives a
``register(obj, name=None)`` callable (``name`` defaults to ``obj.__name__``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import pluggy

hookspec = pluggy.HookspecMarker("vggkit")
hookimpl = pluggy.HookimplMarker("vggkit")

Register = Callable[[Any, Optional[str]], None]


@hookspec
def vggkit_register_backbones(register: Register) -> None:
    """Register backbones (conv stacks such as the paper's A-E) in MODELS."""


@hookspec
def vggkit_register_heads(register: Register) -> None:
    """Register classification heads (fc6-fc8 and their dense view) in MODELS."""


@hookspec
def vggkit_register_models(register: Register) -> None:
    """Register whole models and data preprocessors in MODELS."""


@hookspec
def vggkit_register_transforms(register: Register) -> None:
    """Register data transforms (augmentations, rescaling) in TRANSFORMS."""


@hookspec
def vggkit_register_datasets(register: Register) -> None:
    """Register datasets in DATASETS."""


@hookspec
def vggkit_register_eval_strategies(register: Register) -> None:
    """Register test-time evaluation strategies (dense, multi-crop, ...)."""


@hookspec
def vggkit_register_transfer_tasks(register: Register) -> None:
    """Register downstream transfer tasks (Caltech, VOC, image folders)."""


@hookspec
def vggkit_register_metrics(register: Register) -> None:
    """Register evaluation metrics in METRICS."""


@hookspec
def vggkit_register_hooks(register: Register) -> None:
    """Register mmengine runner hooks in HOOKS."""


@hookspec
def vggkit_register_weight_converters(register: Register) -> None:
    """Register converters of published weights (torchvision, Caffe, ...)."""
