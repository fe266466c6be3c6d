"""The demo's whole job (train -> test -> extract -> transfer) on scikit-learn's digits.

Smaller than ``make demo`` (fewer epochs, one transfer split); the floors are
well above chance and were chosen from measured runs (README, "The demo").
"""
from __future__ import annotations

import pytest

from vggkit.demo import format_table, run

CHANCE_SOURCE_TOP1_ERROR = 100 * (1 - 1 / 6)  # six source digits
CHANCE_TARGET_RECALL = 100 / 4                # four target digits


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return run(str(root / "work"), epochs=3, n_train=10, splits=1,
               data_root=str(root / "digits"), progress=False)


def test_source_protocols_beat_chance_by_far(demo):
    results = demo["test"]["models"][0]["results"]
    assert set(results) == {"center", "dense", "multicrop"}
    for name, err in results.items():
        # measured 8.9 / 15.4 / 8.1 % after 3 epochs (center, dense, multicrop), at most
        # 25.6 % over training seeds 0-2 (8.1 / 21.1 / 8.5 % after 6 epochs); chance 83.3%
        assert err["top1_error"] < 40.0, (name, err)
    assert demo["test"]["num_images"] > 150


def test_transfer_to_unseen_digits_beats_chance_by_far(demo):
    transfer = demo["transfer"]
    assert transfer["metric"] == "mean_class_recall"
    # measured 92.4% with 10 training images per class after 3 epochs (88.6-92.4% over
    # training seeds 0-2; 94.6% after 6 epochs); chance is 25%
    assert transfer["mean"] > 45.0, transfer["mean"]


def test_plots_and_table(demo):
    assert len(demo["plots"]) == 2
    for path in demo["plots"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    table = format_table(demo)
    for word in ("center", "dense", "multicrop", "mean_class_recall", "train", "transfer"):
        assert word in table


def test_a_second_demo_in_the_same_work_dir_starts_its_feature_store_afresh(tmp_path,
                                                                             monkeypatch):
    """The train stage writes a new checkpoint each time, and a store refuses to resume from
    another checkpoint's features: a stale store must not survive into the extract stage."""
    from vggkit import demo as d
    work = tmp_path / "work"
    stale = work / "features" / "meta.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # what an earlier demo left
    seen = {}

    def fake_extract(*args, **kwargs):
        seen["stale store at extract"] = stale.exists()

    monkeypatch.setattr(d, "write_digits", lambda root: {"source": "s", "target": "t"})
    monkeypatch.setattr(d, "last_checkpoint", lambda path: "ckpt.pth")
    monkeypatch.setattr(d, "transfer_store", lambda *args: {"plot": "p.png"})
    monkeypatch.setattr("vggkit.config.read_config", lambda path: None)
    monkeypatch.setattr("vggkit.engine.train.train", lambda *args, **kwargs: None)
    monkeypatch.setattr("vggkit.evaluation.api.evaluate_nets", lambda *args, **kwargs: ({}, None))
    monkeypatch.setattr("vggkit.evaluation.metrics.format_results", lambda results: "")
    monkeypatch.setattr("vggkit.features.extraction.extract", fake_extract)
    d.run(str(work), progress=False)
    assert seen == {"stale store at extract": False}
