"""Which way to run a frozen VGG: the backends, the precisions, and the one resolver.

Measured on the development machine (AVX2, no AVX-512 BF16; see
``benchmarks/RESULTS.md``): ONNX Runtime on the exported graph is the fastest
CPU path for VGG's large 3x3 convolutions; a frozen TorchScript graph with
oneDNN fusions, or the net converted to oneDNN's blocked layout, comes next;
eager PyTorch is the slowest but runs everywhere and in every precision. bf16
autocast only pays on CPUs with native bf16 (AVX-512 BF16 / AMX), since
emulated bf16 is slower than fp32. On CUDA the usual path is eager with fp16
autocast.

None of this is hard-coded into 'auto': :mod:`vggkit.inference.autotune`
times the paths that can run on the running machine and keeps the fastest that
agrees with fp32 eager. onnxruntime is an optional dependency
(``pip install onnxruntime``); without it it is simply not a candidate.
"""
from __future__ import annotations

import importlib.util
from typing import Iterable

import torch
from torch import nn

from vggkit.inference.names import BACKENDS, PRECISIONS, Backend

#: the maps over whole images the mkldnn backend gives: class scores, pool5, fc6, fc7 (its
#: blocked tensors have no flatten for the FC path, and fc6 before its ReLU is not a
#: module output)
MKLDNN_OUTPUTS = ("dense", "pool5", "fc6", "fc7")
#: the backends whose compiled net takes any input height and width: jit is left out,
#: since tracing records the model's Python-level shape logic at the traced size
DYNAMIC_SIZE_BACKENDS = ("onnxruntime", "mkldnn", "eager")
#: leaf modules oneDNN's blocked tensors run through (anything else, e.g. LRN: not mkldnn)
_MKLDNN_LEAVES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.Dropout)


class BackendUnavailableError(ValueError):
    """A backend asked for by name that cannot run the net here."""


def onnxruntime_available() -> bool:
    """Whether the optional ``onnxruntime`` package is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX), per /proc/cpuinfo."""
    from vggkit.machine import machine_info
    return any(flag in machine_info()["isa"] for flag in ("avx512_bf16", "amx_bf16"))


def reduced_precision(device: torch.device) -> tuple[str | None, str]:
    """The reduced precision that runs faster than fp32 on ``device``, or None; and why.

    fp16 on CUDA; bf16 on a CPU that computes it natively (AVX-512 BF16 or
    AMX) -- elsewhere bf16 is emulated and slower than fp32. Inference 'auto'
    and training ``--amp`` both decide by this.
    """
    if device.type == "cuda":
        return "fp16", "CUDA"
    if device.type == "cpu":
        return ("bf16", "native bf16") if cpu_has_bf16() else (None, "no AVX-512 BF16/AMX")
    return None, f"no reduced precision known to pay on {device.type}"


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
        return "gives only the dense maps (class scores, pool5, fc6 after its ReLU, fc7)"
    if not all(onednn_runs(m) for m in models):
        return "needs layers oneDNN runs (no LRN)"
    return None


def choose(backend: str, precision: str, device: str | torch.device, *,
           models: Iterable[nn.Module] = (), output: str = "logits", relu: bool | None = None,
           example_size: int | None = None, dynamic_size: bool = False,
           cache: str | None = None) -> tuple[str, str]:
    """The backend and precision that run ``output`` of ``models`` on ``device``.

    A backend named outright must be able to run here; its 'auto' precision is
    fp16 autocast for eager on CUDA, else fp32 (nothing is measured). Backend
    'auto' is measured (:mod:`vggkit.inference.autotune`): the fastest of the
    paths that can run here (only those of ``precision`` unless 'auto') that
    agrees with fp32 eager, probed once per machine/net/output at
    ``example_size`` and cached. ``dynamic_size`` (inputs of many sizes, e.g.
    dense evaluation) leaves out the backends of fixed size (jit). With
    ``VGGKIT_AUTOTUNE=off``, or no model to probe, it is the first available of
    onnxruntime, mkldnn, jit, eager. In a process group, rank 0 decides for all.

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
    if asked is Backend.AUTO:
        from vggkit.inference import autotune
        found, why_not = autotune.offered(device, precision, models, output, relu, dynamic_size)
        if not found:  # e.g. bf16 asked on a device where eager cannot run it
            reason = unavailable(Backend.EAGER, device, precision, models, output, relu)
            raise BackendUnavailableError(
                f"no backend runs {precision} here ({device.type}): {reason}; use --precision fp32")
        if len(found) == 1 or not models or not autotune.enabled():
            return autotune.static_choice(found, device)
        return autotune.resolve(found, why_not, device, models, output, relu, example_size,
                                cache)
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" and asked is Backend.EAGER else "fp32"
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
