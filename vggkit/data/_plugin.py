"""Built-in plugin: registers vggkit.data components through the public hooks."""
from vggkit.hookspecs import hookimpl  # noqa: F401
