"""The names a command line offers for running frozen nets: backends, precisions, launchers.

No torch here, so a command's parser lists them
without importing it: ``vggkit test --help`` stays quick.
"""
from __future__ import annotations

from enum import Enum


class Backend(str, Enum):
    """How the net runs (see :func:`vggkit.inference.runners.compile_for_inference`)."""

    AUTO = "auto"                # the fastest measured here (see autotune)
    EAGER = "eager"              # plain PyTorch modules; any device, any precision
    COMPILE = "compile"          # torch.compile (inductor, frozen weights); needs a C++ compiler
    JIT = "jit"                  # traced, frozen TorchScript with oneDNN fusions
    MKLDNN = "mkldnn"            # modules converted to oneDNN's blocked layout (CPU)
    ONNXRUNTIME = "onnxruntime"  # the exported graph in ONNX Runtime (CPU)

    def __str__(self) -> str:
        return self.value


BACKENDS = tuple(b.value for b in Backend)
#: 'bf16' and 'fp16' (CUDA): the eager and compile backends run on weights cast to that dtype
#: once; the others run fp32
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: how the processes of a run are started (see :mod:`vggkit.inference.distributed`)
LAUNCHERS = ("none", "pytorch")
