"""Built-in plugin ``vggkit.transfer``, registering through the hooks a third party uses."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_transfer_tasks(register):
    from vggkit.transfer.single_label import FolderTask, ImageFolderTask
    register(ImageFolderTask, "imagefolder")
    register(FolderTask, "folder")
