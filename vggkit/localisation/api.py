"""Appendix A's localisation error in one call (what ``vggkit localise`` runs):
:func:`localise` takes configs, checkpoints and values; :func:`format_result` and
:func:`plot_result` show what it returns.
"""
from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

from vggkit.config import read_config
from vggkit.errors import UserError, plural
from vggkit.localisation import PROTOCOLS

COLUMNS = (("top1_loc_error", "top-1 loc"), ("top5_loc_error", "top-5 loc"),
           ("gt_class_loc_error", "true-class loc"), ("gt_class_mean_iou", "mean IoU"),
           ("top1_cls_error", "top-1 cls"), ("top5_cls_error", "top-5 cls"))


def localise(localisers: Sequence[tuple[str, str, Optional[Sequence[int]]]], cls_config: str,
             cls_checkpoint: str, *, data_root: Optional[str] = None,
             scales: Optional[Sequence[int]] = None, protocols: Sequence[str] = PROTOCOLS,
             flip: bool = False, merge_iou: float = 0.5, limit: Optional[int] = None,
             device: Optional[str] = None, cfg_options: Optional[dict] = None,
             progress: bool = False) -> dict[str, Any]:
    """Localisation error of box-regression nets on the test set of the first one's config.

    Args:
        localisers: ``(config, checkpoint, own test scales or None)`` per localisation
            net; several are fused (the union of their boxes, then merging).
        cls_config, cls_checkpoint: the classification net, whose posteriors rank the
            guesses and weigh the boxes.
        scales: test scales of every net without its own (default: from its training scale).
        protocols: of :data:`~vggkit.localisation.PROTOCOLS`.
        merge_iou: greedy merging joins boxes overlapping at least this much.
        limit: only the first ``limit`` images.

    Returns:
        The JSON-ready result: settings, errors per protocol and baseline, per-image guesses.
    """
    if not 0.0 < merge_iou <= 1.0:
        raise UserError(f"--merge-iou {merge_iou} must lie in (0, 1]")
    from vggkit.engine.scales import check_scales, default_test_scales
    from vggkit.inference.distributed import choose_device
    from vggkit.localisation.candidates import BoxNet
    from vggkit.localisation.loading import (load_classifier, load_localiser, localiser_config,
                                             test_set, train_scale)
    from vggkit.localisation.protocol import evaluate

    device = choose_device(device)
    specs = list(localisers)
    cfgs = [read_config(config, cfg_options) for config, _, _ in specs]
    for cfg, (config, _, _) in zip(cfgs, specs):
        localiser_config(cfg, config)  # a wrong config fails before any data is read
    cls_cfg = read_config(cls_config, cfg_options)
    classes, infos = test_set(cfgs[0], data_root, specs[0][0])
    infos = infos[:limit] if limit else infos
    cls, cls_meta = load_classifier(cls_cfg, cls_checkpoint, cls_config, device)
    nets, described = [], []
    for cfg, (config, checkpoint, own) in zip(cfgs, specs):
        loc, loc_meta = load_localiser(cfg, checkpoint, len(classes), config, device)
        for what, n in (("classification net", cls.num_classes),
                        (f"localisation net '{config}'", loc.num_classes)):
            if n != len(classes):
                raise UserError(f"the {what} has {plural(n, 'class')} but the test set of "
                                f"'{specs[0][0]}' has {len(classes)}; use nets trained on the "
                                "same classes")
        crop = max(loc.vgg.input_size, cls.input_size)
        scales = check_scales(own or scales or default_test_scales(
            train_scale(loc_meta, cfg), loc.vgg.input_size), crop, "nets")
        nets.append(BoxNet(loc, scales, loc_meta["preprocess"]))
        described.append({"config": config, "checkpoint": checkpoint,
                          "regression": loc.regression, "finetune": loc.finetune,
                          "scales": scales})
    bar = iter
    if progress and sys.stderr.isatty():
        from tqdm import tqdm
        bar = lambda items: tqdm(items, desc="localise", unit="img")  # noqa: E731
    result = evaluate(nets, cls, infos, cls_meta["preprocess"], protocols, flip,
                      merge_iou, device, bar)
    # one net: its settings at the top level, as before fusion; several: joined with '+'
    joined = {k: "+".join(dict.fromkeys(d[k] for d in described))
              for k in ("config", "checkpoint", "regression", "finetune")}
    return {**joined, "localisers": described, "cls_config": cls_config,
            "cls_checkpoint": cls_checkpoint, "num_images": len(infos),
            "scales": sorted({q for d in described for q in d["scales"]}),
            "flip": flip, "merge_iou": merge_iou, "classes": list(classes), **result}


def _nets_line(result: dict[str, Any]) -> str:
    """What was evaluated: one net's settings, or each fused net's."""
    nets = result.get("localisers") or [result]
    if len(nets) == 1:
        return (f"localisation ({result['regression']}, fine-tuned: {result['finetune']}) on "
                f"{plural(result['num_images'], 'image')}, scales Q={result['scales']}")
    return (f"localisation, fusion of {len(nets)} nets (the union of their boxes, merged): "
            + "; ".join(f"{n['config']} ({n['regression']}, fine-tuned: {n['finetune']}, "
                        f"Q={n['scales']})" for n in nets)
            + f"; on {plural(result['num_images'], 'image')}")


def format_result(result: dict[str, Any]) -> str:
    """The errors (%) as a table: one row per protocol and baseline."""
    lines = [f"{_nets_line(result)}"
             f"{', flips' if result['flip'] else ''}; errors in %",
             "  " + f"{'':<22}" + "".join(f"{title:>16}" for _, title in COLUMNS)]
    rows = [(p, r) for p, r in result["results"].items()]
    rows += [(f"baseline: {n.replace('_', ' ')}", r) for n, r in result["baselines"].items()]
    for name, r in rows:
        lines.append("  " + f"{name:<22}" + "".join(
            f"{r[k]:>16.2f}" if k in r else f"{'-':>16}" for k, _ in COLUMNS))
    lines.append(f"  (baselines use the classes of '{result['baseline_classes_from']}'; the "
                 f"centre box's relative size {result['centre_box_relative_size']} is the test "
                 "set's mean)")
    return "\n".join(lines)


def plot_result(result: dict[str, Any], path: str, num: int = 12) -> None:
    """A PNG at ``path`` of ``num`` images' predicted and true boxes, spread over the test set
    (the dense protocol's boxes, where it ran)."""
    from vggkit.localisation.plot import plot_boxes
    protocols = list(result["results"])
    step = max(1, len(result["images"]) // num)
    plot_boxes(path, result["images"][::step][:num],
               "dense" if "dense" in protocols else protocols[0], classes=result["classes"])
