"""One output of a frozen VGG as a function ``x -> tensor``, on the path chosen for it.

:func:`compile_for_inference` resolves the path (:mod:`vggkit.inference.autotune`:
named, or 'auto' measured) and builds it (:mod:`vggkit.inference.build`); when
'auto' probed in that call, the probe's runner of the winner is taken as it is.
:class:`CompiledNet` gives a VGG's ``forward`` and ``dense`` each on its path.
This is the top of the inference layer: nothing below imports it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vggkit.inference.autotune import Choice, choice, probe_batch
from vggkit.inference.build import (OUTPUTS, Runner, build, dense_output, nhwc, onnx_bytes,
                                    traced)

# onnx_bytes and traced lived here before the builders moved to build.py
__all__ = ["OUTPUTS", "Runner", "compile_for_inference", "dense_output", "CompiledNet",
           "onnx_bytes", "traced"]


def compile_for_inference(model: nn.Module, output: str = "logits", backend: str = "auto",
                          *, device: str | torch.device = "cpu",
                          channels_last: bool | None = None, threads: int | None = None,
                          example_size: int | None = None, relu: bool | None = None,
                          precision: str = "auto", in_place: bool = False,
                          dynamic_size: bool = False, cache: str | None = None,
                          batch: int | None = None, runs: int | None = None) -> Runner:
    """A function ``x -> output`` of ``model`` (a :class:`~vggkit.models.VGG`), as fast as we can.

    Args:
        model: the network; it is put in eval mode on ``device`` (and for fp32
            eager in channels-last format), not modified otherwise unless
            ``in_place``. bf16/fp16 paths run on a copy of the weights in that
            dtype, cast once.
        output: 'logits' (FC path on crops), 'dense' (class score map), or the
            dense map of 'pool5', 'fc6' or 'fc7'.
        backend: 'auto', 'eager', 'compile', 'jit', 'mkldnn' or 'onnxruntime'
            (:mod:`vggkit.inference.backends`).
        device: where to run.
        channels_last: NHWC memory format for eager and compile (None: yes).
        threads: intra-op threads for onnxruntime (default: torch's).
        example_size: spatial size of the inputs that will come, for tracing
            and for the 'auto' probe (default: the model's ``input_size``).
        relu: fc6/fc7 after (True) or before (False) their ReLU; None: the
            model's own (see :func:`dense_output`).
        precision: 'auto', 'fp32', 'bf16' or 'fp16' (CUDA): bf16/fp16 run the
            eager or compile backend on weights cast to that dtype once.
        in_place: bf16/fp16 and mkldnn may cast or convert ``model`` itself
            instead of a copy (saves a copy of the weights; the model is then
            that path's only).
        dynamic_size: inputs of many sizes will come: 'auto' leaves out the
            backends of fixed size (jit).
        cache: the autotune cache file of 'auto' (default:
            ``$VGGKIT_CACHE/autotune/autotune.json``).
        batch: inputs per call that will come: the 'auto' probe runs at it
            (up to :data:`~vggkit.inference.autotune.PROBE_MAX_BATCH`).
        runs: calls expected in this process: 'auto' then also offers
            ``torch.compile`` where a compiler is present, and takes it only
            when its compile time is paid back within them.
    """
    return _compiled(model, output, backend, precision, torch.device(device), channels_last,
                     threads, example_size, relu, in_place, dynamic_size, cache, batch, runs)[1]


def _compiled(model: nn.Module, output: str, backend: str, precision: str,
              device: torch.device, channels_last: bool | None, threads: int | None,
              size: int | None, relu: bool | None, in_place: bool, dynamic_size: bool,
              cache: str | None, batch: int | None, runs: int | None) -> tuple[Choice, Runner]:
    """:func:`compile_for_inference`, and the path chosen."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output '{output}'; choose one of {OUTPUTS}")
    chosen = choice(backend, precision, device, models=[model], output=output, relu=relu,
                    example_size=size, batch=batch, dynamic_size=dynamic_size, runs=runs,
                    cache=cache)
    # the probe built its runners in the default layout and threads
    default = channels_last in (None, nhwc(chosen.backend)) and threads in (
        None, torch.get_num_threads())
    if chosen.runners and default:
        return chosen, chosen.runners[0]
    side = size or getattr(model, "input_size", 224)
    example = torch.zeros(probe_batch(batch) if chosen.backend == "compile" else 1, 3, side, side,
                          device=device)
    return chosen, build(model, output, chosen.backend, chosen.precision, device, example,
                         channels_last=channels_last, threads=threads, relu=relu,
                         in_place=in_place)


class CompiledNet:
    """A VGG as callers of its eager form use it, each output on the path chosen for it.

    ``net(crops)`` gives the logits and ``net.dense(images)`` the class score
    map (the two calls of the evaluation strategies), each through
    :func:`compile_for_inference`, built on first use or by :meth:`prepare`.
    The score map takes images of any size, so its 'auto' offers only
    backends of dynamic size. Other attributes (``input_size``,
    ``num_classes``, ``parameters``, ...) are the model's.

    Args:
        model: a VGG, on ``device``.
        backend, precision: as for :func:`compile_for_inference`.
        device: where it runs (default: where the model's parameters are).
        dense_size: a representative side of the images given to ``dense``
            (default: the model's ``input_size``): the 'auto' probe's size.
        batches: inputs per call of each output ('logits', 'dense') as the
            caller feeds them: the 'auto' probe's batch (default 1).
        cache: the autotune cache file of 'auto'.
    """

    def __init__(self, model: nn.Module, backend: str = "auto", precision: str = "auto", *,
                 device: str | torch.device | None = None, dense_size: int | None = None,
                 batches: dict[str, int] | None = None, cache: str | None = None) -> None:
        self.model, self.backend, self.precision, self.cache = model, backend, precision, cache
        param = next(model.parameters(), None)
        self.device = torch.device(device or (param.device if param is not None else "cpu"))
        self.dense_size, self.batches = dense_size, dict(batches or {})
        self.choices: dict[str, tuple[str, str]] = {}
        self._runners: dict[str, Runner] = {}

    def prepare(self, outputs: tuple[str, ...] | list[str]) -> "CompiledNet":
        """Choose and build the runners of ``outputs`` now (in a process group: on every rank)."""
        for output in outputs:
            self.runner(output)
        return self

    def runner(self, output: str) -> Runner:
        """The runner of ``output`` ('logits' or 'dense'), built once."""
        if output not in self._runners:
            dynamic = output != "logits"
            chosen, self._runners[output] = _compiled(
                self.model, output, self.backend, self.precision, self.device, None, None,
                self.dense_size if dynamic else None, None, False, dynamic, self.cache,
                self.batches.get(output), None)
            self.choices[output] = (chosen.backend, chosen.precision)
        return self._runners[output]

    def __call__(self, x: Tensor) -> Tensor:
        return self.runner("logits")(x)

    def dense(self, x: Tensor) -> Tensor:
        """The class score map of whole images (see :meth:`vggkit.models.VGG.dense`)."""
        return self.runner("dense")(x)

    def __getattr__(self, name: str) -> Any:
        # only reached for names this class lacks: the rest of the model's interface
        if name == "model":  # not set yet (e.g. while unpickling): no endless recursion
            raise AttributeError(name)
        return getattr(self.model, name)
