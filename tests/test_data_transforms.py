"""Transforms: the paper's distribution (S uniform, crops uniform), values, errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vggkit.data.lighting import PCALighting
from vggkit.data.packing import PackInputs
from vggkit.data.transforms import (CenterCrop, IsotropicRescale, LoadImage, LoadScaleCrop,
                                    RandomCrop, RandomFlip, RandomScaleCrop, TestRescale,
                                    rescale_isotropic)
from vggkit.data.io import BadImageError

# chi-square critical values at p = 0.001 (scipy.stats.chi2.ppf(0.999, dof))
CHI2_999 = {4: 18.47, 8: 26.12}


def chi_square(values, support) -> float:
    counts = np.array([np.sum(np.asarray(values) == v) for v in support], dtype=float)
    assert counts.sum() == len(values), "values outside the expected support"
    expected = len(values) / len(support)
    return float(((counts - expected) ** 2 / expected).sum())


def smooth(w: int, h: int) -> Image.Image:
    """A smooth gradient image: resampling differences stay small and comparable."""
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    arr = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def test_rescale_isotropic_sizes():
    assert rescale_isotropic(Image.new("RGB", (400, 300)), 256).size == (341, 256)  # 341.33
    assert rescale_isotropic(Image.new("RGB", (300, 500)), 224).size == (224, 373)  # 373.33
    assert rescale_isotropic(Image.new("RGB", (200, 201)), 256).size == (256, 257)  # 257.28
    img = smooth(64, 48)
    ref = img.resize((128, 96), Image.BILINEAR)
    assert np.array_equal(np.asarray(rescale_isotropic(img, 96)), np.asarray(ref))


def test_scale_jitter_is_uniform():
    np.random.seed(0)
    t = IsotropicRescale((24, 28))
    scales = [t({"img": Image.new("RGB", (40, 30))})["scale"] for _ in range(1500)]
    assert chi_square(scales, range(24, 29)) < CHI2_999[4]
    out = t({"img": Image.new("RGB", (40, 30))})
    assert min(out["img"].size) == out["scale"]


def test_random_crop_positions_uniform():
    np.random.seed(1)
    t = RandomCrop(20)
    boxes = [t({"img": Image.new("RGB", (29, 23))})["crop_box"] for _ in range(2700)]
    assert chi_square([b[0] for b in boxes], range(10)) < 27.88  # 9 dof
    assert chi_square([b[1] for b in boxes], range(4)) < 16.27  # 3 dof


def test_random_scale_crop_distribution():
    """S uniform on [24, 32]; given S, the corner is uniform over the rescaled image.

    Same geometry as 224 crops from S in [224, 320], scaled down to keep it fast.
    """
    np.random.seed(2)
    t = RandomScaleCrop((24, 32), 24)
    img = Image.new("RGB", (30, 24))
    draws = [t({"img": img}) for _ in range(5000)]
    scales = [d["scale"] for d in draws]
    assert chi_square(scales, range(24, 33)) < CHI2_999[8]
    # S = 24: the image keeps 30x24, 7 horizontal positions, y always 0
    x_at_24 = [d["crop_box"][0] for d in draws if d["scale"] == 24]
    assert chi_square(x_at_24, range(7)) < 22.46  # 6 dof
    assert {d["crop_box"][1] for d in draws if d["scale"] == 24} == {0}
    # S = 32: rescaled to 40x32: x in [0, 16] (17 positions), y in [0, 8] (9)
    at_32 = [d["crop_box"] for d in draws if d["scale"] == 32]
    assert chi_square([b[0] for b in at_32], range(17)) < 39.25  # 16 dof
    assert chi_square([b[1] for b in at_32], range(9)) < CHI2_999[8]
    assert all(d["img"].size == (24, 24) for d in draws[:20])


def test_fused_equals_rescale_then_crop():
    img = smooth(300, 240)
    for seed in range(5):
        np.random.seed(seed)
        fused = RandomScaleCrop((224, 320), 224)({"img": img})
        np.random.seed(seed)  # the two-step pipeline draws S, x, y in the same order
        step = RandomCrop(224)(IsotropicRescale((224, 320))({"img": img}))
        assert fused["scale"] == step["scale"] and fused["crop_box"] == step["crop_box"]
        diff = np.abs(np.asarray(fused["img"], int) - np.asarray(step["img"], int))
        assert diff.max() <= 2, (seed, diff.max())


def test_load_scale_crop_draft_keeps_geometry(tmp_path):
    smooth(1200, 1000).save(tmp_path / "big.jpg", quality=95)
    np.random.seed(3)
    fused = LoadScaleCrop((256, 256), 224)({"img_path": str(tmp_path / "big.jpg")})
    np.random.seed(3)
    full = RandomScaleCrop((256, 256), 224)(LoadImage()({"img_path": str(tmp_path / "big.jpg")}))
    assert fused["ori_shape"] == (1000, 1200)
    assert fused["crop_box"] == full["crop_box"]  # same window of the same S
    diff = np.abs(np.asarray(fused["img"], float) - np.asarray(full["img"], float))
    assert diff.mean() < 2.0


def test_flip_probability_and_pixels():
    np.random.seed(4)
    img = Image.new("RGB", (2, 1))
    img.putpixel((0, 0), (255, 0, 0))
    flips = []
    for _ in range(2000):
        out = RandomFlip(0.5)({"img": img})
        flips.append(out["flip"])
        assert out["img"].getpixel((0, 0)) == ((0, 0, 0) if out["flip"] else (255, 0, 0))
    assert 900 < sum(flips) < 1100  # binomial(2000, .5): 4.5 sigma
    assert not any(RandomFlip(0.0)({"img": img})["flip"] for _ in range(50))


def test_center_crop_and_test_rescale():
    img = Image.new("RGB", (10, 8))
    img.putpixel((3, 2), (9, 9, 9))  # (10-4)//2 = 3, (8-4)//2 = 2: crop's top-left
    assert CenterCrop(4)({"img": img})["img"].getpixel((0, 0)) == (9, 9, 9)
    out = TestRescale(256, crop=224)({"img": Image.new("RGB", (400, 300))})
    assert out["img"].size == (224, 224) and out["scale"] == 256
    assert TestRescale(384)({"img": Image.new("RGB", (400, 300))})["img"].size == (512, 384)


def test_pca_lighting_hand_computed(monkeypatch):
    monkeypatch.setattr(np.random, "normal", lambda loc, scale, size: np.array([1.0, 0, 0]))
    out = PCALighting()({"img": Image.new("RGB", (4, 4), (128, 128, 128))})
    # 255 * 0.2175 * (-0.5675, -0.5808, -0.5836) = (-31.475, -32.213, -32.368)
    assert np.allclose(out["lighting_shift"], [-31.475, -32.213, -32.368], atol=1e-3)
    assert out["img"].getpixel((0, 0)) == (97, 96, 96)


def test_pca_lighting_statistics():
    np.random.seed(5)
    t = PCALighting(std=0.1)
    shifts = np.array([t({"img": Image.new("RGB", (1, 1), (128,) * 3)})["lighting_shift"]
                       for _ in range(3000)])
    # projections on the eigenvectors have std 0.1 * 255 * eigval = 5.546, 0.479, 0.115
    proj = shifts @ np.linalg.inv(t.eigvec).T
    assert np.allclose(proj.std(0), [5.546, 0.4794, 0.11475], rtol=0.08)
    assert np.allclose(proj.mean(0), 0, atol=0.4)


def test_pack_inputs():
    img = Image.new("RGB", (3, 2), (1, 2, 3))
    img.putpixel((2, 1), (7, 8, 9))
    out = PackInputs()({"img": img, "gt_label": 5, "img_path": "a.jpg", "flip": True})
    x = out["inputs"]
    assert x.dtype == torch.uint8 and x.shape == (3, 2, 3)
    assert x[:, 1, 2].tolist() == [7, 8, 9] and x[:, 0, 0].tolist() == [1, 2, 3]
    sample = out["data_samples"]
    assert sample.gt_label.dtype == torch.long and sample.gt_label.tolist() == [5]
    assert sample.metainfo["img_path"] == "a.jpg" and sample.metainfo["flip"] is True


def test_load_image_policies(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(BadImageError, match="bad.jpg"):
        LoadImage()({"img_path": str(tmp_path / "bad.jpg")})
    from vggkit.data import bad_images
    bad_images.reset()
    with warnings.catch_warnings():  # logged by name: mmengine's logger or a warning
        warnings.simplefilter("ignore")
        assert LoadImage("skip")({"img_path": str(tmp_path / "bad.jpg")}) is None
    assert list(bad_images.summary()["files"]) == [str(tmp_path / "bad.jpg")]
    bad_images.reset()


@pytest.mark.parametrize("make, match", [
    (lambda: RandomScaleCrop((512, 256)), "S_min > S_max"),
    (lambda: RandomScaleCrop((200, 300), 224), "smaller than the crop size 224"),
    (lambda: LoadScaleCrop(128, 224), "smaller than the crop size 224"),
    (lambda: IsotropicRescale((300, 256)), "S_min > S_max"),
    (lambda: IsotropicRescale("big"), "integer S or a pair"),
    (lambda: TestRescale(200, crop=224), "smaller than the crop size"),
    (lambda: RandomFlip(1.5), "prob"),
    (lambda: RandomCrop(0), "positive integer"),
    (lambda: LoadImage("ignore"), "bad_images"),
    (lambda: PCALighting(eigval=[1, 2]), "3 eigenvalues"),
])
def test_bad_config_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_crop_larger_than_image_names_fix():
    with pytest.raises(ValueError, match="S >= 224"):
        RandomCrop(224)({"img": Image.new("RGB", (200, 300)), "img_path": "x.jpg"})


def test_registered_and_buildable():
    from vggkit.plugins import load_plugins
    from vggkit.registry import TRANSFORMS
    load_plugins()
    t = TRANSFORMS.build(dict(type="RandomScaleCrop", scale=(256, 512), crop=224))
    assert isinstance(t, RandomScaleCrop) and t.scale == (256, 512)


def test_check_pipeline_two_step_scale_below_crop():
    from vggkit.data.transforms import check_pipeline
    good = [dict(type="LoadImage"), dict(type="IsotropicRescale", scale=(256, 512)),
            dict(type="RandomCrop", size=224)]
    check_pipeline(good)
    bad = [dict(type="LoadImage"), dict(type="IsotropicRescale", scale=(200, 300)),
           dict(type="RandomCrop", size=224)]
    with pytest.raises(ValueError, match="smallest side of 200.*RandomCrop"):
        check_pipeline(bad)
    with pytest.raises(ValueError, match="S_min > S_max"):
        check_pipeline([dict(type="IsotropicRescale", scale=(512, 256))])
    check_pipeline([IsotropicRescale(256), RandomCrop(224)])


# pad-crop: torchvision's RandomCrop(crop, padding=pad) within the paper's scale crop

def _pad_photo(size=(32, 32), seed=0) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, size[::-1] + (3,), dtype=np.uint8))


def test_pad_crop_equals_torchvision_random_crop_with_padding():
    import torchvision.transforms.functional as TF
    img = _pad_photo()
    t = RandomScaleCrop(scale=32, crop=32, pad=4)
    np.random.seed(0)
    corners = set()
    for _ in range(200):
        out, (x0, y0, x1, y1) = t.scale_crop(img, 32)
        assert (x1 - x0, y1 - y0) == (32, 32) and -4 <= x0 <= 4 and -4 <= y0 <= 4
        ref = TF.crop(TF.pad(img, 4), y0 + 4, x0 + 4, 32, 32)  # torchvision's RandomCrop
        assert np.array_equal(np.asarray(out), np.asarray(ref)), (x0, y0)
        corners.add((x0, y0))
    assert len(corners) > 60  # of the 81 positions: drawn uniformly, not a few


def test_pad_zero_keeps_the_window_inside_and_pad_works_after_rescaling(tmp_path):
    img = _pad_photo((48, 40))
    np.random.seed(1)
    for _ in range(50):
        _, (x0, y0, x1, y1) = RandomScaleCrop(scale=(32, 40), crop=32).scale_crop(img, 36)
        assert 0 <= x0 and 0 <= y0 and x1 <= 43 and y1 <= 36  # 48x40 rescaled to 43x36
    path = tmp_path / "a.jpg"
    img.save(path)
    out = LoadScaleCrop(scale=(32, 40), crop=32, pad=4).transform({"img_path": str(path)})
    assert out["img"].size == (32, 32)
    assert out["crop_box"][2] - out["crop_box"][0] == 32
    with pytest.raises(ValueError, match="pad must be a non-negative integer"):
        RandomScaleCrop(scale=32, crop=32, pad=-1)
