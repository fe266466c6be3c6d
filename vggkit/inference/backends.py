"""What can run a frozen VGG here: the backends, their precisions, the native reduced precision.

Facts only, no choosing: :mod:`vggkit.inference.autotune` resolves 'auto' from
them by measuring, above the builders of :mod:`vggkit.inference.build`.

* ``eager``: plain PyTorch, any device; fp32, or bf16/fp16 on weights cast once.
* ``compile``: ``torch.compile`` (inductor, frozen weights), where a compiler
  is present (a C++ compiler on the CPU, Triton on CUDA).
* ``jit`` (frozen TorchScript), ``mkldnn`` (oneDNN blocked layout, CPU, dense
  maps), ``onnxruntime`` (CPU, if installed): fp32 only.

A reduced precision pays only where the hardware computes it: fp16 on CUDA,
bf16 on a CPU with AVX-512 BF16 or AMX (elsewhere oneDNN emulates bf16, slower
than fp32). ``ONEDNN_MAX_CPU_ISA`` below ``AVX512_CORE_BF16`` counts as no
native bf16, as oneDNN then emulates it.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Iterable

import torch
from torch import nn

from vggkit.inference.names import Backend

#: the maps over whole images the mkldnn backend gives: class scores, pool5, fc6, fc7 (its
#: blocked tensors have no flatten for the FC path, and fc6 before its ReLU is not a
#: module output)
MKLDNN_OUTPUTS = ("dense", "pool5", "fc6", "fc7")
#: the backends whose compiled net takes any input height and width: jit is left out,
#: since tracing records the model's Python-level shape logic at the traced size
DYNAMIC_SIZE_BACKENDS = ("onnxruntime", "mkldnn", "eager", "compile")
#: ONEDNN_MAX_CPU_ISA values under which oneDNN has no bf16 instructions (it emulates them)
_ONEDNN_NO_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                   "AVX512_CORE_VNNI")
#: leaf modules oneDNN's blocked tensors run through (anything else, e.g. LRN: not mkldnn)
_MKLDNN_LEAVES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.Dropout)


class BackendUnavailableError(ValueError):
    """A backend asked for by name that cannot run the net here."""


def onnxruntime_available() -> bool:
    """Whether the optional ``onnxruntime`` package is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile``'s inductor can build kernels for ``device``: a C++ compiler
    (``$CXX``, else g++, as inductor looks for it) on the CPU, Triton on CUDA."""
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return device.type == "cpu" and shutil.which(os.environ.get("CXX") or "g++") is not None


def onednn_isa_limit() -> str | None:
    """``ONEDNN_MAX_CPU_ISA`` (or its old name ``DNNL_MAX_CPU_ISA``), upper-cased, if set."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return value.strip().upper() if value and value.strip() else None


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX, per /proc/cpuinfo) and
    oneDNN may use it (not held below it by ``ONEDNN_MAX_CPU_ISA``)."""
    from vggkit.machine import machine_info
    if onednn_isa_limit() in _ONEDNN_NO_BF16:
        return False
    return any(flag in machine_info()["isa"] for flag in ("avx512_bf16", "amx_bf16"))


def reduced_precision(device: torch.device) -> tuple[str | None, str]:
    """The reduced precision that runs faster than fp32 on ``device``, or None; and why.

    fp16 on CUDA; bf16 on a CPU that computes it natively (AVX-512 BF16 or
    AMX) -- elsewhere bf16 is emulated and slower than fp32. Inference 'auto'
    offers it, and training's ``--amp auto`` takes it, by this rule.
    """
    if device.type == "cuda":
        return "fp16", "CUDA"
    if device.type == "cpu":
        if cpu_has_bf16():
            return "bf16", "native bf16"
        limit = onednn_isa_limit()
        return None, (f"oneDNN held to {limit} (ONEDNN_MAX_CPU_ISA)"
                      if limit in _ONEDNN_NO_BF16 else "no AVX-512 BF16/AMX")
    return None, f"no reduced precision known to pay on {device.type}"


def onednn_runs(model: nn.Module) -> bool:
    """Whether every layer of ``model`` runs on oneDNN blocked tensors (LRN does not)."""
    leaves = [m for m in model.modules() if not list(m.children())]
    return all(isinstance(m, _MKLDNN_LEAVES) for m in leaves)


def unavailable(backend: Backend, device: torch.device, precision: str,
                models: Iterable[nn.Module] = (), output: str = "logits",
                relu: bool | None = None) -> str | None:
    """Why ``backend`` cannot run ``output`` of ``models`` here, or None when it can."""
    if backend in (Backend.EAGER, Backend.COMPILE):
        if precision == "fp16" and device.type != "cuda":
            return "runs fp16 on CUDA only"
        if backend is Backend.COMPILE and not compiler_available(device):
            return ("needs Triton on CUDA" if device.type == "cuda" else
                    "needs a C++ compiler ($CXX or g++) for inductor")
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
        return "gives only the dense maps (class scores, pool5, fc6 after its ReLU, fc7)"
    if not all(onednn_runs(m) for m in models):
        return "needs layers oneDNN runs (no LRN)"
    return None


def available_backends(output: str = "logits") -> list[str]:
    """The backends that run ``output`` of a plain VGG on this machine's CPU in fp32."""
    cpu = torch.device("cpu")
    return [b.value for b in Backend if b is not Backend.AUTO
            and unavailable(b, cpu, "fp32", (), output) is None]
