"""timm, mmpretrain and Caffe weights -> vggkit: key layouts, logits, preprocessing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vggkit.factory import build_vgg
from vggkit.models import load_checkpoint, normalize
from vggkit.commands.convert import main as convert_main
from vggkit.models.converters import MMPretrainConverter, TimmConverter
from helpers import random_weights


# -- timm (installed: its own model gives the reference layout and logits) ----------
@pytest.mark.parametrize("name", ["vgg11_bn"])  # full size: one variant keeps it quick
def test_timm_layout_and_logits(name):
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        reference = timm.create_model(name, pretrained=False)
    reference = random_weights(reference.to_empty(device="cpu"))
    sd = reference.state_dict()
    # the layout timm documents in its vgg.py checkpoint filter
    assert sd["pre_logits.fc1.weight"].shape == (4096, 512, 7, 7)
    assert sd["pre_logits.fc2.weight"].shape == (4096, 4096, 1, 1)
    assert sd["head.fc.weight"].shape == (1000, 4096)
    ours, meta = TimmConverter().convert_with_meta(sd)
    assert meta["arch"] == "A" and meta["batch_norm"] == name.endswith("_bn")
    with torch.device("meta"):
        model = build_vgg(name, init="none")
    model = model.to_empty(device="cpu").eval()
    model.load_state_dict(ours)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-4
    back = TimmConverter().export(model.state_dict(), model)
    assert set(back) == set(sd) and all(torch.equal(back[k], v) for k, v in sd.items())


# -- mmpretrain (not installed: a re-statement of its VGG backbone's module tree) -----
class ConvModule(nn.Module):
    """mmcv's ConvModule as mmpretrain's VGG uses it: conv, optional bn, activate."""

    def __init__(self, cin: int, cout: int, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout) if norm else None
        self.activate = nn.ReLU()

    def forward(self, x):
        x = self.conv(x)
        return self.activate(self.bn(x) if self.bn is not None else x)


class MMPretrainVGG(nn.Module):
    """mmpretrain.models.backbones.VGG(depth, num_classes>0) with widths scaled down."""

    def __init__(self, stage_blocks, widths, fc, num_classes, norm):
        super().__init__()
        layers, cin = [], 3
        for blocks, width in zip(stage_blocks, widths):
            for _ in range(blocks):
                layers.append(ConvModule(cin, width, norm))
                cin = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(cin * 49, fc), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(fc, fc), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(fc, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@pytest.mark.parametrize("arch,blocks,norm", [("A", (1, 1, 2, 2, 2), True),
                                              ("D", (2, 2, 3, 3, 3), False)])
def test_mmpretrain_layout_and_logits(tmp_path, arch, blocks, norm):
    reference = random_weights(MMPretrainVGG(blocks, (4, 8, 16, 32, 32), 16, 6, norm))
    sd = {f"backbone.{k}": v for k, v in reference.state_dict().items()}
    # ConvModules and pools share one index: the first pool follows stage 1's convs
    assert f"backbone.features.{blocks[0] + 1}.conv.weight" in sd
    if norm:
        assert "backbone.features.0.bn.running_var" in sd
    src, out = tmp_path / "mm.pth", tmp_path / "ours.pth"
    torch.save({"meta": {"epoch": 100}, "state_dict": sd}, src)
    assert convert_main(["--src", "mmpretrain", str(src), str(out)]) == 0
    model = build_vgg(arch, 6, batch_norm=norm, width_mult=1 / 16, fc_width=16, init="none").eval()
    meta = load_checkpoint(model, str(out))
    assert meta["source"] == "mmpretrain" and meta["preprocess"]["std"] == [58.395, 57.12, 57.375]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    back = MMPretrainConverter().export(model.state_dict(), model)
    assert set(back) == set(sd) and all(torch.equal(back[k], v) for k, v in sd.items())


# -- Caffe: a .caffemodel written with protobuf from caffe.proto's field numbers ------
def caffe_classes():
    """NetParameter & co. built at run time from caffe.proto's numbers (no protoc)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F_ = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="test_caffe.proto", package="testcaffe")

    def message(name, fields):
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = f".testcaffe.{type_name}"
            if label == F_.LABEL_REPEATED and ftype in (F_.TYPE_FLOAT, F_.TYPE_INT64):
                field.options.packed = True
    opt, rep = F_.LABEL_OPTIONAL, F_.LABEL_REPEATED
    message("BlobShape", [("dim", 1, F_.TYPE_INT64, rep, None)])
    message("BlobProto", [("shape", 7, F_.TYPE_MESSAGE, opt, "BlobShape"),
                          ("data", 5, F_.TYPE_FLOAT, rep, None),
                          ("num", 1, F_.TYPE_INT32, opt, None),
                          ("channels", 2, F_.TYPE_INT32, opt, None),
                          ("height", 3, F_.TYPE_INT32, opt, None),
                          ("width", 4, F_.TYPE_INT32, opt, None)])
    message("LayerParameter", [("name", 1, F_.TYPE_STRING, opt, None),
                               ("type", 2, F_.TYPE_STRING, opt, None),
                               ("blobs", 7, F_.TYPE_MESSAGE, rep, "BlobProto")])
    message("V1LayerParameter", [("name", 4, F_.TYPE_STRING, opt, None),
                                 ("type", 5, F_.TYPE_INT32, opt, None),
                                 ("blobs", 6, F_.TYPE_MESSAGE, rep, "BlobProto")])
    message("NetParameter", [("name", 1, F_.TYPE_STRING, opt, None),
                             ("layer", 100, F_.TYPE_MESSAGE, rep, "LayerParameter"),
                             ("layers", 2, F_.TYPE_MESSAGE, rep, "V1LayerParameter")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("testcaffe.NetParameter"))


CONVS = [(4, 3), (8, 4), (16, 8), (16, 16), (32, 16), (32, 32), (32, 32), (32, 32)]  # net A / 16
POOL_AFTER = {0, 1, 3, 5, 7}


def make_caffemodel(path, v1: bool):
    """Net A at 1/16 width, fc 16, 5 classes; V1 with legacy 4-D blob dims, or current."""
    rng = np.random.default_rng(0)
    params = []
    for cout, cin in CONVS:
        params.append(("conv", rng.normal(0, math.sqrt(2 / (cin * 9)), (cout, cin, 3, 3)),
                       rng.uniform(-0.1, 0.1, cout)))
    for cout, cin in ((16, 32 * 49), (16, 16), (5, 16)):
        params.append(("fc", rng.normal(0, math.sqrt(2 / cin), (cout, cin)),
                       rng.uniform(-0.1, 0.1, cout)))
    net = caffe_classes()(name="VGG_A_tiny")
    names = ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv5_1",
             "conv5_2", "fc6", "fc7", "fc8"]
    for i, (name, (kind, w, b)) in enumerate(zip(names, params)):
        layer = net.layers.add(name=name, type=4 if kind == "conv" else 14) if v1 else \
            net.layer.add(name=name, type="Convolution" if kind == "conv" else "InnerProduct")
        if v1 and i == 1:  # a parameter-free layer in between, as in real files
            net.layers.add(name="relu1", type=18)
        for blob in (w, b):
            proto = layer.blobs.add()
            proto.data.extend(blob.astype(np.float32).ravel().tolist())
            if v1:
                dims = (1,) * (4 - blob.ndim) + blob.shape
                proto.num, proto.channels, proto.height, proto.width = dims
            else:
                proto.shape.dim.extend(blob.shape)
    path.write_bytes(net.SerializeToString())
    return params


def caffe_reference(params, image_bgr):
    """VGG-A forward pass written directly from the blobs (Caffe's arithmetic)."""
    x = image_bgr
    for i, (_, w, b) in enumerate(params[:8]):
        x = F.relu(F.conv2d(x, torch.tensor(w, dtype=torch.float32),
                            torch.tensor(b, dtype=torch.float32), padding=1))
        if i in POOL_AFTER:
            x = F.max_pool2d(x, 2)
    x = x.flatten(1)
    for i, (_, w, b) in enumerate(params[8:]):
        x = F.linear(x, torch.tensor(w, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
        x = F.relu(x) if i < 2 else x
    return x


@pytest.mark.parametrize("v1", [True, False])
def test_caffe_model_bgr_record_and_logits(tmp_path, v1):
    params = make_caffemodel(tmp_path / "vgg.caffemodel", v1)
    out = tmp_path / "vgg.pth"
    assert convert_main(["--src", "caffe", str(tmp_path / "vgg.caffemodel"), str(out)]) == 0
    model = build_vgg("A", 5, width_mult=1 / 16, fc_width=16, init="none").eval()
    meta = load_checkpoint(model, str(out))
    assert meta["preprocess"] == {"mean": [123.68, 116.779, 103.939], "std": [1.0, 1.0, 1.0],
                                  "bgr": True}
    # conv1_1 kept as in the file (BGR order), not silently permuted
    assert np.array_equal(model.features[0].weight.detach().numpy(),
                          params[0][1].astype(np.float32))
    rgb = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    # Caffe's own preprocessing: BGR channels minus the mean pixel (B, G, R)
    bgr = rgb.flip(1).float() - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = caffe_reference(params, bgr)
        got = model(normalize(rgb, meta["preprocess"]))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)


def test_caffe_to_rgb_and_export_round_trip(tmp_path):
    make_caffemodel(tmp_path / "vgg.caffemodel", v1=True)
    bgr_ckpt, rgb_ckpt = tmp_path / "bgr.pth", tmp_path / "rgb.pth"
    assert convert_main(["--src", "caffe", str(tmp_path / "vgg.caffemodel"), str(bgr_ckpt)]) == 0
    assert convert_main(["--src", "caffe", "--to-rgb", str(tmp_path / "vgg.caffemodel"),
                         str(rgb_ckpt)]) == 0
    kwargs = dict(width_mult=1 / 16, fc_width=16, init="none")
    bgr_model, rgb_model = build_vgg("A", 5, **kwargs).eval(), build_vgg("A", 5, **kwargs).eval()
    bgr_meta, rgb_meta = load_checkpoint(bgr_model, str(bgr_ckpt)), load_checkpoint(rgb_model,
                                                                                  str(rgb_ckpt))
    assert rgb_meta["preprocess"]["bgr"] is False
    rgb = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(rgb_model(normalize(rgb, rgb_meta["preprocess"])),
                                   bgr_model(normalize(rgb, bgr_meta["preprocess"])),
                                   rtol=1e-4, atol=1e-4)
    exported = tmp_path / "back.caffemodel"
    assert convert_main(["--dst", "caffe", str(bgr_ckpt), str(exported)]) == 0
    net = caffe_classes()()
    net.ParseFromString(exported.read_bytes())
    assert [l.name for l in net.layer][:3] == ["conv1_1", "conv2_1", "conv3_1"]
    assert list(net.layer[8].blobs[0].shape.dim) == [16, 32 * 49]
    again = tmp_path / "again.pth"
    assert convert_main(["--src", "caffe", str(exported), str(again)]) == 0
    a, b = torch.load(bgr_ckpt, weights_only=True), torch.load(again, weights_only=True)
    assert all(torch.equal(a["state_dict"][k], v) for k, v in b["state_dict"].items())


def test_not_a_caffemodel_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\xff\xff\xff")
    assert convert_main(["--src", "caffe", str(bad), str(tmp_path / "o.pth")]) == 2
    assert "bad.caffemodel" in capsys.readouterr().err
