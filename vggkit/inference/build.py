"""One output of a frozen VGG as a function ``x -> tensor`` on one path: the builders.

:func:`build` does a path's one-time work (the weights cast once, tracing,
export, compilation, layout conversion) and returns a plain function, so that
callers run every path the same way. Nothing is chosen here: the resolver
(:mod:`vggkit.inference.autotune`) builds its candidates with it, and
:mod:`vggkit.inference.runners` is the public face.
"""
from __future__ import annotations

import copy
import io
import itertools
import warnings
from typing import Any, Callable

import torch
from torch import Tensor, nn

OUTPUTS = ("logits", "dense", "pool5", "fc6", "fc7")
#: the dtype the eager and compile backends cast the weights (and inputs) to
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

Runner = Callable[[Tensor], Tensor]


def dense_output(model: nn.Module, x: Tensor, output: str, relu: bool | None = None) -> Tensor:
    """``output`` of a VGG over ``x`` (see :func:`~vggkit.inference.runners.compile_for_inference`).

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


def nhwc(backend: str) -> bool:
    """Whether ``backend`` runs in channels-last format by default: eager's and compile's
    faster layout for oneDNN's convolutions."""
    return backend in ("eager", "compile")


def build(model: nn.Module, output: str, backend: str, precision: str, device: torch.device,
          example: Tensor, *, channels_last: bool | None = None, threads: int | None = None,
          relu: bool | None = None, in_place: bool = False) -> Runner:
    """``output`` of ``model`` on ``backend`` in ``precision`` (a path that can run here).

    ``example``: an input of the size that will run (tracing, export and
    compilation happen on it). ``channels_last`` None: :func:`nhwc`.
    ``in_place``: the model itself may be cast (bf16/fp16) or converted
    (mkldnn) rather than a copy; fp32 eager and compile use it as it is
    (put in eval mode, on ``device``, channels-last when asked).
    """
    nchw = not (nhwc(backend) if channels_last is None else channels_last)
    if backend in ("eager", "compile"):
        net = _cast(model.eval(), DTYPES[precision], device, in_place)
        if not nchw:
            # the conv stack, and for the dense maps the head too (a conv with contiguous
            # weights on channels-last maps is far slower). For logits the head stays
            # contiguous, so that the FC view (F.linear on fc6's weight flattened) stays a
            # view and not a copy of 103 M weights per call. (fp32 runs the caller's own
            # net: built for both, the head is as the last build left it)
            features = getattr(net, "features", None)
            whole = output != "logits" or not isinstance(features, nn.Module)
            (net if whole else features).to(memory_format=torch.channels_last)
        module = _Output(net, output, relu).eval()
        prepare = _input(device, DTYPES[precision], not nchw)
        if backend == "eager":
            return _eager(module, prepare)
        return _compiled(module, prepare, example)
    module = _Output(model.eval().to(device), output, relu).eval()
    if backend == "jit":
        return _jit(module, example, device)
    if backend == "mkldnn":
        return _mkldnn(model if in_place else copy.deepcopy(model), output, relu)
    return _onnxruntime(module, example, output, threads)


def _cast(model: nn.Module, dtype: torch.dtype, device: torch.device,
          in_place: bool) -> nn.Module:
    """``model`` on ``device`` with its floating weights in ``dtype``: itself for fp32 or
    ``in_place``, else a copy made without a second fp32 copy of the weights."""
    if dtype == torch.float32:
        return model.to(device)
    if in_place:
        net = model.to(device, dtype)
    else:
        cast: dict[int, Any] = {}
        for t in itertools.chain(model.parameters(), model.buffers()):
            if t.is_floating_point():
                value = t.detach().to(device, dtype)
                cast[id(t)] = nn.Parameter(value, False) if isinstance(t, nn.Parameter) else value
        net = copy.deepcopy(model, cast).to(device)  # the memo hands deepcopy the cast tensors
    for m in net.modules():  # LRN's avg_pool3d has no bf16 kernel on the CPU: it runs in fp32
        if isinstance(m, nn.LocalResponseNorm):
            m.register_forward_pre_hook(lambda _, args: (args[0].float(),))
            m.register_forward_hook(lambda _, args, out: out.to(dtype))
    return net


def _input(device: torch.device, dtype: torch.dtype, channels_last: bool) -> Runner:
    def prepare(x: Tensor) -> Tensor:
        x = x.to(device, dtype, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return prepare


def _eager(module: nn.Module, prepare: Runner) -> Runner:
    def run_eager(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return module(prepare(x)).float()
    return run_eager


def _compiled(module: nn.Module, prepare: Runner, example: Tensor) -> Runner:
    # inductor's freezing folds the weights into the graph as constants (prepacked for
    # oneDNN); it needs no_grad at call time, where inference_mode would make tensors
    # that the traced graph cannot take
    module.requires_grad_(False)
    compiled = torch.compile(module, options={"freezing": True})

    def run_compiled(x: Tensor) -> Tensor:
        with torch.no_grad():
            return compiled(prepare(x)).float()
    run_compiled(example)  # compile now, at the size that will run: not in the first batch
    return run_compiled


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
