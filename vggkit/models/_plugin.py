"""Built-in plugin ``vggkit.models``, registering through the hooks a third party uses."""
from vggkit.hookspecs import hookimpl

# Components are imported inside the hooks: a broken one fails its hook (one
# warning), not the loading of every plugin.


@hookimpl
def vggkit_register_models(register):
    from vggkit.models.vgg import VGG, VGGHead
    register(VGG)
    register(VGGHead)


@hookimpl
def vggkit_register_weight_converters(register):
    from vggkit.models import caffe, converters as c
    for cls in (c.TorchvisionConverter, c.TimmConverter, c.MMPretrainConverter,
                caffe.CaffeConverter):
        register(cls, cls.name)
