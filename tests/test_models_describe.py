"""``vggkit describe``: Table 1 column, parameters, multiply-adds, receptive fields."""
from __future__ import annotations

import json

import pytest

from vggkit.commands.describe import main
from vggkit.models.describe import describe

PAPER_PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848,
                "C": 133_638_952, "D": 138_357_544, "E": 143_667_240}


def rf(info, name):
    return next(l["receptive_field"] for l in info["layers"] if l["name"] == name)


@pytest.mark.parametrize("arch,expected", PAPER_PARAMS.items())
def test_params_match_paper(arch, expected):
    assert describe(arch)["params"] == expected


def test_receptive_fields_by_hand():
    info = describe("D")
    # r_out = r_in + (k - 1) * stride_so_far
    assert [rf(info, n) for n in ("conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2")] \
        == [3, 5, 6, 10, 14, 16]
    # three stacked 3x3 convs see as much as one 7x7 (at stride 4 in block 3)
    assert rf(info, "conv3_3") - rf(info, "pool2") == (7 - 1) * 4
    assert rf(info, "conv5_3") == 196 and rf(info, "pool5") == 212
    assert info["receptive_field"] == 196  # of the last conv
    c = describe("C")  # 1x1 convs add depth, not receptive field
    assert rf(c, "conv3_3") == rf(c, "conv3_2")
    shallow = describe("shallow-B")  # one 5x5 sees what two 3x3 see
    assert rf(shallow, "conv1_1") == rf(describe("B"), "conv1_2") == 5


def test_vgg16_multiply_adds():
    info = describe("vgg16")
    assert info["macs"] / 1e9 == pytest.approx(15.47, abs=0.005)  # the usual 15.47 GMACs
    conv1_2 = next(l for l in info["layers"] if l["name"] == "conv1_2")
    assert conv1_2["macs"] == 224 * 224 * 64 * 64 * 9


def test_json_cli(capsys):
    assert main(["vgg19", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"arch", "params", "macs", "layers", "receptive_field"} <= set(info)
    assert info["arch"] == "E" and info["weight_layers"] == 19
    assert [l["notation"] for l in info["layers"][:3]] == ["conv3-64", "conv3-64", "maxpool"]


def test_table_cli_and_bad_arch(capsys):
    assert main(["A-LRN"]) == 0
    out = capsys.readouterr().out
    assert "LRN" in out and "132,863,336" in out and "11 weight layers" in out
    assert main(["F"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("vggkit describe: error: unknown VGG arch 'F'; known: A,")
