"""torchvision VGG weights -> vggkit -> torchvision: same logits, exact round trip.

Full-size nets with random weights (no downloads); models are built on the
meta device and filled directly to skip the slow default initialisation.
"""
from __future__ import annotations


import pytest
import torch
import torchvision
from torch import nn

from vggkit.factory import build_vgg
from vggkit.models import load_checkpoint
from helpers import random_weights
from vggkit.commands.convert import main as convert_main
from vggkit.models.converters import TorchvisionConverter


def torchvision_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return random_weights(getattr(torchvision.models, name)(weights=None))


def empty_vgg(arch: str) -> nn.Module:
    with torch.device("meta"):
        model = build_vgg(arch, init="none")
    return model.to_empty(device="cpu").eval()


def assert_same_logits(reference: nn.Module, model: nn.Module) -> None:
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert expected.abs().max() > 1e-2  # the comparison is not vacuous
    assert (got - expected).abs().max().item() <= 1e-4


def assert_exported_equals(back: dict, reference: nn.Module) -> None:
    ref_sd = reference.state_dict()
    assert set(back) == set(ref_sd)
    assert all(torch.equal(back[k], v) for k, v in ref_sd.items())
    reference.load_state_dict(back)  # torchvision itself accepts it


def test_torchvision_file_conversion_cli_and_export(tmp_path):
    """vgg11 through files and the CLI: saved, converted, loaded, exported."""
    reference = torchvision_model("vgg11")
    src, converted = tmp_path / "vgg11.pth", tmp_path / "converted.pth"
    torch.save(reference.state_dict(), src)
    assert convert_main(["--src", "torchvision", str(src), str(converted)]) == 0
    model = empty_vgg("vgg11")
    meta = load_checkpoint(model, str(converted))
    assert meta["source"] == "torchvision" and meta["arch"] == "A"
    assert meta["preprocess"] == {"mean": [123.675, 116.28, 103.53],
                                  "std": [58.395, 57.12, 57.375], "bgr": False}
    assert_same_logits(reference, model)
    exported = tmp_path / "exported.pth"
    assert convert_main(["--dst", "torchvision", str(converted), str(exported)]) == 0
    assert_exported_equals(torch.load(exported, weights_only=True), reference)


@pytest.mark.parametrize("name,arch", [("vgg16", "D"), ("vgg19", "E"), ("vgg11_bn", "A")])
def test_torchvision_logits_and_round_trip(name, arch):
    """The same in memory (the file path is covered above; 0.5 GB files are slow)."""
    reference = torchvision_model(name)
    converter = TorchvisionConverter()
    state_dict, meta = converter.convert_with_meta(reference.state_dict())
    assert (meta["arch"], meta["batch_norm"]) == (arch, name.endswith("_bn"))
    model = empty_vgg(name)
    model.load_state_dict(state_dict)
    assert_same_logits(reference, model)
    assert_exported_equals(converter.export(model.state_dict(), model), reference)


def test_arch_mismatch_and_wrong_source_are_named(tmp_path, capsys):
    with torch.device("meta"):
        tv = torchvision.models.vgg11(weights=None)
    tv = tv.to_empty(device="cpu")
    src = tmp_path / "vgg11.pth"
    torch.save(tv.state_dict(), src)
    assert convert_main(["--src", "torchvision", "--arch", "D", str(src), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "fit no VGG configuration" in err and "D:" in err
    assert convert_main(["--src", "timm", str(src), str(tmp_path / "o")]) == 2
    assert "pre_logits.fc1.weight" in capsys.readouterr().err
