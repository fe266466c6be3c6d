"""Built-in plugin: registers vggkit.data components through the public hooks."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_transforms(register):
    from vggkit.data import transforms
    from vggkit.data.lighting import PCALighting
    from vggkit.data.packing import PackInputs
    for cls in (transforms.LoadImage, transforms.IsotropicRescale, transforms.RandomCrop,
                transforms.CenterCrop, transforms.RandomFlip, transforms.TestRescale,
                transforms.RandomScaleCrop, transforms.LoadScaleCrop, PCALighting, PackInputs):
        register(cls)


@hookimpl
def vggkit_register_datasets(register):
    from vggkit.data.datasets import ImageFolder, ImageNet
    register(ImageNet)
    register(ImageFolder)


@hookimpl
def vggkit_register_models(register):
    from vggkit.data.preprocessor import VGGDataPreprocessor
    register(VGGDataPreprocessor)
