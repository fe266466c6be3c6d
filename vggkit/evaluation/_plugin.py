"""Built-in plugin: registers vggkit.evaluation components through the public hooks."""
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
