"""Fine-tuning published weights on a folder of other classes (issue 27, part 2).

A stand-in "published" VGG in torchvision's layout (test_weights' tiny net) is
registered by a test plugin and served by a local http.server; nothing touches
the network."""
from __future__ import annotations

import warnings

import pytest
import torch

from helpers import CLASSES, REPO, make_split_folder, tiny_vgg
from test_weights import NAME, env, register, served, server  # noqa: F401  (fixtures)
from vggkit.factory import build_vgg
from vggkit.models import read_checkpoint
from vggkit.models.init import init_from_checkpoint
from vggkit.models.io import load_checkpoint, save_checkpoint
from vggkit.weights import resolve_weights

KEPT = ("features.", "head.fc6.", "head.fc7.")
CONFIG = str(REPO / "configs" / "finetune" / "vgg16_folder.py")
#: the stand-in's 32-pixel crop, one short epoch, no worker processes
SMALL_RUN = ["train_cfg.max_epochs=1", "total_batch_size=4",
             "train_dataloader.num_workers=0", "val_dataloader.num_workers=0",
             "train_dataloader.dataset.dataset.pipeline.0.scale=32",
             "train_dataloader.dataset.dataset.pipeline.0.crop=32",
             "val_dataloader.dataset.pipeline.1.scale=32",
             "val_dataloader.dataset.pipeline.1.crop=32"]


def kept(state_dict):
    return {k: v for k, v in state_dict.items() if k.startswith(KEPT)}


def test_finetune_keeps_conv1_1_to_fc7_and_sizes_fc8_to_the_folder(env, served, tmp_path,  # noqa: F811
                                                                   capsys):
    from vggkit.commands import extract as extract_cli
    from vggkit.commands import test as test_cli
    from vggkit.commands.train import parse_args
    from vggkit.engine.train import build_runner, load_config
    data = make_split_folder(tmp_path / "data", train=2, val=1)
    work = tmp_path / "work"
    cfg = load_config(parse_args([CONFIG, "--data-root", str(data), "--weights", NAME,
                                  "--work-dir", str(work), "--cfg-options", *SMALL_RUN]))
    published, meta = read_checkpoint(resolve_weights(NAME))
    pre = cfg.model.data_preprocessor
    assert (pre.mean, pre.std, pre.bgr) == (meta["preprocess"]["mean"],
                                            meta["preprocess"]["std"], False)
    runner = build_runner(cfg)
    net = runner.model.vgg
    assert runner.model.data_preprocessor.mean.flatten().tolist() == pytest.approx(pre.mean)
    assert runner.model.data_preprocessor.std.flatten().tolist() == pytest.approx(pre.std)
    start = net.state_dict()
    assert kept(start).keys() == kept(published).keys()
    for key, value in kept(published).items():
        assert torch.equal(start[key], value), key
    assert net.head.fc8.out_channels == net.num_classes == len(CLASSES)
    runner.train()

    ckpt = str(work / "epoch_1.pth")
    saved_cfg = str(work / "vgg16_folder.py")  # the runner's dump: the weights' net shape
    trained, trained_meta = read_checkpoint(ckpt)
    assert list(trained_meta["dataset_meta"]["classes"]) == sorted(CLASSES)
    assert trained["head.fc8.weight"].shape[0] == len(CLASSES)
    capsys.readouterr()
    assert test_cli.main([saved_cfg, ckpt, "--data-root", str(data / "val"),
                          "--scales", "32"]) == 0
    assert extract_cli.main([saved_cfg, ckpt, "--data-root", str(data / "val"), "--scales", "32",
                             "--out", str(tmp_path / "feats"), "--backend", "eager",
                             "--no-progress"]) == 0


def test_reset_classifier_keeps_the_rest_and_sizes_fc8():
    model = tiny_vgg(5)
    before = model.state_dict()
    model.reset_classifier(3)
    assert model.num_classes == 3 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    assert all(torch.equal(before[k], v) for k, v in kept(model.state_dict()).items())
    assert float(model.head.fc8.bias.detach().abs().sum()) == 0.0
    with pytest.raises(ValueError, match="num_classes=0"):
        model.reset_classifier(0)


def test_load_checkpoint_strict_false_skips_fc8_of_other_classes(tmp_path):
    source = tiny_vgg(5)
    path = str(tmp_path / "five.pth")
    save_checkpoint(path, source.state_dict(), {"arch": "A", "num_classes": 5})
    model = tiny_vgg(3, init="paper")
    fc8 = model.head.fc8.weight.detach().clone()
    with pytest.raises(ValueError, match="head.fc8.weight"):
        load_checkpoint(model, path)
    with pytest.warns(UserWarning, match="head.fc8") as caught:
        load_checkpoint(model, path, strict=False)
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["head.fc8.bias",
                                                                     "head.fc8.weight"]
    assert torch.equal(model.head.fc8.weight, fc8)
    assert all(torch.equal(source.state_dict()[k], v) for k, v in kept(model.state_dict()).items())


def test_init_from_checkpoint_fc_names_keep_fc8_random_and_the_hint_is_true():
    source = tiny_vgg(5).state_dict()
    model = tiny_vgg(3, init="paper")
    fc8 = model.head.fc8.weight.detach().clone()
    with pytest.raises(ValueError, match=r"fc=\('fc6', 'fc7'\)") as err:
        init_from_checkpoint(model, source, conv_layers=None, fc_layers=2)
    # the hint names what works: fc6 and fc7 copied, fc8 left as it was
    assert "fc_layers=2" not in str(err.value)
    report = init_from_checkpoint(model, source, conv_layers=None, fc=("fc6", "fc7"))
    assert report.random == ["fc8"] and torch.equal(model.head.fc8.weight, fc8)
    assert all(torch.equal(source[k], v) for k, v in kept(model.state_dict()).items())
    with pytest.raises(ValueError, match="fc="):
        init_from_checkpoint(model, source, fc=("fc9",))


def test_load_from_a_bare_vgg_checkpoint_loads_into_the_classifier(tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint as mmengine_load

    from vggkit.engine.classifier import VGGClassifier
    source = tiny_vgg(3)
    path = str(tmp_path / "converted.pth")
    save_checkpoint(path, source.state_dict(), {"arch": "A", "num_classes": 3})
    clf = VGGClassifier(vgg=dict(arch="A", num_classes=3, width_mult=1 / 16, fc_width=32,
                                 input_size=32, init="paper"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # strict: without the classifier taking bare keys every key is missing/unexpected
        mmengine_load(clf, path, map_location="cpu", strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(clf.vgg.state_dict()[key], value), key


def test_train_weights_of_an_unknown_name_is_one_line(env, tmp_path, capsys):  # noqa: F811
    from vggkit.commands.train import main
    data = make_split_folder(tmp_path / "data", train=2, val=1)
    assert main([CONFIG, "--data-root", str(data), "--weights", "vgg16.nowhere",
                 "--work-dir", str(tmp_path / "w")]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ": error: " in ln]
    assert len(errors) == 1 and "vgg16.nowhere" in errors[0]


def test_train_weights_accepts_a_checkpoint_vggkit_train_wrote(tmp_path):
    """A training checkpoint records its net only in the config text mmengine pickles into
    meta['cfg']; --weights read 'arch' alone and refused it (found fine-tuning on CIFAR-10)."""
    from mmengine.config import Config

    from vggkit.engine.finetune import apply_weights
    trained = Config.fromfile(str(REPO / "configs" / "tiny" / "vgg_a_tiny.py"))
    net = trained.model.vgg
    model = build_vgg(net.arch, num_classes=5, width_mult=net.width_mult, fc_width=net.fc_width,
                      input_size=net.input_size)
    path = tmp_path / "epoch_2.pth"
    torch.save({"state_dict": {f"vgg.{k}": v for k, v in model.state_dict().items()},
                "meta": {"cfg": trained.pretty_text, "dataset_meta": {"classes": list("abcde")}}},
               path)
    cfg = Config.fromfile(str(REPO / "configs" / "tiny" / "vgg_a_tiny.py"))
    cfg.model.vgg.update(width_mult=1.0, fc_width=4096, input_size=224)  # another shape
    apply_weights(cfg, str(path))
    assert (cfg.model.vgg.arch, cfg.model.vgg.width_mult, cfg.model.vgg.fc_width,
            cfg.model.vgg.input_size) == ("A", 1 / 4, 128, 32)  # the tiny config's net
    assert cfg.model.vgg.init_checkpoint == str(path) and cfg.model.vgg.init_fc == ["fc6", "fc7"]

