"""tools/extract_features.py end to end: store, resume, refusal, stacking, bad images."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import FOLDER_CLASSES, FolderTask, run_extract, small_jpeg
from vggkit.commands import extract as extract_tool
from vggkit.features.store import FeatureStore, load_features

pytestmark = pytest.mark.usefixtures("folder_task")


def test_store_contents(feature_setup, tmp_path):
    assert run_extract(feature_setup, tmp_path / "s", "--shard-size", "4") == 0
    fs = load_features(str(tmp_path / "s"))
    n = feature_setup["n"]
    assert fs.features.shape == (n, 2 * 64) and fs.features.dtype == np.float32  # task: stack
    np.testing.assert_allclose(np.linalg.norm(fs.features, axis=1), 1.0, atol=1e-5)
    assert fs.ids[0] == os.path.join("cat", "img_0.jpg") and fs.ids[-1] == os.path.join(
        "dog", "img_4.jpg")
    assert fs.labels.tolist() == [0] * 6 + [1] * 5
    assert fs.subsets[:2] == ["test", "trainval"] and fs.classes == list(FOLDER_CLASSES)
    ckpt = feature_setup["d"][1]
    assert fs.meta["checkpoint_sha256"] == [hashlib.sha256(Path(ckpt).read_bytes()).hexdigest()]
    assert fs.meta["scales"] == [32, 48] and fs.meta["layer"] == "fc7" and fs.meta["relu"]
    assert fs.meta["aggregate"] == "stack" and fs.meta["task"] == FolderTask.name
    assert fs.meta["configs"] == [os.path.abspath(feature_setup["d"][0])]
    # the mirror image file (index 5) has the descriptor of the original (index 0)
    np.testing.assert_allclose(fs.features[5], fs.features[0], atol=1e-5)
    assert not os.path.exists(tmp_path / "s" / "shards")
    # the raw numpy route documented in the store module
    raw = np.load(tmp_path / "s" / "features.npy")
    assert np.array_equal(raw, fs.features)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["ids"] == fs.ids and np.array_equal(np.load(tmp_path / "s" / "labels.npy"),
                                                        fs.labels)


class Killed(RuntimeError):
    pass


def test_resume_after_kill_is_byte_identical(feature_setup, tmp_path, monkeypatch):
    args = ("--shard-size", "3", "--batch-size", "2", "--scales", "32", "40", "--keep-shards")
    assert run_extract(feature_setup, tmp_path / "full", *args) == 0

    written: list[int] = []
    real_write = FeatureStore.write_shard

    def dying_write(self, index, features, errors):
        if len(written) == 2:  # killed after two complete shards
            raise Killed(f"killed before shard {index}")
        real_write(self, index, features, errors)
        written.append(index)

    monkeypatch.setattr(FeatureStore, "write_shard", dying_write)
    with pytest.raises(Killed):
        run_extract(feature_setup, tmp_path / "resumed", *args)
    assert not (tmp_path / "resumed" / "features.npy").exists()
    with pytest.raises(ValueError, match="incomplete"):
        load_features(str(tmp_path / "resumed"))
    # a shard torn by some other means is recomputed too
    (tmp_path / "resumed" / "shards" / "shard-00001.npz").write_bytes(b"torn")
    written.clear()
    monkeypatch.setattr(FeatureStore, "write_shard", lambda self, i, f, e: (
        written.append(i), real_write(self, i, f, e)))
    assert run_extract(feature_setup, tmp_path / "resumed", *args) == 0
    assert written == [1, 2, 3]  # 11 images / 3 = 4 shards; shard 0 survived
    for name in ("features.npy", "labels.npy", "manifest.json"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()
    # and a complete store is left alone
    assert run_extract(feature_setup, tmp_path / "resumed", *args) == 0 and written == [1, 2, 3]


def test_auto_resumes_on_the_path_that_wrote_the_store(feature_setup, tmp_path, capsys):
    # forced eager, then the default (auto): without the store's path, auto's choice
    # (ONNX Runtime first with VGGKIT_AUTOTUNE=off) would be refused as other settings
    assert run_extract(feature_setup, tmp_path / "s", "--scales", "32", "--backend", "eager",
                       "--precision", "fp32") == 0
    capsys.readouterr()
    assert run_extract(feature_setup, tmp_path / "s", "--scales", "32") == 0
    assert "already complete" in capsys.readouterr().out
    # a forced other path is still another setting
    assert run_extract(feature_setup, tmp_path / "s", "--scales", "32", "--backend", "jit") == 2
    assert "backend" in capsys.readouterr().err


def test_mismatched_settings_are_refused(feature_setup, tmp_path, capsys):
    assert run_extract(feature_setup, tmp_path / "s", "--scales", "32") == 0
    capsys.readouterr()
    assert run_extract(feature_setup, tmp_path / "s", "--scales", "40", "--layer", "pool5") == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "scales (store: [32], now: [40])" in err
    assert "layer (store: \"fc7\", now: \"pool5\")" in err and "--out" in err
    # another checkpoint is another setting too
    assert run_extract(feature_setup, tmp_path / "s", "--scales", "32", nets="e") == 2
    assert "models" in capsys.readouterr().err


def test_two_nets_stack_and_avg(feature_setup, tmp_path):
    assert run_extract(feature_setup, tmp_path / "de", "--aggregate", "avg", nets="de") == 0
    fs = load_features(str(tmp_path / "de"))
    assert fs.features.shape == (feature_setup["n"], 64 + 32)
    np.testing.assert_allclose(np.linalg.norm(fs.features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fs.features[:, :64], axis=1), 2 ** -0.5, atol=1e-5)
    assert len(fs.meta["models"]) == 2


def test_bad_images(feature_setup, tmp_path):
    data = tmp_path / "data"
    for cls in FOLDER_CLASSES:
        (data / cls).mkdir(parents=True)
        small_jpeg(data / cls / "a.jpg", 40, 40, 1)
    good = (data / "dog" / "a.jpg").read_bytes()
    (data / "dog" / "b.jpg").write_bytes(good[: len(good) // 2])  # truncated
    args = [*feature_setup["d"], "--task", FolderTask.name, "--data-root", str(data), "--no-progress",
            "--scales", "32"]
    assert extract_tool.main([*args, "--out", str(tmp_path / "strict")]) == 2
    assert extract_tool.main([*args, "--out", str(tmp_path / "skip"), "--bad-images",
                              "skip"]) == 0
    fs = load_features(str(tmp_path / "skip"))
    assert fs.ids == [os.path.join("cat", "a.jpg"), os.path.join("dog", "a.jpg")]
    assert [b["id"] for b in fs.meta["bad_images"]] == [os.path.join("dog", "b.jpg")]
    assert load_features(str(tmp_path / "skip"), drop_bad=False).features.shape[0] == 3


def test_unknown_task_lists_known(feature_setup, tmp_path, capsys):
    code = extract_tool.main([*feature_setup["d"], "--task", "nope", "--data-root", str(feature_setup["data"]),
                              "--out", str(tmp_path / "x")])
    assert code == 2 and FolderTask.name in capsys.readouterr().err



def test_cfg_options_reach_every_config(feature_setup, tmp_path, capsys):
    # fc7 of 48 units does not fit net d's 64-unit checkpoint: the option reached the config
    assert run_extract(feature_setup, tmp_path / "opt", "--cfg-options", "model.vgg.fc_width=48") == 2
    err = capsys.readouterr().err
    assert "does not fit the model" in err and "head.fc6.weight" in err
