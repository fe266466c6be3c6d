"""Built-in plugin: registers vggkit.engine components through the public hooks."""
from __future__ import annotations

from typing import Any, Callable

from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_models(register: Callable[..., Any]) -> None:
    from vggkit.engine.classifier import VGGClassifier
    register(VGGClassifier)


@hookimpl
def vggkit_register_datasets(register: Callable[..., Any]) -> None:
    from vggkit.engine.seeding import SeededDataset
    register(SeededDataset)


@hookimpl
def vggkit_register_hooks(register: Callable[..., Any]) -> None:
    from vggkit.engine.hooks.checkpoint import VGGCheckpointHook
    from vggkit.engine.hooks.curves import TrainingCurvesHook
    from vggkit.engine.hooks.guard import NonFiniteLossHook
    from vggkit.engine.hooks.health import TrainingHealthHook
    from vggkit.engine.hooks.layer_stats import LayerStatsHook
    from vggkit.engine.hooks.logging import BadImageSummaryHook, ProgressBarHook, ThroughputHook
    from vggkit.engine.hooks.resume import ResumeHook
    for hook in (VGGCheckpointHook, ResumeHook, ThroughputHook, ProgressBarHook,
                 BadImageSummaryHook, TrainingCurvesHook, NonFiniteLossHook, TrainingHealthHook,
                 LayerStatsHook):
        register(hook)
