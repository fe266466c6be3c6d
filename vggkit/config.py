"""Configs and options as the library takes them: read a config file with overrides, the
config of published weights, ``KEY=VALUE`` options.

Below the commands (they parse arguments into these calls) and above the engine and the
evaluation (they take what these return), so that a library function never needs an
argparse ``Namespace`` or a command module.
"""
from __future__ import annotations

import ast
import os
from typing import Any, Iterable, Optional

from vggkit.errors import UserError


def read_config(path: str, options: Optional[dict] = None) -> Any:
    """The mmengine ``Config`` at ``path`` with ``options`` (``--cfg-options``) merged in,
    each key checked against the config first."""
    from mmengine.config import Config

    from vggkit.engine.cfg_options import merge_cfg_options
    if not os.path.isfile(path):
        raise UserError(f"config file '{path}' does not exist (configs are in configs/, e.g. "
                        "configs/vgg16_d.py or configs/tiny/vgg_a_tiny.py)")
    return merge_cfg_options(Config.fromfile(path), options, f"config '{path}'")


def weights_config(name: str, options: Optional[dict] = None) -> tuple[Any, str]:
    """``(config, checkpoint)`` standing in for a ``CONFIG CKPT`` pair of weights ``name``."""
    from vggkit.engine.cfg_options import merge_cfg_options
    from vggkit.weights import config_for_weights, resolve_weights
    cfg = merge_cfg_options(config_for_weights(name), options, f"the config of weights '{name}'")
    return cfg, resolve_weights(name)


def parse_options(items: Iterable[str], option: str = "--task-option") -> dict[str, Any]:
    """``['n_train=10', 'metric=accuracy']`` -> ``{'n_train': 10, 'metric': 'accuracy'}``.

    A value is a Python literal where it parses as one, else the bare word as a string;
    ``option`` names the source in the error of an item without ``KEY=``.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} expects KEY=VALUE, got '{item}'")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value  # a bare word: a string
    return options
