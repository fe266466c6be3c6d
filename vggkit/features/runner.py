"""Running an extractor over a task's images into a resumable store.

Shard ``i`` covers a fixed image range and belongs to rank ``i % world_size``;
shards already on disk are skipped, so rerunning the same command after a kill
resumes. While the nets work on one shard a background thread decodes and
rescales the next (PIL releases the GIL).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from vggkit.features.engine import FeatureExtractor, Prepared
from vggkit.features.store import FeatureStore

BAD_IMAGE_MODES = ("strict", "skip")


def load_shard(extractor: FeatureExtractor, paths: Sequence[str],
               bad_images: str = "strict") -> tuple[list[Prepared | None], list[str]]:
    """Decode and rescale ``paths``; with 'skip', unreadable files give ``None`` and a reason."""
    from vggkit.data.io import BadImageError, read_image
    prepared: list[Prepared | None] = []
    errors: list[str] = []
    for path in paths:
        try:
            # JPEGs far larger than the largest Q decode at 1/2..1/8 size (libjpeg DCT scaling)
            img = read_image(path, strict=True, min_side=max(extractor.scales))
        except BadImageError as exc:
            if bad_images == "strict":
                raise BadImageError(exc.path, f"{exc.reason}; --bad-images skip leaves it out "
                                    "(zero row, listed in the manifest)") from exc
            from vggkit.data import bad_images as bad_log
            bad_log.record(exc.path, exc.reason)
            prepared.append(None)
            errors.append(exc.reason)
            continue
        prepared.append(extractor.prepare(img))
        errors.append("")
    return prepared, errors


def _distributed() -> tuple[int, int]:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def run_extraction(extractor: FeatureExtractor, paths: Sequence[str], store: FeatureStore, *,
                   bad_images: str = "strict", keep_shards: bool = False,
                   on_shard: Callable[[int], None] | None = None,
                   progress: bool = True) -> dict:
    """Compute this rank's missing shards, then (rank 0) assemble ``features.npy``.

    Args:
        extractor: the nets and descriptor settings.
        paths: image files in the store's image order.
        store: an opened :class:`FeatureStore` (its manifest fixes the shards).
        bad_images: 'strict' raises on an unreadable file; 'skip' stores a zero row.
        keep_shards: keep ``shards/`` after assembling.
        on_shard: called with each shard index once written (tests use it to
            simulate a kill).
        progress: show a tqdm bar (images/s, ETA) on rank 0.

    Returns:
        The manifest after the run (status 'complete' once every shard exists).
    """
    if bad_images not in BAD_IMAGE_MODES:
        raise ValueError(f"unknown bad_images '{bad_images}'; choose one of {BAD_IMAGE_MODES}")
    rank, world = _distributed()
    ranges = store.ranges()
    todo = [i for i in range(len(ranges)) if i % world == rank and not store.has_shard(i)]
    total = sum(ranges[i][1] - ranges[i][0] for i in todo)
    bar = tqdm(total=total, unit="img", desc=f"extract[rank {rank}]" if world > 1 else "extract",
               disable=not progress or rank != 0 or total == 0, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")

    def submit(pool: ThreadPoolExecutor, i: int) -> Future:
        start, stop = ranges[i]
        return pool.submit(load_shard, extractor, paths[start:stop], bad_images)

    with ThreadPoolExecutor(max_workers=1) as pool, bar:
        pending = submit(pool, todo[0]) if todo else None
        for k, i in enumerate(todo):
            prepared, errors = pending.result()
            pending = submit(pool, todo[k + 1]) if k + 1 < len(todo) else None
            feats = extractor.describe(prepared, progress=bar.update)
            store.write_shard(i, np.ascontiguousarray(feats, dtype=np.float32), errors)
            if on_shard is not None:
                on_shard(i)
    _barrier()
    if rank == 0:
        store.finalize(keep_shards=keep_shards)
    _barrier()
    if rank != 0:
        store.manifest = store.read_manifest()
    return store.manifest
