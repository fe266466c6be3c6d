"""Built-in plugin: registers vggkit.transfer components through the public hooks."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_transfer_tasks(register):  # noqa: ANN001 - pluggy passes the callable
    from vggkit.transfer.single_label import ImageFolderTask
    register(ImageFolderTask, "imagefolder")
