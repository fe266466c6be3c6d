"""vggkit plugin: registers the Caltech transfer tasks."""
import vggkit


@vggkit.hookimpl
def vggkit_register_transfer_tasks(register):  # noqa: ANN001
    from vggkit_caltech.tasks import Caltech101, Caltech256
    register(Caltech101, "caltech101")
    register(Caltech256, "caltech256")
