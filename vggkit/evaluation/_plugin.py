"""Built-in plugin ``vggkit.evaluation``, registering through the hooks a third party uses."""
from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_metrics(register):
    from vggkit.evaluation.metrics import TopKError
    register(TopKError)


@hookimpl
def vggkit_register_eval_strategies(register):
    from vggkit.evaluation import strategies as s
    for cls in (s.CenterCrop, s.Dense, s.MultiCrop, s.DenseMultiCrop):
        register(cls, cls.name)
