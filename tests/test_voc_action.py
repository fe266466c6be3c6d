"""VOC-2012 action classification (App. B): person instances, region descriptors, AP, errors.

The devkit tree is written by :func:`helpers.make_voc_action` (real JPEGs, XML with
``<actions>`` and person boxes, ImageSets/Action lists and class files). Expectations are
independent of the code under test: counts from the files written, hand-cropped images
saved as files of their own, sklearn's average precision, hand-computed AP.
"""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score

from helpers import VOC_ACTIONS, make_voc_action, voc_action_xml, write_store
from vggkit.commands import extract as extract_tool
from vggkit.commands import transfer as transfer_tool
from vggkit.errors import UserError
from vggkit.features.regions import RegionError, crop_region, unique_crops
from vggkit.features.store import load_features
from vggkit.transfer.task import TaskData, build_task

FC = 64  # fc7 width of the tiny net 'd' of conftest's feature_setup
EXTRACT = ("--scales", "32", "48", "--batch-size", "4", "--no-progress")


def extract(setup: dict, out, *extra: str) -> int:
    return extract_tool.main([*setup["d"], "--out", str(out), *EXTRACT, *extra])


@pytest.fixture(scope="module")
def devkit(tmp_path_factory) -> dict:
    return make_voc_action(tmp_path_factory.mktemp("voc_action"))


@pytest.fixture(scope="module")
def stacked(feature_setup, devkit, tmp_path_factory) -> dict:
    """Store of the whole+box setting, and a 'folder' store of hand-made files to compare with.

    The folder holds each image (the JPEG's bytes) and each person box cut out with PIL
    and saved losslessly as a PNG of its own.
    """
    root = tmp_path_factory.mktemp("stores")
    assert extract(feature_setup, root / "action", "--task", "voc2012_action",
                   "--data-root", str(devkit["base"].parent), "--task-option",
                   "context=whole+box", "--shard-size", "5") == 0
    files = root / "files"
    files.mkdir()
    for split in devkit["instances"].values():
        for image_id, person, (x0, y0, x1, y1), _ in split:
            jpeg = devkit["base"] / "JPEGImages" / f"{image_id}.jpg"
            shutil.copyfile(jpeg, files / f"{image_id}.jpg")
            Image.open(jpeg).convert("RGB").crop((x0 - 1, y0 - 1, x1, y1)).save(
                files / f"{image_id}_person{person}.png")
    assert extract(feature_setup, root / "files_store", "--data-root", str(files)) == 0
    folder = load_features(str(root / "files_store"))
    return {"action": load_features(str(root / "action")), "root": root,
            "by_name": dict(zip(folder.ids, folder.features))}


# -- the task: instances, ids, labels, regions ----------------------------------------
@pytest.mark.parametrize("name", ["voc2007", "voc2012", "voc2012_action"])
def test_voc_tasks_average_the_papers_five_scales(name):
    # Appendix B: VOC results average Q in {256, 384, 512, 640, 768} (not {256, 384, 512})
    task = build_task(name)
    assert (task.default_scales, task.default_aggregate) == ((256, 384, 512, 640, 768), "avg")


def test_scan_lists_every_person_instance(devkit):
    data = build_task("voc2012_action", context="whole+box").scan(str(devkit["base"].parent))
    lines = {split: (devkit["base"] / "ImageSets" / "Action" / f"{split}.txt").read_text().split("\n")
             for split in ("trainval", "test")}
    counts = {split: sum(1 for line in text if line.strip()) for split, text in lines.items()}
    assert len(data) == counts["trainval"] + counts["test"] == 33
    assert data.subsets.count("trainval") == counts["trainval"] == 22
    assert data.classes == list(VOC_ACTIONS) and data.labels.shape == (33, 10)
    expected = devkit["instances"]["trainval"] + devkit["instances"]["test"]
    assert data.ids == [f"{i}/{p}" for i, p, _, _ in expected]
    assert len(set(data.ids)) == len(data.ids)
    # the horse is object 1 of image 3, so its person is '2012_000003/2'
    assert "2012_000003/2" in data.ids and "2012_000003/1" not in data.ids
    # VOC boxes are 1-based and inclusive: xmin..xmax covers pixels xmin-1 .. xmax-1
    assert data.regions == [(None, (x0 - 1, y0 - 1, x1, y1)) for _, _, (x0, y0, x1, y1), _ in expected]
    # labels: one positive per person, 'other' persons negative for every class
    for row, (_, _, _, action) in zip(data.labels, expected):
        assert row.tolist() == [1 if a == action else -1 for a in VOC_ACTIONS]
    assert (data.labels.min(1) == -1).all() and (data.labels == 1).sum() == 30


def test_labels_from_annotations_equal_class_files(tmp_path, devkit):
    make_voc_action(tmp_path, class_files=False)
    task = build_task("voc2012_action")
    from_xml = task.scan(str(tmp_path))
    from_files = task.scan(str(devkit["base"]))
    assert np.array_equal(from_xml.labels, from_files.labels)
    assert from_xml.regions == [(None,)] * len(from_xml) and from_xml.regions_per_item == 1


def test_context_option_sets_the_regions(devkit):
    box = build_task("voc2012_action", context="box").scan(str(devkit["base"]))
    expected = devkit["instances"]["trainval"] + devkit["instances"]["test"]
    assert box.regions == [((x0 - 1, y0 - 1, x1, y1),) for _, _, (x0, y0, x1, y1), _ in expected]
    with pytest.raises(UserError, match="unknown context 'person'"):
        build_task("voc2012_action", context="person")
    with pytest.raises(UserError, match="has no option 'contxt'"):
        build_task("voc2012_action", contxt="box")


# -- the region descriptor ------------------------------------------------------------
def test_stacked_descriptor_is_whole_image_then_hand_cropped_box(stacked, devkit):
    fs = stacked["action"]
    assert fs.features.shape == (33, 2 * FC)  # stacked: 2 x the fc7 width
    np.testing.assert_allclose(np.linalg.norm(fs.features, axis=1), 1.0, atol=1e-5)
    assert fs.meta["task_options"] == {"context": "whole+box"} and fs.meta["feature_dim"] == 2 * FC
    names = stacked["by_name"]
    for item, row in zip(fs.ids, fs.features):
        image_id, person = item.split("/")
        # each block is unit before stacking, so stacked blocks have norm 1/sqrt(2)
        np.testing.assert_allclose(row[:FC] * math.sqrt(2), names[f"{image_id}.jpg"], atol=1e-5)
        np.testing.assert_allclose(row[FC:] * math.sqrt(2), names[f"{image_id}_person{person}.png"],
                                   atol=1e-5)
    # two persons of one image share the whole-image block, not the box block
    a, b = fs.ids.index("2012_000002/1"), fs.ids.index("2012_000002/2")
    np.testing.assert_allclose(fs.features[a, :FC], fs.features[b, :FC], atol=1e-7)
    assert np.abs(fs.features[a, FC:] - fs.features[b, FC:]).max() > 1e-3
    image_id, person, (x0, y0, x1, y1), _ = devkit["instances"]["trainval"][1]
    assert f"{image_id}/{person}" == fs.ids[a] and fs.regions[a] == (None, (x0 - 1, y0 - 1, x1, y1))


def test_whole_image_setting(stacked, feature_setup, devkit, tmp_path):
    assert extract(feature_setup, tmp_path / "whole", "--task", "voc2012_action",
                   "--data-root", str(devkit["base"])) == 0
    fs = load_features(str(tmp_path / "whole"))
    assert fs.features.shape == (33, FC) and fs.regions == [(None,)] * 33
    for item, row in zip(fs.ids, fs.features):
        np.testing.assert_allclose(row, stacked["by_name"][item.split("/")[0] + ".jpg"], atol=1e-5)


def test_unreadable_image_with_skip_leaves_its_persons_out(feature_setup, tmp_path):
    base = make_voc_action(tmp_path)["base"]
    jpeg = base / "JPEGImages" / "2012_000002.jpg"  # two persons
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    assert extract(feature_setup, tmp_path / "s", "--task", "voc2012_action", "--data-root",
                   str(tmp_path), "--task-option", "context=whole+box", "--bad-images", "skip") == 0
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert [b["id"] for b in manifest["bad_images"]] == ["2012_000002/1", "2012_000002/2"]
    kept = load_features(str(tmp_path / "s"))
    assert len(kept) == 31 and "2012_000002/1" not in kept.ids and len(kept.regions) == 31
    raw = np.load(tmp_path / "s" / "features.npy")
    assert not raw[[b["index"] for b in manifest["bad_images"]]].any()


def test_store_without_regions_still_loads(tmp_path):
    X = np.eye(4, 8, dtype=np.float32)
    write_store(tmp_path / "old", X, np.array([0, 1, 0, 1]), ["a", "b", "c", "d"], [""] * 4,
                ["x", "y"], "imagefolder")
    fs = load_features(str(tmp_path / "old"))
    assert fs.regions is None and TaskData.from_features(fs).regions is None


def test_shared_crops_are_described_once():
    box = (1, 2, 5, 6)
    keys, items = unique_crops(["a.jpg", "a.jpg", "b.jpg"],
                               [(None, box), (None, (0, 0, 3, 3)), (None, box)])
    assert keys == [("a.jpg", None), ("a.jpg", box), ("a.jpg", (0, 0, 3, 3)), ("b.jpg", None),
                    ("b.jpg", box)]
    assert items == [(0, 1), (0, 2), (3, 4)]


def test_describe_images_of_regions_in_python():
    import torch
    from vggkit.features.extractor import FeatureExtractor, Net
    from vggkit.factory import build_vgg
    torch.manual_seed(0)
    model = build_vgg("A", num_classes=3, width_mult=1 / 16, fc_width=16, input_size=32).eval()
    ex = FeatureExtractor([Net(model, {"mean": [120.0] * 3, "std": [60.0] * 3, "bgr": False})],
                          scales=(32,), backend="eager")
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    box = (5, 3, 45, 38)
    by_region = ex.describe_images([img, img], [box, None])
    np.testing.assert_allclose(by_region, ex.describe_images([img.crop(box), img]), atol=1e-6)
    with pytest.raises(RegionError, match="beyond the 56x40 image 'photo.jpg'"):
        ex.describe_images([img], [(0, 0, 57, 40)], names=["photo.jpg"])


def test_region_errors_name_the_image():
    img = Image.new("RGB", (20, 10))
    assert crop_region(img, (2, 3, 7, 9)).size == (5, 6)
    with pytest.raises(RegionError, match=r"beyond the 20x10 image 'x\.jpg'"):
        crop_region(img, (0, 0, 21, 10), "x.jpg")
    with pytest.raises(RegionError, match="zero area"):
        crop_region(img, (4, 0, 4, 10), "x.jpg")
    with pytest.raises(ValueError, match="same number"):
        TaskData(ids=["a", "b"], paths=["", ""], labels=np.zeros(2), classes=["c"],
                 subsets=["", ""], regions=[(None,), (None, (0, 0, 1, 1))])


# -- AP ----------------------------------------------------------------------------------
def test_ap_matches_sklearn_and_hand_values():
    task = build_task("voc2012_action")
    # ranking P N P N N P: precision at the hits 1, 2/3, 1/2 never rises, so the devkit's
    # monotone interpolation changes nothing and sklearn's step AP is the same number
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    gt = np.array([1, -1, 1, -1, -1, 1])
    hand = (1 + 2 / 3 + 1 / 2) / 3 * 100
    labels = -np.ones((6, 10), dtype=np.int8)
    labels[:, 0] = gt
    labels[[0, 5], 3] = 1  # class 3: P ... P
    s = np.tile(scores[:, None], (1, 10))
    res = task.evaluate(s, labels)
    assert res["per_class"][0] == pytest.approx(hand)
    assert res["per_class"][0] == pytest.approx(100 * average_precision_score(gt > 0, scores))
    assert res["per_class"][3] == pytest.approx(100 * (1 + 2 / 6) / 2)
    assert math.isnan(res["per_class"][1]) and len(res["per_class"]) == 10
    # a 0 label ('difficult') is left out, as VOCevalaction.m does
    labels[1, 0] = 0
    assert task.evaluate(s, labels)["per_class"][0] == pytest.approx(
        100 * average_precision_score(np.delete(gt, 1) > 0, np.delete(scores, 1)))


# -- withheld test labels ----------------------------------------------------------------
def test_withheld_test_labels_give_submission_files(tmp_path):
    make_voc_action(tmp_path, class_files=False, test_labels=False)
    task = build_task("voc2012_action")
    data = task.scan(str(tmp_path))
    (split,) = task.splits(data)
    assert len(split.test) == 11 and not data.labels[split.test].any()
    assert task.evaluate(np.zeros((11, 10)), data.labels[split.test]).get("withheld")
    files = task.write_predictions(data, split, np.arange(110.0).reshape(11, 10), str(tmp_path / "s"))
    assert len(files) == 10
    lines = (tmp_path / "s" / "comp10_action_test_jumping.txt").read_text().splitlines()
    first_id, first_person = data.ids[split.test[0]].split("/")
    assert lines[0].split() == [first_id, first_person, "0.000000"] and len(lines) == 11


# -- bad inputs ----------------------------------------------------------------------------
def rewrite(base, image_id: str, size, objects) -> str:
    path = base / "Annotations" / f"{image_id}.xml"
    path.write_text(voc_action_xml(size, objects))
    return path.name


PERSON = {"box": (2, 2, 20, 20), "actions": {"running"}}
#: fault -> (objects of 2012_000001.xml given its image's width and height, the error)
BAD = {
    "no person boxes": (lambda w, h: [{"box": None, "actions": {"running"}}],
                        "has no person boxes"),
    "box beyond <size>": (lambda w, h: [{"box": (2, 2, w + 5, h - 1), "actions": {"running"}}],
                          "outside the image: its <size>"),
    "unknown action": (lambda w, h: [{"box": (2, 2, 20, 20), "actions": {"dancing"}}],
                       "unknown action 'dancing'"),
    "zero area": (lambda w, h: [{"box": (10, 2, 10, 20), "actions": {"running"}}], "zero area"),
    "no objects at all": (lambda w, h: [], "has no person boxes"),
}


@pytest.mark.parametrize("fault", sorted(BAD))
def test_bad_annotation_names_file_and_fault(tmp_path, fault):
    base = make_voc_action(tmp_path)["base"]
    w, h = Image.open(base / "JPEGImages" / "2012_000001.jpg").size
    objects, message = BAD[fault]
    name = rewrite(base, "2012_000001", (w, h), objects(w, h))
    with pytest.raises(UserError, match=message) as err:
        build_task("voc2012_action").scan(str(tmp_path))
    assert name in str(err.value)


def test_person_index_beyond_the_objects(tmp_path):
    base = make_voc_action(tmp_path)["base"]
    name = rewrite(base, "2012_000001", None, [PERSON, PERSON])
    (base / "ImageSets" / "Action" / "trainval.txt").write_text("2012_000001 3\n")
    with pytest.raises(UserError, match=r"has no object 3 \(it has 2\)") as err:
        build_task("voc2012_action").scan(str(tmp_path))
    assert name in str(err.value) and "trainval.txt" in str(err.value)


def test_box_beyond_the_actual_image(tmp_path):
    base = make_voc_action(tmp_path)["base"]
    w, h = Image.open(base / "JPEGImages" / "2012_000001.jpg").size
    name = rewrite(base, "2012_000001", (w + 50, h), [{"box": (2, 2, w + 10, h), "actions": {"reading"}}])
    with pytest.raises(UserError, match=rf"outside the image: the image .*2012_000001\.jpg is {w}x{h}") as err:
        build_task("voc2012_action").scan(str(tmp_path))
    assert name in str(err.value)


def test_bad_input_is_one_line_from_the_tool(tmp_path, feature_setup, capsys):
    base = make_voc_action(tmp_path)["base"]
    rewrite(base, "2012_000001", None, [{"box": (2, 2, 20, 20), "actions": {"dancing"}}])
    assert extract(feature_setup, tmp_path / "out", "--task", "voc2012_action",
                   "--data-root", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "2012_000001.xml" in err and "dancing" in err


# -- end to end --------------------------------------------------------------------------
def test_svm_transfer_reports_ap_of_the_ten_actions(stacked, capsys, monkeypatch):
    built = []
    real_build = transfer_tool.build_task
    monkeypatch.setattr(transfer_tool, "build_task",
                        lambda name, **kw: built.append(kw) or real_build(name, **kw))
    out = stacked["root"] / "svm.json"
    assert transfer_tool.main(["--features", str(stacked["root"] / "action"), "--out", str(out),
                               "--C-grid", "0.1", "1", "10", "--folds", "2", "--no-oracle"]) == 0
    res = json.loads(out.read_text())
    assert res["task"] == "voc2012_action" and res["classes"] == list(VOC_ACTIONS)
    per_class = res["splits"][0]["metrics"]["per_class"]
    assert len(per_class) == 10 and all(0 <= ap <= 100 for ap in per_class)
    assert res["mean"] == pytest.approx(np.mean(per_class))
    assert res["splits"][0]["split"]["test"][0].count("/") == 1
    table = capsys.readouterr().out
    assert all(a in table for a in VOC_ACTIONS)
    assert built == [{"context": "whole+box"}]  # the options the store was extracted with


def test_local_evaluation_needs_disjoint_sets(tmp_path):
    base = make_voc_action(tmp_path)["base"]
    sets = base / "ImageSets" / "Action"
    # as in the devkit, val is part of trainval
    (sets / "val.txt").write_text("".join((sets / "trainval.txt").read_text().splitlines(True)[:3]))
    with pytest.raises(UserError, match="is in both trainval and val"):
        build_task("voc2012_action", test_split="val").scan(str(tmp_path))
