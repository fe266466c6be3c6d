"""Which way to run a frozen VGG: the backends, the precisions, and the one resolver.

Measured on the development machine (AVX2, no AVX-512 BF16; see
``benchmarks/RESULTS.md``): ONNX Runtime on the exported graph is the fastest
CPU path for VGG's large 3x3 convolutions; a frozen TorchScript graph with
oneDNN fusions, or the net converted to oneDNN's blocked layout, comes next;
eager PyTorch is the slowest but runs everywhere and in every precision. bf16
autocast only pays on CPUs with native bf16 (AVX-512 BF16 / AMX), since
emulated bf16 is slower than fp32. On CUDA the usual path is eager with fp16
autocast.

onnxruntime is an optional dependency (``pip install onnxruntime``); without
it 'auto' falls back to the next backend of its list.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from enum import Enum
from typing import Iterable

import torch
from torch import nn


class Backend(str, Enum):
    """How the net runs (see :func:`vggkit.inference.runners.compile_for_inference`)."""

    AUTO = "auto"                # the fastest that applies (see AutoRule)
    EAGER = "eager"              # plain PyTorch modules; any device, any precision
    JIT = "jit"                  # traced, frozen TorchScript with oneDNN fusions
    MKLDNN = "mkldnn"            # modules converted to oneDNN's blocked layout (CPU)
    ONNXRUNTIME = "onnxruntime"  # the exported graph in ONNX Runtime (CPU)

    def __str__(self) -> str:
        return self.value


BACKENDS = tuple(b.value for b in Backend)
#: 'fp16' and 'bf16' are autocast dtypes of the eager backend; the others run fp32
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: the dense maps the mkldnn backend gives (its blocked tensors have no flatten
#: for the FC path, and fc6 before its ReLU is not a module output)
MKLDNN_OUTPUTS = ("pool5", "fc6", "fc7")
#: leaf modules oneDNN's blocked tensors run through (anything else, e.g. LRN: not mkldnn)
_MKLDNN_LEAVES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.Dropout)


class BackendUnavailableError(ValueError):
    """A backend asked for by name that cannot run the net here."""


@dataclass(frozen=True)
class AutoRule:
    """What 'auto' picks on one path.

    The two paths of today pick differently and keep doing so (issue 11 will
    replace them by one rule).

    Attributes:
        backends: tried first to last; the first available one is taken.
        bf16_on_native_cpu: 'auto' precision is bf16 on CPUs with native bf16.
        fp16_on_cuda: 'auto' precision is fp16 autocast where eager runs on CUDA.
    """

    backends: tuple[Backend, ...]
    bf16_on_native_cpu: bool = False
    fp16_on_cuda: bool = False


#: :func:`compile_for_inference`: ONNX Runtime, else TorchScript on CPU; eager fp16 on CUDA
COMPILE_AUTO = AutoRule((Backend.ONNXRUNTIME, Backend.JIT, Backend.EAGER), fp16_on_cuda=True)
#: the feature extractor: ONNX Runtime, else oneDNN, else eager; bf16 where native
EXTRACT_AUTO = AutoRule((Backend.ONNXRUNTIME, Backend.MKLDNN, Backend.EAGER),
                        bf16_on_native_cpu=True)


def onnxruntime_available() -> bool:
    """Whether the optional ``onnxruntime`` package is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX), per /proc/cpuinfo."""
    from vggkit.machine import machine_info
    return any(flag in machine_info()["isa"] for flag in ("avx512_bf16", "amx_bf16"))


def onednn_runs(model: nn.Module) -> bool:
    """Whether every layer of ``model`` runs on oneDNN blocked tensors (LRN does not)."""
    leaves = [m for m in model.modules() if not list(m.children())]
    return all(isinstance(m, _MKLDNN_LEAVES) for m in leaves)


def unavailable(backend: Backend, device: torch.device, precision: str,
                models: Iterable[nn.Module] = (), output: str = "logits",
                relu: bool | None = None) -> str | None:
    """Why ``backend`` cannot run ``output`` of ``models`` here, or None when it can."""
    if backend is Backend.EAGER:
        if precision == "fp16" and device.type != "cuda":
            return "runs fp16 autocast on CUDA only"
        return None
    if precision != "fp32":
        return "runs fp32 only"
    if backend is Backend.JIT:
        return None
    if device.type != "cpu":
        return "runs on the CPU only"
    if backend is Backend.ONNXRUNTIME:
        return None if onnxruntime_available() else \
            "needs the onnxruntime package (pip install onnxruntime)"
    if not torch.backends.mkldnn.is_available():
        return "needs a PyTorch built with oneDNN"
    if output not in MKLDNN_OUTPUTS or (output == "fc6" and relu is False):
        return "gives only the dense maps pool5, fc6 after its ReLU and fc7"
    if not all(onednn_runs(m) for m in models):
        return "needs layers oneDNN runs (no LRN)"
    return None


def _auto_precision(rule: AutoRule, device: torch.device, backend: Backend) -> str:
    if rule.bf16_on_native_cpu and device.type == "cpu" and cpu_has_bf16():
        return "bf16"
    if rule.fp16_on_cuda and device.type == "cuda" and backend in (Backend.AUTO, Backend.EAGER):
        return "fp16"
    return "fp32"


def choose(backend: str, precision: str, device: str | torch.device, *,
           models: Iterable[nn.Module] = (), output: str = "logits", relu: bool | None = None,
           rule: AutoRule = COMPILE_AUTO) -> tuple[str, str]:
    """The backend and precision that run ``output`` of ``models`` on ``device``.

    'auto' (either) is resolved by ``rule``; a backend named outright must be
    able to run here.

    Returns:
        ``(backend, precision)`` as plain names, e.g. ``('onnxruntime', 'fp32')``.

    Raises:
        ValueError: an unknown name.
        BackendUnavailableError: a named backend that cannot run here, with why.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown inference backend '{backend}'; choose one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; choose one of {PRECISIONS}")
    device, asked, models = torch.device(device), Backend(backend), list(models)
    if precision == "auto":
        precision = _auto_precision(rule, device, asked)
    if asked is Backend.AUTO:
        found = next(b for b in rule.backends + (Backend.EAGER,)
                     if unavailable(b, device, precision, models, output, relu) is None)
        return found.value, precision
    reason = unavailable(asked, device, precision, models, output, relu)
    if reason is not None:
        raise BackendUnavailableError(
            f"backend '{asked}' {reason} (here: {device.type}, {precision}, output {output}); "
            "use --backend eager, or auto")
    return asked.value, precision


def available_backends(output: str = "logits") -> list[str]:
    """The backends that run ``output`` of a plain VGG on this machine's CPU in fp32."""
    cpu = torch.device("cpu")
    return [b.value for b in Backend if b is not Backend.AUTO
            and unavailable(b, cpu, "fp32", (), output) is None]
