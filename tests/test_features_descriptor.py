"""Appendix-B descriptors on tiny nets, against hand-rolled torch computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vggkit.features import AGGREGATES
from vggkit.features.descriptor import flip_pooled
from vggkit.features.extractor import FeatureExtractor, Net, SizeBatcher
from vggkit.inference.backends import onnxruntime_available
from vggkit.inference.batching import size_batches
from vggkit.factory import build_vgg
from vggkit.models.preprocess import CAFFE_PREPROCESS, normalize, normalize_

PRE = {"mean": [120.0, 110.0, 100.0], "std": [60.0, 50.0, 40.0], "bgr": False}


def tiny(seed: int = 0, fc_width: int = 64, arch: str = "A") -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_vgg(arch, num_classes=5, width_mult=1 / 16, fc_width=fc_width, input_size=32,
                      init="glorot")
    with torch.no_grad():  # non-zero biases so that pre-ReLU and post-ReLU maps differ
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_(0, 0.1)
    return model.eval()


def image(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    # smooth random colours: a small random image upsampled, like a photo's statistics
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


def extractor(*models, **kw) -> FeatureExtractor:
    kw.setdefault("scales", (32,))
    return FeatureExtractor([Net(m, PRE, f"net{i}") for i, m in enumerate(models)], **kw)


def hand_descriptor(model, img: Image.Image, q: int, relu: bool = True) -> np.ndarray:
    """Rescale with PIL, normalise, conv stack, fc6/fc7 as convs, mean-pool, flip-average, L2."""
    w, h = img.size
    size = (q, round(h * q / w)) if w <= h else (round(w * q / h), q)
    arr = np.asarray(img.resize(size, Image.BILINEAR), dtype=np.float32)
    x = (torch.from_numpy(arr) - torch.tensor(PRE["mean"])) / torch.tensor(PRE["std"])
    x = x.permute(2, 0, 1)[None]
    pooled = []
    with torch.no_grad():
        for inp in (x, torch.flip(x, dims=[3])):
            feat = model.features(inp)
            fc6 = F.relu(F.conv2d(feat, model.head.fc6.weight, model.head.fc6.bias))
            fc7 = F.conv2d(fc6, model.head.fc7.weight, model.head.fc7.bias)
            if relu:
                fc7 = F.relu(fc7)
            pooled.append(fc7.mean(dim=(2, 3))[0])
    d = (pooled[0] + pooled[1]) / 2
    return (d / d.norm()).numpy()


BACKENDS = ["eager", "jit", "mkldnn"] + (["onnxruntime"] if onnxruntime_available() else [])


@pytest.mark.parametrize("relu,backend", [(True, b) for b in BACKENDS] + [(False, "auto")])
def test_descriptor_equals_hand_computation(relu, backend):
    model, img = tiny(), image(70, 50, 1)
    for q in (32, 48):
        ex = extractor(model, scales=(q,), relu=relu, backend=backend)
        got = ex.describe_images([img])[0]
        np.testing.assert_allclose(got, hand_descriptor(model, img, q, relu), atol=2e-5)
    if not relu:
        assert (got < 0).any()  # before the ReLU the fc7 average has negative entries


def test_dense_map_mean_pooled_by_hand():
    model, img = tiny(1), image(64, 96, 2)
    ex = extractor(model, scales=(64,), backend="eager", channels_last=False)
    x = ex.prepare(img)[64][None].float()
    x = (x - torch.tensor(PRE["mean"]).view(3, 1, 1)) / torch.tensor(PRE["std"]).view(3, 1, 1)
    with torch.no_grad():
        d = (model.dense_pre_logits(x).mean((2, 3)) +
             model.dense_pre_logits(x.flip(3)).mean((2, 3))) / 2
    assert model.dense_pre_logits(x).shape[-2:] == (3, 2)  # a real map, not 1x1
    np.testing.assert_allclose(ex.describe_images([img])[0], (d / d.norm())[0].numpy(), atol=2e-5)


def test_flip_property_and_unit_norm():
    model = tiny(2)
    imgs = [image(70, 50, s) for s in range(3)] + [image(40, 64, 7)]
    mirrors = [im.transpose(Image.FLIP_LEFT_RIGHT) for im in imgs]
    for aggregate in ("avg", "stack"):
        ex = extractor(model, scales=(32, 40, 56), aggregate=aggregate)
        a, b = ex.describe_images(imgs), ex.describe_images(mirrors)
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(a[0], a[1])  # different images, different descriptors


def test_avg_vs_stack_dims_and_blocks():
    model, imgs = tiny(3), [image(70, 50, 4), image(50, 50, 5)]
    scales = (32, 48, 64)
    avg = extractor(model, scales=scales, aggregate="avg").describe_images(imgs)
    stack = extractor(model, scales=scales, aggregate="stack").describe_images(imgs)
    assert avg.shape == (2, 64) and stack.shape == (2, 3 * 64)
    singles = [np.stack([hand_descriptor(model, im, q) for im in imgs]) for q in scales]
    # stack: unit per-scale blocks, whole normalised -> each block is single / sqrt(3)
    for k, single in enumerate(singles):
        np.testing.assert_allclose(stack[:, 64 * k:64 * (k + 1)], single / math.sqrt(3), atol=2e-5)
    mean = sum(singles) / 3
    np.testing.assert_allclose(avg, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool5_layer(backend):
    model, img = tiny(4), image(64, 48, 1)
    ex = extractor(model, scales=(32, 64), aggregate="stack", layer="pool5", backend=backend)
    out = ex.describe_images([img])
    assert out.shape == (1, 2 * 32)  # 512 / 16 channels per scale
    with torch.no_grad():  # by hand: pool5 = the conv stack, mean over positions
        blocks = []
        for q, size in ((32, (43, 32)), (64, (85, 64))):
            x = torch.from_numpy(np.asarray(img.resize(size, Image.BILINEAR), dtype=np.float32))
            x = ((x - torch.tensor(PRE["mean"])) / torch.tensor(PRE["std"])).permute(2, 0, 1)
            d = (model.features(x[None]).mean((2, 3)) + model.features(x[None].flip(3)).mean(
                (2, 3))) / 2
            blocks.append(d[0] / d.norm())
        want = torch.cat(blocks) / math.sqrt(2)
    np.testing.assert_allclose(out[0], want.numpy(), atol=2e-5)


def test_two_nets_stack():
    d, e = tiny(5, fc_width=64, arch="D"), tiny(6, fc_width=32, arch="E")
    imgs = [image(70, 50, 8), image(48, 64, 9)]
    both = extractor(d, e, scales=(32, 48), aggregate="stack").describe_images(imgs)
    assert both.shape == (2, 2 * 64 + 2 * 32)
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-5)
    alone_d = extractor(d, scales=(32, 48), aggregate="stack").describe_images(imgs)
    alone_e = extractor(e, scales=(32, 48), aggregate="stack").describe_images(imgs)
    np.testing.assert_allclose(both[:, :128], alone_d / math.sqrt(2), atol=2e-5)
    np.testing.assert_allclose(both[:, 128:], alone_e / math.sqrt(2), atol=2e-5)


def test_batching_by_size_keeps_order_and_values():
    model = tiny(7)
    imgs = [image(70, 50, 1), image(50, 50, 2), image(70, 50, 3), image(50, 70, 4),
            image(50, 50, 5)]
    batched = extractor(model, scales=(32, 40), batch_size=2).describe_images(imgs)
    for i, img in enumerate(imgs):  # one image at a time: no batching at all
        alone = extractor(model, scales=(32, 40), batch_size=1).describe_images([img])[0]
        np.testing.assert_allclose(batched[i], alone, atol=2e-5)


def test_size_batches():
    sizes = [(3, 4), (5, 5), (3, 4), (3, 4), (5, 5), (1, 1)]
    assert size_batches(sizes, 2) == [[5], [0, 2], [3], [1, 4]]
    assert size_batches(sizes, 8) == [[5], [0, 2, 3], [1, 4]]
    assert size_batches(sizes, 8, max_pixels=25) == [[5], [0, 2], [3], [1], [4]]


def test_scale_smaller_than_net_is_refused():
    model = build_vgg("A", num_classes=5, width_mult=1 / 16, fc_width=64, input_size=64)
    with pytest.raises(ValueError, match="Q=32.*at least 64"):
        extractor(model, scales=(32, 64))


def test_backend_choice():
    lrn = build_vgg("A-LRN", num_classes=5, width_mult=1 / 16, fc_width=64, input_size=32)
    auto = "onnxruntime" if onnxruntime_available() else "eager"
    assert extractor(lrn).backend == auto  # oneDNN blocked tensors cannot run LRN
    with pytest.raises(ValueError, match="--backend eager"):
        extractor(lrn, backend="mkldnn")
    assert extractor(tiny(), layer="fc6", relu=False, backend="eager").backend == "eager"
    assert extractor(tiny(), precision="bf16").backend == "eager"


def plain_normalised(view: torch.Tensor, record: dict) -> torch.Tensor:
    """One uint8 view 3 x H x W normalised the plain way: float, - mean, / std, BGR if asked."""
    mean, std = (torch.tensor(record[k], dtype=torch.float32).view(3, 1, 1) for k in ("mean", "std"))
    x = (view.float() - mean) / std
    return x.flip(0) if record["bgr"] else x


@pytest.mark.parametrize("backend", ["eager"] + (["onnxruntime"] if onnxruntime_available() else []))
@pytest.mark.parametrize("record", [PRE, CAFFE_PREPROCESS], ids=["std", "bgr-std1"])
@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_uint8_mirrors_normalised_once_give_the_bytes_of_the_plain_protocol(aggregate, record,
                                                                            backend):
    """Appendix B step by step: each image and its mirror (torch.flip) normalised apart,
    both through the net in one pass, pooled, averaged; per-scale units stacked or averaged."""
    model, imgs = tiny(8), [image(70, 50, s) for s in range(3)]  # one size: one batch per Q
    ex = FeatureExtractor([Net(model, record)], scales=(32, 48), aggregate=aggregate,
                          backend=backend)
    got = ex.describe_images(imgs)
    views, n, units = [ex.prepare(im) for im in imgs], len(imgs), []
    with torch.inference_mode():
        for q in ex.scales:
            originals = [plain_normalised(v[q], record) for v in views]
            mirrors = [plain_normalised(torch.flip(v[q], dims=[2]), record) for v in views]
            pooled = ex._runners[0](torch.stack(originals + mirrors)).float().mean(dim=(2, 3))
            units.append(F.normalize((pooled[:n] + pooled[n:]) / 2, dim=1))
        merged = torch.cat(units, dim=1) if aggregate == "stack" else torch.stack(units).mean(0)
        net = F.normalize(merged, dim=1)  # one net's descriptor
        # the nets' blocks (one here), each unit, concatenated and normalised
        want = F.normalize(torch.cat([F.normalize(net, dim=1)], dim=1), dim=1).numpy()
    assert np.abs(got - want).max() == 0


@pytest.mark.parametrize("record", [PRE, CAFFE_PREPROCESS], ids=["std", "bgr-std1"])
def test_in_place_normalise_gives_the_bytes_of_normalize(record):
    x8 = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (2, 3, 5, 7), dtype=np.uint8))
    x = x8.float()
    out = normalize_(x, record)
    assert torch.equal(out, normalize(x8, record))
    assert torch.equal(out, torch.stack([plain_normalised(v, record) for v in x8]))
    if not record["bgr"]:
        assert out is x  # in place: no copy of the batch
    with pytest.raises(ValueError, match="float"):
        normalize_(x8, record)


def test_flip_pooled_takes_images_then_their_mirrors():
    def dense_map(batch):  # a 'map' whose mean over positions is the batch's pixel mean
        return batch

    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    mirrors = images + 100
    assert torch.equal(flip_pooled(dense_map, torch.cat([images, mirrors])),
                       (images.mean((2, 3)) + mirrors.mean((2, 3))) / 2)
    with pytest.raises(ValueError, match="even"):
        flip_pooled(dense_map, images[:1])


def test_arriving_images_make_the_batches_of_size_batches():
    rng = np.random.default_rng(0)
    sizes = [tuple(int(v) for v in rng.choice([2, 3, 5], 2)) for _ in range(60)]
    for batch_size, cap in ((1, None), (4, None), (4, 20), (7, 9)):
        batcher = SizeBatcher(batch_size, cap)
        arrived = [batcher.add(i, size) for i, size in enumerate(sizes)]
        streamed = [b for b in arrived if b is not None] + batcher.rest()
        assert sorted(streamed) == sorted(size_batches(sizes, batch_size, cap))
        assert any(b is not None for b in arrived[:len(sizes) // 2])  # not all at the end


def test_descriptors_do_not_depend_on_how_the_images_arrive():
    model = tiny(9)
    ex = extractor(model, scales=(32, 40), batch_size=2, aggregate="stack")
    sides = [(70, 50), (50, 50), (70, 50), (50, 70), (70, 50), (50, 50), (70, 50)]
    prepared = [ex.prepare(image(w, h, s)) for s, (w, h) in enumerate(sides)]
    prepared.insert(2, None)  # an unreadable image: a zero row
    whole = ex.describe(prepared)
    assert not whole[2].any() and np.all(whole[[0, 1, 3]].any(axis=1))
    for cuts in ((1,) * 8, (3, 5), (0, 8, 0)):
        bounds = np.cumsum((0,) + cuts)
        chunks = (prepared[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
        assert np.array_equal(ex.describe_stream(chunks, len(prepared)), whole)
    with pytest.raises(ValueError, match="announced"):
        ex.describe_stream([prepared], len(prepared) + 1)
    with pytest.raises(ValueError, match="announced"):
        ex.describe_stream([prepared], len(prepared) - 1)
