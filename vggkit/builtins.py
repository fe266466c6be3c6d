"""The built-in plugin: vggkit's own components, registered through the hooks a third party uses.

Components are imported inside the hooks, so importing this module costs nothing
and a broken component fails the loading with one warning naming it.
"""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_models(register):
    from vggkit.data.data_preprocessor import VGGDataPreprocessor
    from vggkit.engine.classifier import VGGClassifier
    from vggkit.localisation.model import VGGLocaliser
    from vggkit.models.vgg import VGG, VGGHead
    for cls in (VGG, VGGHead, VGGClassifier, VGGLocaliser, VGGDataPreprocessor):
        register(cls)


@hookimpl
def vggkit_register_transforms(register):
    from vggkit.data import lighting, packing, transforms as t
    from vggkit.localisation import transforms as b
    for cls in (t.LoadImage, t.IsotropicRescale, t.RandomCrop, t.CenterCrop, t.RandomFlip,
                t.TestRescale, t.RandomScaleCrop, t.LoadScaleCrop, lighting.PCALighting,
                packing.PackInputs, b.LoadBoxImage, b.BoxIsotropicRescale, b.BoxRandomCrop,
                b.BoxRandomScaleCrop, b.BoxCenterCrop, b.BoxTestRescale, b.BoxRandomFlip,
                b.PackBoxInputs):
        register(cls)


@hookimpl
def vggkit_register_datasets(register):
    from vggkit.data.datasets import ImageFolder, ImageNet
    from vggkit.engine.seeding import SeededDataset
    from vggkit.localisation.datasets import BoxList, ILSVRCLocalisation
    for cls in (ImageNet, ImageFolder, SeededDataset, BoxList, ILSVRCLocalisation):
        register(cls)


@hookimpl
def vggkit_register_metrics(register):
    from vggkit.evaluation.metrics import TopKError
    from vggkit.localisation.metrics import BoxError
    register(TopKError)
    register(BoxError)


@hookimpl
def vggkit_register_hooks(register):
    from vggkit.engine.hooks import (checkpoint, curves, guard, health, layer_stats, logging,
                                     resume)
    for hook in (checkpoint.VGGCheckpointHook, resume.ResumeHook, logging.ThroughputHook,
                 logging.ProgressBarHook, logging.BadImageSummaryHook, curves.TrainingCurvesHook,
                 guard.NonFiniteLossHook, health.TrainingHealthHook, layer_stats.LayerStatsHook):
        register(hook)


@hookimpl
def vggkit_register_param_schedulers(register):
    from vggkit.engine.schedules import OneCycleLR, OneCycleMomentum
    register(OneCycleLR)
    register(OneCycleMomentum)


@hookimpl
def vggkit_register_eval_strategies(register):
    from vggkit.evaluation import strategies as s
    for cls in (s.CenterCrop, s.Dense, s.MultiCrop, s.DenseMultiCrop):
        register(cls, cls.name)


@hookimpl
def vggkit_register_transfer_tasks(register):
    from vggkit.transfer.single_label import FolderTask, ImageFolderTask
    register(ImageFolderTask, "imagefolder")
    register(FolderTask, "folder")


@hookimpl
def vggkit_register_weight_converters(register):
    from vggkit.models import caffe, converters as c
    for cls in (c.TorchvisionConverter, c.TimmConverter, c.MMPretrainConverter,
                caffe.CaffeConverter):
        register(cls, cls.name)


@hookimpl
def vggkit_register_weights(register):
    from vggkit.weights.catalogue import BUILTIN_WEIGHTS
    for entry in BUILTIN_WEIGHTS:
        register(entry)
