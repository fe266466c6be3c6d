"""One output of a frozen VGG as a function ``x -> tensor``, on the chosen backend.

:func:`compile_for_inference` does the one-time work of a backend (tracing,
export, layout conversion) and returns a plain function, so callers run every
backend the same way. :mod:`vggkit.inference.backends` chooses the backend.
The runners the 'auto' probe built for its winner are handed over
(:func:`keep_prebuilt`), so the winner is not exported or traced a second time.
:class:`CompiledNet` gives a VGG's ``forward`` and ``dense`` on their backends.
"""
from __future__ import annotations

import contextlib
import copy
import io
import itertools
import warnings
import weakref
from typing import Any, Callable

import torch
from torch import Tensor, nn

from vggkit.inference.backends import choose

OUTPUTS = ("logits", "dense", "pool5", "fc6", "fc7")
#: the autocast dtype of each precision (fp32: no autocast)
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

Runner = Callable[[Tensor], Tensor]

#: runners built by the last 'auto' probe for its winner: spec -> (model, weights, runner)
_prebuilt: dict[tuple, tuple[weakref.ref, tuple, Runner]] = {}


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
                          in_place: bool = False, dynamic_size: bool = False,
                          cache: str | None = None) -> Runner:
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
            and of the 'auto' probe (default: the model's ``input_size``).
        relu: fc6/fc7 after (True) or before (False) their ReLU; None: the
            model's own (see :func:`dense_output`).
        precision: 'auto', 'fp32', 'bf16' or 'fp16' (autocast, eager only).
        in_place: mkldnn may convert ``model`` itself instead of a copy
            (saves a copy of the weights; the model is then oneDNN-only). A
            runner the 'auto' probe already built on a copy is taken as it is.
        dynamic_size: inputs of many sizes will come: 'auto' leaves out the
            backends of fixed size (jit).
        cache: the autotune cache file of 'auto' (default:
            ``$VGGKIT_CACHE/autotune/autotune.json``).
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output '{output}'; choose one of {OUTPUTS}")
    device = torch.device(device)
    backend, precision = choose(backend, precision, device, models=[model], output=output,
                                relu=relu, example_size=example_size,
                                dynamic_size=dynamic_size, cache=cache)
    spec = _spec(model, output, relu, backend, precision, device, channels_last, threads)
    prebuilt = _take_prebuilt(model, spec)
    if prebuilt is not None:
        return prebuilt
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


def _spec(model: nn.Module, output: str, relu: bool | None, backend: str, precision: str,
          device: torch.device, channels_last: bool, threads: int | None) -> tuple:
    """What a built runner is: the model, output and path, and the options that change it."""
    options: tuple = ()
    if backend == "eager":
        options = (channels_last,)
    elif backend == "onnxruntime":
        options = (threads or torch.get_num_threads(),)
    return (id(model), output, relu, backend, precision, str(device), options)


def _weights(model: nn.Module) -> tuple:
    # storage and in-place version of every tensor: loading or editing weights changes it
    return tuple((t.data_ptr(), t._version)
                 for t in itertools.chain(model.parameters(), model.buffers()))


def _nhwc(backend: str) -> bool:
    """Whether ``backend`` runs in channels-last format where it may: eager's faster layout."""
    return backend == "eager"


def probe_compile(model: nn.Module, output: str, relu: bool | None, backend: str,
                  precision: str, device: torch.device, size: int) -> Runner:
    """One candidate of the 'auto' probe, built as :func:`keep_prebuilt` describes it."""
    return compile_for_inference(model, output, backend, device=device, precision=precision,
                                 channels_last=_nhwc(backend), relu=relu,
                                 example_size=size)


def keep_prebuilt(model: nn.Module, output: str, relu: bool | None, backend: str,
                  precision: str, device: torch.device, run: Runner) -> None:
    """Offer ``run``, built by :func:`probe_compile`, to the next compile of the same thing.

    A probe keeps its winner's runners only: call :func:`drop_prebuilt` first.
    """
    spec = _spec(model, output, relu, backend, precision, device,
                 _nhwc(backend), None)
    _prebuilt[spec] = (weakref.ref(model), _weights(model), run)


def drop_prebuilt() -> None:
    """Forget the runners a probe kept (they hold exported graphs and weight copies)."""
    _prebuilt.clear()


def _take_prebuilt(model: nn.Module, spec: tuple) -> Runner | None:
    """The runner the probe built for ``spec``, if the model and its weights are unchanged."""
    kept = _prebuilt.pop(spec, None)
    if kept is None or kept[0]() is not model:
        return None
    try:
        same = kept[1] == _weights(model)
    except RuntimeError:  # converted to oneDNN tensors in place since: no storage to compare
        same = False
    return kept[2] if same else None


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


def traced(module: nn.Module, example: Tensor) -> torch.jit.ScriptModule:
    """``module`` (one output of a VGG) traced by TorchScript on ``example``."""
    with torch.no_grad(), warnings.catch_warnings():
        # deprecation notices, and tracer warnings about the model's input-size checks
        # (for inputs of many sizes, 'auto' with dynamic_size does not offer jit)
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, example, check_trace=False)


def _jit(module: nn.Module, example: Tensor, device: torch.device) -> Runner:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced(module, example)))

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


def _ort_options(threads: int | None) -> Any:
    """ONNX Runtime's session options for a CPU runner of vggkit."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's intra-op threads spin after each run by default, taking the cores from torch's
    # own ops between runs (stack, mirror, normalise, pooling) and from the decoding thread.
    # Not spinning: extraction of the tiny VGG-D/16 case ran 1.23x (1.18-1.69) and 1.28x
    # (1.12-2.05) faster, paired, at load ~4 on a shared 2-core box; parity at low load
    # (docs/extraction_overhead.md). Not re-measured on full-width VGG-16, where the net
    # takes ~97 % of the time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def onnx_bytes(module: nn.Module, example: Tensor, output: str) -> bytes:
    """The ONNX graph (opset 17) of ``module`` (one output of a VGG, see :class:`_Output`).

    Input ``image``, output ``out``; the batch is dynamic, and for every
    output but 'logits' (the FC view of a fixed crop) height and width too.
    """
    buffer = io.BytesIO()
    dynamic = {0: "batch"} if output == "logits" else {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings mean nothing here
        torch.onnx.export(module, example.cpu(), buffer, input_names=["image"],
                          output_names=["out"], dynamic_axes={"image": dynamic, "out": dynamic},
                          opset_version=17, dynamo=False)
    return buffer.getvalue()


def _onnxruntime(module: nn.Module, example: Tensor, output: str,
                 threads: int | None) -> Runner:
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_bytes(module, example, output), _ort_options(threads),
                                   providers=["CPUExecutionProvider"])

    def run_ort(x: Tensor) -> Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(None, {"image": array})[0])
    return run_ort


class CompiledNet:
    """A VGG as callers of its eager form use it, each output on the backend chosen for it.

    ``net(crops)`` gives the logits and ``net.dense(images)`` the class score
    map (the two calls of the evaluation strategies), each through
    :func:`compile_for_inference`, built on first use or by :meth:`prepare`.
    The score map takes images of any size, so its 'auto' offers only
    backends of dynamic size and is probed at ``dense_size``. Other
    attributes (``input_size``, ``num_classes``, ``parameters``, ...) are the
    model's.

    Args:
        model: a VGG, on ``device``.
        backend, precision: as for :func:`compile_for_inference`.
        device: where it runs (default: where the model's parameters are).
        dense_size: a representative side of the images given to ``dense``
            (default: the model's ``input_size``).
        cache: the autotune cache file of 'auto' (default:
            ``$VGGKIT_CACHE/autotune/autotune.json``).
    """

    def __init__(self, model: nn.Module, backend: str = "auto", precision: str = "auto", *,
                 device: str | torch.device | None = None, dense_size: int | None = None,
                 cache: str | None = None) -> None:
        self.model, self.backend, self.precision, self.cache = model, backend, precision, cache
        param = next(model.parameters(), None)
        self.device = torch.device(device or (param.device if param is not None else "cpu"))
        self.dense_size = dense_size
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
            size = self.dense_size if dynamic else None
            self.choices[output] = choose(
                self.backend, self.precision, self.device, models=[self.model], output=output,
                example_size=size, dynamic_size=dynamic, cache=self.cache)
            backend, precision = self.choices[output]
            self._runners[output] = compile_for_inference(
                self.model, output, backend, device=self.device, precision=precision,
                channels_last=_nhwc(backend), example_size=size)
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
