"""The fastest available way to run one output of a VGG for inference.

Measured on the development machine (AVX2, no AVX-512 BF16; see
``benchmarks/RESULTS.md``): ONNX Runtime on the exported graph is the fastest
CPU path for VGG's large 3×3 convolutions, a frozen TorchScript graph with
oneDNN fusions the next, eager fp32 the slowest; bf16 autocast only pays on
CPUs with native bf16 (AVX-512 BF16 / AMX). On CUDA the usual path is eager
with fp16 autocast and channels_last.

onnxruntime is an optional dependency (``pip install vggkit[bench]`` or
``onnxruntime``); without it 'auto' falls back to TorchScript.
"""
from __future__ import annotations

import importlib.util
import io
import warnings
from typing import Callable

import torch
from torch import Tensor, nn

OUTPUTS = ("logits", "dense", "pool5", "fc6", "fc7")
BACKENDS = ("auto", "eager", "jit", "onnxruntime")


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


def onnxruntime_available() -> bool:
    """Whether the optional ``onnxruntime`` package is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def available_backends() -> list[str]:
    names = ["eager", "jit"]
    if onnxruntime_available():
        names.append("onnxruntime")
    return names


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown inference backend '{backend}'; choose one of {BACKENDS}")
    if backend == "onnxruntime" and "onnxruntime" not in available_backends():
        raise ImportError("backend 'onnxruntime' needs the onnxruntime package: "
                          "pip install onnxruntime (or 'pip install -e .[bench]')")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        return "eager"
    return "onnxruntime" if "onnxruntime" in available_backends() else "jit"


def compile_for_inference(model: nn.Module, output: str = "logits", backend: str = "auto",
                          *, device: str | torch.device = "cpu", channels_last: bool = False,
                          threads: int | None = None, example_size: int | None = None,
                          relu: bool | None = None) -> Callable[[Tensor], Tensor]:
    """A function ``x -> output`` of ``model`` (a :class:`~vggkit.models.VGG`), as fast as we can.

    Args:
        model: the network; it is put in eval mode and not modified otherwise.
        output: 'logits' (FC path on crops), 'dense' (class score map), or the
            dense map of 'pool5', 'fc6' or 'fc7'.
        backend: 'auto', 'eager', 'jit' or 'onnxruntime'.
        device: where to run; CUDA uses fp16 autocast with eager.
        channels_last: NHWC memory format for the eager path.
        threads: intra-op threads for onnxruntime (default: torch's).
        example_size: spatial size of the example input used for tracing
            (default: the model's ``input_size``).
        relu: fc6/fc7 after (True) or before (False) their ReLU; None: the
            model's own (see :func:`dense_output`).
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output '{output}'; choose one of {OUTPUTS}")
    device = torch.device(device)
    backend = resolve_backend(backend, device)
    module = _Output(model.eval().to(device), output, relu).eval()
    size = example_size or getattr(model, "input_size", 224)
    example = torch.zeros(1, 3, size, size, device=device)
    if backend == "eager":
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        amp = device.type == "cuda"

        def run_eager(x: Tensor) -> Tensor:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast(device.type, torch.float16, enabled=amp):
                return module(x).float()
        return run_eager
    if backend == "jit":
        with torch.no_grad():
            frozen = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.trace(module, example, check_trace=False)))

        def run_jit(x: Tensor) -> Tensor:
            with torch.no_grad():
                return frozen(x.to(device))
        return run_jit
    return _onnxruntime(module, example, output, threads)


def _onnxruntime(module: nn.Module, example: Tensor, output: str,
                 threads: int | None) -> Callable[[Tensor], Tensor]:
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
