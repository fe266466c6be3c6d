"""Evaluation strategies (Sect. 3.2) against hand-computed expectations, eager and on the
inference backends (forced, or measured 'auto')."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vggkit.engine.scales import default_test_scales
from vggkit.inference.views import image_views
from helpers import TenCropPlugin, random_image, tiny_vgg, views_at
from vggkit.evaluation.loading import ModelEntry
from vggkit.evaluation.loop import compile_nets, run_batch
from vggkit.evaluation.strategies import (MultiCrop, UnknownStrategyError, build_strategy,
                                          grid_offsets)
from vggkit.inference import autotune
from vggkit.inference.backends import available_backends
from vggkit.inference.runners import CompiledNet

#: identity preprocessing: the net sees the raw 0-255 pixel values
RAW = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "bgr": False}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return tiny_vgg(7)


class CropRecorder(nn.Module):
    """A stand-in net: records the top-left pixel of every crop it is given.

    The test image stores its row index in channel 0 and column index in
    channel 1, so a crop's top-left pixel is its (top, left) offset -- or, for a
    mirrored crop, (top, left + crop - 1).
    """

    input_size = 32
    num_classes = 3

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, int, int]] = []
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        for crop in x:
            self.seen.append((int(crop[0, 0, 0]), int(crop[1, 0, 0]), int(crop[1, 0, -1])))
        return torch.zeros(x.shape[0], self.num_classes)


def _coordinate_image(h: int, w: int) -> torch.Tensor:
    rows = torch.arange(h, dtype=torch.uint8)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.uint8)[None, :].expand(h, w)
    return torch.stack([rows, cols, torch.zeros(h, w, dtype=torch.uint8)])


def test_grid_offsets_hand_computed():
    # span 16: 0, 4, 8, 12, 16; span 77: i*77/4 = 0, 19.25, 38.5, 57.75, 77 -> rounded half up
    # for the first half (0, 19, 39) and mirrored for the rest (77-19, 77-0)
    assert grid_offsets(48, 32) == [0, 4, 8, 12, 16]
    assert grid_offsets(301, 224) == [0, 19, 39, 58, 77]
    assert grid_offsets(256, 224) == [0, 8, 16, 24, 32]
    assert grid_offsets(224, 224) == [0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="does not fit"):
        grid_offsets(200, 224)


def test_multicrop_positions_form_5x5_grid_with_corners_and_flips():
    model = CropRecorder()
    image = _coordinate_image(48, 70)  # spans 16 and 38
    build_strategy("multicrop", batch_size=7).scale_posteriors(model, [image], RAW)
    tops, lefts = [0, 4, 8, 12, 16], [0, 10, 19, 28, 38]  # 38/4 = 9.5 -> 10, mirrored 28
    expected = sorted([(t, l, l + 31) for t in tops for l in lefts]          # plain crops
                      + [(t, l + 31, l) for t in tops for l in lefts])       # mirrored crops
    assert sorted(model.seen) == expected
    corners = {(0, 0), (0, 38), (16, 0), (16, 38)}
    assert corners <= {(t, l) for t, l, _ in model.seen}
    assert max(model.batches) == 7  # crops are batched, batch_size at a time


def test_crop_count_is_150_for_three_scales():
    model = CropRecorder()
    views = views_at([random_image(40, 60), random_image(64, 48, 1)], [32, 48, 64])
    build_strategy("multicrop", batch_size=64)(model, views, [32, 48, 64], RAW)
    assert len(model.seen) == 2 * 150  # two images, 5*5*2 per scale, three scales
    model = CropRecorder()
    build_strategy("center")(model, views, [32, 48, 64], RAW)
    assert len(model.seen) == 2 * 3


def test_dense_at_crop_scale_on_square_image_equals_center(tiny):
    images = [random_image(50, 50, s) for s in range(3)]
    views = views_at(images, [32])
    center = build_strategy("center")(tiny, views, [32], RAW)
    dense_noflip = build_strategy("dense", flip=False)(tiny, views, [32], RAW)
    torch.testing.assert_close(dense_noflip, center, rtol=1e-5, atol=1e-6)
    # with the flip (the default) dense is the mean of the image's and its mirror's centre
    mirrored = {32: [t.flip(-1) for t in views[32]]}
    center_m = build_strategy("center")(tiny, mirrored, [32], RAW)
    dense = build_strategy("dense")(tiny, views, [32], RAW)
    torch.testing.assert_close(dense, (center + center_m) / 2, rtol=1e-5, atol=1e-6)


def test_dense_averages_score_map_then_softmax(tiny):
    # independent re-derivation: a 64x96 image gives a 2x3 score map; average, then softmax
    img = random_image(64, 96)
    x = image_views(img, [64])[64][None].float()
    scores = tiny.dense(x)
    assert scores.shape[-2:] == (2, 3)  # (64/32 - 1 + 1, 96/32 - 1 + 1)
    expected = F.softmax(scores.mean((2, 3)), 1)
    got = build_strategy("dense", flip=False)(tiny, views_at([img], [64]), [64], RAW)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["dense", "multicrop", "dense+multicrop"])
def test_flip_average_is_symmetric(tiny, name):
    # sizes where pooling never truncates (multiples of 32) and grid spans are even,
    # so the image and its mirror see exactly mirrored inputs
    img = random_image(64, 96, 3)
    mirror = img.transpose(Image.FLIP_LEFT_RIGHT)
    strategy = build_strategy(name, batch_size=16)
    a = strategy(tiny, views_at([img], [64, 128]), [64, 128], RAW)
    b = strategy(tiny, views_at([mirror], [64, 128]), [64, 128], RAW)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a, torch.full_like(a, 1 / 7), atol=1e-4)  # not trivially uniform


def test_dense_batches_equal_sizes_and_keeps_order(tiny):
    images = [random_image(40, 60, 0), random_image(50, 50, 1), random_image(40, 60, 2), random_image(60, 40, 3)]
    views = views_at(images, [32])
    calls = []
    original = tiny.dense

    def spy(x):
        calls.append(tuple(x.shape))
        return original(x)

    tiny.dense = spy
    try:
        batched = build_strategy("dense", batch_size=8)(tiny, views, [32], RAW)
    finally:
        del tiny.dense
    assert sorted(c[0] for c in calls) == [2, 2, 4]  # 2 singletons + 1 pair, each with flips
    one_by_one = torch.cat([build_strategy("dense")(tiny, {32: [v]}, [32], RAW)
                            for v in views[32]])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-6)


def test_multiscale_is_mean_of_single_scales(tiny):
    views = views_at([random_image(40, 60)], [32, 48])
    s = build_strategy("multicrop")
    both = s(tiny, views, [32, 48], RAW)
    torch.testing.assert_close(both, (s(tiny, views, [32], RAW) + s(tiny, views, [48], RAW)) / 2)


def test_paper_default_scales():
    assert default_test_scales({"S": 256}) == [224, 256, 288]
    assert default_test_scales({"S": 384}) == [352, 384, 416]
    assert default_test_scales({"S_min": 256, "S_max": 512}) == [256, 384, 512]
    assert default_test_scales({"S": 224}) == [224, 256]  # S-32 < crop: raised to the crop
    assert default_test_scales(None) == [256]
    assert default_test_scales({"S": 40}, crop=32) == [35, 40, 45]  # offset 32*32/224 ~ 5
    assert default_test_scales({"S_min": 32, "S_max": 64}, crop=32) == [32, 48, 64]


def test_bad_inputs(tiny):
    views = views_at([random_image(40, 60)], [32])
    with pytest.raises(ValueError, match="Q=24 is below the crop size 32"):
        build_strategy("center")(tiny, views, [24], RAW)
    with pytest.raises(UnknownStrategyError) as err:
        build_strategy("12crop")
    message = str(err.value)
    assert "'12crop'" in message
    for name in ("center", "dense", "multicrop", "dense+multicrop"):
        assert name in message


@pytest.fixture
def ten_crop_plugin():
    from helpers import register_plugin
    from vggkit.plugins import reload_plugins
    register_plugin(TenCropPlugin, "tencrop")
    yield
    reload_plugins()


def test_plugin_strategy_by_name(ten_crop_plugin):
    model = CropRecorder()
    strategy = build_strategy("10crop")
    assert strategy.name == "10crop"
    strategy.scale_posteriors(model, [_coordinate_image(48, 70)], RAW)
    assert len(model.seen) == 10
    assert {(t, l) for t, l, r in model.seen if r > l} == {(0, 0), (0, 38), (16, 0), (16, 38),
                                                             (8, 19)}
    assert isinstance(build_strategy("multicrop"), MultiCrop)


def _dense_by_hand(net, views, scales, n):
    """Per image: over scales, softmax of the mean score map averaged with its mirror's."""
    rows = []
    for i in range(n):
        per_scale = []
        for q in scales:
            x = views[q][i][None].float()
            per_scale.append((F.softmax(net.dense(x).mean((2, 3)), 1)
                              + F.softmax(net.dense(x.flip(-1)).mean((2, 3)), 1)) / 2)
        rows.append(torch.cat(per_scale).mean(0))
    return torch.stack(rows)


@pytest.mark.parametrize("backend", [b for b in available_backends("dense")
                                     if b in ("onnxruntime", "mkldnn")])
def test_dense_on_a_backend_of_dynamic_size(tiny, backend):
    images = [random_image(40, 60, 0), random_image(50, 50, 1), random_image(64, 96, 2)]  # three sizes per Q
    views = views_at(images, [32, 48])
    net = CompiledNet(tiny, backend, "fp32", dense_size=40)
    got = build_strategy("dense", batch_size=4)(net, views, [32, 48], RAW)
    with torch.no_grad():
        torch.testing.assert_close(got, _dense_by_hand(tiny, views, [32, 48], 3),
                                   rtol=1e-4, atol=1e-5)
    assert net.choices == {"dense": (backend, "fp32")}


@pytest.fixture
def measured(tmp_path, monkeypatch):
    """'auto' measured into a fresh cache file (tests run with VGGKIT_AUTOTUNE=off)."""
    autotune.forget()
    monkeypatch.setenv("VGGKIT_AUTOTUNE", "on")
    monkeypatch.setenv("VGGKIT_AUTOTUNE_CACHE", str(tmp_path / "autotune.json"))
    yield tmp_path / "autotune.json"
    autotune.forget()


def test_auto_probes_each_output_its_strategies_call(tiny, measured):
    model = copy.deepcopy(tiny)
    entry = ModelEntry(model, RAW, [32, 48, 64])
    strategies = {n: build_strategy(n) for n in ("center", "dense")}
    compile_nets([entry], strategies, "auto", "fp32")
    entries = json.loads(measured.read_text())["entries"]
    # key: machine | torch | ort | device | net | output relu | batch x size | candidates
    keys = {k.split(" | ")[5].split()[0]: k for k in entries}
    assert sorted(keys) == ["dense", "logits"]
    # the crops' net at its crop size, at the batch the strategy feeds (32, probed at 8); the
    # score map at the middle scale Q=48, an image and its mirror, without jit
    assert keys["logits"].split(" | ")[6] == "8x32" and "jit fp32" in keys["logits"]
    assert keys["dense"].split(" | ")[6] == "2x48" and "jit" not in keys["dense"].split(" | ")[7]
    assert "jit fp32" not in entries[keys["dense"]]["ms"]
    assert entry.compiled.choices["dense"][0] in ("onnxruntime", "mkldnn", "eager")
    views = views_at([random_image(48, 70, 0), random_image(64, 48, 1)], [32, 48, 64])
    out = run_batch([entry], strategies, views)
    with torch.no_grad():
        torch.testing.assert_close(out["model0/dense"], _dense_by_hand(
            model, views, [32, 48, 64], 2), rtol=1e-4, atol=1e-5)
        # centre crops by hand: the middle of the 5x5 grid, mean over scales
        center = [[F.softmax(model(v[None, :, t:t + 32, l:l + 32].float()), 1)[0]
                   for v in views[q] for t, l in [((v.shape[1] - 32 + 1) // 2,
                                                   (v.shape[2] - 32 + 1) // 2)]]
                  for q in (32, 48, 64)]
        torch.testing.assert_close(out["model0/center"],
                                   torch.stack([torch.stack(c) for c in center]).mean(0),
                                   rtol=1e-4, atol=1e-5)
