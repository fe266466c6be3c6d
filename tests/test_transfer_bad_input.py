"""Transfer input that used to give a traceback or a meaningless figure (issue 25, items 4, 5
and 10b; issue 24's oracle): one line naming the value and the fix, exit 2, or a warning where
the figure still means something."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from helpers import small_jpeg, write_store
from test_cli_errors import TINY, one_error_line
from vggkit.commands import transfer as svm_tool
from vggkit.transfer.task import build_task

PROG = "vggkit transfer"


def separable_store(path, per_class, classes=("a", "b", "c"), task="imagefolder", ids=None):
    """A complete store of ``per_class`` images per class, features far apart per class."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(len(classes)), per_class)
    X = np.abs(rng.normal(size=(len(y), 8)) + 3 * np.eye(len(classes), 8)[y])
    ids = ids or [f"{classes[c]}/{i:03d}.jpg" for i, c in enumerate(y)]
    write_store(path, X, y, ids, [""] * len(y), list(classes), task)
    return path


def transfer(store, *argv, out=None):
    out = out or store.parent / "res.json"
    return svm_tool.main(["--features", str(store), "--C-grid", "1", "--out", str(out), *map(str, argv)])


# item 4: the quick start's next step, extract photos/ (task 'folder') then transfer

def test_folder_store_with_class_folders_runs_the_random_split_protocol(tmp_path, capsys):
    store = separable_store(tmp_path / "photos", 6, task="folder")
    assert transfer(store) == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["task"] == "folder" and len(res["splits"]) == 3  # several seeded splits by default
    for run in res["splits"]:
        train = run["split"]["train"]
        assert sorted(i.split("/")[0] for i in train) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
        assert len(run["split"]["test"]) == 9  # the rest is test
    assert len({tuple(r["split"]["train"]) for r in res["splits"]}) == 3
    # the protocol's options work as for imagefolder
    assert transfer(store, "--task-option", "n_train=2", "--splits", "2") == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert [len(r["split"]["train"]) for r in res["splits"]] == [6, 6]


def test_extract_with_the_default_task_then_transfer(feature_setup, tmp_path, capsys):
    from vggkit.commands import extract
    store = tmp_path / "feats"
    assert extract.main([*feature_setup["d"], "--data-root", str(feature_setup["data"]),
                         "--out", str(store), "--scales", "32", "--no-progress"]) == 0
    assert svm_tool.main(["--features", str(store), "--C-grid", "1", "--splits", "2"]) == 0
    res = json.loads((store / "svm_results.json").read_text())
    assert res["task"] == "folder" and res["classes"] == ["cat", "dog"]
    # cat has 6 images, dog 5: half of each (rounded) trains, the rest is test
    assert [len(r["split"]["train"]) for r in res["splits"]] == [3 + 2, 3 + 2]
    assert [len(r["split"]["test"]) for r in res["splits"]] == [3 + 3, 3 + 3]


def test_flat_folder_store_says_what_to_do(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        small_jpeg(photos / f"IMG_{i}.jpg", 20, 16, i)
    data = build_task("folder").scan(str(photos))  # what `vggkit extract photos/` stores
    store = tmp_path / "feats"
    write_store(store, np.ones((4, 8)), data.labels, data.ids, data.subsets, data.classes, "folder")
    manifest = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps(dict(manifest, data_root=str(photos))))
    assert transfer(store) == 2
    line = one_error_line(capsys, PROG)
    assert "form one class ('photos')" in line and "without class sub-folders" in line
    assert f"{photos}/<class>/*.jpg" in line
    assert "extract their features again" in line


# item 5: meaningless results

def test_one_class_store_is_refused(tmp_path, capsys):
    store = separable_store(tmp_path / "feats", 12, classes=("only",))
    assert transfer(store) == 2
    line = one_error_line(capsys, PROG)
    assert "at least 2 classes" in line and "'only'" in line and "sub-folder per class" in line


@pytest.mark.parametrize("grid, shown", [(["-1", "0"], "-1, 0"), (["1", "inf"], "inf"),
                                         (["nan"], "nan")])
def test_C_grid_must_be_positive_and_finite(tmp_path, capsys, grid, shown):
    store = separable_store(tmp_path / "feats", 12)
    assert svm_tool.main(["--features", str(store), "--C-grid", *grid]) == 2
    line = one_error_line(capsys, PROG)
    assert f"--C-grid: every C must be > 0 and finite, got {shown};" in line
    assert not (store / "svm_results.json").exists()


@pytest.mark.parametrize("option, message", [
    ("n_train=-1", "option n_train=-1 must be an integer >= 1 or None; e.g. --task-option n_train=10"),
    ("n_train=0", "option n_train=0 must be an integer >= 1"),
    ("n_train=abc", "option n_train='abc' must be an integer >= 1"),
    ("n_train=2.5", "option n_train=2.5 must be an integer >= 1"),
    ("n_train=True", "option n_train=True must be an integer >= 1"),
    ("n_test=0", "option n_test=0 must be an integer >= 1"),
    ("train_fraction=1.5", "option train_fraction=1.5 must be a number in (0, 1)"),
    ("train_fraction=x", "option train_fraction='x' must be a number in (0, 1)"),
    ("splits=0", "option splits=0 must be an integer >= 1"),
])
def test_task_options_are_checked_by_type_and_range(tmp_path, capsys, option, message):
    store = separable_store(tmp_path / "feats", 12)
    assert transfer(store, "--task-option", option) == 2
    line = one_error_line(capsys, PROG)
    assert f"task 'imagefolder' {message}" in line


def test_caltech_options_are_checked_too():
    with pytest.raises(ValueError, match="task 'caltech101' option n_train=-5 must be"):
        build_task("caltech101", n_train=-5)


def test_non_finite_features_are_refused(tmp_path, capsys):
    store = separable_store(tmp_path / "feats", 12)
    X = np.load(store / "features.npy")
    X[3, 1], X[7, 0], X[20, 5] = np.nan, np.inf, -np.inf
    np.save(store / "features.npy", X)
    assert transfer(store) == 2
    line = one_error_line(capsys, PROG)
    assert f"the feature store '{store}': 3 of 36 feature rows are not finite" in line
    assert "'a/003.jpg'" in line and "extract the features again" in line


def test_more_splits_than_the_images_allow_are_refused(tmp_path, capsys):
    store = separable_store(tmp_path / "feats", 6, classes=("a", "b"))  # 12 images
    distinct = math.comb(6, 3) ** 2  # half of each class for training, the rest test
    assert transfer(store, "--splits", 1000) == 2
    line = one_error_line(capsys, PROG)
    assert f"allow only {distinct} different ones" in line and f"--splits {distinct} or fewer" in line
    # caltech's protocol (n_train per class, at most n_test test images) counts the test choice too
    task = build_task("caltech101", n_train=2, n_test=1)
    assert task.distinct_splits([4, 4], cap=10 ** 6) == (math.comb(4, 2) * 2) ** 2


def test_repeated_splits_are_kept_with_a_warning(tmp_path, capsys):
    store = separable_store(tmp_path / "feats", 3, classes=("a", "b"))  # 9 different splits
    assert transfer(store, "--splits", 9) == 0
    res = json.loads((tmp_path / "res.json").read_text())
    seen, repeats = set(), []
    for run in res["splits"]:
        key = (tuple(sorted(run["split"]["train"])), tuple(sorted(run["split"]["test"])))
        if key in seen:
            repeats.append(run["split"]["name"])
        seen.add(key)
    assert repeats  # 9 random draws of 9 splits: 9!/9^9 = 0.1 % chance of none
    warned = [w.split(":")[0] for w in res["warnings"] if "the same training and test images" in w]
    assert warned == repeats
    assert "the same training and test images" in capsys.readouterr().out


# item 10b: output paths checked before any work

@pytest.fixture
def no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the run started before the output path was checked")
    monkeypatch.setattr(svm_tool, "run_transfer", fail)


def test_transfer_out_or_plot_that_is_a_directory_is_refused_first(tmp_path, capsys, no_work):
    store = separable_store(tmp_path / "feats", 12)
    (tmp_path / "dir").mkdir()
    assert transfer(store, out=tmp_path / "dir") == 2
    assert f"--out '{tmp_path / 'dir'}' is a directory" in one_error_line(capsys, PROG)
    assert transfer(store, "--plot", tmp_path / "dir") == 2
    assert f"--plot '{tmp_path / 'dir'}' is a directory" in one_error_line(capsys, PROG)
    # the default results file lies in the store: a directory there is refused too
    (store / "svm_results.json").mkdir()
    assert svm_tool.main(["--features", str(store)]) == 2
    assert "svm_results.json' is a directory" in one_error_line(capsys, PROG)


def test_test_out_that_is_a_directory_is_refused_first(tmp_path, capsys):
    from vggkit.commands.test import main
    # the config and checkpoint do not exist: the --out check must come before they are read
    assert main([TINY, str(tmp_path / "missing.pth"), "--out", str(tmp_path)]) == 2
    line = one_error_line(capsys, "vggkit test")
    assert f"--out '{tmp_path}' is a directory; give a file path" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_transfer_out_in_an_unwritable_directory_is_refused_first(tmp_path, capsys, no_work):
    store = separable_store(tmp_path / "feats", 12)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert transfer(store, out=locked / "res.json") == 2
        assert f"directory '{locked}' is not writable" in one_error_line(capsys, PROG)
    finally:
        locked.chmod(0o700)


# issue 24: the oracle figure is biased upwards, and says so

def test_oracle_is_reported_as_biased_upwards(tmp_path, capsys):
    store = separable_store(tmp_path / "feats", 12)
    assert transfer(store, "--C-grid", "0.1", "1") == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert "oracle_mean" in res and "biased upwards" in res["oracle_note"]
    assert "biased upwards" in capsys.readouterr().out
    assert transfer(store, "--no-oracle") == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert "oracle_mean" not in res and "oracle_note" not in res
