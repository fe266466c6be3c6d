"""Initialisation (Sect. 3.1), checkpoint loading and preprocessing records."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vggkit.safe_load import UnsafeCheckpointError
from vggkit.factory import build_vgg
from vggkit.models import (DEFAULT_PREPROCESS, init_from_checkpoint, load_checkpoint, normalize,
                           save_checkpoint)

SMALL = dict(width_mult=0.0625, fc_width=16, num_classes=5, input_size=32)


def test_paper_init_std_and_zero_biases():
    torch.manual_seed(0)
    model = build_vgg("A", init="paper", init_std=0.05, **SMALL)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    assert weights.mean().abs() < 0.005
    assert weights.std().item() == pytest.approx(0.05, rel=0.05)
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


def test_glorot_bound_uses_fc_fans_for_the_head():
    model = build_vgg("A", init="glorot", width_mult=0.0625, fc_width=16, num_classes=5)
    fc6 = model.head.fc6.weight  # a 7x7 conv standing for Linear(32*49 -> 16)
    bound = math.sqrt(6 / (32 * 49 + 16))
    assert fc6.abs().max() <= bound and fc6.abs().max() > 0.9 * bound
    conv = model.features[0].weight  # 3x3 conv 3 -> 4
    conv_bound = math.sqrt(6 / (3 * 9 + 4 * 9))
    assert conv.abs().max() <= conv_bound


def test_unknown_init_and_missing_checkpoint():
    with pytest.raises(ValueError, match="glorot"):
        build_vgg("A", init="xavier-ish", **SMALL)
    with pytest.raises(ValueError, match="init_checkpoint"):
        build_vgg("A", init="from_checkpoint", **SMALL)


def test_from_checkpoint_copies_paper_layers_from_net_a(tmp_path, capsys):
    torch.manual_seed(0)
    net_a = build_vgg("A", init="glorot", **SMALL)
    path = tmp_path / "net_a.pth"
    save_checkpoint(str(path), {f"vgg.{k}": v for k, v in net_a.state_dict().items()},
                    {"arch": "A"})
    net_d = build_vgg("D", init="from_checkpoint", init_checkpoint=str(path), **SMALL)
    printed = capsys.readouterr().out
    assert "7 layers copied" in printed and "random  conv1_2" in printed
    # the paper: A's first four convs (conv1_1, conv2_1, conv3_1, conv3_2) and fc6-fc8
    a_convs = [m for m in net_a.features if isinstance(m, nn.Conv2d)]
    d = dict(net_d.named_modules())
    for a_conv, d_index in zip(a_convs[:4], (0, 5, 10, 12)):
        assert torch.equal(d[f"features.{d_index}"].weight, a_conv.weight)
    assert not torch.equal(d["features.14"].weight.std(), a_convs[4].weight.std())  # conv3_3 random
    for fc in ("fc6", "fc7", "fc8"):
        assert torch.equal(getattr(net_d.head, fc).weight, getattr(net_a.head, fc).weight)


def test_from_checkpoint_report_and_shape_errors():
    net_a = build_vgg("A", init="glorot", **SMALL)
    net_e = build_vgg("E", init="paper", **SMALL)
    report = init_from_checkpoint(net_e, net_a.state_dict(), conv_layers=2, fc_layers=2)
    assert [c[0] for c in report.copied] == ["conv1_1", "conv2_1", "fc7", "fc8"]
    assert "fc6" in report.random and "conv5_4" in report.random
    other = build_vgg("E", init="paper", **{**SMALL, "num_classes": 7})
    with pytest.raises(ValueError, match=r"fc=\('fc6', 'fc7'\)"):  # the hint's fix works (test_finetune)
        init_from_checkpoint(other, net_a.state_dict())
    # 'order' pairs the i-th convs: A's conv2_1 (4->8) cannot go to E's conv1_2 (4->4)
    with pytest.raises(ValueError, match="shape"):
        init_from_checkpoint(build_vgg("E", **SMALL), net_a.state_dict(), match="order")


def test_load_checkpoint_prefix_meta_and_errors(tmp_path):
    model = build_vgg("B", init="glorot", **SMALL)
    path = tmp_path / "runner.pth"
    record = {"mean": [1.0, 2.0, 3.0], "std": [1.0, 1.0, 1.0], "bgr": False}
    save_checkpoint(str(path), {f"vgg.{k}": v for k, v in model.state_dict().items()},
                    {"arch": "B", "num_classes": 5, "preprocess": record})
    fresh = build_vgg("B", init="paper", **SMALL)
    meta = load_checkpoint(fresh, str(path))
    assert meta["preprocess"] == record
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 fresh.state_dict().values()))
    with pytest.raises(ValueError) as info:
        load_checkpoint(build_vgg("B", init="none", **{**SMALL, "num_classes": 9}), str(path))
    assert str(path) in str(info.value) and "(5, 16, 1, 1)" in str(info.value)
    assert "(9, 16, 1, 1)" in str(info.value)
    with pytest.raises(ValueError, match="arch=shallow-B"):
        load_checkpoint(build_vgg("shallow-B", init="none", **SMALL), str(path), strict=False)
    # A-LRN's LRN shifts the conv indices: the error names both configurations
    net_a = tmp_path / "a.pth"
    save_checkpoint(str(net_a), build_vgg("A", init="none", **SMALL).state_dict(), {"arch": "A"})
    with pytest.raises(ValueError, match=r"records \{'arch': 'A'\}.*arch=A-LRN"):
        load_checkpoint(build_vgg("A-LRN", init="none", **SMALL), str(net_a))
    bare = tmp_path / "bare.pth"
    torch.save(model.state_dict(), bare)
    assert load_checkpoint(build_vgg("B", init="none", **SMALL), str(bare))["preprocess"] == \
        DEFAULT_PREPROCESS


class Payload:
    """Stands for an arbitrary pickled object (which could run code on load)."""


def test_load_checkpoint_refuses_pickled_code_and_foreign_layouts(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": Payload()}, evil)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_checkpoint(build_vgg("A", init="none", **SMALL), str(evil))
    foreign = tmp_path / "tv.pth"
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(ValueError, match="--src torchvision"):
        load_checkpoint(build_vgg("A", init="none", **SMALL), str(foreign))


def test_normalize_matches_hand_computation():
    x = torch.tensor([[[[10]], [[20]], [[30]]]], dtype=torch.uint8)  # one RGB pixel
    caffe = {"mean": [1.0, 2.0, 3.0], "std": [1.0, 1.0, 1.0], "bgr": True}
    torchvision_like = {"mean": [0.0, 10.0, 20.0], "std": [2.0, 5.0, 10.0], "bgr": False}
    assert normalize(x, caffe).flatten().tolist() == [27.0, 18.0, 9.0]  # B, G, R
    assert normalize(x, torchvision_like).flatten().tolist() == [5.0, 2.0, 1.0]
    assert normalize(x).flatten().tolist() == pytest.approx([10 - 123.68, 20 - 116.779,
                                                             30 - 103.939])
    with pytest.raises(ValueError, match="mean"):
        normalize(x, {"mean": [1.0, 2.0]})
