"""The inference layer under evaluation and extraction: views, batching, the backend
resolver of both paths, device choice and the process group."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vggkit.errors import UserError
from vggkit.inference import backends, distributed
from vggkit.inference.autotune import choose
from vggkit.inference.backends import BackendUnavailableError, reduced_precision
from vggkit.inference.batching import size_batches
from vggkit.inference.views import image_views
from vggkit.factory import build_vgg


@pytest.fixture(scope="module")
def nets():
    kw = dict(num_classes=5, width_mult=1 / 16, fc_width=32, input_size=32)
    return build_vgg("A", **kw).eval(), build_vgg("A-LRN", **kw).eval()


def test_views_are_uint8_rgb_at_every_scale_once():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90), dtype=np.uint8))
    views = image_views(img, [32, 48, 32])  # grey, a repeated Q
    assert sorted(views) == [32, 48]
    assert views[32].shape == (3, 32, 48) and views[48].shape == (3, 48, 72)
    assert views[32].dtype == torch.uint8 and views[32].is_contiguous()
    assert torch.equal(views[32][0], views[32][2])  # grey -> equal channels


def test_pixel_cap_chunks_batches():
    # the evaluation's cap itself (from memory) is tested in test_pass_cap.py
    assert size_batches([(2, 2)] * 5, 4, max_pixels=8) == [[0, 1], [2, 3], [4]]


def test_onnxruntime_threads_do_not_spin_between_runs(nets, monkeypatch):
    """The session of an ORT runner leaves the cores to torch's ops between its runs."""
    ort = pytest.importorskip("onnxruntime")
    from vggkit.inference.runners import compile_for_inference
    built = []

    class Recorded(ort.InferenceSession):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(ort, "InferenceSession", Recorded)
    run = compile_for_inference(nets[0], "fc7", "onnxruntime", example_size=32)
    assert run(torch.zeros(2, 3, 32, 32)).shape[:2] == (2, 32)
    (session,) = built
    # raises if the entry was never set
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_static_auto_when_not_measured(nets, monkeypatch):
    """VGGKIT_AUTOTUNE=off (or no net to probe): the first available of the static order."""
    plain, lrn = nets
    monkeypatch.setenv("VGGKIT_AUTOTUNE", "off")
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    kw = dict(output="fc7", relu=True)
    assert choose("auto", "auto", "cpu", models=[plain]) == ("onnxruntime", "fp32")
    assert choose("auto", "auto", "cuda", models=[plain]) == ("eager", "fp16")
    assert choose("jit", "auto", "cuda", models=[plain]) == ("jit", "fp32")
    assert choose("auto", "bf16", "cpu", models=[plain], **kw) == ("eager", "bf16")
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    assert choose("auto", "auto", "cpu", models=[plain]) == ("jit", "fp32")
    assert choose("auto", "auto", "cpu", models=[plain], **kw) == ("mkldnn", "fp32")
    assert choose("auto", "auto", "cpu", models=[lrn], **kw) == ("jit", "fp32")
    assert choose("auto", "fp32", "cpu", output="fc6", relu=False) == ("jit", "fp32")
    # inputs of many sizes (dense evaluation): no traced backend; the score map runs on oneDNN
    dense = dict(output="dense", dynamic_size=True)
    assert choose("auto", "auto", "cpu", models=[plain], **dense) == ("mkldnn", "fp32")
    assert choose("auto", "auto", "cpu", models=[lrn], **dense) == ("eager", "fp32")
    assert choose("jit", "auto", "cpu", models=[lrn], **dense) == ("jit", "fp32")  # if named


def test_reduced_precision_pays_on_cuda_and_native_bf16_cpus_only(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # its own reason: tested elsewhere
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    assert reduced_precision(torch.device("cpu")) == (None, "no AVX-512 BF16/AMX")
    assert reduced_precision(torch.device("cuda"))[0] == "fp16"
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
    assert reduced_precision(torch.device("cpu"))[0] == "bf16"


@pytest.mark.parametrize("backend,precision,device,output,why", [
    ("mkldnn", "fp32", "cpu", "logits", "dense maps"),
    ("mkldnn", "fp32", "cuda", "fc7", "CPU only"),
    ("onnxruntime", "bf16", "cpu", "fc7", "fp32 only"),
    ("eager", "fp16", "cpu", "fc7", "CUDA only"),
    ("compile", "fp16", "cpu", "fc7", "CUDA only"),
])
def test_a_named_backend_that_cannot_run_says_why(nets, backend, precision, device, output, why):
    with pytest.raises(BackendUnavailableError, match=f"{why}.*--backend eager"):
        choose(backend, precision, device, models=[nets[0]], output=output)


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="'tpu'.*mkldnn"):
        choose("tpu", "auto", "cpu")
    with pytest.raises(ValueError, match="'int8'.*bf16"):
        choose("auto", "int8", "cpu")


def test_device_choice(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.choose_device(None, "pytorch") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert distributed.choose_device(None) == "cuda"
    assert distributed.choose_device("cuda:0", "pytorch") == "cuda:3"  # each process its GPU
    assert distributed.choose_device("cpu", "pytorch") == "cpu"


def test_a_launcher_without_its_environment_is_a_user_error(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(UserError, match="RANK and WORLD_SIZE.*torchrun"):
        distributed.init_distributed("pytorch", "cpu")
    distributed.init_distributed("none", "cpu")  # nothing to join
    assert distributed.rank_and_world() == (0, 1)
    assert distributed.shard(range(7), 1, 3) == [1, 4]
