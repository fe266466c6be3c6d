"""Datasets: ImageNet folder and list layouts, shared classes, cache, bad images, errors."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from vggkit.data import bad_images, filelist
from vggkit.data.datasets import DatasetLayoutError, ImageFolder, ImageNet
from vggkit.data.io import BadImageError

SYNSETS = ["n02", "n01", "n03"]  # deliberately unsorted on creation


def _img(path, value=0, size=(12, 10)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)


@pytest.fixture()
def imagenet(tmp_path):
    root = tmp_path / "imagenet"
    for i, syn in enumerate(SYNSETS):
        for j in range(2):
            _img(root / "train" / syn / f"{syn}_{j}.JPEG", 10 * i + j)
        _img(root / "val" / syn / f"v_{syn}.JPEG", 10 * i)
    return root


@pytest.fixture(autouse=True)
def _fresh_bad_image_counter(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bad_images.set_log_dir(None)
    bad_images.reset()
    yield
    bad_images.reset()


def _labels(ds):
    return {os.path.basename(ds.get_data_info(i)["img_path"]): ds.get_data_info(i)["gt_label"]
            for i in range(len(ds))}


def test_folder_layout_sorted_synsets(imagenet):
    ds = ImageNet(str(imagenet), split="train")
    assert ds.metainfo["classes"] == ("n01", "n02", "n03")
    assert _labels(ds) == {"n01_0.JPEG": 0, "n01_1.JPEG": 0, "n02_0.JPEG": 1, "n02_1.JPEG": 1,
                           "n03_0.JPEG": 2, "n03_1.JPEG": 2}
    val = ImageNet(str(imagenet), split="val")
    assert _labels(val) == {"v_n01.JPEG": 0, "v_n02.JPEG": 1, "v_n03.JPEG": 2}
    assert os.path.isabs(val.get_data_info(0)["img_path"])


def test_list_file_shares_class_mapping(imagenet, tmp_path):
    flat = imagenet / "val_flat"
    _img(flat / "ILSVRC2012_val_00000001.JPEG")
    _img(flat / "ILSVRC2012_val_00000002.JPEG")
    (imagenet / "meta").mkdir()
    # one line by index (sorted synsets: n03 -> 2), one by synset name
    (imagenet / "meta" / "val_flat.txt").write_text(
        "ILSVRC2012_val_00000001.JPEG 2\nILSVRC2012_val_00000002.JPEG n01\n\n")
    ds = ImageNet(str(imagenet), split="val_flat")  # meta/<split>.txt found by default
    assert ds.metainfo["classes"] == ("n01", "n02", "n03")
    assert _labels(ds) == {"ILSVRC2012_val_00000001.JPEG": 2, "ILSVRC2012_val_00000002.JPEG": 0}
    explicit = ImageNet(str(imagenet), split="val_flat", ann_file="meta/val_flat.txt")
    assert _labels(explicit) == _labels(ds)
    (imagenet / "meta" / "bad.txt").write_text("ILSVRC2012_val_00000001.JPEG n99\n")
    with pytest.raises(ValueError, match="n99"):
        ImageNet(str(imagenet), split="val_flat", ann_file="meta/bad.txt")


def test_val_folder_with_unknown_synset(imagenet):
    _img(imagenet / "val" / "n99" / "x.JPEG")
    with pytest.raises(DatasetLayoutError, match="n99"):
        ImageNet(str(imagenet), split="val")


def test_missing_and_wrong_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="(?s)nowhere.*does not exist.*train/n01440764"):
        ImageNet(str(tmp_path / "nowhere"))
    (tmp_path / "flat").mkdir()
    _img(tmp_path / "flat" / "a.jpg")
    with pytest.raises(DatasetLayoutError, match="(?s)synset folders.*meta/train.txt.*layout"):
        ImageNet(str(tmp_path / "flat"))
    with pytest.raises(DatasetLayoutError, match="no class sub-folders"):
        ImageFolder(str(tmp_path / "flat"))
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no images"):
        ImageFolder(str(tmp_path / "empty"))
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        ImageFolder(str(tmp_path / "nowhere"))


def test_image_folder_nested_extensions_and_lazy_init(tmp_path):
    root = tmp_path / "folder"
    _img(root / "cat" / "a.png")
    _img(root / "cat" / "deep" / "b.JPG")
    _img(root / "dog" / "c.jpeg")
    (root / "dog" / "notes.txt").write_text("not an image")
    ds = ImageFolder(str(root), lazy_init=True)
    assert ds.metainfo["classes"] == ("cat", "dog")  # known before full_init
    assert _labels(ds) == {"a.png": 0, "b.JPG": 0, "c.jpeg": 1}
    only_dog = ImageFolder(str(root), classes=["dog"])
    assert _labels(only_dog) == {"c.jpeg": 0}


def test_file_list_cached_not_rescanned(imagenet, monkeypatch):
    calls = []
    real = os.scandir

    def counting(path="."):
        calls.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(filelist.os, "scandir", counting)
    ImageNet(str(imagenet), split="train")
    train = str(imagenet / "train")
    first = [c for c in calls if c.startswith(train + os.sep)]
    assert len(first) == 3  # each synset folder scanned once
    assert any(n.startswith(".vggkit_filelist") for n in os.listdir(train))
    calls.clear()
    ds = ImageNet(str(imagenet), split="train")
    assert [c for c in calls if c.startswith(train + os.sep)] == []  # from the cache
    assert len(ds) == 6
    # a new file changes its folder's mtime: the tree is scanned again
    _img(imagenet / "train" / "n02" / "new.JPEG")
    os.utime(imagenet / "train" / "n02", ns=(1, 1))
    assert len(ImageNet(str(imagenet), split="train")) == 7


@pytest.mark.filterwarnings("ignore:vggkit")
def test_bad_image_skip_replaces_deterministically(imagenet):
    bad = imagenet / "train" / "n01" / "n01_0.JPEG"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    pipeline = [dict(type="LoadImage"), dict(type="PackInputs")]
    ds = ImageNet(str(imagenet), pipeline=pipeline)
    item = ds[0]
    # replaced by the next sample, the same one every time
    assert item["data_samples"].metainfo["img_path"].endswith("n01_1.JPEG")
    assert ds[0]["data_samples"].metainfo["img_path"].endswith("n01_1.JPEG")
    info = bad_images.summary()
    assert info["count"] == 1 and list(info["files"]) == [str(bad)]  # read twice, one file
    assert "n01_0.JPEG" in bad_images.format_summary()
    strict = ImageNet(str(imagenet), pipeline=pipeline, bad_images="strict")
    with pytest.raises(BadImageError, match="n01_0.JPEG"):
        strict[0]
    assert strict[1]["inputs"].shape == (3, 10, 12)
    with pytest.raises(ValueError, match="bad_images"):
        ImageNet(str(imagenet), bad_images="ignore")


def _record_in_child(path: str) -> None:
    bad_images.record(path, "truncated")


@pytest.mark.filterwarnings("ignore:vggkit")
def test_bad_images_aggregated_across_processes(tmp_path):
    import multiprocessing as mp
    bad_images.set_log_dir(tmp_path / "log")  # before the workers start
    # fork, as torch's DataLoader workers on Linux (spawn would re-import torch: slow)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_record_in_child, args=(f"/data/w{i}.jpg",)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    bad_images.record("/data/main.jpg", "bomb")
    info = bad_images.summary()
    assert info["count"] == 3
    assert info["files"] == {"/data/main.jpg": "bomb", "/data/w0.jpg": "truncated",
                             "/data/w1.jpg": "truncated"}
    bad_images.reset()
    assert bad_images.summary()["count"] == 0
    bad_images.set_log_dir(None)


def test_registered_dataset_with_dataloader(imagenet):
    import torch
    from mmengine.dataset import pseudo_collate
    from vggkit.plugins import load_plugins
    from vggkit.registry import DATASETS
    load_plugins()
    ds = DATASETS.build(dict(type="ImageNet", data_root=str(imagenet), split="val", pipeline=[
        dict(type="LoadImage"), dict(type="TestRescale", scale=24, crop=16),
        dict(type="PackInputs")]))
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=pseudo_collate)
    batch = next(iter(loader))
    assert [x.shape for x in batch["inputs"]] == [(3, 16, 16)] * 3
    assert [s.gt_label.item() for s in batch["data_samples"]] == [0, 1, 2]
    assert np.asarray(batch["inputs"][2]).mean() == pytest.approx(20, abs=1)
