"""Registries of vggkit: children of mmengine's roots, in scope ``vggkit``.

Components arrive only through the plugin hooks (:mod:`vggkit.hookspecs`); a
registry loads the plugins on its first lookup. A name is resolved
unqualified, ``type='ScaleJitter'`` (a built-in, else the one plugin that
claimed it; two claims raise :class:`PluginConflictError`), or qualified,
``type='example.ScaleJitter'`` (that plugin's; ``vggkit.Name``: the built-in).
"""
from __future__ import annotations

import warnings
from typing import Any

import mmengine.registry as mm
from mmengine.registry import DefaultScope, Registry

SCOPE = "vggkit"


class PluginConflictError(KeyError):
    """An unqualified name was claimed by more than one plugin."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class VggkitRegistry(Registry):
    """An mmengine registry that loads the plugins first and resolves their names.

    Built-ins live in the registry itself; a third-party plugin's components in
    :attr:`plugins` (plugin -> name -> object), so a reload drops them without
    touching mmengine. ``dotted=True``: names may contain '.' (weights:
    ``vgg16.torchvision``), and a whole name is tried before ``plugin.name``.
    """

    def __init__(self, name: str, parent: Registry | None = None, dotted: bool = False) -> None:
        super().__init__(name, parent=parent, scope=SCOPE)
        self.dotted = dotted
        self.plugins: dict[str, dict[str, Any]] = {}

    def add_plugin(self, plugin: str, components: dict[str, Any]) -> None:
        """Make a loaded plugin's components resolvable (the built-in one: ``plugin == SCOPE``)."""
        if plugin == SCOPE:  # force: a reload adds the same built-ins again
            for name, obj in components.items():
                self.register_module(name=name, module=obj, force=True)
            return
        self.plugins[plugin] = components
        for name in sorted(components.keys() & self.module_dict.keys()):
            warnings.warn(f"vggkit: plugin '{plugin}' registers {self.name} '{name}', a "
                          f"built-in name; the built-in keeps '{name}', the plugin's is "
                          f"'{plugin}.{name}'", stacklevel=4)

    def get(self, key: str) -> Any:
        """What ``key`` names (see the module's docstring); None if nothing."""
        _load_plugins()
        if key in self.module_dict:
            return self.module_dict[key]
        found = {p: components[key] for p, components in self.plugins.items()
                 if key in components}
        if len({id(obj) for obj in found.values()}) > 1:
            claims = ", ".join(f"plugin '{p}' as '{p}.{key}'" for p in found)
            raise PluginConflictError(
                f"{self.name} '{key}' is registered by more than one plugin ({claims}); "
                f"use a qualified name, e.g. type='{next(iter(found))}.{key}'")
        if found:
            return next(iter(found.values()))
        scope, _, name = key.partition(".")
        if name and scope in self.plugins:
            return self.plugins[scope].get(name)
        if self.dotted:
            return self.module_dict.get(name) if scope == SCOPE else None
        return super().get(key)  # 'vggkit.Name', or a name of mmengine's parent registry

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        # mmengine resolves names in the current default scope, which a Runner of
        # another scope may have left set; building from here means scope 'vggkit'.
        with DefaultScope.overwrite_default_scope(SCOPE):
            return super().build(cfg, *args, **kwargs)

    def known_names(self) -> list[str]:
        """Every name a user can pass as ``type``, unqualified and qualified."""
        _load_plugins()
        names: set[str] = set()
        for scope, components in [(SCOPE, self.module_dict), *self.plugins.items()]:
            names.update(components)
            names.update(f"{scope}.{name}" for name in components)
        return sorted(names)


def _load_plugins() -> None:
    from vggkit.plugins import load_plugins  # not at the top: vggkit.plugins imports us
    load_plugins()


MODELS = VggkitRegistry("model", mm.MODELS)
DATASETS = VggkitRegistry("dataset", mm.DATASETS)
TRANSFORMS = VggkitRegistry("transform", mm.TRANSFORMS)
METRICS = VggkitRegistry("metric", mm.METRICS)
HOOKS = VggkitRegistry("hook", mm.HOOKS)
# kinds of our own, with no mmengine counterpart
EVAL_STRATEGIES = VggkitRegistry("eval strategy")
TRANSFER_TASKS = VggkitRegistry("transfer task")
WEIGHT_CONVERTERS = VggkitRegistry("weight converter")
WEIGHTS = VggkitRegistry("weights", dotted=True)

#: listing name, also the hook's suffix (vggkit_register_<name>) -> registry
ALL: dict[str, VggkitRegistry] = {
    "models": MODELS, "datasets": DATASETS, "transforms": TRANSFORMS, "metrics": METRICS,
    "hooks": HOOKS, "eval_strategies": EVAL_STRATEGIES, "transfer_tasks": TRANSFER_TASKS,
    "weight_converters": WEIGHT_CONVERTERS, "weights": WEIGHTS,
}

# No hook feeds mmengine's other roots, but a runner with default_scope='vggkit'
# looks the scope up in every tree (else mmengine warns "Failed to search registry
# with scope vggkit" and falls back), so each gets a 'vggkit' node nobody imports.
for _root in (mm.DATA_SAMPLERS, mm.EVALUATOR, mm.FUNCTIONS, mm.INFERENCERS, mm.LOG_PROCESSORS,
              mm.LOOPS, mm.MODEL_WRAPPERS, mm.OPTIMIZERS, mm.OPTIM_WRAPPERS,
              mm.OPTIM_WRAPPER_CONSTRUCTORS, mm.PARAM_SCHEDULERS, mm.RUNNERS,
              mm.RUNNER_CONSTRUCTORS, mm.STRATEGIES, mm.TASK_UTILS, mm.VISBACKENDS,
              mm.VISUALIZERS, mm.WEIGHT_INITIALIZERS):
    Registry(_root.name, parent=_root, scope=SCOPE)
