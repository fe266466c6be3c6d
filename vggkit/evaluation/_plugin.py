"""Built-in plugin: registers vggkit.evaluation components through the public hooks."""
from vggkit.hookspecs import hookimpl  # noqa: F401
