"""Evaluation's crops per forward pass: the memory bound from the net's layer widths, the
user's override, and posteriors that do not depend on how the crops are cut into passes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import random_image, tiny_vgg, views_at
from vggkit.evaluation.loading import ModelEntry
from vggkit.evaluation.loop import compile_nets, run_batch
from vggkit.evaluation.strategies import build_strategy, grid_offsets
from vggkit.inference import pass_cap as cap_module
from vggkit.inference.pass_cap import (PASS_CROPS_ENV, activation_bytes_per_pixel, memory_crops,
                                       pass_cap)
from vggkit.factory import build_vgg

#: identity preprocessing: the net sees the raw 0-255 pixel values
RAW = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "bgr": False}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return tiny_vgg(7)


def test_memory_bound_from_layer_widths_hand_computed(monkeypatch):
    # net A at 1/16 width: conv1 takes 3 channels to 4 at full resolution, 3 + 4 = 7 values
    # per input pixel held at once (ReLU is in place: 4; pool1: 4 + 4/4; conv2: (4 + 8)/4)
    tiny_a = tiny_vgg(7)
    assert activation_bytes_per_pixel(tiny_a) == 7 * 4
    # net D at 1/16 width: conv1_2 holds 4 + 4 channels at full resolution
    tiny_d = build_vgg("D", num_classes=3, width_mult=1 / 16, fc_width=8, input_size=32)
    assert activation_bytes_per_pixel(tiny_d) == 8 * 4
    # batch norm is not in place: conv1_1's 4 channels in and BN's 4 out
    assert activation_bytes_per_pixel(build_vgg("A", num_classes=3, width_mult=1 / 16,
                                                fc_width=8, input_size=32,
                                                batch_norm=True)) == 8 * 4
    # full-width VGG-16's conv1_2, from its widths alone: (64 + 64) * 4 B, 24.5 MiB a crop
    full_d = nn.Module()
    full_d.features = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.MaxPool2d(2, 2), nn.Conv2d(64, 128, 3, padding=1))
    assert activation_bytes_per_pixel(full_d) * 224 ** 2 == 512 * 224 ** 2
    # half of 1 MiB over 28 B x 32 x 32 per crop = 18.3 -> 18 crops; at least one
    assert memory_crops(28, 2 ** 20, 32) == 18
    assert memory_crops(28, 10, 32) == 1 and memory_crops(None, 2 ** 20, 32) is None
    # what the strategies get: memory alone, split over the ranks sharing the machine
    monkeypatch.setattr(cap_module, "_mem_available", lambda: 2 ** 20)
    monkeypatch.delenv(PASS_CROPS_ENV, raising=False)
    cap = pass_cap(tiny_a)
    assert (cap.crops, cap.source, cap.pixels) == (18, "memory", 18 * 32 * 32)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert pass_cap(tiny_a).crops == 9  # 0.5 MiB per rank: 9.1 crops


def test_a_net_of_unknown_widths_has_no_memory_bound(monkeypatch):
    monkeypatch.delenv(PASS_CROPS_ENV, raising=False)

    class Plain(nn.Module):
        input_size = 32

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

    assert activation_bytes_per_pixel(Plain()) is None
    cap = pass_cap(Plain())
    assert (cap.crops, cap.source, cap.pixels) == (None, "none", None)


def test_the_override_wins(tiny, monkeypatch):
    assert build_strategy("multicrop", pass_crops=3).pass_pixels(tiny, "logits") == 3 * 32 ** 2
    monkeypatch.setenv(PASS_CROPS_ENV, "2")
    assert build_strategy("dense").pass_pixels(tiny, "dense") == 2 * 32 ** 2
    assert build_strategy("dense", pass_crops=5).pass_pixels(tiny, "dense") == 5 * 32 ** 2
    combined = build_strategy("dense+multicrop", pass_crops=6)
    assert [p.pass_crops for p in combined.parts] == [6, 6]
    combined.prepare(tiny)
    monkeypatch.setenv(PASS_CROPS_ENV, "none")  # only the batch size counts
    assert build_strategy("center").pass_pixels(tiny, "logits") is None
    monkeypatch.setenv(PASS_CROPS_ENV, "many")
    with pytest.raises(ValueError, match=PASS_CROPS_ENV):
        pass_cap(tiny)
    with pytest.raises(ValueError, match="pass_crops must be >= 1"):
        build_strategy("multicrop", pass_crops=0)


def _multicrop_by_hand(net, views, q, grid=5):
    """Per image: the mean softmax of its grid of crops and their mirrors, one at a time."""
    rows = []
    for v in views[q]:
        x = v.float()
        crops = [x[:, t:t + 32, l:l + 32] for t in grid_offsets(x.shape[1], 32, grid)
                 for l in grid_offsets(x.shape[2], 32, grid)]
        posts = [F.softmax(net(c[None]), 1)[0] for c in crops + [c.flip(-1) for c in crops]]
        rows.append(torch.stack(posts).mean(0))
    return torch.stack(rows)


def _dense_by_hand(net, views, q):
    """Per image: softmax of the mean score map, averaged with its mirror's."""
    return torch.cat([(F.softmax(net.dense(v[None].float()).mean((2, 3)), 1)
                       + F.softmax(net.dense(v[None].float().flip(-1)).mean((2, 3)), 1)) / 2
                      for v in views[q]])


class PassSizes:
    """The tiny net, recording the batch of every forward pass (crops and score maps)."""

    def __init__(self, net):
        self.net, self.sizes = net, []
        self.input_size = net.input_size

    def parameters(self):
        return self.net.parameters()

    def __call__(self, x):
        self.sizes.append(x.shape[0])
        return self.net(x)

    def dense(self, x):
        self.sizes.append(x.shape[0])
        return self.net.dense(x)


@pytest.mark.parametrize("name", ["multicrop", "dense"])
def test_posteriors_do_not_depend_on_the_cap(tiny, name, monkeypatch):
    monkeypatch.delenv(PASS_CROPS_ENV, raising=False)
    images = [random_image(40, 60, 0), random_image(40, 60, 1), random_image(64, 48, 2)]
    views = views_at(images, [48])
    got = {}
    # dense: images of 48x72 (two) and 64x48, each with its mirror; one crop's pixels
    # hold one image a pass. Multi-crop: 150 crops, 64 (the batch size) at most
    passes = {("multicrop", 1): {1}, ("multicrop", 1000): {64, 22},
              ("dense", 1): {2}, ("dense", 1000): {4, 2}}
    for crops in (1, 1000):
        net = PassSizes(tiny)
        got[crops] = build_strategy(name, batch_size=64, pass_crops=crops)(net, views, [48], RAW)
        assert set(net.sizes) == passes[name, crops]
    with torch.no_grad():
        expected = (_multicrop_by_hand if name == "multicrop" else _dense_by_hand)(tiny, views, 48)
    torch.testing.assert_close(got[1], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1000], expected, rtol=1e-5, atol=1e-6)


def test_compile_nets_derives_the_caps_before_the_images(tiny, monkeypatch):
    monkeypatch.delenv(PASS_CROPS_ENV, raising=False)
    entry = ModelEntry(tiny, RAW, [32, 48])
    strategies = {n: build_strategy(n) for n in ("dense", "multicrop", "dense+multicrop")}
    derived = []
    monkeypatch.setattr(cap_module, "available_memory",
                        lambda device: derived.append(device) or 2 ** 20)
    compile_nets([entry], strategies, "eager", "fp32")
    assert len(derived) == 4  # dense and multi-crop, and the same two inside the combination
    run_batch([entry], strategies, views_at([random_image(40, 60)], [32, 48]))
    assert len(derived) == 4  # evaluating derives nothing more


def test_an_evaluation_derives_the_cap_once_per_model(monkeypatch):
    """Every batch of images asks for the cap; it is derived once per model (memory coming
    and going does not change the passes), and another model gets its own, not a stale one."""
    monkeypatch.delenv(PASS_CROPS_ENV, raising=False)
    keyed = []  # every derivation
    monkeypatch.setattr(cap_module, "_mem_available", lambda: keyed.append("logits") or 2 ** 20)
    # net A: 28 B per input pixel, 18 crops of 32x32 in half of 1 MiB; net D: 32 B, 16 crops
    nets = {"A": tiny_vgg(7),
            "D": build_vgg("D", num_classes=7, width_mult=1 / 16, fc_width=8, input_size=32).eval()}
    sizes = {name: [] for name in nets}
    for name, net in nets.items():
        net.register_forward_pre_hook(lambda _, args, name=name: sizes[name].append(len(args[0])))
    strategy = build_strategy("multicrop", batch_size=64)
    # two images at Q=48: 2 x 25 crops x 2 flips = 100 crops a batch, in passes of the cap
    views = views_at([random_image(40, 60, 0), random_image(64, 48, 1)], [48])
    for _ in range(3):
        strategy(nets["A"], views, [48], RAW)
    assert keyed == ["logits"]
    assert sizes["A"] == [18] * 5 + [10] + [18] * 5 + [10] + [18] * 5 + [10]
    strategy(nets["D"], views, [48], RAW)
    assert keyed == ["logits"] * 2 and sizes["D"] == [16] * 6 + [4]
    assert strategy.pass_pixels(nets["A"], "logits") == 18 * 32 ** 2 and len(keyed) == 2
