"""Built-in plugin: registers vggkit.models components through the public hooks."""
from vggkit.hookspecs import hookimpl  # noqa: F401
