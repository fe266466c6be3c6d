"""Registries of vggkit: children of mmengine's roots, scope ``vggkit``.

Every component reaches these registries through a pluggy hook (see
:mod:`vggkit.hookspecs`); nothing registers itself with a decorator at import
time, so what is available is exactly what the loaded plugins provide and
``vggkit plugins`` can say where each name came from.

Names are resolved in two ways:

* unqualified, ``type='ScaleJitter'``: the name one plugin claimed. If two
  plugins claimed it the lookup raises :class:`PluginConflictError` naming both.
* qualified, ``type='example.ScaleJitter'``: each plugin owns a child registry
  whose scope is the plugin's name, which is how mmengine itself resolves
  ``scope.Name`` keys, so qualified names work in configs unchanged.
"""
from __future__ import annotations

from typing import Any

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import DefaultScope, Registry

SCOPE = "vggkit"
# Importing this module (mmengine does so when a config's default_scope is
# 'vggkit') loads the plugins, so configs never need custom_imports.
_LOCATIONS = ["vggkit._autoload"]


class PluginConflictError(KeyError):
    """An unqualified name was claimed by more than one plugin."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class VggkitRegistry(Registry):
    """mmengine registry that knows which plugin claimed which name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # unqualified name -> list of (plugin, qualified name) claiming it
        self.conflicts: dict[str, list[tuple[str, str]]] = {}
        # unqualified name -> plugin that owns it
        self.owners: dict[str, str] = {}

    def get(self, key: str) -> Any:
        if isinstance(key, str) and key in self.conflicts:
            claims = self.conflicts[key]
            names = ", ".join(f"plugin '{p}' as '{q}'" for p, q in claims)
            raise PluginConflictError(
                f"{self.name} '{key}' is registered by more than one plugin ({names}); "
                f"use a qualified name, e.g. type='{claims[0][1]}'"
            )
        if isinstance(key, str) and key.startswith(f"{SCOPE}."):
            # 'vggkit.Name' means the built-in, never a plugin's unqualified claim
            real_key = key[len(SCOPE) + 1:]
            if self.owners.get(real_key, SCOPE) != SCOPE:
                return None
        return super().get(key)

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        # mmengine resolves names in the *current default scope*; a Runner
        # created with another scope earlier in the process would make
        # vggkit's registry look in mmengine's. Building from this registry
        # means building in scope 'vggkit'.
        with DefaultScope.overwrite_default_scope(SCOPE):
            return super().build(cfg, *args, **kwargs)

    def plugin_child(self, plugin: str) -> Registry:
        """The child registry holding ``plugin``'s components (scope = plugin name)."""
        if plugin == self.scope:
            return self
        child = self.children.get(plugin)
        if child is None:
            child = Registry(self.name, parent=self, scope=plugin)
        return child

    def known_names(self) -> list[str]:
        """Every name a user can pass as ``type``: unqualified and qualified."""
        names = set(self.module_dict) | set(self.conflicts)
        for scope, child in self.children.items():
            names.update(f"{scope}.{n}" for n in child.module_dict)
        names.update(f"{self.scope}.{n}" for n in self.module_dict
                     if self.owners.get(n, SCOPE) == SCOPE)
        return sorted(names)


def _make(name: str, parent: Registry | None) -> VggkitRegistry:
    return VggkitRegistry(name, parent=parent, scope=SCOPE, locations=_LOCATIONS)


MODELS = _make("model", MMENGINE_MODELS)
DATASETS = _make("dataset", MMENGINE_DATASETS)
DATA_SAMPLERS = _make("data sampler", MMENGINE_DATA_SAMPLERS)
TRANSFORMS = _make("transform", MMENGINE_TRANSFORMS)
METRICS = _make("metric", MMENGINE_METRICS)
EVALUATOR = _make("evaluator", MMENGINE_EVALUATOR)
HOOKS = _make("hook", MMENGINE_HOOKS)
LOOPS = _make("loop", MMENGINE_LOOPS)
OPTIMIZERS = _make("optimizer", MMENGINE_OPTIMIZERS)
OPTIM_WRAPPERS = _make("optim_wrapper", MMENGINE_OPTIM_WRAPPERS)
PARAM_SCHEDULERS = _make("parameter scheduler", MMENGINE_PARAM_SCHEDULERS)
LOG_PROCESSORS = _make("log_processor", MMENGINE_LOG_PROCESSORS)
VISBACKENDS = _make("vis_backend", MMENGINE_VISBACKENDS)
VISUALIZERS = _make("visualizer", MMENGINE_VISUALIZERS)

# The remaining mmengine roots get a 'vggkit' child too, so that a runner with
# default_scope='vggkit' finds its scope in every registry tree (otherwise
# mmengine warns "Failed to search registry with scope vggkit" and falls back).
import mmengine.registry as _mmengine_registry  # noqa: E402

for _root in ("FUNCTIONS", "INFERENCERS", "MODEL_WRAPPERS", "OPTIM_WRAPPER_CONSTRUCTORS",
              "RUNNERS", "RUNNER_CONSTRUCTORS", "STRATEGIES", "TASK_UTILS",
              "WEIGHT_INITIALIZERS"):
    globals()[_root] = _make(getattr(_mmengine_registry, _root).name,
                             getattr(_mmengine_registry, _root))

# Kinds of our own, with no mmengine counterpart.
EVAL_STRATEGIES = _make("eval strategy", None)
TRANSFER_TASKS = _make("transfer task", None)
WEIGHT_CONVERTERS = _make("weight converter", None)

#: registry name used in listings -> registry
ALL: dict[str, VggkitRegistry] = {
    "models": MODELS,
    "datasets": DATASETS,
    "transforms": TRANSFORMS,
    "metrics": METRICS,
    "hooks": HOOKS,
    "eval_strategies": EVAL_STRATEGIES,
    "transfer_tasks": TRANSFER_TASKS,
    "weight_converters": WEIGHT_CONVERTERS,
}
