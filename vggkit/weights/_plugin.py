"""Built-in plugin ``vggkit.weights``: the catalogue of published weights."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_weights(register):
    from vggkit.weights.catalogue import BUILTIN_WEIGHTS
    for entry in BUILTIN_WEIGHTS:
        register(entry)
