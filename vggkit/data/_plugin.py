"""Built-in plugin ``vggkit.data``, registering through the hooks a third party uses."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_transforms(register):
    from vggkit.data import lighting, packing, transforms as t
    for cls in (t.LoadImage, t.IsotropicRescale, t.RandomCrop, t.CenterCrop, t.RandomFlip,
                t.TestRescale, t.RandomScaleCrop, t.LoadScaleCrop, lighting.PCALighting,
                packing.PackInputs):
        register(cls)


@hookimpl
def vggkit_register_datasets(register):
    from vggkit.data.datasets import ImageFolder, ImageNet
    register(ImageNet)
    register(ImageFolder)


@hookimpl
def vggkit_register_models(register):
    from vggkit.data.data_preprocessor import VGGDataPreprocessor
    register(VGGDataPreprocessor)
