"""``vggkit export`` (issue 27, part 3): the file another runtime loads reproduces the
eager net to 1e-4 at two input sizes, with a dynamic batch."""
from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch

from helpers import tiny_vgg
from test_weights import NAME, env, register, served, server  # noqa: F401  (fixtures)
from vggkit.commands import export as export_cli
from vggkit.inference.runners import dense_output
from vggkit.models import save_checkpoint

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
#: (batch, height, width) of the two inputs; 'logits' is the FC view of the 32-pixel crop
SIZES = {"logits": [(1, 32, 32), (3, 32, 32)],
         **{kind: [(1, 32, 32), (2, 72, 48)] for kind in ("dense", "fc7", "pool5")}}
FORMATS = [pytest.param("onnx", marks=pytest.mark.skipif(
               not HAS_ORT, reason="onnxruntime is not installed in .venv")), "torchscript"]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A tiny net A with a config and checkpoint, as a training run leaves them."""
    root = tmp_path_factory.mktemp("export")
    model = tiny_vgg(4)
    (root / "cfg.py").write_text(
        "model = dict(type='VGGClassifier', vgg=dict(arch='A', num_classes=4, width_mult=1 / 16,"
        " fc_width=32, input_size=32))\n")
    save_checkpoint(str(root / "net.pth"), model.state_dict(), {"arch": "A", "num_classes": 4})
    return {"model": model, "config": str(root / "cfg.py"), "ckpt": str(root / "net.pth")}


def load(path: str, fmt: str):
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            module = torch.jit.load(path)
        return lambda x: module(x)
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


@pytest.mark.parametrize("kind", list(SIZES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_file_matches_the_eager_net_at_two_sizes(net, tmp_path, fmt, kind):
    out = tmp_path / f"net.{fmt}"
    assert export_cli.main([net["config"], net["ckpt"], "--format", fmt, "--output", str(out),
                            "--output-kind", kind]) == 0
    run = load(str(out), fmt)
    for i, (n, h, w) in enumerate(SIZES[kind]):
        x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            expected = dense_output(net["model"], x, kind)
        got = run(x)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_export_refuses_bad_arguments_in_one_line(net, tmp_path, capsys):
    assert export_cli.main(["--format", "onnx", "--output", str(tmp_path / "x.onnx")]) == 2
    assert "CONFIG CKPT or --weights" in capsys.readouterr().err
    assert export_cli.main([net["config"], net["ckpt"], "--weights", NAME, "--format", "onnx",
                            "--output", str(tmp_path / "x.onnx")]) == 2
    assert f"--weights {NAME}" in capsys.readouterr().err
    missing = str(tmp_path / "no" / "x.onnx")
    assert export_cli.main([net["config"], net["ckpt"], "--format", "onnx",
                            "--output", missing]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert export_cli.main([net["config"], str(tmp_path / "none.pth"), "--format", "onnx",
                            "--output", str(tmp_path / "x.onnx")]) == 2
    assert "none.pth" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_export_of_published_weights_by_name(env, served, tmp_path):  # noqa: F811
    from vggkit.factory import build_vgg
    out = tmp_path / "w.pt"
    assert export_cli.main(["--weights", NAME, "--format", "torchscript", "--output", str(out),
                            "--output-kind", "dense"]) == 0
    model = build_vgg("A", weights=NAME).eval()
    x = torch.randn(2, 3, 64, 40)
    torch.testing.assert_close(load(str(out), "torchscript")(x), model.dense(x), atol=1e-4,
                               rtol=1e-4)

