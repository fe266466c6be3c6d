"""VGG architecture (Sect. 2, Table 1): counts, the FC and dense paths, LRN."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vggkit.factory import build_vgg
from vggkit.models.lrn import LocalResponseNorm

# docs/paper.md#table-1 and #table-2: exact counts at 1000 classes, biases included
PAPER_PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848,
                "C": 133_638_952, "D": 138_357_544, "E": 143_667_240}
SMALL = dict(width_mult=0.0625, fc_width=32, num_classes=10)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(arch: str, **kwargs) -> nn.Module:
    with torch.device("meta"):  # shapes only: no memory, no init cost
        return build_vgg(arch, init="none", **kwargs)


@pytest.mark.parametrize("arch,expected", PAPER_PARAMS.items())
def test_parameter_counts_match_paper(arch, expected):
    assert n_params(meta_model(arch)) == expected


@pytest.mark.parametrize("alias,arch", [("vgg11", "A"), ("vgg11_lrn", "A-LRN"), ("vgg13", "B"),
                                        ("vgg16_c", "C"), ("vgg16", "D"), ("vgg19", "E")])
def test_aliases(alias, arch):
    model = meta_model(alias)
    assert model.arch == arch and not model.batch_norm
    assert n_params(model) == PAPER_PARAMS[arch]


@pytest.mark.parametrize("name", ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"])
def test_bn_counts_and_keys_equal_torchvision(name):
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(weights=None)
    ours = meta_model(name)
    assert ours.batch_norm
    assert n_params(ours) == n_params(reference)
    ref_features = {k: v.shape for k, v in reference.state_dict().items() if k.startswith("features")}
    our_features = {k: v.shape for k, v in ours.state_dict().items() if k.startswith("features")}
    assert our_features == ref_features


def test_config_c_has_1x1_convs_and_shallow_b_5x5():
    c = meta_model("C")
    kernels = [m.kernel_size for m in c.features if isinstance(m, nn.Conv2d)]
    assert kernels.count((1, 1)) == 3 and kernels[-1] == (1, 1)
    assert all(m.padding == (0, 0) for m in c.features
               if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
    shallow = meta_model("shallow-B")
    convs = [m for m in shallow.features if isinstance(m, nn.Conv2d)]
    assert [(m.kernel_size, m.padding) for m in convs] == [((5, 5), (2, 2))] * 5
    assert [m.out_channels for m in convs] == [64, 128, 256, 512, 512]


def test_a_lrn_has_lrn_after_first_conv():
    model = meta_model("A-LRN")
    kinds = [type(m).__name__ for m in model.features[:4]]
    assert kinds == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]


def test_lrn_matches_hand_computed_value():
    # one pixel, channels [1, 2, 3]; n=5 covers all of them for the middle one
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    caffe = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(x)
    alexnet = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0, convention="alexnet")(x)
    # channel 1 (value 2): window sum of squares = 1 + 4 + 9 = 14
    assert caffe[0, 1, 0, 0].item() == pytest.approx(2 / (2 + 1e-4 / 5 * 14) ** 0.75, rel=1e-6)
    assert alexnet[0, 1, 0, 0].item() == pytest.approx(2 / (2 + 1e-4 * 14) ** 0.75, rel=1e-6)
    # channel 0 (value 1): window {0, 1, 2} too (zeros beyond the edge)
    assert caffe[0, 0, 0, 0].item() == pytest.approx(1 / (2 + 1e-4 / 5 * 14) ** 0.75, rel=1e-6)


def small_model(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_vgg("D", init="glorot", **{**SMALL, **kwargs}).eval()


def test_dense_equals_fc_path_at_224():
    model = small_model()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits, score_map = model(x), model.dense(x)
    assert logits.shape == (2, 10) and score_map.shape == (2, 10, 1, 1)
    torch.testing.assert_close(score_map.mean((2, 3)), logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.dense_pre_logits(x)[..., 0, 0], model.pre_logits(x),
                               rtol=1e-5, atol=1e-5)


def test_dense_score_map_equals_head_on_each_7x7_window():
    model = small_model()
    x = torch.randn(1, 3, 288, 320)  # pool5 9x10 -> score map 3x4
    with torch.no_grad():
        pool5 = model.forward_features(x)
        score_map = model.dense(x)
        assert pool5.shape[-2:] == (9, 10) and score_map.shape == (1, 10, 3, 4)
        for i in range(3):
            for j in range(4):
                # the head as plain FC layers (torchvision's classifier) on one window
                window = pool5[:, :, i:i + 7, j:j + 7].flatten(1)
                h = model.head
                fc6 = F.relu(window @ h.fc6.weight.flatten(1).T + h.fc6.bias)
                fc7 = F.relu(fc6 @ h.fc7.weight.flatten(1).T + h.fc7.bias)
                expected = fc7 @ h.fc8.weight.flatten(1).T + h.fc8.bias
                torch.testing.assert_close(score_map[:, :, i, j], expected, rtol=1e-4, atol=1e-5)


def test_fc_and_dense_share_parameters():
    model = small_model()
    names = [n for n, _ in model.named_parameters() if n.startswith("head")]
    assert names == ["head.fc6.weight", "head.fc6.bias", "head.fc7.weight", "head.fc7.bias",
                     "head.fc8.weight", "head.fc8.bias"]
    assert model.head.fc6.weight.shape == (32, 32, 7, 7)


def test_fc_path_on_256_input_names_size_and_dense():
    model = small_model()
    with pytest.raises(ValueError) as info:
        model(torch.randn(1, 3, 256, 256))
    message = str(info.value)
    assert "256x256" in message and "dense" in message and "8x8" in message


def test_adaptive_pool_opt_in_behaves_like_torchvision():
    model = small_model(adaptive_pool=True)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        pooled = F.adaptive_avg_pool2d(model.forward_features(x), 7)
        torch.testing.assert_close(model(x), model.forward_head(pooled))


def test_dense_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 224x224"):
        small_model().dense(torch.randn(1, 3, 160, 160))


def test_pre_logits_relu_option_and_levels():
    x = torch.randn(1, 3, 224, 224)
    with_relu = small_model().pre_logits(x)
    raw = small_model(pre_logits_relu=False).pre_logits(x)
    assert with_relu.shape == (1, 32)
    torch.testing.assert_close(with_relu, raw.clamp(min=0))
    assert (raw < 0).any()
    levels = small_model().forward_levels(x)
    assert [tuple(t.shape[1:]) for t in levels] == [(4, 112, 112), (8, 56, 56), (16, 28, 28),
                                                   (32, 14, 14), (32, 7, 7)]
    model = small_model()
    big = torch.randn(1, 3, 256, 288)
    assert model.dense_pre_logits(big, layer="fc6").shape == (1, 32, 2, 3)
    assert model.dense_layer("pool5")(big).shape == (1, 32, 8, 9)
    with pytest.raises(ValueError, match="fc7"):
        model.dense_pre_logits(big, layer="fc9")


def test_small_crops_use_a_1x1_fc6():
    model = build_vgg("A", num_classes=10, width_mult=0.25, fc_width=16, input_size=32)
    assert model.head.fc6.kernel_size == (1, 1)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_unknown_arch_lists_known_names():
    with pytest.raises(ValueError, match="vgg16_bn"):
        build_vgg("F")


def test_registered_through_plugin():
    from vggkit.plugins import load_plugins
    from vggkit.registry import MODELS, WEIGHT_CONVERTERS
    load_plugins()
    model = MODELS.build(dict(type="VGG", arch="B", input_size=32, **SMALL))
    assert model.arch == "B" and MODELS.get("VGGHead") is not None
    for name in ("torchvision", "timm", "mmpretrain", "caffe"):
        assert WEIGHT_CONVERTERS.get(name) is not None


def test_one_builder_above_models_and_weights():
    """``build_vgg`` takes VGG's keywords through, not a copy of them; the old import paths
    still work and say where the builder went."""
    import inspect

    from vggkit import factory
    from vggkit.models.vgg import VGG
    assert list(inspect.signature(factory.build_vgg).parameters) == [
        "arch", "num_classes", "weights", "kwargs"]
    model = factory.build_vgg("A", 7, init="none", width_mult=0.0625, fc_width=32)
    assert isinstance(model, VGG) and model.num_classes == 7
    with pytest.warns(DeprecationWarning, match="vggkit.factory.build_vgg"):
        from vggkit.models.vgg import build_vgg as old
    assert old is factory.build_vgg
    with pytest.raises(TypeError, match="fc_widht"):
        factory.build_vgg("A", fc_widht=16)
