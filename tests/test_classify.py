"""``vggkit classify`` and ``vggkit.classify`` (issue 27, part 1), without the network.

A stand-in "published" VGG-16 -- torchvision's ``VGG`` class in VGG-16's layer
layout at 1/16 width with ImageNet's 1000 outputs, a 32-pixel crop -- is served by a
local http.server and registered through a test plugin, as the weights tests do
(a real VGG-16 is 528 MB). Its top-5 must equal torchvision's own net with the same
state dict under torchvision's preprocessing (``ImageClassification``, what
``VGG16_Weights.IMAGENET1K_V1.transforms()`` builds, at the stand-in's sizes).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import vggkit
from test_weights import TINY, env, register, server, torch_bytes  # noqa: F401 - fixtures
from vggkit.commands.classify import main
from vggkit.factory import build_vgg
from vggkit.models import save_checkpoint
from helpers import random_weights
from vggkit.weights import WeightsEntry, get_weights_entry, imagenet_categories, transform

pytestmark = pytest.mark.usefixtures("one_thread")
NAME = "vgg16.standin"
#: the stand-in's test scale Q and crop (torchvision's are 256 and 224)
RESIZE, CROP = 40, 32
#: (width, height): each rescales to a centre crop at an even offset, where torchvision's
#: round-half-to-even and vggkit's round-half-up place the crop alike
SIZES = [(100, 100), (80, 120), (120, 80), (90, 60)]


def standin_vgg16(seed: int = 0) -> nn.Module:
    """torchvision's VGG in configuration D at 1/16 width, 1000 classes, 32-pixel crops."""
    from torchvision.models.vgg import VGG, cfgs, make_layers
    layers = [v if v == "M" else v // 16 for v in cfgs["D"]]
    with torch.device("meta"):  # skip torchvision's 100M-parameter classifier
        model = VGG(make_layers(layers), num_classes=1000, init_weights=False)
        model.avgpool = nn.AdaptiveAvgPool2d(1)  # pool5 of a 32-pixel crop is 1x1
        model.classifier = nn.Sequential(nn.Linear(32, 16), nn.ReLU(True), nn.Dropout(),
                                         nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
                                         nn.Linear(16, 1000))
    return random_weights(model, seed)


@pytest.fixture
def published(env, server, register):
    """The stand-in served as torchvision publishes its files, registered as NAME."""
    reference = standin_vgg16()
    data = torch_bytes(reference.state_dict())
    prefix = hashlib.sha256(data).hexdigest()[:8]
    filename = f"vgg16standin-{prefix}.pth"
    server.files[f"/models/{filename}"] = data
    register(WeightsEntry(name=NAME, arch="D", urls=(server.url(f"/models/{filename}"),),
                          filename=filename, converter="torchvision", sha256=prefix,
                          build_args=TINY, test_scales=(RESIZE,)))
    return reference


@pytest.fixture
def photos(tmp_path):
    """Smooth images with some texture, one per size in SIZES, in a folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(SIZES):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], -1)
        pixels = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def torchvision_top5(model: nn.Module, path) -> list[tuple[str, float]]:
    """What torchvision gives: its own preset transform and net, its category names."""
    from torchvision.models import VGG16_Weights
    from torchvision.transforms._presets import ImageClassification
    preset = VGG16_Weights.IMAGENET1K_V1.transforms
    assert preset.keywords == {"crop_size": 224}  # 256 resize: the preset's default
    tf = ImageClassification(crop_size=CROP, resize_size=RESIZE)
    with torch.no_grad():
        probs = model.eval()(tf(Image.open(path).convert("RGB"))[None]).softmax(1)[0]
    top = probs.topk(6)
    # a tie at the 5th place would make the comparison meaningless
    assert top.values[4] - top.values[5] > 1e-6
    names = VGG16_Weights.IMAGENET1K_V1.meta["categories"]
    return [(names[int(i)], float(p)) for p, i in zip(top.values[:5], top.indices[:5])]


def test_top5_equals_torchvisions_own(published, photos, capsys):
    paths = sorted(photos.iterdir())
    expected = [torchvision_top5(published, p) for p in paths]
    got = vggkit.classify(photos, weights=NAME)
    assert len(got) == len(paths)
    for mine, theirs in zip(got, expected):
        assert [c for c, _ in mine] == [c for c, _ in theirs]
        np.testing.assert_allclose([p for _, p in mine], [p for _, p in theirs], rtol=1e-4)
    # the command: one block per image, the folder listed as the function lists it
    assert main([str(photos), "--weights", NAME, "--json"]) == 0
    blocks = json.loads(capsys.readouterr().out)
    assert [b["image"] for b in blocks] == [str(p) for p in paths]
    assert [[d["class"] for d in b["predictions"]] for b in blocks] == \
        [[c for c, _ in t] for t in expected]
    assert main([str(paths[0]), "--weights", NAME, "--topk", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{paths[0]}:" and len(lines) == 3 and expected[0][0][0] in lines[1]


def test_catalogue_names_and_transform(published, photos):
    # every built-in entry carries ImageNet-1k's names, torchvision's own list
    from torchvision.models import VGG16_Weights
    names = VGG16_Weights.IMAGENET1K_V1.meta["categories"]
    assert imagenet_categories() == names and len(names) == 1000
    for entry in (get_weights_entry("vgg16.caffe"), get_weights_entry("vgg19.torchvision"),
                  get_weights_entry(NAME)):
        assert entry.categories == names
    # a plugin's entry of other classes gives their names, one per class
    with pytest.raises(ValueError, match="2 class names for num_classes=1000"):
        WeightsEntry(name="x.y", arch="D", urls=("http://127.0.0.1:9/x",), filename="x.pth",
                     converter="torchvision", classes=("a", "b"))
    # the transform is torchvision's preprocessing, and the center protocol's input
    from torchvision.transforms._presets import ImageClassification
    tf = transform(NAME)
    assert (tf.resize_size, tf.crop_size) == (RESIZE, CROP) and "crop_size=32" in repr(tf)
    img = Image.open(sorted(photos.iterdir())[1]).convert("RGB")
    x = tf(img)
    torch.testing.assert_close(x, ImageClassification(crop_size=CROP, resize_size=RESIZE)(img),
                               atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        probs = build_vgg("D", weights=NAME).eval()(x[None]).softmax(1)[0]
    top = probs.topk(3)
    got = vggkit.classify(img, weights=NAME, topk=3)[0]
    assert [c for c, _ in got] == [names[int(i)] for i in top.indices]
    assert [p for _, p in got] == pytest.approx(top.values.tolist(), rel=1e-4)
    assert transform("vgg16.torchvision").crop_size == 224
    assert transform("vgg16.caffe").preprocess["bgr"] is True


CLASSES = ["airplane", "automobile", "bird", "cat"]


def trained(tmp_path):
    """A tiny net's config and a checkpoint recording its classes as ``vggkit train``
    does (mmengine's ``meta['dataset_meta']['classes']``, the net under ``vgg.``)."""
    vgg = dict(arch="A", num_classes=len(CLASSES), width_mult=1 / 16, input_size=32,
               fc_width=16)
    config = tmp_path / "tiny.py"
    config.write_text(f"model = dict(type='VGGClassifier', vgg={vgg!r},\n"
                      "             data_preprocessor=dict(type='VGGDataPreprocessor'))\n")
    net = random_weights(build_vgg(**vgg, init="none"), seed=1)
    meta = {"preprocess": {"mean": [120.0, 110.0, 100.0], "std": [60.0, 60.0, 60.0],
                           "bgr": False},
            "train_scale": {"S": 32}, "dataset_meta": {"classes": CLASSES}}
    ckpt = tmp_path / "epoch_1.pth"
    save_checkpoint(str(ckpt), {f"vgg.{k}": v for k, v in net.state_dict().items()}, meta)
    return str(config), str(ckpt)


@pytest.mark.parametrize("protocol", ["center", "dense", "multicrop"])
def test_config_checkpoint_names_the_recorded_classes(tmp_path, photos, capsys, protocol):
    config, ckpt = trained(tmp_path)
    assert main([str(photos), config, ckpt, "--topk", "3", "--protocol", protocol,
                 "--json"]) == 0
    blocks = json.loads(capsys.readouterr().out)
    assert len(blocks) == len(SIZES)
    for block in blocks:
        probs = [d["probability"] for d in block["predictions"]]
        assert {d["class"] for d in block["predictions"]} <= set(CLASSES)
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    got = vggkit.classify(sorted(photos.iterdir())[:1], config=config, checkpoint=ckpt,
                          topk=10, protocol=protocol)
    assert sorted(c for c, _ in got[0]) == sorted(CLASSES)  # topk beyond the classes: all
    assert sum(p for _, p in got[0]) == pytest.approx(1, abs=1e-5)


def test_bad_input_is_one_line(tmp_path, photos, capsys, env):
    config, ckpt = trained(tmp_path)
    image = str(sorted(photos.iterdir())[0])
    cases = [
        ([str(tmp_path / "missing.jpg"), config, ckpt], "missing.jpg' does not exist"),
        ([image, "--weights", "vgg16.nonesuch"], "unknown weights 'vgg16.nonesuch'"),
        ([image, config, ckpt, "--topk", "0"], "--topk: 0 is not a positive integer"),
        ([image, config], "give IMAGE... CONFIG CKPT, or IMAGE... --weights NAME"),
        ([image, str(tmp_path / "none.py"), ckpt], "config file"),
        ([image, config, ckpt, "--protocol", "tencrop"], "invalid choice: 'tencrop'"),
        ([image, "--weights", ckpt], "is a file: give it with its config as CONFIG CKPT"),
    ]
    for argv, message in cases:
        assert status(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
    with pytest.raises(vggkit.errors.UserError, match="topk must be at least 1, got 0"):
        vggkit.classify(image, config=config, checkpoint=ckpt, topk=0)


def status(argv: list[str]) -> int:
    """The exit status of ``vggkit classify ARGV``, whether returned or argparse's exit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code
