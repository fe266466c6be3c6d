"""The two nets of the test protocol, built from ``CONFIG CKPT`` pairs."""
from __future__ import annotations

from typing import Any

from vggkit.errors import UserError
from vggkit.localisation.model import VGGLocaliser
from vggkit.models.from_config import build_from_config
from vggkit.models.io import load_checkpoint, read_checkpoint

__all__ = ["localiser_config", "load_localiser", "load_classifier", "test_set", "train_scale"]

#: build_vgg arguments that only matter when training starts
_TRAINING_ONLY = ("init_checkpoint", "init_conv_layers", "init_fc_layers", "init_fc")


def localiser_config(cfg: Any, source: str = "config") -> dict:
    """``cfg.model``, checked to be a ``VGGLocaliser``'s."""
    model_cfg = dict(cfg.get("model") or {})
    if str(model_cfg.get("type", "")).rsplit(".", 1)[-1] != "VGGLocaliser":
        raise UserError(f"{source}: model type is {model_cfg.get('type')!r}, not 'VGGLocaliser'; "
                        "pass a localisation config (configs/loc/...) first and the "
                        "classifier's with --cls-config")
    return model_cfg


def load_localiser(cfg: Any, checkpoint: str, num_classes: int | None = None,
                   source: str = "config", device: str = "cpu") -> tuple[VGGLocaliser, dict]:
    """``(localiser in eval mode, checkpoint meta)``.

    ``num_classes`` fills a config that leaves it to the dataset (None): PCR
    reads it from fc8 (4 outputs per class), SCR takes the given one.
    """
    model_cfg = localiser_config(cfg, source)
    vgg = {k: v for k, v in dict(model_cfg["vgg"]).items() if k not in _TRAINING_ONLY}
    regression = model_cfg.get("regression", "per_class")
    if vgg.get("num_classes") is None:
        if regression == "per_class":
            state_dict = read_checkpoint(checkpoint)[0]
            vgg["num_classes"] = int(state_dict["head.fc8.weight"].shape[0]) // 4
        else:
            vgg["num_classes"] = num_classes
    model = VGGLocaliser(dict(vgg, init="none"), regression=regression,
                         finetune=model_cfg.get("finetune", "all"))
    meta = load_checkpoint(model, checkpoint)
    return model.to(device).eval(), meta


def load_classifier(cfg: Any, checkpoint: str, source: str = "config",
                    device: str = "cpu") -> tuple[Any, dict]:
    """``(classification VGG in eval mode, checkpoint meta)``."""
    model, meta, _ = build_from_config(cfg, checkpoint, source)
    return model.to(device).eval(), meta


def test_set(cfg: Any, data_root: str | None = None, source: str = "config"
             ) -> tuple[list[str], list[dict]]:
    """``(classes, data infos)`` of the config's ``test_dataloader`` dataset (no pipeline)."""
    from vggkit.engine.scales import innermost_dataset
    from vggkit.registry import DATASETS
    loader = cfg.get("test_dataloader") or cfg.get("val_dataloader") or {}
    dataset = innermost_dataset(loader.get("dataset"))
    if not isinstance(dataset, dict) or "type" not in dataset:
        raise UserError(f"{source} has no test_dataloader.dataset; expected a localisation "
                        "dataset (BoxList, ILSVRCLocalisation)")
    dataset = dict(dataset, pipeline=[], **({"data_root": data_root} if data_root else {}))
    built = DATASETS.build(dataset)
    if not hasattr(built, "records"):
        raise UserError(f"{source}: test dataset {dataset['type']!r} has no boxes; use BoxList "
                        "or ILSVRCLocalisation")
    return list(built.metainfo["classes"]), [built.get_data_info(i) for i in range(len(built))]


def train_scale(meta: dict, cfg: Any) -> dict[str, int] | None:
    """The localiser's training scale S: recorded in the checkpoint, else read from the
    config's box-aware scale transform (which the engine's scale reader does not know)."""
    from vggkit.engine.scales import checkpoint_train_scale, innermost_dataset, weights_train_scale
    found = weights_train_scale(meta, cfg)
    if found:
        return found
    dataset = innermost_dataset((cfg.get("train_dataloader") or {}).get("dataset")) or {}
    steps = [dict(s, type=str(s.get("type", "")).rsplit(".", 1)[-1].replace("Box", "", 1))
             for s in dataset.get("pipeline") or () if isinstance(s, dict)]
    return checkpoint_train_scale({"train_dataloader": {"dataset": {"pipeline": steps}}})
