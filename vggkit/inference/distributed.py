"""The processes of one run: their device, their process group, their share of the work.

A launcher (``torchrun``, or Slurm through ``tools/slurm_train.sh``) starts
one process per device and tells each its ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (its GPU on the node) in the environment. Work is split by
strides, ``order[rank::world_size]``, rather than by a padding
``DistributedSampler`` (which repeats items so that every rank gets as many):
results carry their indices, so the merged set has every item exactly once
whatever ``len(items) % world_size``.
"""
from __future__ import annotations

import atexit
import os
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from vggkit.errors import UserError, plural
from vggkit.inference.names import LAUNCHERS

#: one rank's results: item indices and, per key, the rows for them
Shard = tuple[list[int], dict[str, np.ndarray]]
T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_rank() -> int:
    """This process's index on its node, its GPU: the launcher's ``LOCAL_RANK``."""
    return int(os.environ.get("LOCAL_RANK", 0))


def choose_device(requested: str | None = None, launcher: str = "none") -> str:
    """``requested``, else CUDA when there is a GPU, else the CPU.

    Under a launcher every process owns one GPU, so a CUDA device becomes
    ``cuda:LOCAL_RANK`` (its number in ``requested``, if any, is the same for
    every process and cannot be meant).
    """
    device = requested or ("cuda" if torch.cuda.is_available() else "cpu")
    if launcher != "none" and device.startswith("cuda"):
        return f"cuda:{local_rank()}"
    return device


def join_process_group(device: str | torch.device) -> None:
    """Join the launcher's process group: nccl on this rank's GPU for CUDA, gloo on CPU."""
    if dist.is_initialized():
        return
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UserError("a distributed run needs RANK and WORLD_SIZE in the environment; "
                        "start it with torchrun --nproc-per-node N (or drop --launcher)")
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    # a group left to the interpreter's teardown can abort the process ("terminate called
    # without an active exception", exit -6) while gloo's threads still run: end it first
    atexit.register(_leave_process_group)


def _leave_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def init_distributed(launcher: str, device: str | torch.device) -> None:
    """Join the process group ``torchrun`` set up (``launcher='pytorch'``); 'none': nothing."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher '{launcher}'; use 'none' or 'pytorch' (torchrun)")
    if launcher == "pytorch":
        join_process_group(device)


def barrier() -> None:
    """Wait for every rank (nothing outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _from_rank0(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (``value`` itself outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        box = [value]
        dist.broadcast_object_list(box, src=0)
        value = box[0]
    return value


def share_outcome(error: BaseException | None) -> None:
    """Raise rank 0's ``error`` on every rank (None: rank 0 succeeded).

    Every rank must call it, so that a failure of rank 0 stops all ranks
    instead of leaving them waiting for it at the next collective.
    """
    error = _from_rank0(error)
    if error is not None:
        raise error


def on_rank0(compute: Callable[[], T]) -> T:
    """``compute()`` run by rank 0 only; its result, or its error, on every rank.

    Every rank must call it (the others wait for rank 0). Outside a process
    group it is ``compute()``.
    """
    if rank_and_world()[1] == 1:
        return compute()
    outcome: tuple[Any, BaseException | None] = (None, None)
    if rank_and_world()[0] == 0:
        try:
            outcome = (compute(), None)
        except Exception as e:  # noqa: BLE001 -- raised below, on every rank
            outcome = (None, e)
    value, error = _from_rank0(outcome)
    if error is not None:
        raise error
    return value


def progress_bar(total: int, desc: str, enabled: bool = True, **options: Any) -> Any:
    """A tqdm bar shown by rank 0 only, naming the rank count when there are several."""
    from tqdm import tqdm
    rank, world = rank_and_world()
    return tqdm(total=total, desc=f"{desc} (rank {rank}/{world})" if world > 1 else desc,
                unit="img", disable=not enabled or rank != 0 or total == 0, dynamic_ncols=True,
                **options)


def shard(order: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The items rank ``rank`` takes: a stride of ``order``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    return list(order)[rank::world_size]


def merge_shards(shards: Sequence[Shard], total: int) -> dict[str, np.ndarray]:
    """Rows of all shards in item order 0..total-1.

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
        raise RuntimeError(f"{len(lost)} of {plural(total, 'image')} have no result (e.g. indices "
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
