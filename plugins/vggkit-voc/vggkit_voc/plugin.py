"""vggkit plugin: registers the VOC classification and action classification tasks."""
import vggkit


@vggkit.hookimpl
def vggkit_register_transfer_tasks(register):  # noqa: ANN001
    from vggkit_voc.action import VOC2012Action
    from vggkit_voc.tasks import VOC2007, VOC2012
    register(VOC2007, "voc2007")
    register(VOC2012, "voc2012")
    register(VOC2012Action, "voc2012_action")
