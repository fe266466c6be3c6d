"""Writing a VGG to a file other runtimes load: ONNX or TorchScript (``vggkit export``).

The graphs are the ones the inference backends build in memory
(:func:`vggkit.inference.build.onnx_bytes`, :func:`~vggkit.inference.build.traced`):
input ``image`` (N x 3 x H x W, already normalised as the weights expect), output
``out``. The batch is dynamic; the dense outputs (the class score map 'dense',
the 'fc7' and 'pool5' maps) take any height and width from the net's crop size up.
"""
from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from vggkit.fileio import atomic_write_bytes
from vggkit.inference.build import _Output, onnx_bytes, traced

EXPORT_FORMATS = ("onnx", "torchscript")
#: logits of the net's crop (FC view), or a dense map over a whole image
EXPORT_OUTPUTS = ("logits", "dense", "fc7", "pool5")


def export_net(model: nn.Module, path: str, format: str = "onnx", output: str = "logits") -> None:
    """Write ``output`` of the VGG ``model`` to ``path`` as ``format``, atomically.

    The model is exported on the CPU in eval mode (dropout off) and left so.

    Raises:
        ValueError: an unknown format or output, naming the known ones.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format '{format}'; choose one of {EXPORT_FORMATS}")
    if output not in EXPORT_OUTPUTS:
        raise ValueError(f"unknown export output '{output}'; choose one of {EXPORT_OUTPUTS}")
    module = _Output(model.eval().cpu(), output).eval()
    size = getattr(model, "input_size", 224)
    example = torch.zeros(1, 3, size, size)
    if format == "onnx":
        data = onnx_bytes(module, example, output)
    else:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            # torch.jit's deprecation notice: TorchScript files still load in C++ and Python
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(traced(module, example), buffer)
        data = buffer.getvalue()
    atomic_write_bytes(path, data)
