"""Built-in plugin: registers vggkit.transfer components through the public hooks."""
from vggkit.hookspecs import hookimpl  # noqa: F401
