"""Running an extractor over a task's items into a resumable store.

An item is an image or, when the task gives regions, the stack of some regions
of an image (:mod:`vggkit.features.regions`); a region several items share
(the whole image of every person in it) is described once per shard.
Shard ``i`` covers a fixed item range and belongs to rank ``i % world_size``;
shards already on disk are skipped, so rerunning the same command after a kill
resumes. While the nets work, a background thread decodes and rescales the
images ahead of them (PIL releases the GIL), at most a shard ahead, and hands
them over a batch's worth at a time: a batch runs once its own images are in
(:meth:`~vggkit.features.extractor.FeatureExtractor.describe_stream`). One run
writes a store at a time: :func:`writer_lock` (rank 0 holds ``DIR/.lock``, see
:mod:`vggkit.features.lock`).
"""
from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from vggkit.features import BAD_IMAGE_MODES
from vggkit.features.extractor import FeatureExtractor, Prepared, stack_regions
from vggkit.features.lock import StoreLock
from vggkit.features.regions import ItemRegions, Region, unique_crops
from vggkit.features.store import FeatureStore
from vggkit.inference.distributed import (barrier, progress_bar, rank_and_world, shard,
                                          share_outcome)

T = TypeVar("T")
CropKey = tuple[str, Region]


def load_crops(extractor: FeatureExtractor, paths: Sequence[str],
               regions: Sequence[ItemRegions] | None, bad_images: str = "strict"
               ) -> tuple[list[Prepared | None], list[tuple[int, ...]], list[str]]:
    """Decode each image once and rescale every distinct crop of it the items need.

    Returns the prepared crops (``None`` for an unreadable file with 'skip'),
    each item's crop indices (:func:`~vggkit.features.regions.unique_crops`)
    and one error text per item ('' = ok).
    """
    keys, items = unique_crops(paths, regions)
    crops, reasons = decode_crops(extractor, keys, bad_images)
    return crops, items, [reasons.get(path, "") for path in paths]


def decode_crops(extractor: FeatureExtractor, keys: Sequence[CropKey], bad_images: str = "strict"
                 ) -> tuple[list[Prepared | None], dict[str, str]]:
    """Decode each image of ``keys`` (grouped by path) once and rescale each of its crops.

    Returns the prepared crops (``None`` for an unreadable file with 'skip')
    and the reason each unreadable file gave.
    """
    from vggkit.data.io import BadImageError, read_image
    boxed = {path for path, region in keys if region is not None}
    crops: list[Prepared | None] = []
    reasons: dict[str, str] = {}
    current, image = "", None
    for path, region in keys:  # grouped by path: one decode serves all crops of an image
        if path in reasons:
            crops.append(None)
            continue
        if path != current:
            try:
                # JPEGs far larger than the largest Q decode at 1/2..1/8 size (libjpeg DCT
                # scaling); an image with boxes decodes whole, so box pixels stay box pixels
                image = read_image(path, strict=True,
                                   min_side=None if path in boxed else max(extractor.scales))
            except BadImageError as exc:
                if bad_images == "strict":
                    raise BadImageError(exc.path, f"{exc.reason}; --bad-images skip leaves it "
                                        "out (zero row, listed in the manifest)") from exc
                from vggkit.data import bad_images as bad_log
                bad_log.record(exc.path, exc.reason)
                reasons[path] = exc.reason
                crops.append(None)
                continue
            current = path
        crops.append(extractor.prepare(image, region, path))
    return crops, reasons


@dataclass
class ShardCrops:
    """What one shard's items need: their distinct crops, cut into chunks for decoding.

    Attributes:
        index: the shard.
        paths: its items' image files.
        keys, items: its distinct crops and each item's crop indices
            (:func:`~vggkit.features.regions.unique_crops`).
        chunks: ranges of ``keys`` decoded and handed to the nets together.
    """

    index: int
    paths: Sequence[str]
    keys: list[CropKey]
    items: list[tuple[int, ...]]
    chunks: list[tuple[int, int]]


def plan_shard(index: int, paths: Sequence[str], regions: Sequence[ItemRegions] | None,
               chunk: int) -> ShardCrops:
    """Shard ``index`` of ``paths`` (and ``regions``), its crops in chunks of about ``chunk``."""
    keys, items = unique_crops(paths, regions)
    return ShardCrops(index, paths, keys, items, path_chunks(keys, chunk))


def path_chunks(keys: Sequence[CropKey], size: int) -> list[tuple[int, int]]:
    """Ranges of ``keys`` of at least ``size`` crops (the last may be less), each ending
    where an image's crops end, so that one decode still serves all crops of an image."""
    bounds, start = [], 0
    for k in range(1, len(keys) + 1):
        if k == len(keys) or (k - start >= size and keys[k][0] != keys[k - 1][0]):
            bounds.append((start, k))
            start = k
    return bounds


def prefetched(pool: Executor, calls: Iterable[Callable[[], T]], ahead: int) -> Iterator[T]:
    """The results of ``calls`` in order, each computed in ``pool`` up to ``ahead`` calls early.

    Closing the iterator cancels the calls not yet started.
    """
    calls = iter(calls)
    pending = deque(pool.submit(call) for call in itertools.islice(calls, ahead))
    try:
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(call) for call in itertools.islice(calls, 1))
            yield result
    finally:
        for future in pending:
            future.cancel()


def take_chunks(decoded: Iterator[tuple[list[Prepared | None], dict[str, str]]], n: int,
                reasons: dict[str, str]) -> Iterator[list[Prepared | None]]:
    """The crops of the next ``n`` decoded chunks, collecting their unreadable files' reasons."""
    for crops, why in itertools.islice(decoded, n):
        reasons.update(why)
        yield crops


@contextmanager
def writer_lock(root: str) -> Iterator[StoreLock | None]:
    """Hold the store's single-writer lock (:class:`StoreLock`) for the block.

    Only rank 0 locks: the ranks of one distributed run share the store by
    design. A refusal (:class:`~vggkit.features.lock.StoreLockedError`) is
    raised on every rank at once, before any work. Yields rank 0's lock
    (None on the other ranks).
    """
    rank, _ = rank_and_world()
    lock = StoreLock(root) if rank == 0 else None
    error: BaseException | None = None
    if lock is not None:
        try:
            lock.acquire()
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank
            error = exc
    share_outcome(error)
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


def run_extraction(extractor: FeatureExtractor, paths: Sequence[str], store: FeatureStore, *,
                   regions: Sequence[ItemRegions] | None = None,
                   bad_images: str = "strict", keep_shards: bool = False,
                   on_shard: Callable[[int], None] | None = None,
                   progress: bool = True) -> dict:
    """Compute this rank's missing shards, then (rank 0) assemble ``features.npy``.

    Args:
        extractor: the nets and descriptor settings.
        paths: image files in the store's item order.
        store: an opened :class:`FeatureStore` (its manifest fixes the shards);
            hold :func:`writer_lock` of it around opening and running.
        regions: per item, the regions whose descriptors it stacks
            (:attr:`vggkit.transfer.task.TaskData.regions`); None: whole images.
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
    rank, world = rank_and_world()
    ranges = store.ranges()
    todo = [i for i in shard(range(len(ranges)), rank, world) if not store.has_shard(i)]
    total = sum(ranges[i][1] - ranges[i][0] for i in todo)
    # the extractor reports fractions of images (one scale of one net at a time)
    bar = progress_bar(total, "extract", progress,
                       bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, "
                                  "{rate_fmt}]")

    # decoding hands the nets a batch's worth of crops at a time, so they start on the first
    # batch at once (a whole shard was decoded first before: 8-12 % of the tiny case's
    # time not overlapped); it stays at most a shard ahead, which bounds memory as before
    shards = [plan_shard(i, paths[slice(*ranges[i])],
                         None if regions is None else regions[slice(*ranges[i])],
                         extractor.batch_size) for i in todo]
    calls = (partial(decode_crops, extractor, work.keys[start:stop], bad_images)
             for work in shards for start, stop in work.chunks)
    ahead = max((len(work.chunks) for work in shards), default=1)
    with ThreadPoolExecutor(max_workers=1) as pool, bar, \
            closing(prefetched(pool, calls, ahead)) as decoded:
        for work in shards:
            reasons: dict[str, str] = {}
            per_crop = len(work.items) / max(len(work.keys), 1)  # the bar counts items, not crops
            rows = extractor.describe_stream(take_chunks(decoded, len(work.chunks), reasons),
                                             len(work.keys),
                                             progress=lambda f: bar.update(f * per_crop))
            feats = stack_regions(rows, work.items)
            errors = [reasons.get(path, "") for path in work.paths]
            store.write_shard(work.index, np.ascontiguousarray(feats, dtype=np.float32), errors)
            if on_shard is not None:
                on_shard(work.index)
    barrier()
    if rank == 0:
        store.finalize(keep_shards=keep_shards)
    barrier()
    if rank != 0:
        store.manifest = store.read_manifest()
    return store.manifest
