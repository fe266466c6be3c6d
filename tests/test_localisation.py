"""Appendix A localisation: box geometry and transforms, annotations, the model's loss and
dense box map, the ILSVRC criterion, greedy merging, and a small train + localise run.

Expected values are computed by hand in the comments, not by the code under test."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from vggkit.errors import UserError
from vggkit.localisation import transforms as T
from vggkit.localisation.annotations import AnnotationError, label_records, read_table, read_xml
from vggkit.localisation.boxes import iou
from vggkit.localisation.datasets import BoxList, ILSVRCLocalisation
from vggkit.localisation.candidates import candidates, window_boxes
from vggkit.localisation.merging import merge_boxes
from vggkit.localisation.metrics import is_localised, localisation_error
from vggkit.localisation.model import VGGLocaliser, class_boxes, l2_loss

from helpers import REPO, run_tool

TINY = dict(arch="A", width_mult=1 / 8, fc_width=16, input_size=32, dropout=0.0)
# the tools' process of the end-to-end run (helpers.zygote) imports in the background during
# the quick tests, which take one thread: tiny nets gain nothing from two and would contend
pytestmark = pytest.mark.usefixtures("warm_zygote", "one_thread")


def results(w=100, h=50, boxes=((10, 5, 30, 25),), labels=(0,)):
    return {"img": Image.new("RGB", (w, h)), "img_path": "x.png",
            "gt_bboxes": np.array(boxes, dtype=np.float64), "gt_bboxes_labels": np.array(labels)}


@pytest.fixture
def positions(monkeypatch):
    """Make np.random.randint return the given values in turn (crop positions)."""
    def set_values(*values):
        it = iter(values)
        monkeypatch.setattr(np.random, "randint", lambda lo, hi=None, *a, **k: next(it))
    return set_values


# -- box transforms -----------------------------------------------------------------
def test_rescale_moves_boxes():
    out = T.BoxIsotropicRescale(25)(results())  # 100x50 -> 50x25: factor 1/2
    assert out["img"].size == (50, 25)
    np.testing.assert_allclose(out["gt_bboxes"], [[5, 2.5, 15, 12.5]])


def test_flip_mirrors_boxes():
    out = T.BoxRandomFlip(prob=1.0)(results())  # x -> 100 - x, xmin/xmax swap
    np.testing.assert_allclose(out["gt_bboxes"], [[70, 5, 90, 25]])
    np.testing.assert_allclose(out["gt_bboxes_whole"], [[70, 5, 90, 25]])


def test_centre_crop_clips_and_reports_the_visible_fraction():
    # 100x60, crop 40 at (30, 10); box (20, 0, 50, 30) -> (-10, -10, 20, 20) -> (0, 0, 20, 20)
    out = T.BoxCenterCrop(40)(results(100, 60, [(20, 0, 50, 30)]))
    np.testing.assert_allclose(out["gt_bboxes"], [[0, 0, 20, 20]])
    np.testing.assert_allclose(out["box_visible"], [400 / 900])
    assert out["box_cut"]  # 44 % < the 50 % rule
    np.testing.assert_allclose(out["gt_bboxes_whole"], [[-10, -10, 20, 20]])  # not clipped
    whole = T.PackBoxInputs()(dict(out))["data_samples"].gt_bbox  # centre (5, 5), 30 x 30
    np.testing.assert_allclose(whole.numpy(), [5 / 40, 5 / 40, 30 / 40, 30 / 40])
    clipped = T.PackBoxInputs(target="clipped")(out)["data_samples"].gt_bbox
    np.testing.assert_allclose(clipped.numpy(), [10 / 40, 10 / 40, 20 / 40, 20 / 40])


def test_test_rescale_with_crop():
    # 100x50 at Q=20 -> 40x20 (factor 0.4), centre crop 20 at x0=10: box (4, 2, 12, 10)
    # -> (-6, 2, 2, 10) -> clipped (0, 2, 2, 10), visible 2*8 / (8*8) = 0.25
    out = T.BoxTestRescale(scale=20, crop=20)(results())
    np.testing.assert_allclose(out["gt_bboxes"], [[0, 2, 2, 10]])
    np.testing.assert_allclose(out["box_visible"], [0.25])


def test_fused_scale_crop_moves_boxes(positions):
    positions(3, 1)  # x0, y0 in the 50x25 image rescaled to S = 25
    out = T.BoxRandomScaleCrop(scale=25, crop=20)(results())
    # (10, 5, 30, 25) / 2 = (5, 2.5, 15, 12.5), minus (3, 1)
    np.testing.assert_allclose(out["gt_bboxes"], [[2, 1.5, 12, 11.5]])
    assert out["crop_box"] == (3, 1, 23, 21) and out["crop_tries"] == 1


def test_random_crop_resamples_until_half_the_box_is_visible(positions):
    # 64x64, crop 32, box (0, 0, 16, 16): visible ((16 - x0)+ (16 - y0)+) / 256
    positions(20, 20, 4, 8, 0, 0)  # 0, then 12*8/256 = 0.375, then 1
    out = T.BoxRandomCrop(32, min_visible=0.5, max_tries=10)(results(64, 64, [(0, 0, 16, 16)]))
    assert out["crop_tries"] == 3 and not out["box_cut"]
    np.testing.assert_allclose(out["gt_bboxes"], [[0, 0, 16, 16]])


def test_random_crop_keeps_the_best_clipped_box_with_a_flag(positions):
    positions(20, 20, 4, 8)
    out = T.BoxRandomCrop(32, max_tries=2)(results(64, 64, [(0, 0, 16, 16)]))
    assert out["box_cut"] and out["crop_box"] == (4, 8, 36, 40)
    np.testing.assert_allclose(out["gt_bboxes"], [[0, 0, 12, 8]])
    np.testing.assert_allclose(out["box_visible"], [0.375])


def test_a_box_cut_off_entirely_is_removed_and_a_sample_without_boxes_dropped(positions):
    boxes = [(0, 0, 16, 16), (56, 0, 64, 8)]  # top-left and top-right corners of 64x64
    positions(20, 20)  # the crop [20, 52]^2 shows neither box: the sample is dropped
    assert T.BoxRandomCrop(32, max_tries=1)(results(64, 64, boxes, [0, 1])) is None
    positions(0, 0)  # the crop [0, 32]^2 shows box 1 whole and nothing of box 2
    out = T.BoxRandomCrop(32, max_tries=1)(results(64, 64, boxes, [0, 1]))
    np.testing.assert_allclose(out["gt_bboxes"], [[0, 0, 16, 16]])
    assert out["gt_bboxes_labels"].tolist() == [0]
    assert T.BoxCenterCrop(20)(results(100, 100, [(0, 0, 10, 10)])) is None


def test_load_follows_the_annotated_size(tmp_path):
    Image.new("RGB", (50, 40)).save(tmp_path / "a.png")
    res = dict(results(), img_path=str(tmp_path / "a.png"), ann_size=(100, 80))
    out = T.LoadBoxImage()(res)  # annotated at 100x80, decoded 50x40: boxes halved
    np.testing.assert_allclose(out["gt_bboxes"], [[5, 2.5, 15, 12.5]])


def test_pack_targets_the_largest_box():
    res = results(100, 50, [(10, 10, 30, 30), (50, 0, 100, 50)], [3, 7])
    sample = T.PackBoxInputs()(res)["data_samples"]
    # box 2: centre (75, 25), size 50 x 50 of a 100 x 50 image
    np.testing.assert_allclose(sample.gt_bbox.numpy(), [0.75, 0.5, 0.5, 1.0])
    assert int(sample.gt_label[0]) == 7 and sample.gt_bboxes.shape == (2, 4)


# -- IoU, the ILSVRC criterion, merging -----------------------------------------------
def test_iou_by_hand():
    np.testing.assert_allclose(iou([0, 0, 2, 2], [[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]]),
                               [[1 / 7, 0.0, 1.0]])


def test_ilsvrc_criterion():
    gt, labels = np.array([[0, 0, 10, 10], [20, 0, 30, 10]]), np.array([5, 5])
    exact = np.array([20, 0, 30, 5])  # half of box 2: IoU 50 / 100 = 0.5 counts
    near = np.array([0, 0, 10, 4])  # IoU 0.4 with box 1
    assert is_localised([(5, exact)], gt, labels, k=1)
    assert not is_localised([(5, near)], gt, labels, k=5)
    assert not is_localised([(3, gt[0])], gt, labels, k=5)  # right box, wrong class
    guesses = [(3, gt[0]), (5, exact)]
    assert not is_localised(guesses, gt, labels, k=1) and is_localised(guesses, gt, labels, k=5)
    # 4 images: hits under top-1: 1 of 4; under top-5: 2 of 4
    images = [[(5, exact)], [(5, near)], guesses, [(3, gt[0])]]
    assert localisation_error(images, [gt] * 4, [labels] * 4, 1) == 75.0
    assert localisation_error(images, [gt] * 4, [labels] * 4, 5) == 50.0


def test_greedy_merging_by_hand():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [50, 50, 60, 60]]
    scores = [1.0, 1.0, 2.0, 0.5]
    # IoU(0,1) = IoU(0,2) = 90/110: the tie goes to (0, 1) -> (0.5, 0, 10.5, 10), weight 2;
    # IoU with box 2 = 85.5 / 114.5 > 0.5 -> (0.25, 0.5, 10.25, 10.5) = (1*b0 + 1*b1 + 2*b2) / 4
    merged, totals, members = merge_boxes(boxes, scores, 0.5)
    np.testing.assert_allclose(merged, [[0.25, 0.5, 10.25, 10.5], [50, 50, 60, 60]])
    np.testing.assert_allclose(totals, [4.0, 0.5])
    assert members == [[0, 1, 2], [3]]
    merged, totals, members = merge_boxes(boxes, scores, 0.9)  # nothing that close
    assert members == [[2], [0], [1], [3]]


def test_guesses_rank_classes_and_merge_each_class_boxes():
    from vggkit.localisation.candidates import Candidates
    from vggkit.localisation.protocol import guesses
    found = Candidates(boxes=np.array([[[0, 0, 10, 10]], [[1, 0, 11, 10]], [[50, 50, 70, 70]]]),
                       confidences=np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]]),
                       posterior=np.array([0.6, 0.4]))
    (c0, box0), (c1, box1) = guesses(found, 60, 60)
    # class 0: boxes 1 and 2 (IoU 90/110) merge with weights 0.9, 0.8 -> total 1.7 > 0.1
    assert (c0, c1) == (0, 1)
    np.testing.assert_allclose(box0, [0.8 / 1.7, 0, 10 + 0.8 / 1.7, 10])
    # class 1: the third box (0.9) beats the merged pair (0.3); clipped to the 60 x 60 image
    np.testing.assert_allclose(box1, [50, 50, 60, 60])


# -- the model -------------------------------------------------------------------------
def test_l2_loss_by_hand():
    pred = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 1.0, 1.0]])
    target = torch.tensor([[0.5, 0.5, 0.4, 0.2], [0.1, 0.0, 1.0, 1.0]])
    # squared differences 0.04 + 0.01 = 0.05; / (2 N) = 0.0125
    assert l2_loss(pred, target).item() == pytest.approx(0.0125)
    per_class = torch.zeros(2, 3, 4)
    per_class[0, 2], per_class[1, 0] = pred[0], pred[1]  # only the true classes' rows
    chosen = class_boxes(per_class, torch.tensor([2, 0]))
    assert l2_loss(chosen, target).item() == pytest.approx(0.0125)


@pytest.mark.parametrize("regression", ["single_class", "per_class"])
def test_loss_mode_is_the_l2_of_the_true_class_box(regression):
    from mmengine.structures import BaseDataElement
    torch.manual_seed(0)
    model = VGGLocaliser(dict(TINY, num_classes=3), regression=regression).eval()
    x = torch.randn(2, 3, 32, 32)
    samples = [BaseDataElement(gt_label=torch.tensor([c]), gt_bbox=torch.tensor(b))
               for c, b in ((2, [0.5, 0.5, 0.3, 0.6]), (1, [0.2, 0.7, 0.1, 0.2]))]
    out = model(x).detach().numpy()  # N x C x 4
    per_class = regression == "per_class"
    rows = [out[0, 2 if per_class else 0], out[1, 1 if per_class else 0]]
    expected = sum(((r - s.gt_bbox.numpy()) ** 2).sum() for r, s in zip(rows, samples)) / 4
    assert model(x, samples, mode="loss")["loss"].item() == pytest.approx(expected, rel=1e-5)


def test_dense_box_map_shape_and_windows():
    pcr = VGGLocaliser(dict(TINY, num_classes=3), regression="per_class").eval()
    scr = VGGLocaliser(dict(TINY, num_classes=3), regression="single_class").eval()
    x = torch.zeros(1, 3, 96, 64)  # pool5 3 x 2, fc6 1 x 1: a 3 x 2 map
    assert pcr.dense(x).shape == (1, 3, 4, 3, 2) and scr.dense(x).shape == (1, 1, 4, 3, 2)
    big = VGGLocaliser(dict(TINY, num_classes=3, input_size=64), regression="per_class")
    assert big.dense(torch.zeros(1, 3, 128, 96)).shape == (1, 3, 4, 3, 2)  # 4x3 - 2 + 1
    full = torch.tensor([0.5, 0.5, 1.0, 1.0]).view(1, 1, 4, 1, 1).expand(1, 1, 4, 3, 2)
    boxes = window_boxes(full, 32)  # window (i, j) = (32 j, 32 i, 32 j + 32, 32 i + 32)
    assert boxes.shape == (1, 6, 1, 4)
    np.testing.assert_allclose(boxes[0, :, 0], [[0, 0, 32, 32], [32, 0, 64, 32],
                                                [0, 32, 32, 64], [32, 32, 64, 64],
                                                [0, 64, 32, 96], [32, 64, 64, 96]])


def _grid(x):
    """The window grid of a 32-pixel net with stride 32 over an N x 3 x H x W input."""
    return (x.shape[-2] - 32) // 32 + 1, (x.shape[-1] - 32) // 32 + 1


class _LeftHalfBoxes(torch.nn.Module):
    """A stand-in SCR localiser whose every window predicts the window's left half,
    (cx, cy, w, h) = (0.25, 0.5, 0.5, 1); it records the input sizes it sees."""

    input_size = 32

    def __init__(self):
        super().__init__()
        self.vgg, self.seen = self, []
        self.box = torch.tensor([0.25, 0.5, 0.5, 1.0])

    def dense(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return self.box.view(1, 1, 4, 1, 1).expand(1, 1, 4, *_grid(x))

    def boxes(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return self.box.view(1, 1, 4)  # N x C' x 4


class _Uniform(torch.nn.Module):
    """A stand-in two-class classifier with equal scores everywhere."""

    input_size = 32

    def dense(self, x):
        return torch.zeros(1, 2, *_grid(x))

    def forward(self, x):
        return torch.zeros(1, 2)


def test_dense_candidates_trim_rescale_and_mirror_back():
    net = _LeftHalfBoxes()
    # 140 x 64 at Q = 32 -> 70 x 32 (factor 2); 70 mod 32 = 6 -> 3 pixels trimmed each side:
    # windows at x = 3 and 35 of the scaled image, left halves [3, 19] and [35, 51]; the
    # mirrored view's left halves are right halves back in the image: [19, 35] and [51, 67].
    found = candidates(net, _Uniform(), Image.new("RGB", (140, 64)), [32], "dense",
                       [{}, {}], flip=True)
    assert net.seen[0] == (32, 64)  # the trimmed view
    xs = sorted((float(b[0]), float(b[2])) for b in found.boxes[:, 0])
    expected = [(2 * a, 2 * b) for a, b in [(3, 19), (19, 35), (35, 51), (51, 67)]]
    np.testing.assert_allclose(xs, expected)
    np.testing.assert_allclose(found.boxes[:, 0, 1], 0.0)
    np.testing.assert_allclose(found.boxes[:, 0, 3], 64.0)
    np.testing.assert_allclose(found.confidences, 0.5)  # uniform softmax of two classes
    np.testing.assert_allclose(found.posterior, [0.5, 0.5])


def test_centre_candidates_map_the_crop_box_back():
    net = _LeftHalfBoxes()
    # 100 x 40 at Q = 40: the central 32 square starts at x = 34, y = 4; its left half is
    # [34, 50] x [4, 36]; at Q = 80 (200 x 80, factor 1/2) it is [84, 100] x [24, 56] / 2.
    found = candidates(net, _Uniform(), Image.new("RGB", (100, 40)), [40, 80], "center", [{}, {}])
    np.testing.assert_allclose(found.boxes[:, 0], [[34, 4, 50, 36], [42, 12, 50, 28]])
    assert net.seen == [(32, 32)] * 2


@pytest.mark.parametrize("backend,precision,atol", [("auto", "auto", 1e-4),
                                                     ("eager", "bf16", 5e-2)])
def test_the_nets_run_on_the_resolved_paths_with_the_eager_boxes(backend, precision, atol):
    """evaluate() runs both nets through the inference resolver (compiled_nets): the same
    candidates as the eager nets, up to float rounding (bf16: the weights cast once)."""
    from vggkit.localisation.candidates import BoxNet, compiled_nets
    from vggkit.factory import build_vgg
    torch.manual_seed(0)
    loc = VGGLocaliser(dict(TINY, num_classes=3, init="glorot"), regression="per_class").eval()
    cls = build_vgg(num_classes=3, init="glorot", **TINY).eval()
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), np.uint8))
    nets, fast_cls = compiled_nets([BoxNet(loc, [40, 64], {})], cls, ["center", "dense"],
                                   backend, precision)
    assert nets[0].model.vgg.choices.keys() == fast_cls.choices.keys() == {"logits", "dense"}
    for protocol in ("center", "dense"):
        eager = candidates(loc, cls, img, [40, 64], protocol, [{}, {}], flip=True)
        fast = candidates(nets[0].model, fast_cls, img, [40, 64], protocol, [{}, {}], flip=True)
        for field in ("boxes", "confidences", "posterior"):
            np.testing.assert_allclose(getattr(fast, field), getattr(eager, field),
                                       atol=atol * (64 if field == "boxes" else 1))


def test_fc_only_finetuning_freezes_the_convs():
    model = VGGLocaliser(dict(TINY, num_classes=3), finetune="fc").train()
    assert not any(p.requires_grad for p in model.vgg.features.parameters())
    assert all(p.requires_grad for p in model.vgg.head.parameters())


def test_init_from_a_classifier_copies_all_but_fc8(tmp_path):
    from vggkit.factory import build_vgg
    from vggkit.models import save_checkpoint
    cls = build_vgg(num_classes=3, init="kaiming", **TINY)
    save_checkpoint(str(tmp_path / "cls.pth"), cls.state_dict(), {})
    loc = VGGLocaliser(dict(TINY, num_classes=3, init="from_checkpoint",
                            init_checkpoint=str(tmp_path / "cls.pth")), regression="per_class")
    mine, theirs = loc.vgg.state_dict(), cls.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs if not k.startswith("head.fc8"))
    assert mine["head.fc8.weight"].shape == (12, 16, 1, 1)


# -- annotations and datasets -------------------------------------------------------------
XML = """<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height>
<depth>3</depth></size>{objects}</annotation>"""
OBJECT = ("<object><name>{cls}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
          "<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>")


def write_xml(path, boxes, w=500, h=375, name="ILSVRC2012_val_00000001"):
    objects = "".join(OBJECT.format(cls=c, b=b) for c, b in boxes)
    path.write_text(XML.format(name=name, w=w, h=h, objects=objects))
    return str(path)


def test_xml_reading(tmp_path):
    record = read_xml(write_xml(tmp_path / "a.xml", [("n01751748", (111, 108, 441, 347)),
                                                     ("n01751748", (0, 0, 500, 375))]))
    assert record.names == ["n01751748"] * 2 and record.size == (500, 375)
    assert record.boxes == [[111, 108, 441, 347], [0, 0, 500, 375]]


@pytest.mark.parametrize("boxes, fault", [
    ([], "has no <object>"),
    ([("n1", (10, 10, 600, 20))], "outside the 500x375 image (xmax 600 > width 500)"),
    ([("n1", (10, 10, 10, 20))], "zero area (xmax <= xmin)"),
])
def test_bad_xml_names_the_file_and_fault(tmp_path, boxes, fault):
    path = write_xml(tmp_path / "bad.xml", boxes)
    with pytest.raises(AnnotationError, match="bad.xml") as info:
        read_xml(path)
    assert fault in str(info.value) and isinstance(info.value, UserError)


def test_unknown_class_names_the_file(tmp_path):
    record = read_xml(write_xml(tmp_path / "a.xml", [("n99", (1, 1, 5, 5))]))
    with pytest.raises(AnnotationError, match=r"a\.xml.*class 'n99' is not one of the 2"):
        label_records([record], ["n01", "n02"])


def test_clip_boxes_instead_of_raising(tmp_path):
    record = read_xml(write_xml(tmp_path / "a.xml", [("n1", (-5, 10, 600, 20))]), clip=True)
    assert record.boxes == [[0, 10, 500, 20]]


def test_csv_and_json_tables(tmp_path):
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text("path,class,xmin,ymin,xmax,ymax\na.png,cat,1,2,3,4\nb.png,dog,0,0,5,5\n"
                        "a.png,dog,2,2,6,6\n")
    records, classes = read_table(str(csv_path), lambda p: (10, 10))
    assert [r.path for r in records] == ["a.png", "b.png"] and classes is None
    assert records[0].names == ["cat", "dog"] and records[0].boxes[1] == [2, 2, 6, 6]
    json_path = tmp_path / "boxes.json"
    json_path.write_text(json.dumps({"classes": ["dog", "cat"], "boxes": [
        {"path": "a.png", "class": "cat", "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}]}))
    records, classes = read_table(str(json_path))
    assert classes == ["dog", "cat"] and records[0].boxes == [[1, 2, 3, 4]]


@pytest.mark.parametrize("body, fault", [
    ("path,class,xmin,ymin,xmax\na.png,cat,1,2,3\n", "lacks column(s) ymax"),
    ("path,class,xmin,ymin,xmax,ymax\na.png,cat,1,2,three,4\n",
     "line 2: xmax 'three' is not a number"),
    ("path,class,xmin,ymin,xmax,ymax\na.png,cat,1,2,30,4\n",
     "line 2 (cat): box (1, 2, 30, 4) lies outside the 10x10 image"),
    ("path,class,xmin,ymin,xmax,ymax\na.png,cat,1,4,3,4\n", "zero area (ymax <= ymin)"),
])
def test_bad_csv_names_the_file_and_fault(tmp_path, body, fault):
    (tmp_path / "boxes.csv").write_text(body)
    with pytest.raises(AnnotationError, match="boxes.csv") as info:
        read_table(str(tmp_path / "boxes.csv"), lambda p: (10, 10))
    assert fault in str(info.value)


def test_box_list_dataset(tmp_path):
    for name, size in (("a.png", (40, 30)), ("b.png", (20, 20))):
        Image.new("RGB", size).save(tmp_path / name)
    (tmp_path / "boxes.csv").write_text("path,class,xmin,ymin,xmax,ymax\na.png,dog,1,2,30,20\n"
                                        "b.png,cat,0,0,20,20\n")
    ds = BoxList(str(tmp_path), pipeline=[dict(type="LoadBoxImage"), dict(type="PackBoxInputs")])
    assert ds.metainfo["classes"] == ("cat", "dog") and len(ds) == 2
    info = ds.get_data_info(0)
    assert info["gt_label"] == 1 and info["gt_bboxes"].tolist() == [[1, 2, 30, 20]]
    assert int(ds[0]["data_samples"].gt_label[0]) == 1
    (tmp_path / "boxes.csv").write_text("path,class,xmin,ymin,xmax,ymax\nnone.png,dog,1,2,3,4\n")
    with pytest.raises(AnnotationError, match="image 'none.png' does not exist"):
        BoxList(str(tmp_path))


def test_ilsvrc_layout(tmp_path):
    (tmp_path / "Data/CLS-LOC/val").mkdir(parents=True)
    (tmp_path / "Annotations/CLS-LOC/val").mkdir(parents=True)
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01 tench\nn02 goldfish\n")
    Image.new("RGB", (50, 40)).save(tmp_path / "Data/CLS-LOC/val/v1.JPEG", format="JPEG")
    write_xml(tmp_path / "Annotations/CLS-LOC/val/v1.xml", [("n02", (5, 5, 45, 35))], 50, 40, "v1")
    ds = ILSVRCLocalisation(str(tmp_path), split="val")
    assert ds.metainfo["classes"] == ("n01", "n02")
    info = ds.get_data_info(0)
    assert info["img_path"].endswith("v1.JPEG") and info["gt_label"] == 1
    write_xml(tmp_path / "Annotations/CLS-LOC/val/v1.xml", [("n07", (5, 5, 45, 35))], 50, 40, "v1")
    with pytest.raises(AnnotationError, match="v1.xml.*class 'n07'"):
        ILSVRCLocalisation(str(tmp_path), split="val").full_init()


def test_plugin_registers_the_components():
    from vggkit.registry import DATASETS, METRICS, MODELS, TRANSFORMS
    assert MODELS.get("VGGLocaliser") is VGGLocaliser
    assert TRANSFORMS.get("BoxRandomScaleCrop") is T.BoxRandomScaleCrop
    assert DATASETS.get("ILSVRCLocalisation") is ILSVRCLocalisation
    assert METRICS.get("BoxError") is not None


def test_command_errors_are_one_line(tmp_path, capsys):
    from vggkit.commands.localise import main
    assert main(["configs/loc/tiny/digits_pcr.py"]) == 2
    assert "missing CHECKPOINT, cls-config, cls-checkpoint" in capsys.readouterr().err
    code = main([str(REPO / "configs/tiny/vgg_a_tiny.py"), "x.pth", "--cls-config", "c.py",
                 "--cls-checkpoint", "c.pth"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not 'VGGLocaliser'" in err


# -- end to end ---------------------------------------------------------------------------
@pytest.mark.slow
def test_train_and_localise_beats_the_centre_box(tmp_path):
    """Classifier and SCR net trained with tools/train.py on 400 canvases, evaluated by
    tools/localise.py on 100: the boxes must beat the centre-box baseline."""
    from vggkit.localisation.canvases import write_canvases
    data = write_canvases(str(tmp_path / "data"), n_train=400, n_val=100, seed=3)
    cfg = REPO / "configs/loc/tiny"

    def run(tool, *args):
        proc = run_tool(tool, list(args), timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]

    run("train.py", str(cfg / "digits_cls.py"), "--data-root", data, "--work-dir",
        str(tmp_path / "cls"), "--seed", "0", "--cfg-options", "train_cfg.max_epochs=3")
    cls = (tmp_path / "cls" / "last_checkpoint").read_text().strip()
    run("train.py", str(cfg / "digits_scr.py"), "--data-root", data, "--work-dir",
        str(tmp_path / "scr"), "--seed", "0", "--cfg-options", "train_cfg.max_epochs=5",
        f"model.vgg.init_checkpoint={cls}")
    out = tmp_path / "res.json"
    run("localise.py", str(cfg / "digits_scr.py"), (tmp_path / "scr" / "last_checkpoint")
        .read_text().strip(), "--cls-config", str(cfg / "digits_cls.py"), "--cls-checkpoint",
        cls, "--data-root", data, "--out", str(out), "--plot", str(tmp_path / "boxes.png"))
    res = json.loads(out.read_text())
    net = min(r["gt_class_loc_error"] for r in res["results"].values())
    base = res["baselines"]["centre_box"]["gt_class_loc_error"]
    # How the floor was chosen (issue 25): this pipeline with training seeds 0-4, each on
    # oneDNN's default kernels (AVX-512 BF16 here) and with ONEDNN_MAX_CPU_ISA=AVX2, gave
    # 51/51, 60/61, 58/65, 65/66, 66/65 % against the centre box's 70 % (100 canvases; seed 0
    # under this suite's forked tools: 55 %). The old floor, base - 15, held for seed 0 on
    # AVX2 only. The net must beat the box; the worst of the ten runs does so by 4 points.
    assert net < base, (net, base)
    top5 = res["baselines"]["centre_box"]["top5_loc_error"]
    # the same ten runs: dense top-5 70-85 % against the box's 83-90 %, 3 to 13 points better
    assert res["results"]["dense"]["top5_loc_error"] < top5
    assert (tmp_path / "boxes.png").stat().st_size > 1000 and math.isfinite(net)
