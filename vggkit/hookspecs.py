"""Hook specifications: one hook per registry, ``vggkit_register_<kind>``.

A plugin implements any of them with ``@vggkit.hookimpl``; each receives a
``register(obj, name=None)`` callable (``name`` defaults to ``obj.__name__``).

A renamed hook's old name (:data:`RENAMED_HOOKS`) keeps working for plugins
written against it: :mod:`vggkit.plugins` registers the implementation under
the new name and warns with :class:`HookDeprecationWarning`, as pytest does
for its own deprecated hooks.
"""
import pluggy

hookspec = pluggy.HookspecMarker("vggkit")
hookimpl = pluggy.HookimplMarker("vggkit")

#: old hook name -> the hook that replaced it (git history: the backbones and heads
#: hooks were merged into vggkit_register_models, which feeds the same registry, MODELS)
RENAMED_HOOKS = {
    "vggkit_register_backbones": "vggkit_register_models",
    "vggkit_register_heads": "vggkit_register_models",
}


class HookDeprecationWarning(DeprecationWarning):
    """A plugin implements a hook by its old name (:data:`RENAMED_HOOKS`)."""


class Hooks:
    """The hooks; each docstring names the registry it feeds and what that holds."""

    @hookspec
    def vggkit_register_models(self, register):
        """MODELS: backbones (the paper's A-E), heads, classifiers, data preprocessors."""

    @hookspec
    def vggkit_register_transforms(self, register):
        """TRANSFORMS: data transforms (augmentations, rescaling)."""

    @hookspec
    def vggkit_register_datasets(self, register):
        """DATASETS: datasets and dataset wrappers."""

    @hookspec
    def vggkit_register_metrics(self, register):
        """METRICS: evaluation metrics."""

    @hookspec
    def vggkit_register_hooks(self, register):
        """HOOKS: mmengine runner hooks."""

    @hookspec
    def vggkit_register_param_schedulers(self, register):
        """PARAM_SCHEDULERS: mmengine lr and momentum schedulers (``param_scheduler`` entries)."""

    @hookspec
    def vggkit_register_eval_strategies(self, register):
        """EVAL_STRATEGIES: test-time evaluation strategies (dense, multi-crop, ...)."""

    @hookspec
    def vggkit_register_transfer_tasks(self, register):
        """TRANSFER_TASKS: downstream transfer tasks (Caltech, VOC, image folders)."""

    @hookspec
    def vggkit_register_weight_converters(self, register):
        """WEIGHT_CONVERTERS: converters of published weights (torchvision, Caffe, ...)."""

    @hookspec
    def vggkit_register_weights(self, register):
        """WEIGHTS: published weights by name; names may contain dots (``vgg16.torchvision``)."""
