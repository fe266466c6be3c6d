"""features/runner.py: decoding ahead of the nets, a batch's worth at a time."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from helpers import run_extract
from vggkit.features import runner
from vggkit.features.extractor import FeatureExtractor
from vggkit.features.store import load_features


def test_chunks_never_split_an_image_crops():
    keys = [("a", None), ("a", (0, 0, 4, 4)), ("b", None), ("c", None), ("c", (1, 1, 3, 3)),
            ("c", (0, 0, 2, 2)), ("d", None)]
    assert runner.path_chunks(keys, 2) == [(0, 2), (2, 6), (6, 7)]
    assert runner.path_chunks(keys, 1) == [(0, 2), (2, 3), (3, 6), (6, 7)]
    assert runner.path_chunks(keys, 99) == [(0, 7)]
    assert runner.path_chunks([], 2) == []


def test_prefetched_keeps_order_and_stays_ahead_by_at_most_so_many():
    started: list[int] = []

    def call(i):
        started.append(i)
        return i * i

    with ThreadPoolExecutor(max_workers=1) as pool:
        results = runner.prefetched(pool, (partial(call, i) for i in range(7)), ahead=3)
        assert next(results) == 0
        assert len(started) <= 4  # the one taken and three ahead
        assert list(results) == [i * i for i in range(1, 7)]


def test_prefetched_cancels_what_has_not_started_when_closed():
    gate, started = threading.Event(), []

    def call(i):
        started.append(i)
        gate.wait(10)
        return i

    with ThreadPoolExecutor(max_workers=1) as pool:
        results = runner.prefetched(pool, (partial(call, i) for i in range(9)), ahead=5)
        gate.set()
        assert next(results) == 0
        results.close()
    assert len(started) < 9


@pytest.mark.usefixtures("folder_task")
def test_the_nets_start_before_the_shard_is_decoded(feature_setup, tmp_path, monkeypatch):
    """One shard of all 11 images: a batch runs before the shard's last images are
    decoded, and the store has the bytes of decoding the whole shard first."""
    args = ("--shard-size", "11", "--batch-size", "2", "--scales", "32", "40")
    real_chunks = runner.path_chunks
    monkeypatch.setattr(runner, "path_chunks", lambda keys, size: real_chunks(keys, len(keys)))
    assert run_extract(feature_setup, tmp_path / "whole", *args) == 0
    monkeypatch.setattr(runner, "path_chunks", real_chunks)

    ran, chunks, waited = threading.Event(), [], []
    real_pooled, real_decode = FeatureExtractor._pooled, runner.decode_crops

    def pooled(self, k, views):
        ran.set()
        return real_pooled(self, k, views)

    def decode(extractor, keys, bad_images):
        chunks.append(len(keys))
        if keys[-1][0].endswith(os.path.join("dog", "img_4.jpg")):  # the shard's last chunk
            waited.append(ran.wait(timeout=60))
        return real_decode(extractor, keys, bad_images)

    monkeypatch.setattr(FeatureExtractor, "_pooled", pooled)
    monkeypatch.setattr(runner, "decode_crops", decode)
    assert run_extract(feature_setup, tmp_path / "chunked", *args) == 0
    assert waited == [True] and len(chunks) == 6 and sum(chunks) == 11
    whole, chunked = (load_features(str(tmp_path / name)) for name in ("whole", "chunked"))
    assert whole.features.tobytes() == chunked.features.tobytes()
