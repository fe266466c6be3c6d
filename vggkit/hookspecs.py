"""Hook specifications: one hook per registry, ``vggkit_register_<kind>``.

A plugin implements any of them with ``@vggkit.hookimpl``; each receives a
``register(obj, name=None)`` callable (``name`` defaults to ``obj.__name__``).
"""
from typing import Any, Callable, Optional

import pluggy

hookspec = pluggy.HookspecMarker("vggkit")
hookimpl = pluggy.HookimplMarker("vggkit")

Register = Callable[[Any, Optional[str]], None]


@hookspec
def vggkit_register_models(register: Register) -> None:
    """MODELS: backbones (the paper's A-E), heads, classifiers, data preprocessors."""


@hookspec
def vggkit_register_transforms(register: Register) -> None:
    """TRANSFORMS: data transforms (augmentations, rescaling)."""


@hookspec
def vggkit_register_datasets(register: Register) -> None:
    """DATASETS: datasets and dataset wrappers."""


@hookspec
def vggkit_register_metrics(register: Register) -> None:
    """METRICS: evaluation metrics."""


@hookspec
def vggkit_register_hooks(register: Register) -> None:
    """HOOKS: mmengine runner hooks."""


@hookspec
def vggkit_register_eval_strategies(register: Register) -> None:
    """EVAL_STRATEGIES: test-time evaluation strategies (dense, multi-crop, ...)."""


@hookspec
def vggkit_register_transfer_tasks(register: Register) -> None:
    """TRANSFER_TASKS: downstream transfer tasks (Caltech, VOC, image folders)."""


@hookspec
def vggkit_register_weight_converters(register: Register) -> None:
    """WEIGHT_CONVERTERS: converters of published weights (torchvision, Caffe, ...)."""


@hookspec
def vggkit_register_weights(register: Register) -> None:
    """WEIGHTS: published weights by name (:class:`vggkit.weights.WeightsEntry`).

    Entry names may contain dots (``vgg16.torchvision``); ``register(entry)``
    registers it under ``entry.name``.
    """
