"""VGGClassifier: loss/predict/tensor modes, bf16 autocast on CPU, net-A pre-initialisation."""
from __future__ import annotations

import math

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement

from vggkit.plugins import load_plugins
from vggkit.registry import MODELS

TINY_VGG = dict(arch="A", num_classes=3, width_mult=1 / 16, fc_width=16, input_size=32,
                init="glorot")
PRE = dict(type="VGGDataPreprocessor", mean=[120.0, 110.0, 100.0])


def _build(**kw):
    load_plugins()
    return MODELS.build(dict(type="VGGClassifier", vgg=dict(TINY_VGG, **kw.pop("vgg", {})),
                             data_preprocessor=PRE, **kw))


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g) for _ in range(n)]
    samples = [BaseDataElement(gt_label=torch.tensor([i % 3])) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def test_modes_against_hand_computed_softmax_and_cross_entropy():
    model = _build().eval()
    data = model.data_preprocessor(_batch(), training=False)
    logits = model(data["inputs"], mode="tensor")
    assert logits.shape == (4, 3)
    # independent: log-softmax written out, mean of -log p(label)
    labels = torch.tensor([0, 1, 2, 0])
    logp = logits - logits.exp().sum(1, keepdim=True).log()
    expected = -logp[torch.arange(4), labels].mean()
    loss = model(data["inputs"], data["data_samples"], mode="loss")["loss"]
    assert torch.allclose(loss, expected, atol=1e-6)
    preds = model(data["inputs"], data["data_samples"], mode="predict")
    for row, sample in zip(logits, preds):
        e = [math.exp(v) for v in row.tolist()]
        assert torch.allclose(sample.pred_score, torch.tensor([v / sum(e) for v in e]), atol=1e-6)
        assert int(sample.pred_label) == max(range(3), key=lambda i: e[i])
    with pytest.raises(ValueError, match="mode must be one of"):
        model(data["inputs"], mode="bogus")
    with pytest.raises(ValueError, match="gt_label"):
        model(data["inputs"], [BaseDataElement() for _ in range(4)], mode="loss")


def test_keys_are_prefixed_vgg_for_load_checkpoint():
    assert all(k.startswith("vgg.") for k in _build().state_dict())


def test_bf16_autocast_training_step_on_cpu():
    model = _build(autocast="bfloat16")
    seen = []
    model.vgg.features[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    before = model.vgg.features[0].weight.detach().clone()
    log = model.train_step(_batch(), optim)  # the runner's code path
    assert seen == [torch.bfloat16]
    assert math.isfinite(float(log["loss"].detach()))
    assert model.vgg.features[0].weight.dtype == torch.float32  # master weights stay fp32
    assert not torch.equal(before, model.vgg.features[0].weight)
    with pytest.raises(ValueError, match="autocast"):
        _build(autocast="int8")


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    a = _build().eval()
    b = _build(channels_last=True).eval()
    b.load_state_dict(a.state_dict())
    x = a.data_preprocessor(_batch(), training=False)["inputs"]
    assert b.vgg.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(a(x), b(x), atol=1e-5)


def test_net_d_is_pre_initialised_from_a_net_a_runner_checkpoint(tmp_path):
    net_a = _build()
    path = tmp_path / "a.pth"
    torch.save({"state_dict": net_a.state_dict(), "meta": {}}, path)  # runner layout: 'vgg.*'
    net_d = _build(vgg=dict(arch="D", init="from_checkpoint", init_checkpoint=str(path)))
    a, d = net_a.vgg, net_d.vgg
    # Sect. 3.1: conv1_1, conv2_1, conv3_1, conv3_2 and fc6-fc8 copied; the rest random
    for name in ("conv1_1", "conv2_1", "conv3_1", "conv3_2"):
        assert torch.equal(d.features[d.conv_names[name]].weight,
                           a.features[a.conv_names[name]].weight), name
    for fc in ("fc6", "fc7", "fc8"):
        assert torch.equal(getattr(d.head, fc).weight, getattr(a.head, fc).weight)
    assert d.features[d.conv_names["conv1_2"]].weight.shape == (4, 4, 3, 3)
