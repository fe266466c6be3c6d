"""Plugin loading: the built-in plugin (:mod:`vggkit.builtins`), then entry points.

The first registry lookup loads them, once. A plugin that fails to import or in
a hook is skipped with one warning and listed as failed; what its hooks
registered is published only if all of them succeeded. Read when loading:

``VGGKIT_LOAD_PLUGINS``     allow-list of entry-point or distribution names,
                            comma-separated; "" loads no third-party plugin
``VGGKIT_DISABLE_PLUGINS``  deny-list, same names
``VGGKIT_STRICT_PLUGINS=1`` a failing plugin raises instead of warning
``VGGKIT_TRACE_PLUGINS=1``  print every hook call and registration to stderr

A name in either list that no installed plugin has is warned about (strict:
refused), listing the installed ones. A hook implemented by its old name
(:data:`vggkit.hookspecs.RENAMED_HOOKS`) is registered as the new hook, with a
:class:`~vggkit.hookspecs.HookDeprecationWarning`.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from vggkit import __version__, builtins, hookspecs, renamed
from vggkit.errors import UserError
from vggkit.registry import ALL, SCOPE, on_lookup


class PluginError(UserError, RuntimeError):
    """A plugin failed to load or register (raised in strict mode)."""


@dataclass
class PluginInfo:
    """What ``vggkit plugins`` reports about one plugin (the built-in one is named 'vggkit')."""

    name: str
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"  # or 'blocked', 'failed'
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    return None if value is None else {v.strip() for v in value.split(",")} - {""}


def _flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}


class _Pluggy(pluggy.PluginManager):
    """pluggy's manager, taking an implementation of a renamed hook for the new hook.

    pluggy's ``specname`` option binds a function to a hook of another name;
    each one so bound is kept in :attr:`renamed` for the warning.
    """

    def __init__(self) -> None:
        super().__init__(SCOPE)
        self.renamed: list[tuple[str, Any]] = []  # (old name, function)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        new = hookspecs.RENAMED_HOOKS.get(name)
        if opts is None or new is None or opts.get("specname"):
            return opts
        self.renamed.append((name, getattr(plugin, name)))
        return {**opts, "specname": new}  # a copy: the marker on the function stays as written


def _warn_renamed(info: PluginInfo, old: str, function: Any) -> None:
    """The deprecation warning of a renamed hook, pointing at the plugin's function."""
    code = getattr(function, "__func__", function).__code__
    warnings.warn_explicit(hookspecs.HookDeprecationWarning(
        f"vggkit plugin '{info.name}' implements {old}, which is deprecated: it was renamed "
        f"{hookspecs.RENAMED_HOOKS[old]}; it is registered as that hook for now, but the old "
        "name will stop working in a later vggkit: rename the function"),
        hookspecs.HookDeprecationWarning, code.co_filename, code.co_firstlineno)


class PluginLoading:
    """One loading of the plugins; :func:`reload_plugins` starts a new one.

    ``pm`` is the pluggy ``PluginManager`` holding them (the name this class had
    before it was renamed: see :func:`__getattr__`).
    """

    def __init__(self) -> None:
        self.pm = _Pluggy()
        self.pm.add_hookspecs(hookspecs.Hooks)
        self.infos: list[PluginInfo] = []
        self.strict, self.trace = _flag("VGGKIT_STRICT_PLUGINS"), _flag("VGGKIT_TRACE_PLUGINS")
        if self.trace:
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()
        for registry in ALL.values():  # forget the previous loading's plugins
            registry.plugins.clear()

    def load(self) -> None:
        self.add(builtins, PluginInfo(SCOPE, "vggkit", __version__))
        allow, deny = _names("VGGKIT_LOAD_PLUGINS"), _names("VGGKIT_DISABLE_PLUGINS") or set()
        # sorted: the order never depends on sys.path's (importlib.metadata keeps
        # one distribution of each name already, the first on sys.path)
        eps = sorted(metadata.entry_points(group=SCOPE), key=lambda ep: (ep.name, ep.value))
        self.check_names(eps, allow, deny)
        for ep in eps:
            info = PluginInfo(ep.name, ep.dist and ep.dist.name, ep.dist and ep.dist.version)
            ids = {ep.name, info.distribution}
            if (allow is not None and not ids & allow) or ids & deny:
                info.status = "blocked"
                self.infos.append(info)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - isolate any plugin failure
                self.infos.append(info)
                self.fail(info, "import", exc)
                continue
            self.add(plugin, info)

    def check_names(self, eps: list[metadata.EntryPoint], allow: set[str] | None,
                    deny: set[str]) -> None:
        """Warn about (strict: refuse) allow- or deny-list names no installed plugin has.

        A misspelt allow-list name would block every plugin without a word, a
        deny-list one would block nothing.
        """
        installed = {ep.name: ep.dist and ep.dist.name for ep in eps}
        known = set(installed) | set(installed.values()) | {SCOPE}
        listing = ", ".join(f"{n} ({d})" if d and d != n else n for n, d in installed.items())
        for var, names in (("VGGKIT_LOAD_PLUGINS", allow or set()),
                           ("VGGKIT_DISABLE_PLUGINS", deny)):
            unknown = sorted(names - known)
            if not unknown:
                continue
            message = (f"{var} names {', '.join(map(repr, unknown))}, but no installed plugin "
                       f"has that name; installed plugins (distribution): {listing or 'none'}")
            if self.strict:
                raise PluginError(message)
            warnings.warn(message, stacklevel=3)

    def add(self, plugin: Any, info: PluginInfo) -> None:
        """Run ``plugin``'s hooks; publish what they registered only if all succeed."""
        self.infos.append(info)
        staged: dict[str, dict[str, Any]] = {}  # kind -> name -> object
        where, registered = "registration", False
        try:
            self.pm.renamed.clear()
            # pluggy refuses a second plugin of the name, or the same object twice
            self.pm.register(plugin, name=info.name)
            registered = True
            for old, function in self.pm.renamed:
                _warn_renamed(info, old, function)
            callers = self.pm.get_hookcallers(plugin) or []
            info.hooks = sorted({caller.name for caller in callers})
            unknown = [caller.name for caller in callers if not caller.has_spec()]
            if unknown:  # e.g. a hook of another vggkit version: better loud than ignored
                raise PluginError(f"unknown hook {', '.join(unknown)}; vggkit's hooks are "
                                  f"vggkit_register_{{{','.join(ALL)}}}")
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            for hook in info.hooks:
                where, kind = f"hook {hook}", hook.removeprefix("vggkit_register_")
                register = self._registerer(info, kind, staged.setdefault(kind, {}))
                self.pm.subset_hook_caller(hook, remove_plugins=others)(register=register)
        except Exception as exc:  # noqa: BLE001
            if registered:  # not the plugin pluggy refused: that one stays loaded
                self.pm.unregister(plugin)
            info.registered.clear()
            self.fail(info, where, exc)
            return
        for kind, components in staged.items():
            ALL[kind].add_plugin(info.name, components)

    def _registerer(self, info: PluginInfo, kind: str, staged: dict[str, Any]) -> Any:
        """The ``register(obj, name=None)`` callable a hook receives."""
        def register(obj: Any, name: str | None = None) -> None:
            key = name or getattr(obj, "__name__", None)
            if not isinstance(key, str) or ("." in key and not ALL[kind].dotted):
                raise ValueError(f"cannot register {obj!r} as {key!r}; pass a name without '.'")
            if staged.setdefault(key, obj) is not obj:  # the identical object twice: a no-op
                raise KeyError(f"{ALL[kind].name} '{key}' is registered twice by plugin "
                               f"'{info.name}', as two different objects")
            if key not in info.registered.setdefault(kind, []):
                info.registered[kind].append(key)
                if self.trace:
                    sys.stderr.write(f"vggkit: {info.name} registered {ALL[kind].name} '{key}'\n")
        return register

    def fail(self, info: PluginInfo, where: str, exc: Exception) -> None:
        info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
        dist = f"{info.distribution} {info.version}" if info.distribution else "unknown"
        message = f"vggkit plugin '{info.name}' (distribution {dist}) failed in {where}: {info.error}"
        if self.strict:
            raise PluginError(message) from exc
        warnings.warn(f"{message}; it is skipped (VGGKIT_STRICT_PLUGINS=1 makes this an error, "
                      f"VGGKIT_DISABLE_PLUGINS={info.name} silences it)", stacklevel=3)


# A DeprecationWarning from a plugin's module is hidden by Python's default filters; a
# renamed hook's is shown, as pytest shows its own, unless the user chose filters (-W,
# PYTHONWARNINGS): a plugin's author must hear of it before the old name stops working.
if not sys.warnoptions:
    warnings.filterwarnings("default", category=hookspecs.HookDeprecationWarning)

_LOCK = threading.RLock()  # reentrant: a plugin's own imports may look names up
_MANAGER: PluginLoading | None = None


def load_plugins() -> PluginLoading:
    """The built-in and installed plugins, loaded once (registry lookups call this)."""
    with _LOCK:
        return _MANAGER or reload_plugins()


def reload_plugins() -> PluginLoading:
    """Forget every plugin and load again, re-reading the environment."""
    global _MANAGER
    with _LOCK:
        _MANAGER = manager = PluginLoading()  # set first: lookups made while loading see it
        try:
            manager.load()
        except BaseException:
            _MANAGER = None
            raise
        return manager


def register_plugin(plugin: Any, name: str) -> PluginInfo:
    """Deprecated: ``load_plugins().add(plugin, PluginInfo(name))`` (the tests' helper)."""
    warnings.warn("vggkit.plugins.register_plugin is deprecated; use "
                  "vggkit.plugins.load_plugins().add(plugin, PluginInfo(name))",
                  DeprecationWarning, stacklevel=2)
    info = PluginInfo(name)
    load_plugins().add(plugin, info)
    return info


def plugin_infos(include_builtin: bool = False) -> list[PluginInfo]:
    """The record of every third-party plugin (and the built-in one if asked)."""
    return [i for i in load_plugins().infos if include_builtin or i.name != SCOPE]


# PluginManager was this module's name for one loading, the name of the pluggy class it
# holds: code read load_plugins().pm as if it were a manager's manager
__getattr__ = renamed(__name__, {"PluginManager": ("vggkit.plugins.PluginLoading",
                                                   lambda: PluginLoading)})


# registries run this before every lookup (registry imports nothing above it)
on_lookup(load_plugins)
