"""Built-in plugin: registers vggkit.engine components through the public hooks."""
from vggkit.hookspecs import hookimpl  # noqa: F401
