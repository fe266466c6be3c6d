"""Feature stores lose nothing and are never silently wrong (issue 25): a store never
deletes or overwrites files it did not write, a damaged store is found and repaired,
every tool lists the same images, and impossible scales are refused up front."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import FolderTask, make_image_folder, run_extract, small_jpeg, write_store
from test_cli_errors import one_error_line
from vggkit.commands import extract as extract_tool
from vggkit.commands import transfer as transfer_tool
from vggkit.features.store import DamagedStoreError, FeatureStore, load_features

EXTRACT = "vggkit extract"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), hidden ones (the lock) aside."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


# -- item 1: never delete or overwrite the user's files --------------------------------
@pytest.mark.usefixtures("folder_task")
def test_extract_refuses_a_directory_of_other_files_and_leaves_it_untouched(
        feature_setup, tmp_path, capsys):
    out = tmp_path / "D"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "thesis.txt").write_text("x\n")
    (out / "features.npy").write_bytes(b"my own array")
    before = tree(out)
    assert run_extract(feature_setup, out, "--scales", "32") == 2
    line = one_error_line(capsys, EXTRACT)
    assert str(out) in line and "not empty" in line and "--out" in line
    assert tree(out) == before and sorted(os.listdir(out)) == ["features.npy", "shards"]


class Killed(RuntimeError):
    pass


def kill_at_shard(monkeypatch, n_written: int) -> None:
    """Make the next extraction die once it has written ``n_written`` shards."""
    real, written = FeatureStore.write_shard, []

    def dying(self, index, features, errors):
        if len(written) == n_written:
            raise Killed(f"killed before shard {index}")
        real(self, index, features, errors)
        written.append(index)
    monkeypatch.setattr(FeatureStore, "write_shard", dying)


@pytest.mark.usefixtures("folder_task")
def test_finishing_removes_only_the_store_own_shard_files(feature_setup, tmp_path, monkeypatch):
    out = tmp_path / "D"
    kill_at_shard(monkeypatch, 1)
    with pytest.raises(Killed):
        run_extract(feature_setup, out, "--scales", "32", "--shard-size", "4")
    monkeypatch.undo()
    (out / "shards" / "thesis.txt").write_text("x\n")  # the user's file in the store
    assert run_extract(feature_setup, out, "--scales", "32", "--shard-size", "4") == 0
    assert os.listdir(out / "shards") == ["thesis.txt"]
    assert load_features(str(out)).features.shape[0] == feature_setup["n"]


# -- item 2: a damaged store is found, named and repaired ------------------------------
@pytest.fixture
def finished(feature_setup, tmp_path):
    """A complete store of the test task, and a copy of its files."""
    out = tmp_path / "store"
    assert run_extract(feature_setup, out, "--scales", "32", "--shard-size", "4") == 0
    return out, tree(out)


def damage(path: Path, how: str) -> None:
    if how == "removed":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "short":  # a valid array of fewer rows
        np.save(path, np.load(path)[:3])
    else:  # same shape, other values
        x = np.load(path)
        np.save(path, x[::-1].copy())


@pytest.mark.usefixtures("folder_task")
@pytest.mark.parametrize("how", ["removed", "truncated", "short", "changed"])
def test_damaged_features_are_named_on_read_and_recomputed_on_rerun(
        feature_setup, finished, capsys, how):
    out, files = finished
    damage(out / "features.npy", how)
    with pytest.raises(DamagedStoreError, match="features.npy"):
        load_features(str(out))
    # transfer reads through load_features: one line naming the file and the fix
    assert transfer_tool.main(["--features", str(out), "--C-grid", "1"]) == 2
    line = one_error_line(capsys, "vggkit transfer")
    assert str(out / "features.npy") in line and "vggkit extract" in line
    # the same extract command notices, says so and repairs the store
    assert run_extract(feature_setup, out, "--scales", "32", "--shard-size", "4") == 0
    captured = capsys.readouterr()
    assert "nothing to do" not in captured.out
    assert "features.npy" in captured.err and "recomputing" in captured.err
    assert tree(out) == files


@pytest.mark.usefixtures("folder_task")
def test_damaged_labels_are_rewritten_on_rerun(feature_setup, finished, capsys):
    out, files = finished
    damage(out / "labels.npy", "short")
    with pytest.raises(DamagedStoreError, match="labels.npy"):
        load_features(str(out))
    assert run_extract(feature_setup, out, "--scales", "32", "--shard-size", "4") == 0
    assert tree(out) == files


def test_a_hand_made_store_with_a_short_array_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 6)
    write_store(tmp_path / "feats", rng.normal(size=(12, 4)), y, [f"{i}.jpg" for i in range(12)],
                [""] * 12, ["a", "b"], "imagefolder")
    np.save(tmp_path / "feats" / "features.npy", rng.normal(size=(5, 4)))  # 5 rows for 12 ids
    assert transfer_tool.main(["--features", str(tmp_path / "feats"), "--C-grid", "1"]) == 2
    line = one_error_line(capsys, "vggkit transfer")
    assert "features.npy" in line and "5 x 4" in line and "12 rows" in line


# -- item 3: one scan for every tool ---------------------------------------------------
def test_every_tool_lists_the_images_of_sub_folders(tmp_path):
    from vggkit.data.datasets import ImageFolder
    from vggkit.transfer.task import build_task
    root = make_image_folder(tmp_path / "data", per_class=2, classes=("cat", "dog"))
    (root / "cat" / "more").mkdir()
    Image.new("RGB", (40, 40)).save(root / "cat" / "more" / "deep.png")
    expected = sorted(["cat/000.jpg", "cat/001.jpg", "cat/more/deep.png", "dog/000.jpg",
                       "dog/001.jpg"])
    training = ImageFolder(str(root), cache=False)
    train_paths = [training.get_data_info(i)["img_path"] for i in range(len(training))]
    assert sorted(os.path.relpath(p, root) for p in train_paths) == expected
    for task in ("imagefolder", "folder"):
        data = build_task(task).scan(str(root))
        assert sorted(os.path.relpath(p, root) for p in data.paths) == expected, task


def test_a_flat_folder_keeps_its_sub_folders_images_and_says_so(tmp_path):
    from vggkit.transfer.task import build_task
    flat = tmp_path / "photos"
    (flat / "2019").mkdir(parents=True)
    small_jpeg(flat / "a.jpg", 40, 40, 0)
    small_jpeg(flat / "2019" / "b.jpg", 40, 40, 1)
    with pytest.warns(UserWarning, match="one class"):
        data = build_task("folder").scan(str(flat))
    assert sorted(data.ids) == ["2019/b.jpg", "a.jpg"] and data.classes == ["photos"]


def test_images_outside_the_class_folders_are_named_in_a_warning(tmp_path):
    from vggkit.data.filelist import scan_image_folder
    root = make_image_folder(tmp_path / "data", per_class=1, classes=("cat", "dog"))
    small_jpeg(root / "stray.jpg", 40, 40, 0)
    with pytest.warns(UserWarning, match="stray.jpg"):
        found = scan_image_folder(str(root), cache=False)
    assert found.classes == ["cat", "dog"] and len(found.samples) == 2


# -- item 10: edge cases ---------------------------------------------------------------
@pytest.mark.usefixtures("folder_task")
def test_a_scale_beyond_memory_is_refused_before_the_store_exists(feature_setup, tmp_path, capsys,
                                                                  monkeypatch):
    out = tmp_path / "D"
    # the command refuses Q > 4096 itself (vggkit.commands.MAX_SCALE), before any import
    with pytest.raises(SystemExit) as refused:  # argparse's own exit
        run_extract(feature_setup, out, "--scales", "100000")
    assert refused.value.code == 2
    assert "larger than 4096 pixels" in one_error_line(capsys, EXTRACT)
    assert not out.exists()
    # below that bound, the memory check: 512 MB available is too little for Q = 4096
    from vggkit.inference import pass_cap
    monkeypatch.setattr(pass_cap, "available_memory", lambda *_: 512 * 1024 ** 2)
    assert run_extract(feature_setup, out, "--scales", "4096") == 2
    line = one_error_line(capsys, EXTRACT)
    assert "Q=4096" in line and "GB" in line and "--scales of at most" in line
    assert not out.exists()
    monkeypatch.undo()
    assert run_extract(feature_setup, out, "--scales", "32") == 0


@pytest.mark.usefixtures("folder_task")
def test_a_manifest_that_is_a_list_is_one_line(feature_setup, tmp_path, capsys):
    out = tmp_path / "D"
    out.mkdir()
    (out / "manifest.json").write_text("[]")
    assert run_extract(feature_setup, out, "--scales", "32") == 2
    line = one_error_line(capsys, EXTRACT)
    assert str(out / "manifest.json") in line and "not a vggkit feature store" in line
    with pytest.raises(ValueError, match="manifest.json"):
        load_features(str(out))
    assert (out / "manifest.json").read_text() == "[]"


@pytest.mark.usefixtures("folder_task")
def test_skip_after_a_strict_failure_into_the_same_out(feature_setup, tmp_path, capsys):
    data = tmp_path / "data"
    for cls in ("cat", "dog"):
        (data / cls).mkdir(parents=True)
        small_jpeg(data / cls / "a.jpg", 40, 40, 1)
    good = (data / "dog" / "a.jpg").read_bytes()
    (data / "dog" / "b.jpg").write_bytes(good[: len(good) // 2])  # truncated
    args = [*feature_setup["d"], "--task", FolderTask.name, "--data-root", str(data),
            "--no-progress", "--scales", "32", "--out", str(tmp_path / "D")]
    assert extract_tool.main(args) == 2
    assert "--bad-images skip" in one_error_line(capsys, EXTRACT)
    assert extract_tool.main([*args, "--bad-images", "skip"]) == 0
    fs = load_features(str(tmp_path / "D"))
    assert fs.ids == ["cat/a.jpg", "dog/a.jpg"] and fs.meta["bad_image_policy"] == "skip"


@pytest.mark.usefixtures("folder_task")
def test_a_store_with_no_shard_yet_restarts_with_other_settings(feature_setup, tmp_path,
                                                                 monkeypatch, capsys):
    out = tmp_path / "D"
    kill_at_shard(monkeypatch, 0)  # killed before any row was written
    with pytest.raises(Killed):
        run_extract(feature_setup, out, "--scales", "40")
    monkeypatch.undo()
    capsys.readouterr()
    assert run_extract(feature_setup, out, "--scales", "32") == 0
    assert "restarting it with the new settings" in capsys.readouterr().err
    assert load_features(str(out)).meta["scales"] == [32]
    # once rows exist, other settings are refused as before
    assert run_extract(feature_setup, out, "--scales", "40") == 2
    assert "other settings" in one_error_line(capsys, EXTRACT)
    assert json.loads((out / "manifest.json").read_text())["settings"]["scales"] == [32]
