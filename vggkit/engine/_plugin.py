"""Built-in plugin ``vggkit.engine``, registering through the hooks a third party uses."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_models(register):
    from vggkit.engine.classifier import VGGClassifier
    register(VGGClassifier)


@hookimpl
def vggkit_register_datasets(register):
    from vggkit.engine.seeding import SeededDataset
    register(SeededDataset)


@hookimpl
def vggkit_register_hooks(register):
    from vggkit.engine.hooks import (checkpoint, curves, guard, health, layer_stats, logging,
                                     resume)
    for hook in (checkpoint.VGGCheckpointHook, resume.ResumeHook, logging.ThroughputHook,
                 logging.ProgressBarHook, logging.BadImageSummaryHook, curves.TrainingCurvesHook,
                 guard.NonFiniteLossHook, health.TrainingHealthHook, layer_stats.LayerStatsHook):
        register(hook)
