"""Distributed evaluation: strided shards, gathered with their image indices.

Unlike a padding ``DistributedSampler`` (which repeats images so that every
rank gets as many), each rank takes ``order[rank::world_size]``; results carry
their dataset indices, so the merged set has every image exactly once
whatever ``len(dataset) % world_size``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch.distributed as dist

#: one rank's results: dataset indices and, per key, the rows for them
Shard = tuple[list[int], dict[str, np.ndarray]]


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(launcher: str, device: str) -> None:
    """Join the process group set up by ``torchrun`` (``launcher='pytorch'``)."""
    if launcher == "none":
        return
    if launcher != "pytorch":
        raise ValueError(f"unknown launcher '{launcher}'; use 'none' or 'pytorch' (torchrun)")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("--launcher pytorch needs RANK and WORLD_SIZE in the environment; "
                           "start with: torchrun --nproc-per-node N tools/test.py ...")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")


def shard(order: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The dataset indices rank ``rank`` evaluates: a stride of ``order``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    return list(order)[rank::world_size]


def merge_shards(shards: Sequence[Shard], total: int) -> dict[str, np.ndarray]:
    """Rows of all shards in dataset order 0..total-1.

    A repeated index (e.g. from a padding sampler) keeps its first occurrence;
    a missing one is an error.

    Raises:
        RuntimeError: naming missing indices, or keys absent from a shard.
    """
    keys = sorted({k for _, rows in shards for k in rows})
    out: dict[str, np.ndarray] = {}
    seen = np.zeros(total, dtype=bool)
    for indices, rows in shards:
        if not indices:
            continue
        if sorted(rows) != keys:
            raise RuntimeError(f"a shard has results {sorted(rows)}, others {keys}")
        idx = np.asarray(indices, dtype=np.int64)
        if idx.min() < 0 or idx.max() >= total:
            raise RuntimeError(f"shard index outside [0, {total})")
        _, first = np.unique(idx, return_index=True)
        keep = np.zeros(len(idx), dtype=bool)
        keep[first] = True
        keep &= ~seen[idx]
        for k in keys:
            if k not in out:
                out[k] = np.zeros((total,) + rows[k].shape[1:], dtype=rows[k].dtype)
            out[k][idx[keep]] = rows[k][keep]
        seen[idx[keep]] = True
    if not seen.all():
        lost = np.flatnonzero(~seen)
        raise RuntimeError(f"{len(lost)} of {total} images have no result (e.g. indices "
                           f"{lost[:5].tolist()}); a rank failed or was given no shard")
    return out


def gather_shards(local: Shard) -> list[Shard] | None:
    """All ranks' shards on rank 0 (``None`` on the other ranks)."""
    rank, world = rank_and_world()
    if world == 1:
        return [local]
    gathered: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(local, gathered, dst=0)
    return gathered
