"""Inference backends give the eager model's outputs, for crops and whole images."""
from __future__ import annotations

import pytest
import torch

from vggkit.factory import build_vgg
from vggkit.inference.backends import available_backends
from vggkit.inference.runners import compile_for_inference


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_vgg("A", num_classes=7, width_mult=1 / 16, fc_width=32, input_size=32,
                     init="glorot").eval()


# 'eager' runs the very methods the reference calls: comparing it would test nothing;
# 'compile' (tens of seconds per shape) on the logits only: its build is the same for all
@pytest.mark.parametrize("backend,output", [(b, o) for o in ("logits", "dense", "fc7", "pool5")
                                            for b in available_backends(o) if b != "eager"
                                            and (b != "compile" or o == "logits")])
def test_backend_matches_eager(tiny, backend, output):
    size = 32 if output == "logits" else 96
    run = compile_for_inference(tiny, output, backend)
    for shape in [(2, 3, size, size), (1, 3, size, size + 32 if output != "logits" else size)]:
        x = torch.rand(*shape) * 255 - 120
        with torch.no_grad():
            ref = tiny(x) if output == "logits" else (
                tiny.dense(x) if output == "dense" else tiny.dense_pre_logits(x, output))
        got = run(x)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_unknown_backend_and_output_are_named(tiny):
    with pytest.raises(ValueError, match="'tensorrt'.*auto"):
        compile_for_inference(tiny, "logits", "tensorrt")
    with pytest.raises(ValueError, match="'fc8'.*logits"):
        compile_for_inference(tiny, "fc8")
