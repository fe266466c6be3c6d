"""Registries of vggkit: children of mmengine's roots, in scope ``vggkit``.

Components arrive only through the plugin hooks (:mod:`vggkit.hookspecs`); a
registry loads the plugins on its first lookup: mmengine imports the registry's
``locations`` (:data:`PLUGIN_LOADER`) on a first lookup, and that module installs
its loader here (:func:`on_lookup`). So this module, which every component
imports, imports nothing that imports the components. ``type='ScaleJitter'`` names a
built-in, else the one plugin that registered it (two: :class:`PluginConflictError`);
``type='example.ScaleJitter'`` names that plugin's, ``vggkit.ScaleJitter`` the built-in.
"""
from __future__ import annotations

import re
import warnings
from typing import Any, Callable

import mmengine.registry as mm
from mmengine.registry import DefaultScope, Registry

# Before any mmengine runner can load a checkpoint: every one builds from these
# registries (a default scope 'vggkit' imports this module), and torch >= 2.6
# refuses mmengine's own checkpoint types unless they are allow-listed.
from vggkit import safe_load  # noqa: F401

SCOPE = "vggkit"
#: the module that loads the plugins, imported by mmengine on a registry's first lookup
PLUGIN_LOADER = "vggkit.plugins"
#: what every lookup runs first: the plugin loader, installed by PLUGIN_LOADER
_LOADERS: list[Callable[[], Any]] = []


def on_lookup(load: Callable[[], Any]) -> None:
    """Run ``load`` before every lookup (it caches: the plugins load once)."""
    if load not in _LOADERS:
        _LOADERS.append(load)
#: what a registered name or a dotted Python name looks like
_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


class PluginConflictError(KeyError):
    """An unqualified name was registered by more than one plugin."""

    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0])


class VggkitRegistry(Registry):
    """An mmengine registry that loads the plugins first and resolves their names.

    Built-ins are registered in mmengine's registry; a third-party plugin's
    components are kept in :attr:`plugins` (plugin -> name -> object), so a
    reload forgets them. ``dotted``: names may hold '.' (``vgg16.torchvision``).
    """

    def __init__(self, name: str, parent: Registry | None = None, dotted: bool = False) -> None:
        super().__init__(name, parent=parent, scope=SCOPE, locations=[PLUGIN_LOADER])
        self.dotted = dotted
        self.plugins: dict[str, dict[str, Any]] = {}

    def add_plugin(self, plugin: str, components: dict[str, Any]) -> None:
        """Publish a plugin's components (the built-in plugin's: ``plugin == SCOPE``)."""
        if plugin == SCOPE:  # force: a reload registers the same built-ins again
            for name, obj in components.items():
                self.register_module(name=name, module=obj, force=True)
            return
        self.plugins[plugin] = components
        for name in sorted(components.keys() & self.module_dict.keys()):
            warnings.warn(f"vggkit: plugin '{plugin}' registers {self.name} '{name}', a built-in "
                          f"name; '{name}' stays the built-in, the plugin's is '{plugin}.{name}'",
                          stacklevel=4)

    def get(self, key: str) -> Any:
        """What ``key`` names (see the module's docstring); None if nothing."""
        self.load_plugins()
        if key in self.module_dict:
            return self.module_dict[key]
        found = {p: c[key] for p, c in self.plugins.items() if key in c}
        if len({id(obj) for obj in found.values()}) > 1:
            raise PluginConflictError(
                f"{self.name} '{key}' is registered by more than one plugin "
                f"({', '.join(f'{p}.{key}' for p in found)}); use one of these qualified names")
        if found:
            return next(iter(found.values()))
        scope, _, name = key.partition(".")
        if name and scope in self.plugins:
            return self.plugins[scope].get(name)
        if self.dotted:
            return self.module_dict.get(name) if scope == SCOPE else None
        if not _NAME.fullmatch(key):  # '' or ' ' made mmengine import '.registry'
            return None
        found_obj = super().get(key)  # 'vggkit.Name', or a name of mmengine's parent registry
        # mmengine falls back to importing ``key`` as a Python name, so an unknown
        # '--task abc' came back as the stdlib module abc: only callables are components
        return found_obj if callable(found_obj) else None

    def load_plugins(self) -> None:
        """Load the plugins, once (their loader caches)."""
        self.import_from_location()  # mmengine's: imports PLUGIN_LOADER on the first lookup
        for load in _LOADERS:
            load()

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        # mmengine resolves names in the current default scope, which a Runner of
        # another scope may have left set; building from here means scope 'vggkit'.
        with DefaultScope.overwrite_default_scope(SCOPE):
            return super().build(cfg, *args, **kwargs)

    def known_names(self) -> list[str]:
        """Every name a user can pass as ``type``, unqualified and qualified."""
        self.load_plugins()
        scoped = [(SCOPE, self.module_dict), *self.plugins.items()]
        return sorted({n for _, names in scoped for n in names}
                      | {f"{scope}.{n}" for scope, names in scoped for n in names})


MODELS = VggkitRegistry("model", mm.MODELS)
DATASETS = VggkitRegistry("dataset", mm.DATASETS)
TRANSFORMS = VggkitRegistry("transform", mm.TRANSFORMS)
METRICS = VggkitRegistry("metric", mm.METRICS)
HOOKS = VggkitRegistry("hook", mm.HOOKS)
PARAM_SCHEDULERS = VggkitRegistry("param scheduler", mm.PARAM_SCHEDULERS)
# kinds of our own, with no mmengine counterpart
EVAL_STRATEGIES = VggkitRegistry("eval strategy")
TRANSFER_TASKS = VggkitRegistry("transfer task")
WEIGHT_CONVERTERS = VggkitRegistry("weight converter")
WEIGHTS = VggkitRegistry("weights", dotted=True)

#: listing name, also the hook's suffix (vggkit_register_<name>) -> registry
ALL: dict[str, VggkitRegistry] = {
    "models": MODELS, "datasets": DATASETS, "transforms": TRANSFORMS, "metrics": METRICS,
    "hooks": HOOKS, "param_schedulers": PARAM_SCHEDULERS, "eval_strategies": EVAL_STRATEGIES, "transfer_tasks": TRANSFER_TASKS,
    "weight_converters": WEIGHT_CONVERTERS, "weights": WEIGHTS,
}

# A runner with default_scope='vggkit' looks the scope up in every mmengine root
# (else it warns "Failed to search registry with scope vggkit"), so the roots no
# hook feeds (optimizers, loops, ...) each get an empty 'vggkit' child.
for _root in [r for r in vars(mm).values() if isinstance(r, Registry) and SCOPE not in r.children]:
    Registry(_root.name, parent=_root, scope=SCOPE)
