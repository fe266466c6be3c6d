"""``vggkit train CONFIG --weights NAME``: fine-tune published weights on other classes.

The weights define the net: their arch, batch norm and shape arguments replace
the config's, conv1_1 to fc7 start from them (``init='from_checkpoint'`` with
every conv layer and ``init_fc=('fc6', 'fc7')``) and fc8 starts afresh, as
:meth:`vggkit.models.vgg.VGG.reset_classifier` does, sized to the training
set's classes. The data preprocessor takes the weights' own normalisation
(mean, std, BGR), which the net's first layer was trained on.
"""
from __future__ import annotations

import sys
import zipfile
from typing import Any, Mapping

from vggkit.errors import UserError

#: build_vgg arguments the weights fix (the rest -- dropout, init -- stay the config's)
NET_ARGS = ("arch", "batch_norm", "fc_width", "width_mult", "input_size")
#: the layers kept from the weights; fc8 depends on the class count
KEPT_FC = ("fc6", "fc7")


def weights_record(name: str) -> tuple[str, dict[str, Any]]:
    """``(checkpoint path, meta)`` of weights ``name`` (a catalogue name or a checkpoint path).

    The catalogue's weights are fetched and converted once (:func:`resolve_weights`);
    only the checkpoint's pickled structure is read here (memory-mapped).
    """
    from vggkit.safe_load import torch_load
    from vggkit.weights.resolve import resolve_weights
    path = resolve_weights(name)
    obj = torch_load(path, mmap=zipfile.is_zipfile(path))
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    return path, dict(meta or {})


def training_net_args(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The net's shape a ``vggkit train`` checkpoint records: its meta has no ``arch``
    (converted weights' has), only the run's config as text (mmengine's ``meta['cfg']``)."""
    text = meta.get("cfg")
    if not isinstance(text, str):
        return {}
    from mmengine.config import Config
    try:
        vgg = Config.fromstring(text, ".py").get("model", {}).get("vgg") or {}
    except (SyntaxError, ValueError, KeyError, AttributeError, TypeError):
        return {}  # not a config we can read: the caller names the missing arch
    return {k: vgg[k] for k in NET_ARGS if vgg.get(k) is not None}


def apply_weights(cfg: Any, name: str) -> dict[str, Any]:
    """Make ``cfg`` fine-tune weights ``name``: net shape, init and preprocessing from them.

    Returns:
        The preprocessing record put into ``cfg.model.data_preprocessor``.

    Raises:
        UserError: the weights record no arch (not a vggkit or converted checkpoint).
    """
    from vggkit.models.preprocess import DEFAULT_PREPROCESS, check_record
    path, meta = weights_record(name)
    meta = {**training_net_args(meta), **meta}
    if "arch" not in meta:
        raise UserError(f"--weights {name}: checkpoint '{path}' records no arch; give a "
                        "catalogue name (vggkit weights list) or a checkpoint vggkit wrote")
    vgg = cfg.model.vgg
    changed = [f"{k}={meta[k]!r}" for k in NET_ARGS if k in meta and vgg.get(k) != meta[k]]
    vgg.update({k: meta[k] for k in NET_ARGS if k in meta})
    vgg.update(init="from_checkpoint", init_checkpoint=path, init_conv_layers=None,
               init_fc=list(KEPT_FC))
    # the weights' normalisation, not the config's: their conv1_1 was trained on it
    record = check_record(meta.get("preprocess") or DEFAULT_PREPROCESS)
    cfg.model.data_preprocessor.update(record)
    cfg.preprocess = record
    if changed:
        print(f"vggkit train: --weights {name}: the net is the weights' ({', '.join(changed)})",
              file=sys.stderr)
    return record
