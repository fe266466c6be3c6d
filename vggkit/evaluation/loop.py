"""The evaluation loop: every model × strategy over the test images, sharded over ranks."""
from __future__ import annotations

import statistics
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from vggkit.evaluation.loading import ModelEntry
from vggkit.evaluation.strategies import (Combined, EvalStrategy, prepare_strategy,
                                          strategy_outputs)
from vggkit.inference.distributed import (Shard, gather_shards, merge_shards, progress_bar,
                                          rank_and_world, shard)
from vggkit.inference.runners import CompiledNet
from vggkit.inference.views import RescaledImages, aspect_order, collate_views


def compile_nets(entries: Sequence[ModelEntry], strategies: Mapping[str, EvalStrategy],
                 backend: str = "auto", precision: str = "auto") -> None:
    """Put every net on the backend chosen for each output its strategies call.

    'auto' measures the fastest path per net and output
    (:mod:`vggkit.inference.autotune`) on what the strategies feed it
    (:func:`fed_batches`); the score map of dense evaluation takes images of
    every size, so it is probed at the net's middle test scale among the
    backends of dynamic size. Then each strategy's crops per pass are derived
    (:meth:`EvalStrategy.prepare`). Done before the images, on every rank in
    the same order (rank 0 decides 'auto' for all), so the probes and any
    export are not counted in the evaluation's time.
    """
    outputs = list(dict.fromkeys(o for s in strategies.values() for o in strategy_outputs(s)))
    for entry in entries:
        entry.compiled = CompiledNet(entry.model, backend, precision,
                                     dense_size=int(statistics.median_low(entry.scales)),
                                     batches=fed_batches(strategies.values()))
        entry.compiled.prepare(outputs)
        for strategy in strategies.values():
            prepare_strategy(strategy, entry.net)


def fed_batches(strategies: Iterable[Any]) -> dict[str, int]:
    """Inputs per pass the strategies feed each output: crops of the largest batch size
    for the logits, one image (with its mirror, if flipped) for the score map, which
    stacks only images of one size."""
    parts = [p for s in strategies for p in getattr(s, "parts", [s])]
    fed = {"logits": [getattr(s, "batch_size", 1) for s in parts
                      if "logits" in strategy_outputs(s)],
           "dense": [2 if getattr(s, "flip", False) else 1 for s in parts
                     if "dense" in strategy_outputs(s)]}
    return {output: max(sizes) for output, sizes in fed.items() if sizes}


def result_key(model_index: int, strategy: str) -> str:
    """Key of one model's posteriors under one strategy in a shard."""
    return f"model{model_index}/{strategy}"


def run_batch(entries: Sequence[ModelEntry], strategies: Mapping[str, EvalStrategy],
              views: Mapping[int, Sequence[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Posteriors of one batch of images for every model and strategy.

    A combined strategy whose parts were also asked for reuses their
    posteriors instead of running the nets again (``dense+multicrop`` next to
    ``dense`` and ``multicrop`` costs nothing more).
    """
    out: dict[str, torch.Tensor] = {}
    ordered = sorted(strategies.items(), key=lambda kv: isinstance(kv[1], Combined))
    for m, entry in enumerate(entries):
        done: dict[str, torch.Tensor] = {}
        for name, strategy in ordered:
            parts = getattr(strategy, "parts", None)
            if isinstance(strategy, Combined) and all(p.name in done for p in parts):
                post = strategy.combine([done[p.name] for p in parts])
            else:
                post = strategy(entry.net, views, entry.scales, entry.preprocess)
            done[name] = post
            out[result_key(m, name)] = post
    return out


def evaluate_shard(entries: Sequence[ModelEntry], strategies: Mapping[str, EvalStrategy],
                   paths: Sequence[str], *, images_per_batch: int = 16, workers: int = 0,
                   fast_decode: bool = False, progress: bool = True) -> tuple[Shard, float]:
    """This rank's results and the seconds it took.

    Images are visited in aspect-ratio order (so that dense evaluation finds
    equal sizes within a batch) and striped over ranks.

    Returns:
        ``((indices, {result_key: N_shard×C float32}), seconds)``.
    """
    rank, world = rank_and_world()
    mine = shard(aspect_order(paths), rank, world)
    scales = sorted({q for e in entries for q in e.scales})
    data = RescaledImages([paths[i] for i in mine], scales, fast_decode)
    loader = DataLoader(data, batch_size=images_per_batch, shuffle=False, num_workers=workers,
                        collate_fn=collate_views)
    rows: dict[str, list[np.ndarray]] = {}
    indices: list[int] = []
    start = time.perf_counter()
    with progress_bar(len(mine), "evaluating", progress) as bar:
        for local, views in loader:
            for key, post in run_batch(entries, strategies, views).items():
                rows.setdefault(key, []).append(post.numpy().astype(np.float32))
            indices.extend(mine[i] for i in local)
            bar.update(len(local))
    seconds = time.perf_counter() - start
    return (indices, {k: np.concatenate(v) for k, v in rows.items()}), seconds


def evaluate(entries: Sequence[ModelEntry], strategies: Mapping[str, EvalStrategy],
             paths: Sequence[str], **options) -> tuple[dict[str, np.ndarray] | None, float]:
    """Every rank's results in image order on rank 0 (None on the others), and this rank's seconds.

    ``options`` are those of :func:`evaluate_shard`.
    """
    local, seconds = evaluate_shard(entries, strategies, paths, **options)
    shards = gather_shards(local)
    return (None if shards is None else merge_shards(shards, len(paths))), seconds
