"""The plugin manager: built-in plugins, entry points, allow/deny, isolation.

Built-in components arrive through the very hooks a third-party plugin uses
(the pattern of simonw/llm): the modules in :data:`BUILTIN_PLUGINS` are pluggy
plugins like any other, qualified as ``vggkit.<Name>``.

Environment variables (read when plugins are loaded):

``VGGKIT_LOAD_PLUGINS``     comma-separated allow-list of entry-point or
                            distribution names; the empty string loads none.
``VGGKIT_DISABLE_PLUGINS``  comma-separated deny-list, same names.
``VGGKIT_STRICT_PLUGINS=1`` a failing plugin raises instead of warning.
``VGGKIT_TRACE_PLUGINS=1``  print every hook call and registration to stderr.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from vggkit import hookspecs
from vggkit.registry import (DATASETS, EVAL_STRATEGIES, HOOKS, METRICS, MODELS,
                             SCOPE, TRANSFER_TASKS, TRANSFORMS,
                             WEIGHT_CONVERTERS, VggkitRegistry)

ENTRY_POINT_GROUP = "vggkit"
BUILTIN_PLUGINS = (
    "vggkit.models._plugin",
    "vggkit.data._plugin",
    "vggkit.engine._plugin",
    "vggkit.evaluation._plugin",
    "vggkit.transfer._plugin",
)

#: hook name -> (registry, name used in listings)
HOOK_REGISTRIES: dict[str, tuple[VggkitRegistry, str]] = {
    "vggkit_register_backbones": (MODELS, "models"),
    "vggkit_register_heads": (MODELS, "models"),
    "vggkit_register_models": (MODELS, "models"),
    "vggkit_register_transforms": (TRANSFORMS, "transforms"),
    "vggkit_register_datasets": (DATASETS, "datasets"),
    "vggkit_register_eval_strategies": (EVAL_STRATEGIES, "eval_strategies"),
    "vggkit_register_transfer_tasks": (TRANSFER_TASKS, "transfer_tasks"),
    "vggkit_register_metrics": (METRICS, "metrics"),
    "vggkit_register_hooks": (HOOKS, "hooks"),
    "vggkit_register_weight_converters": (WEIGHT_CONVERTERS, "weight_converters"),
}


class PluginError(RuntimeError):
    """A plugin failed to load or register (raised in strict mode)."""


@dataclass
class PluginInfo:
    """What ``vggkit plugins`` reports about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    status: str  # 'loaded', 'blocked' or 'failed'
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "name", "distribution", "version", "status", "error", "hooks", "registered")}


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}


class PluginManager:
    """Loads plugins once and records what each one registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("vggkit")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        # (registry, key, scope registry) of every registration, to undo them
        self._added: list[tuple[VggkitRegistry, str, Any]] = []
        self.strict = _flag("VGGKIT_STRICT_PLUGINS")
        self.trace = _flag("VGGKIT_TRACE_PLUGINS")
        if self.trace:
            self.pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
            self.pm.enable_tracing()

    # -- loading -----------------------------------------------------------
    def load(self) -> None:
        for module_name in BUILTIN_PLUGINS:
            module = importlib.import_module(module_name)
            # listed as e.g. 'vggkit.models'; qualified names are 'vggkit.<Name>'
            info = PluginInfo(module_name.rsplit("._plugin", 1)[0], "vggkit", _version("vggkit"),
                              "loaded", builtin=True)
            self._add(module, info, scope=SCOPE)
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(ep.name, dist, version, "loaded")
            if self._blocked(ep.name, dist):
                info.status = "blocked"
                self.infos.append(info)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - isolate any plugin failure
                self._fail(info, "import", exc)
                continue
            self._add(plugin, info, scope=ep.name)

    def _blocked(self, name: str, dist: str | None) -> bool:
        names = {name} | ({dist} if dist else set())
        allow = _env_list("VGGKIT_LOAD_PLUGINS")
        if allow is not None and not names & set(allow):
            return True
        deny = _env_list("VGGKIT_DISABLE_PLUGINS") or []
        return bool(names & set(deny))

    def _add(self, plugin: Any, info: PluginInfo, scope: str) -> None:
        if self.pm.is_registered(plugin):
            info.status, info.error = "failed", "the same plugin object is already registered"
            self.infos.append(info)
            return
        self.pm.register(plugin, name=info.name)
        self.infos.append(info)
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        mark = len(self._added)
        for hook_name in info.hooks:
            if hook_name not in HOOK_REGISTRIES:
                continue
            registry, listing = HOOK_REGISTRIES[hook_name]
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)

            def register(obj: Any, name: str | None = None, *,
                         _reg: VggkitRegistry = registry, _listing: str = listing) -> None:
                key = name or getattr(obj, "__name__", None)
                if not key or not isinstance(key, str):
                    raise ValueError(f"cannot register {obj!r} without a name; pass name=")
                if "." in key:
                    raise ValueError(f"component name '{key}' must not contain '.'")
                if self._register(_reg, key, obj, info.name, scope):
                    info.registered.setdefault(_listing, []).append(key)

            try:
                caller(register=register)
            except Exception as exc:  # noqa: BLE001
                self._undo(mark)
                info.registered.clear()
                self.pm.unregister(plugin)
                self._fail(info, f"hook {hook_name}", exc, append=False)
                return

    def _register(self, reg: VggkitRegistry, key: str, obj: Any, plugin: str, scope: str) -> bool:
        child = reg.plugin_child(scope)
        existing = child.module_dict.get(key)
        if existing is obj:
            return False  # the identical object twice: a no-op
        if existing is not None:
            raise ValueError(f"{reg.name} '{scope}.{key}' is already registered by this plugin "
                             "with a different object")
        child._module_dict[key] = obj
        self._added.append((child, key, None))
        if self.trace:
            sys.stderr.write(f"vggkit: {plugin} registered {reg.name} '{scope}.{key}'\n")
        if child is reg:  # a built-in: owned by the 'vggkit' scope
            reg.owners[key] = scope
            return True
        if key in reg.conflicts:
            reg.conflicts[key].append((plugin, f"{scope}.{key}"))
        elif key not in reg.module_dict:
            reg._module_dict[key] = obj
            reg.owners[key] = scope
            self._added.append((reg, key, None))
        elif reg.owners.get(key) == SCOPE:
            warnings.warn(f"vggkit: plugin '{plugin}' registers {reg.name} '{key}', a built-in "
                          f"name; the built-in keeps '{key}', the plugin's is '{scope}.{key}'",
                          stacklevel=2)
        elif reg.module_dict[key] is not obj:
            owner = reg.owners[key]
            reg.conflicts[key] = [(owner, f"{owner}.{key}"), (plugin, f"{scope}.{key}")]
            del reg._module_dict[key]
            self._added.append((reg, key, "conflict"))
        return True

    def _undo(self, mark: int) -> None:
        while len(self._added) > mark:
            reg, key, kind = self._added.pop()
            if kind == "conflict":
                reg.conflicts.pop(key, None)
            else:
                reg._module_dict.pop(key, None)
                if isinstance(reg, VggkitRegistry):
                    reg.owners.pop(key, None)

    def _fail(self, info: PluginInfo, where: str, exc: BaseException, append: bool = True) -> None:
        info.status = "failed"
        info.error = f"{type(exc).__name__}: {exc}"
        if append:
            self.infos.append(info)
        dist = f"{info.distribution} {info.version}" if info.distribution else "unknown distribution"
        message = (f"vggkit plugin '{info.name}' (distribution {dist}) failed in {where}: "
                   f"{info.error}")
        if self.strict:
            raise PluginError(message) from exc
        warnings.warn(message + "; it is skipped (VGGKIT_STRICT_PLUGINS=1 makes this an error, "
                      f"VGGKIT_DISABLE_PLUGINS={info.name} silences it)", stacklevel=2)

    def unload(self) -> None:
        self._undo(0)
        for plugin in list(self.pm.get_plugins()):
            self.pm.unregister(plugin)


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    # One entry per (name, distribution); sorted so load order never depends
    # on the order of sys.path or the file system.
    seen: dict[tuple[str, str], metadata.EntryPoint] = {}
    for ep in eps:
        dist = ep.dist.name if ep.dist is not None else ""
        seen.setdefault((ep.name, dist), ep)
    return [seen[k] for k in sorted(seen)]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


_LOCK = threading.RLock()
_MANAGER: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loading plugins on first use."""
    global _MANAGER
    with _LOCK:
        if _MANAGER is None:
            manager = PluginManager()
            _MANAGER = manager
            try:
                manager.load()
            except BaseException:
                manager.unload()
                _MANAGER = None
                raise
        return _MANAGER


def load_plugins() -> PluginManager:
    """Load built-in and installed plugins (idempotent)."""
    return get_plugin_manager()


def reload_plugins() -> PluginManager:
    """Forget every plugin and load again, re-reading the environment."""
    global _MANAGER
    with _LOCK:
        if _MANAGER is not None:
            _MANAGER.unload()
            _MANAGER = None
        return get_plugin_manager()


def register_plugin(plugin: Any, name: str) -> PluginInfo:
    """Register a plugin object in place (tests, notebooks); returns its record."""
    manager = get_plugin_manager()
    info = PluginInfo(name, None, None, "loaded")
    manager._add(plugin, info, scope=name)
    return info


def plugin_infos(include_builtin: bool = False) -> list[PluginInfo]:
    return [i for i in get_plugin_manager().infos if include_builtin or not i.builtin]


def failed_plugins() -> list[PluginInfo]:
    return [i for i in get_plugin_manager().infos if i.status == "failed"]


def names(kind: str) -> Iterable[str]:
    """Names usable as ``type=`` for a listing kind, e.g. ``names('eval_strategies')``."""
    from vggkit.registry import ALL
    get_plugin_manager()
    return ALL[kind].known_names()
