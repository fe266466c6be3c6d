"""``--cfg-options KEY=VALUE``, checked against the config before it is merged in.

mmengine's ``merge_from_dict`` creates any key it is given, so a misspelt key
was silently ignored (or failed as a traceback deep in a constructor), and
its ``DictAction`` turns any value it cannot parse into a string. Here every
key must name an entry of the config, or an argument of what the entry
builds: a ``type=`` component's constructor (followed up its base classes
while it passes ``**kwargs`` on), ``model.vgg``'s :func:`build_vgg`, a data
loader's ``DataLoader``, the runner's own top-level settings. A value that
replaces a number or a flag must be one. Each refusal is one line naming the
key and the nearest real one.
"""
from __future__ import annotations

import argparse
import difflib
import inspect
from typing import Any, Mapping, Optional, Sequence

from mmengine.config import DictAction

from vggkit.errors import UserError

#: top-level keys vggkit reads with a default (engine.batch_size, vggkit test), beyond the runner's
VGGKIT_TOP_LEVEL = ("total_batch_size", "batch_per_gpu", "base_batch_size", "lr_scaling",
                    "test_scales")
#: dicts whose keys are free names (hooks by name, process-group arguments)
OPEN_DICTS = ("default_hooks", "env_cfg.dist_cfg", "env_cfg.mp_cfg")
#: keys of ``env_cfg`` mmengine's runner reads
ENV_CFG_KEYS = ("cudnn_benchmark", "mp_cfg", "dist_cfg", "resource_limit")


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` refusing an item without ``KEY=`` as an argparse error."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        for item in values or ():
            key, sep, _ = str(item).partition("=")
            if not sep or not key:
                raise argparse.ArgumentError(
                    self, f"expects KEY=VALUE (e.g. model.vgg.fc_width=1024), got '{item}'")
        super().__call__(parser, namespace, values, option_string)


def _arguments(target: Any) -> Optional[dict[str, Any]]:
    """``{name: default}`` of what ``target`` (a class or function) accepts by keyword.

    A class's ``**kwargs`` is followed up its base classes (they are passed to
    ``super().__init__``); None when the names are open (``**kwargs`` to the
    end, or a signature that cannot be read).
    """
    found: dict[str, Any] = {}
    functions = ([vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)]
                 if isinstance(target, type) else [target])
    for function in functions:
        try:
            params = list(inspect.signature(function).parameters.values())
        except (TypeError, ValueError):
            return None
        if isinstance(target, type):
            params = params[1:]  # self
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                found.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return found
    return None


def _component(name: Any) -> Any:
    """The class or function a ``type=`` value names (None if no registry knows it)."""
    if not isinstance(name, str):
        return name if callable(name) else None
    import mmengine.registry as mm

    from vggkit import registry
    ours = [registry.MODELS, registry.DATASETS, registry.TRANSFORMS, registry.METRICS,
            registry.HOOKS]
    roots = [r for r in vars(mm).values() if isinstance(r, mm.Registry)]
    for reg in [*ours, *roots]:
        try:
            found = reg.get(name)
        except (KeyError, ImportError):  # a plugin conflict, an unimportable scope
            found = None
        if found is not None:
            return found
    return None


def _untyped_arguments(path: str) -> dict[str, Any]:
    """``{name: default}`` of a dict without ``type`` that vggkit or the runner reads.

    ``{}`` for any other: only the keys it has.
    """
    from mmengine.runner import Runner, TestLoop, ValLoop
    from mmengine.runner.loops import EpochBasedTrainLoop, IterBasedTrainLoop
    from torch.utils.data import DataLoader

    from vggkit.factory import build_defaults
    if not path:
        return {**(_arguments(Runner) or {}), **dict.fromkeys(VGGKIT_TOP_LEVEL)}
    if path in ("model.vgg", "model.backbone"):
        return build_defaults()
    if path in ("train_dataloader", "val_dataloader", "test_dataloader"):
        return _arguments(DataLoader) or {}
    loops = {"train_cfg": (EpochBasedTrainLoop, IterBasedTrainLoop), "val_cfg": (ValLoop,),
             "test_cfg": (TestLoop,)}
    if path in loops:  # the runner passes itself and the data, the rest comes from here
        found = {"type": None, "by_epoch": True} if path == "train_cfg" else {"type": None}
        for loop in loops[path]:
            found.update(_arguments(loop) or {})
        return {k: v for k, v in found.items() if k not in ("runner", "dataloader", "evaluator")}
    if path == "randomness":
        return {k: v for k, v in (_arguments(Runner.set_randomness) or {}).items() if k != "self"}
    if path == "env_cfg":
        return dict.fromkeys(ENV_CFG_KEYS)
    return {}


def _accepted(node: Mapping, path: str) -> Optional[dict[str, Any]]:
    """``{name: default}`` a new key of the dict ``node`` at ``path`` may take (None: any)."""
    if path in OPEN_DICTS:
        return None
    if path and "type" in node:
        target = _component(node["type"])
        return {} if target is None else _arguments(target)  # unknown here: its keys only
    return _untyped_arguments(path)


def _refuse_unknown(key: str, parts: Sequence[str], i: int, names: Sequence[str],
                    source: str) -> None:
    where = ".".join(parts[:i])
    close = difflib.get_close_matches(parts[i], names, n=1)
    if close:
        hint = f"did you mean '{'.'.join([*parts[:i], close[0], *parts[i + 1:]])}'?"
    else:
        shown = sorted(n for n in names if not n.startswith("_"))
        more = ", ..." if len(shown) > 12 else ""
        hint = f"{where or 'the config'} has: {', '.join(shown[:12])}{more}"
    raise UserError(f"--cfg-options {key}: {source} has no "
                    f"'{'.'.join(parts[:i + 1])}' (it would be ignored or fail later); {hint}")


def _kind_problem(value: Any, expected: Any) -> Optional[str]:
    """Why ``value`` cannot stand where ``expected`` is (None: it can, as far as known).

    Only text for a number or a flag is refused: that is what mmengine's
    parser makes of anything it cannot read (``abc``, ``1/4``), while other
    changes of type can be meant (a scale 256 for a range (256, 512)).
    """
    if not isinstance(value, str) or expected is None or expected is inspect.Parameter.empty:
        return None
    if isinstance(expected, bool):
        return "True or False"
    if isinstance(expected, (int, float)):
        return "a number"
    return None


def check_cfg_option(cfg: Any, key: str, value: Any, source: str) -> None:
    """Refuse ``--cfg-options key=value`` that ``cfg`` has no place for, or the wrong kind.

    Raises:
        UserError: naming the key (and the nearest real one) or the value.
    """
    parts = key.split(".")
    node: Any = getattr(cfg, "_cfg_dict", cfg)  # a Config's plain dict
    for i, part in enumerate(parts):
        path = ".".join(parts[:i])
        if isinstance(node, (list, tuple)):
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            raise UserError(f"--cfg-options {key}: '{path}' of {source} is a list of "
                            f"{len(node)}; index it with 0 to {len(node) - 1}")
        if not isinstance(node, Mapping):
            raise UserError(f"--cfg-options {key}: '{path}' of {source} is {node!r}, which "
                            "has no keys; set it as a whole")
        if part in node:
            node = node[part]
            continue
        accepted = _accepted(node, path)
        if accepted is None:
            return  # a dict of free names
        if part not in accepted:
            _refuse_unknown(key, parts, i, sorted(set(node.keys()) | set(accepted)), source)
        if i < len(parts) - 1:
            return  # a dict given key by key for an argument the config leaves out
        expected, has = accepted[part], "its default is"
        break
    else:
        expected, has = node, "it has"
    problem = _kind_problem(value, expected)
    if problem is not None:
        raise UserError(f"--cfg-options {key}={value!r}: {source} needs {problem} there, not "
                        f"text ({has} {expected!r})")


def merge_cfg_options(cfg: Any, options: Optional[dict], source: str) -> Any:
    """``cfg`` with ``--cfg-options`` merged in, each key and value checked first."""
    if options:
        for key, value in options.items():
            check_cfg_option(cfg, key, value, source)
        cfg.merge_from_dict(options)
    return cfg
