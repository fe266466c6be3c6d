"""The paper's test protocols on a test set in one call (what ``vggkit test`` runs).

:func:`evaluate_nets` loads the nets, lists the test set, runs every strategy over it on
each net's fastest backend, and fuses the nets (and saved posteriors) strategy by
strategy. It takes configs and values; ``vggkit test`` only parses its arguments into it.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from vggkit.errors import UserError
from vggkit.evaluation.loading import ModelEntry, check_classes, load_model, load_test_set
from vggkit.evaluation.loop import compile_nets, evaluate, result_key
from vggkit.evaluation.metrics import errors
from vggkit.evaluation.posteriors import Posteriors, fuse, load_posteriors
from vggkit.evaluation.strategies import build_strategy

#: a net to test: ``(config, checkpoint, scales or None, label)``; config is a path or Config
NetSpec = tuple[Any, str, Optional[Sequence[int]], str]


def folder_test_config(data_root: Optional[str], cfg_options: Optional[dict] = None) -> Any:
    """A config whose test set is the image folder ``data_root`` (nets given by weights
    name bring no test set)."""
    if data_root is None:
        raise UserError("--weights needs --data-root DIR: a folder of class folders "
                        "(e.g. ImageNet val sorted into synset folders)")
    from mmengine.config import Config
    cfg = Config({"test_dataloader": {"dataset": {"type": "ImageFolder",
                                                  "data_root": data_root}}})
    cfg.merge_from_dict(cfg_options or {})  # e.g. test_dataloader.dataset.type=ImageNet
    return cfg


def evaluate_nets(nets: Sequence[NetSpec], test_config: Any, strategies: Sequence[str] = ("dense",),
              *, data_root: Optional[str] = None, source: str = "", device: str = "cpu",
              backend: str = "auto", precision: str = "auto", batch_size: int = 32,
              images_per_batch: int = 16, workers: int = 2, pass_crops: Optional[int] = None,
              fast_decode: bool = False, fuse_posteriors: Sequence[str] = (),
              progress: bool = True) -> tuple[Optional[dict], Optional[Posteriors]]:
    """Top-1/top-5 error of every net and strategy on the test set of ``test_config``.

    Args:
        nets: ``(config, checkpoint, scales or None, label)`` per net; several are fused.
        test_config: the config whose ``test_dataloader`` lists the test set (``data_root``
            overrides its root); :func:`folder_test_config` makes one of an image folder.
        strategies: strategy names (``center``, ``dense``, ``multicrop``, ...).
        fuse_posteriors: files of :func:`~vggkit.evaluation.posteriors.save_posteriors`
            fused with this run's nets.

    Returns:
        ``(results, posteriors)``: the JSON-ready results and the final per-image
        posteriors; ``(None, None)`` on the ranks of a distributed run but the first.
    """
    from vggkit.inference.distributed import rank_and_world
    names = list(dict.fromkeys(strategies))
    # pass_crops only when given: a plugin's strategy need not take it
    options: dict[str, Any] = {"batch_size": batch_size}
    if pass_crops:
        options["pass_crops"] = pass_crops
    built = {n: build_strategy(n, **options) for n in names}
    entries = [load_model(cfg, ckpt, device, list(scales) if scales else None, label)
               for cfg, ckpt, scales, label in nets]
    test_set = load_test_set(test_config, data_root, source)
    for entry in entries:
        check_classes(entry, test_set)
    compile_nets(entries, built, backend, precision)
    saved = [load_posteriors(f) for f in fuse_posteriors]
    for path, post in zip(fuse_posteriors, saved):
        post.meta["source"] = path

    merged, seconds = evaluate(entries, built, test_set.paths, images_per_batch=images_per_batch,
                               workers=workers, fast_decode=fast_decode, progress=progress)
    if merged is None:  # not rank 0: it reports
        return None, None
    base = Posteriors(test_set.ids, test_set.labels, test_set.classes)
    results = {"num_images": len(test_set.paths), "seconds": round(seconds, 3),
               "images_per_s": round(len(test_set.paths) / seconds, 3) if seconds > 0 else None,
               "world_size": rank_and_world()[1], "strategies": names,
               "models": _model_results(entries, names, merged, test_set.labels)}
    final = {n: merged[result_key(0, n)] for n in names}
    if len(entries) > 1 or saved:
        final = _fused(entries, names, merged, base, saved)
        results["fused"] = [e.label for e in entries] + list(fuse_posteriors)
        results["fusion"] = {n: errors(final[n], test_set.labels) for n in names}
    # per strategy the final posteriors; with several nets also each net's own
    scores = {**final, **(merged if len(entries) > 1 else {})}
    meta = {"models": [{k: m[k] for k in ("config", "checkpoint", "arch", "scales")}
                       for m in results["models"]], "strategies": names,
            "fused_posteriors": list(fuse_posteriors)}
    return results, Posteriors(test_set.ids, test_set.labels, test_set.classes, scores, meta)


def _model_results(entries: Sequence[ModelEntry], names: Sequence[str],
                   merged: dict[str, np.ndarray], labels: np.ndarray) -> list[dict]:
    return [{"label": e.label, "config": e.config, "checkpoint": e.checkpoint,
             "arch": getattr(e.model, "arch", None), "scales": e.scales,
             "preprocess": e.preprocess, "backend": _backends(e),
             "results": {n: errors(merged[result_key(m, n)], labels) for n in names}}
            for m, e in enumerate(entries)]


def _backends(entry: ModelEntry) -> dict[str, str]:
    """How each output of the net ran, e.g. ``{'dense': 'onnxruntime fp32'}``."""
    choices = entry.compiled.choices if entry.compiled is not None else {}
    return {output: " ".join(choice) for output, choice in choices.items()}


def _fused(entries: Sequence[ModelEntry], names: Sequence[str], merged: dict[str, np.ndarray],
           base: Posteriors, saved: Sequence[Posteriors]) -> dict[str, np.ndarray]:
    """Per strategy: the mean over this run's nets and the saved posteriors."""
    out = {}
    for n in names:
        run = Posteriors(base.ids, base.labels, base.classes,
                         {n: np.mean([merged[result_key(m, n)] for m in range(len(entries))], 0)},
                         {"source": "this run"})
        # this run's nets weigh as many as they are, each saved file as one
        parts = [(run, n)] * len(entries) + [(s, n) for s in saved]
        out[n] = fuse(parts, n).scores[n] if len(parts) > 1 else run.scores[n]
    return out
