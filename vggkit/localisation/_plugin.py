"""Built-in plugin ``vggkit.localisation``, registering through the hooks a third party uses."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_models(register):
    from vggkit.localisation.model import VGGLocaliser
    register(VGGLocaliser)


@hookimpl
def vggkit_register_transforms(register):
    from vggkit.localisation import transforms as t
    for cls in (t.LoadBoxImage, t.BoxIsotropicRescale, t.BoxRandomCrop, t.BoxRandomScaleCrop,
                t.BoxCenterCrop, t.BoxTestRescale, t.BoxRandomFlip, t.PackBoxInputs):
        register(cls)


@hookimpl
def vggkit_register_datasets(register):
    from vggkit.localisation.datasets import BoxList, ILSVRCLocalisation
    register(BoxList)
    register(ILSVRCLocalisation)


@hookimpl
def vggkit_register_metrics(register):
    from vggkit.localisation.metrics import BoxError
    register(BoxError)
