"""Posteriors files, fusion by image id, and the merge of distributed shards."""
from __future__ import annotations

import os

import numpy as np
import pytest

from vggkit.inference.distributed import merge_shards, shard
from vggkit.commands.fuse import main as fuse_main
from vggkit.evaluation.posteriors import Posteriors, fuse, load_posteriors, save_posteriors


def _post(ids, seed, classes=("a", "b", "c"), labels=None):
    rng = np.random.default_rng(seed)
    p = rng.random((len(ids), len(classes))).astype(np.float32)
    p /= p.sum(1, keepdims=True)
    labels = labels if labels is not None else [i % len(classes) for i in range(len(ids))]
    return Posteriors(ids, labels, list(classes), {"dense": p, "multicrop": p[::-1].copy()})


def test_save_load_round_trip_is_atomic(tmp_path):
    post = _post(["x/1.jpg", "y/2.jpg", "z/3.jpg"], 0)
    post.meta = {"scales": [256, 384, 512]}
    path = tmp_path / "sub" / "p.npz"
    save_posteriors(str(path), post)
    assert os.listdir(path.parent) == ["p.npz"]  # no temp file left behind
    back = load_posteriors(str(path))
    assert back.ids == post.ids and back.classes == post.classes and back.meta == post.meta
    np.testing.assert_array_equal(back.labels, [0, 1, 2])
    np.testing.assert_array_equal(back.scores["dense"], post.scores["dense"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_posteriors(str(tmp_path / "none.npz"))


def test_fusing_a_run_with_itself_is_the_run():
    post = _post(["1", "2", "3", "4"], 1)
    fused = fuse([(post, "dense"), (post, "dense")], "dense")
    np.testing.assert_allclose(fused.scores["dense"], post.scores["dense"], rtol=1e-6)


def test_fusion_aligns_by_image_id():
    a = _post(["1", "2", "3"], 2, labels=[0, 1, 2])
    b_rows = _post(["1", "2", "3"], 3, labels=[0, 1, 2]).scores["dense"]
    # b lists the same images in another order
    b = Posteriors(["3", "1", "2"], [2, 0, 1], ["a", "b", "c"], {"dense": b_rows[[2, 0, 1]]})
    fused = fuse([(a, "dense"), (b, "dense")], "fusion").scores["fusion"]
    np.testing.assert_allclose(fused, (a.scores["dense"] + b_rows) / 2, rtol=1e-6)
    # strategies may differ per model (dense of one, multi-crop of the other)
    mixed = fuse([(a, "dense"), (a, "multicrop")], "f").scores["f"]
    np.testing.assert_allclose(mixed, (a.scores["dense"] + a.scores["multicrop"]) / 2, rtol=1e-6)


def test_fusion_errors_name_the_problem():
    a = _post(["1", "2", "3"], 0)
    with pytest.raises(ValueError, match=r"1 missing \(e.g. \['3'\]\), 1 extra \(e.g. \['9'\]\)"):
        fuse([(a, "dense"), (_post(["1", "2", "9"], 0), "dense")])
    with pytest.raises(ValueError, match="classes"):
        fuse([(a, "dense"), (_post(["1", "2", "3"], 0, classes=("a", "b", "c", "d")), "dense")])
    with pytest.raises(KeyError, match="no posteriors 'center'"):
        fuse([(a, "center")])


def test_fuse_tool_per_strategy(tmp_path, capsys):
    a = _post(["1", "2", "3", "4"], 4, labels=[0, 1, 2, 0])
    b = _post(["4", "3", "2", "1"], 5, labels=[0, 2, 1, 0])
    save_posteriors(str(tmp_path / "a.npz"), a)
    save_posteriors(str(tmp_path / "b.npz"), b)
    assert fuse_main([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                      "--save-posteriors", str(tmp_path / "f.npz")]) == 0
    out = capsys.readouterr().out
    assert "dense" in out and "multicrop" in out and "4 images" in out
    fused = load_posteriors(str(tmp_path / "f.npz"))
    rev = [3, 2, 1, 0]
    np.testing.assert_allclose(fused.scores["dense"], (a.scores["dense"] + b.scores["dense"][rev]) / 2,
                               rtol=1e-6)
    assert fuse_main([str(tmp_path / "a.npz"), str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_strided_shards_cover_every_index_once():
    order = [4, 0, 3, 1, 2, 6, 5]  # e.g. the aspect-ratio order of 7 images
    shards = [shard(order, r, 3) for r in range(3)]
    assert shards == [[4, 1, 5], [0, 2], [3, 6]]
    assert sorted(sum(shards, [])) == list(range(7))


def test_merge_shards_restores_order_and_drops_duplicates():
    rows = np.arange(7, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    shards = [([4, 1, 5], {"k": rows[[4, 1, 5]]}), ([0, 2, 4], {"k": rows[[0, 2, 4]]}),
              ([3, 6], {"k": rows[[3, 6]]}), ([], {})]  # a padded repeat of 4; an idle rank
    np.testing.assert_array_equal(merge_shards(shards, 7)["k"], rows)
    with pytest.raises(RuntimeError, match=r"1 of 7 images have no result \(e.g. indices \[6\]\)"):
        merge_shards(shards[:2] + [([3], {"k": rows[[3]]})], 7)
