"""One output of a frozen VGG as a function ``x -> tensor``, on the chosen backend.

:func:`compile_for_inference` does the one-time work of a backend (tracing,
export, layout conversion) and returns a plain function, so callers run every
backend the same way. :mod:`vggkit.inference.backends` chooses the backend.
"""
from __future__ import annotations

import contextlib
import copy
import io
import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from vggkit.inference.backends import choose

OUTPUTS = ("logits", "dense", "pool5", "fc6", "fc7")
#: the autocast dtype of each precision (fp32: no autocast)
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

Runner = Callable[[Tensor], Tensor]


def dense_output(model: nn.Module, x: Tensor, output: str, relu: bool | None = None) -> Tensor:
    """``output`` of a VGG over ``x`` (see :func:`compile_for_inference` for the names).

    ``relu`` picks fc6/fc7 after (True) or before (False) their ReLU; None
    takes the model's own (fc6 after, fc7 per ``model.pre_logits_relu``).
    Other outputs ignore it (pool5 already follows a ReLU and a max-pool).
    """
    if output == "logits":
        return model(x)
    if output == "dense":
        return model.dense(x)
    if output == "fc6" and relu is False:
        # the model's fc6 map is after the ReLU; apply the conv ourselves
        return model.head.fc6(model.dense_pre_logits(x, layer="pool5"))
    if output == "fc7" and relu is not None and getattr(model, "pre_logits_relu", True) != relu:
        raise ValueError(f"the model's pre_logits_relu={model.pre_logits_relu} but relu={relu} "
                         "was asked; build the model with pre_logits_relu=relu")
    return model.dense_pre_logits(x, layer=output)


class _Output(nn.Module):
    """One output of a VGG as a module's forward, for tracing and export."""

    def __init__(self, model: nn.Module, output: str, relu: bool | None = None) -> None:
        super().__init__()
        self.model, self.output, self.relu = model, output, relu

    def forward(self, x: Tensor) -> Tensor:
        return dense_output(self.model, x, self.output, self.relu)


def compile_for_inference(model: nn.Module, output: str = "logits", backend: str = "auto",
                          *, device: str | torch.device = "cpu", channels_last: bool = False,
                          threads: int | None = None, example_size: int | None = None,
                          relu: bool | None = None, precision: str = "auto",
                          in_place: bool = False, cache: str | None = None) -> Runner:
    """A function ``x -> output`` of ``model`` (a :class:`~vggkit.models.VGG`), as fast as we can.

    Args:
        model: the network; it is put in eval mode on ``device`` (and in
            channels-last format for eager with ``channels_last``), not
            modified otherwise unless ``in_place``.
        output: 'logits' (FC path on crops), 'dense' (class score map), or the
            dense map of 'pool5', 'fc6' or 'fc7'.
        backend: 'auto', 'eager', 'jit', 'mkldnn' or 'onnxruntime'
            (:mod:`vggkit.inference.backends`).
        device: where to run.
        channels_last: NHWC memory format for the eager path.
        threads: intra-op threads for onnxruntime (default: torch's).
        example_size: spatial size of the example input used for tracing
            (default: the model's ``input_size``).
        relu: fc6/fc7 after (True) or before (False) their ReLU; None: the
            model's own (see :func:`dense_output`).
        precision: 'auto', 'fp32', 'bf16' or 'fp16' (autocast, eager only).
        in_place: mkldnn may convert ``model`` itself instead of a copy
            (saves a copy of the weights; the model is then oneDNN-only).
        cache: the autotune cache file of 'auto' (default: ``$VGGKIT_CACHE/autotune.json``).
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output '{output}'; choose one of {OUTPUTS}")
    device = torch.device(device)
    backend, precision = choose(backend, precision, device, models=[model], output=output,
                                relu=relu, example_size=example_size, cache=cache)
    module = _Output(model.eval().to(device), output, relu).eval()
    size = example_size or getattr(model, "input_size", 224)
    example = torch.zeros(1, 3, size, size, device=device)
    if backend == "eager":
        return _eager(module, device, channels_last, _AUTOCAST[precision])
    if backend == "jit":
        return _jit(module, example, device)
    if backend == "mkldnn":
        return _mkldnn(model if in_place else copy.deepcopy(model), output, relu)
    return _onnxruntime(module, example, output, threads)


def _eager(module: nn.Module, device: torch.device, channels_last: bool,
           autocast: torch.dtype | None) -> Runner:
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

    def run_eager(x: Tensor) -> Tensor:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = (torch.autocast(device.type, autocast) if autocast is not None
               else contextlib.nullcontext())
        with torch.inference_mode(), amp:
            return module(x).float()
    return run_eager


def _jit(module: nn.Module, example: Tensor, device: torch.device) -> Runner:
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(module, example, check_trace=False)))

    def run_jit(x: Tensor) -> Tensor:
        with torch.no_grad():
            return frozen(x.to(device))
    return run_jit


def _mkldnn(model: nn.Module, output: str, relu: bool | None) -> Runner:
    # weights reordered once into oneDNN's blocked layout; activations stay
    # blocked from layer to layer and are converted back once at the end
    from torch.utils import mkldnn
    with warnings.catch_warnings():  # its modules are TorchScript, which warns on use
        warnings.simplefilter("ignore", FutureWarning)
        blocked = _Output(mkldnn.to_mkldnn(model.eval()), output, relu)

    def run_mkldnn(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return blocked(x.to("cpu", torch.float32).to_mkldnn()).to_dense()
    return run_mkldnn


def _onnxruntime(module: nn.Module, example: Tensor, output: str,
                 threads: int | None) -> Runner:
    import onnxruntime as ort
    buffer = io.BytesIO()
    dynamic = {0: "batch"} if output == "logits" else {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings mean nothing here
        torch.onnx.export(module, example.cpu(), buffer, input_names=["image"],
                          output_names=["out"], dynamic_axes={"image": dynamic, "out": dynamic},
                          opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def run_ort(x: Tensor) -> Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(None, {"image": array})[0])
    return run_ort
