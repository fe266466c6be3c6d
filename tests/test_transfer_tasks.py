"""Transfer tasks: layouts with real JPEG files, protocol split counts, errors, plugins, the tool."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import write_store
from vggkit.registry import TRANSFER_TASKS
from vggkit.transfer.task import ProtocolError, TaskLayoutError, build_task

VOC = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
       "train", "tvmonitor")


def jpeg(path, value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (8, 6), (value % 256, 40, 90)).save(path, "JPEG")


def class_tree(root, counts, name=lambda c, i: f"image_{i + 1:04d}.jpg"):
    for c, n in counts.items():
        for i in range(n):
            jpeg(os.path.join(root, c, name(c, i)), i)


def test_caltech101_protocol_counts(tmp_path):
    class_tree(tmp_path / "101_ObjectCategories", {"BACKGROUND_Google": 31, "Faces": 85, "ant": 40})
    task = build_task("caltech101")
    assert (task.default_aggregate, task.default_scales, task.multilabel) == ("stack", (256, 384, 512), False)
    data = task.scan(str(tmp_path))
    assert data.classes == ["BACKGROUND_Google", "Faces", "ant"] and len(data) == 156
    splits = task.splits(data, seed=7)
    assert len(splits) == 3
    for s in splits:
        assert np.bincount(data.labels[s.train]).tolist() == [30, 30, 30]
        assert np.bincount(data.labels[s.test]).tolist() == [1, 50, 10]
        assert not set(s.train) & set(s.test)
    again = task.splits(task.scan(str(tmp_path)), seed=7)
    assert all(np.array_equal(a.train, b.train) for a, b in zip(splits, again))
    assert not np.array_equal(splits[0].train, splits[1].train)
    record = splits[0].to_dict(data)
    assert record["seed"] == 7 and record["train"][0].count("/") == 1


def test_caltech_too_few_images_names_class(tmp_path):
    class_tree(tmp_path / "101_ObjectCategories", {"Faces": 40, "ant": 30})
    with pytest.raises(ProtocolError, match=r"at least 31 images per class.*'ant' has 30"):
        build_task("caltech101").scan(str(tmp_path))


def test_caltech256_protocol_counts(tmp_path):
    root = tmp_path / "256_ObjectCategories"
    name = lambda c, i: f"{c[:3]}_{i + 1:04d}.jpg"  # noqa: E731
    class_tree(root, {"001.ak47": 61, "257.clutter": 70}, name)
    (root / "001.ak47" / "RENAME2").write_text("not an image")
    task = build_task("caltech256")
    data = task.scan(str(root))  # the category folder itself is accepted too
    s = task.splits(data, n_splits=1)[0]
    assert np.bincount(data.labels[s.train]).tolist() == [60, 60]
    assert np.bincount(data.labels[s.test]).tolist() == [1, 10]


def test_wrong_layout_and_unknown_task(tmp_path):
    with pytest.raises(TaskLayoutError, match="101_ObjectCategories/<class>"):
        build_task("caltech101").scan(str(tmp_path))
    with pytest.raises(TaskLayoutError, match="ImageSets/Main"):
        build_task("voc2007").scan(str(tmp_path))
    with pytest.raises(KeyError, match="known tasks:.*caltech101.*imagefolder"):
        build_task("caltech999")


def test_plugins_listed_and_qualified():
    known = TRANSFER_TASKS.known_names()
    for n in ("imagefolder", "caltech101", "caltech256", "voc2007", "voc2012",
              "caltech.caltech101", "voc.voc2012"):
        assert n in known
    assert build_task("voc.voc2012").name == "voc2012"


def test_imagefolder_fraction_and_metrics(tmp_path):
    class_tree(tmp_path, {"cat": 10, "dog": 6})
    task = build_task("imagefolder", train_fraction=0.5)
    data = task.scan(str(tmp_path))
    s = task.splits(data, n_splits=1, seed=0)[0]
    assert np.bincount(data.labels[s.train]).tolist() == [5, 3]
    assert np.bincount(data.labels[s.test]).tolist() == [5, 3]
    scores = np.eye(2)[[0, 0, 1, 1, 1]]
    res = task.evaluate(scores, np.array([0, 0, 0, 1, 1]))
    assert res["mean_class_recall"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert res["accuracy"] == pytest.approx(80.0)


def test_imagefolder_task_sees_the_same_files_as_training(tmp_path):
    from vggkit.data.filelist import IMG_EXTENSIONS, scan_tree
    class_tree(tmp_path, {"cat": 2, "dog": 2})
    Image.new("P", (8, 8)).save(tmp_path / "dog" / "anim.gif")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    data = build_task("imagefolder").scan(str(tmp_path))
    assert any(i.endswith("anim.gif") for i in data.ids) and len(data.ids) == 5
    assert ".gif" in IMG_EXTENSIONS
    training = scan_tree(str(tmp_path), ["cat", "dog"], IMG_EXTENSIONS, False)
    assert len(training) == len(data.ids)


def voc_devkit(root, year, test_labels=True):
    base = root / "VOCdevkit" / f"VOC{year}"
    trainval, test = ["000001", "000002", "000003", "000004"], ["000005", "000006", "000007"]
    for i in trainval + test:
        jpeg(str(base / "JPEGImages" / f"{i}.jpg"))
    main = base / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (main / "test.txt").write_text("\n".join(test) + "\n")
    for k, cls in enumerate(VOC):
        for split, ids in (("trainval", trainval), ("test", test)):
            if split == "test" and not test_labels:
                continue
            lab = {i: -1 for i in ids}
            if cls == "cat":
                lab.update({"000001": 1, "000002": 0, "000005": 1, "000006": 0})
            (main / f"{cls}_{split}.txt").write_text("".join(f"{i} {lab[i]:2d}\n" for i in ids))
    return base


def test_voc2007_scan_split_and_ap(tmp_path):
    voc_devkit(tmp_path, 2007)
    task = build_task("voc2007")
    assert (task.default_aggregate, task.multilabel, task.metric_name) == ("avg", True, "mAP")
    data = task.scan(str(tmp_path))
    assert data.labels.shape == (7, 20) and data.subsets.count("trainval") == 4
    cat = VOC.index("cat")
    assert data.labels[:, cat].tolist() == [1, 0, -1, -1, 1, 0, -1]
    (s,) = task.splits(data)
    assert s.train.tolist() == [0, 1, 2, 3] and s.test.tolist() == [4, 5, 6]
    scores = np.zeros((3, 20))
    scores[:, cat] = [0.6, 0.9, 0.5]  # the difficult image ranks first and is ignored
    res = task.evaluate(scores, data.labels[s.test])
    assert res["per_class"][cat] == pytest.approx(100.0)


def test_voc2012_withheld_test_writes_submission(tmp_path):
    voc_devkit(tmp_path, 2012, test_labels=False)
    task = build_task("voc2012")
    data = task.scan(str(tmp_path / "VOCdevkit"))
    (s,) = task.splits(data)
    assert not data.labels[s.test].any()
    assert task.evaluate(np.zeros((3, 20)), data.labels[s.test]).get("withheld")
    files = task.write_predictions(data, s, np.arange(60, dtype=float).reshape(3, 20), str(tmp_path / "sub"))
    assert len(files) == 20
    lines = (tmp_path / "sub" / "comp1_cls_test_aeroplane.txt").read_text().split("\n")
    assert lines[0].split() == ["000005", "0.000000"] and lines[2].split()[0] == "000007"


def test_svm_transfer_tool_end_to_end(tmp_path):
    from vggkit.commands.transfer import main
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 12)
    X = np.abs(rng.normal(size=(36, 16)) + 3 * np.eye(3, 16)[y])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"c{c}/{i}.jpg" for i, c in enumerate(y)]
    write_store(tmp_path / "feats", X, y, ids, [""] * 36, ["a", "b", "c"], "imagefolder")
    out = tmp_path / "res.json"
    assert main(["--features", str(tmp_path / "feats"), "--splits", "2", "--out", str(out),
                 "--C-grid", "0.1", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["metric"] == "mean_class_recall" and len(res["splits"]) == 2
    assert res["mean"] > 90 and res["splits"][0]["C"] in (0.1, 1.0)
    assert len(res["splits"][0]["split"]["train"]) == 18
    assert (tmp_path / "res.png").stat().st_size > 0


def test_folder_task_reads_flat_and_class_folders(tmp_path):
    task = build_task("folder")
    flat = tmp_path / "holiday"
    flat.mkdir()
    for name in ("b.jpg", "a.png", "notes.txt"):
        (flat / name).write_bytes(b"") if name.endswith(".txt") else jpeg(flat / name)
    data = task.scan(str(flat))
    assert data.ids == ["a.png", "b.jpg"] and data.classes == ["holiday"]
    assert data.labels.tolist() == [0, 0]
    class_tree(tmp_path / "classes", {"cat": 2, "dog": 1})
    data = task.scan(str(tmp_path / "classes"))
    assert data.classes == ["cat", "dog"] and data.labels.tolist() == [0, 0, 1]
    with pytest.raises(TaskLayoutError, match="does not exist"):
        task.scan(str(tmp_path / "missing"))
    # class folders: imagefolder's protocol (half of each class for training, 3 splits by default)
    splits = task.splits(data, n_splits=2)
    assert [np.bincount(data.labels[s.train]).tolist() for s in splits] == [[1, 1], [1, 1]]
    with pytest.raises(ProtocolError, match="allow only 2 different"):
        task.splits(data)  # cat: 2 ways to pick its training image, dog: 1
