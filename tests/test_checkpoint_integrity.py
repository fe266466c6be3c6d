"""Damaged checkpoints: one clear error naming the file (and the tensor), from the library
and from every tool that loads one; content hashes written on save and checked on load."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import vggkit
from helpers import REPO, make_split_folder
from vggkit.safe_load import (HASH_KEY, CheckpointError, UnsafeCheckpointError,
                               UnverifiedCheckpointWarning, torch_load)
from vggkit.factory import build_vgg
from vggkit.models import read_checkpoint, save_checkpoint

VGG_CFG = dict(arch="A", num_classes=3, width_mult=1 / 16, input_size=32, fc_width=32)
TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")
#: tensors of the tiny net a flipped byte is planted in: first and last conv, the head
FLIP_KEYS = ("features.0.weight", "features.0.bias", "features.18.weight", "head.fc6.weight",
             "head.fc8.bias")


def _random_net(seed: int = 0) -> torch.nn.Module:
    """The tiny VGG with every weight random, so each tensor's bytes occur once in a file."""
    torch.manual_seed(seed)
    net = build_vgg(**VGG_CFG, init="none")
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    return net


def _with_byte_flipped(src: Path, dst: Path, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def _offset_of(path: Path, tensor: torch.Tensor) -> int:
    """Where ``tensor``'s bytes lie in the file (torch stores them uncompressed)."""
    data = path.read_bytes()
    raw = tensor.contiguous().view(torch.uint8).numpy().tobytes()
    offset = data.find(raw)
    assert offset > 0 and data.find(raw, offset + 1) == -1, "tensor bytes not unique in file"
    return offset


def _pickle_offset(path: Path) -> tuple[int, int]:
    """(start, size) of the data.pkl member's bytes, from the zip's local file header."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
    head = path.read_bytes()[info.header_offset:info.header_offset + 30]
    name_len, extra_len = (int.from_bytes(head[i:i + 2], "little") for i in (26, 28))
    return info.header_offset + 30 + name_len + extra_len, info.file_size


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "good.pth"
    save_checkpoint(str(path), _random_net().state_dict(), {"arch": "A"})
    return path


def _load(path: Path) -> dict:
    return vggkit.load_checkpoint(build_vgg(**VGG_CFG, init="none"), str(path))


# -- damaged files: one error naming the file -------------------------------------------------
class _System:
    """Pickles to ``os.system(command)``: loading it would run the command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _damaged_files(good: Path, tmp: Path) -> list[tuple[Path, str]]:
    """(file, the word its error must contain) for each kind of damage."""
    data = good.read_bytes()
    cases = []
    for cut in (1, 3, 200, len(data) // 2, len(data) - 1):
        path = tmp / f"cut_{cut}.pth"
        path.write_bytes(data[:cut])
        cases.append((path, "truncated"))
    (tmp / "empty.pth").write_bytes(b"")
    cases.append((tmp / "empty.pth", "empty"))
    start, size = _pickle_offset(good)
    for k in (0, size // 2, size - 2):
        cases.append((_with_byte_flipped(good, tmp / f"pickle_flip_{k}.pth", start + k), "damaged"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("weights/readme.txt", "not torch")
    (tmp / "plain.zip.pth").write_bytes(buf.getvalue())
    cases.append((tmp / "plain.zip.pth", "not a torch checkpoint"))
    (tmp / "config.pth").write_text("model = dict(type='VGG', arch='A')\n")
    cases.append((tmp / "config.pth", "not a torch checkpoint"))
    return cases


def _one_of_each(cases: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    return list({word: (path, word) for path, word in reversed(cases)}.values())


def test_each_kind_of_damage_is_one_error_naming_the_file(good, tmp_path):
    for path, word in _damaged_files(good, tmp_path):
        with pytest.raises(CheckpointError) as info:
            _load(path)
        message = str(info.value)
        assert str(path) in message and word in message, (path.name, message)
        assert "\n" not in message
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        _load(tmp_path / "missing.pth")


def _torch_zip(path: Path, pickled: bytes) -> Path:
    """A torch-layout zip (archive/data.pkl, byteorder, version) around ``pickled``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


def test_pickles_that_would_run_code_are_refused(tmp_path):
    marker = tmp_path / "ran"
    saved = tmp_path / "saved.pth"
    torch.save({"state_dict": {}, "meta": _System(f"touch {marker}")}, saved)
    handmade = _torch_zip(tmp_path / "handmade.pth",
                          pickle.dumps({"meta": _System(f"touch {marker}")}, protocol=2))
    for path in (saved, handmade):
        with pytest.raises(UnsafeCheckpointError) as info:
            _load(path)
        assert str(path) in str(info.value) and "run code" in str(info.value)
        assert isinstance(info.value, CheckpointError)
    assert not marker.exists()


# -- content hashes ---------------------------------------------------------------------------
def test_recorded_hash_is_sha256_of_dtype_shape_and_bytes(good, tmp_path):
    weight = _random_net().state_dict()["features.0.weight"]
    expected = hashlib.sha256(b"torch.float32:4,3,3,3:" + weight.numpy().tobytes()).hexdigest()
    assert torch_load(str(good))["meta"][HASH_KEY]["features.0.weight"] == expected
    # bf16 has no numpy dtype: its bytes are hashed as they are
    half = torch.randn(2, 3).to(torch.bfloat16)
    save_checkpoint(str(tmp_path / "bf16.pth"), {"x": half}, {})
    raw = half.view(torch.int16).numpy().tobytes()
    assert torch_load(str(tmp_path / "bf16.pth"))["meta"][HASH_KEY]["x"] == hashlib.sha256(
        b"torch.bfloat16:2,3:" + raw).hexdigest()


@pytest.mark.parametrize("key", FLIP_KEYS)
def test_a_flipped_byte_in_any_tensor_is_named(good, tmp_path, key):
    tensor = _random_net().state_dict()[key]
    offset = _offset_of(good, tensor) + tensor.numel() * tensor.element_size() // 2
    bad = _with_byte_flipped(good, tmp_path / "bad.pth", offset)
    torch_load(str(bad))  # the file itself still loads: only the hash can tell
    with pytest.raises(CheckpointError) as info:
        _load(bad)
    message = str(info.value)
    assert f"checkpoint '{bad}' is damaged: tensor '{key}' does not match" in message


def test_a_flipped_byte_in_a_bf16_tensor_is_named(tmp_path):
    weights = {"a": torch.randn(8), "b": torch.randn(16, 4).to(torch.bfloat16)}
    path = tmp_path / "mixed.pth"
    save_checkpoint(str(path), weights, {})
    bad = _with_byte_flipped(path, tmp_path / "bad.pth", _offset_of(path, weights["b"]) + 5)
    read_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="tensor 'b' does not match its recorded sha256"):
        read_checkpoint(str(bad))


def test_a_renamed_or_added_tensor_is_caught(tmp_path):
    state = _random_net().state_dict()
    path = tmp_path / "edited.pth"
    save_checkpoint(str(path), state, {})
    saved = torch_load(str(path))
    saved["state_dict"]["extra"] = torch.zeros(1)
    torch.save(saved, path)
    with pytest.raises(CheckpointError, match="tensor 'extra' has no recorded sha256"):
        read_checkpoint(str(path))
    del saved["state_dict"]["extra"], saved["state_dict"]["head.fc8.bias"]
    torch.save(saved, path)
    with pytest.raises(CheckpointError, match="tensor 'head.fc8.bias' is in its recorded"):
        read_checkpoint(str(path))


def test_foreign_file_without_hash_loads_and_says_so_once(tmp_path):
    net = _random_net()
    path = tmp_path / "bare.pth"
    torch.save(net.state_dict(), path)  # what torchvision/timm publish: no meta at all
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _load(path)
        model = build_vgg(**VGG_CFG, init="none")
        vggkit.load_checkpoint(model, str(path))
    notices = [w for w in caught if issubclass(w.category, UnverifiedCheckpointWarning)]
    assert len(notices) == 1
    assert f"checkpoint '{path}' records no content hash" in str(notices[0].message)
    torch.testing.assert_close(model.state_dict(), net.state_dict())


def test_converted_weights_record_the_source_files_sha256(tmp_path):
    from vggkit.models.converters import TorchvisionConverter
    from vggkit.models.converters import import_weights
    net = _random_net()
    theirs = TorchvisionConverter().export(net.state_dict(), net)
    src = tmp_path / "vgg11-tiny.pth"
    torch.save(theirs, src)
    out = tmp_path / "converted.pth"
    meta = import_weights("torchvision", str(src), str(out))
    expected = hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["source_sha256"] == expected and meta["source_file"] == "vgg11-tiny.pth"
    state, saved = read_checkpoint(str(out))
    assert saved["source_sha256"] == expected and set(saved[HASH_KEY]) == set(state)


def test_converted_caffe_weights_record_the_caffemodels_sha256(tmp_path):
    from vggkit.models.converters import export_weights, import_weights
    mine = tmp_path / "mine.pth"
    save_checkpoint(str(mine), _random_net().state_dict(), {"arch": "A", "batch_norm": False})
    caffemodel = tmp_path / "tiny.caffemodel"
    export_weights("caffe", str(mine), str(caffemodel))
    meta = import_weights("caffe", str(caffemodel), str(tmp_path / "back.pth"))
    assert meta["source_sha256"] == hashlib.sha256(caffemodel.read_bytes()).hexdigest()


# -- the tools --------------------------------------------------------------------------------
def _one_error_line(err: str, prog: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """ROOT/{train,val}/<class>/*.jpg: 12 training and 6 test images."""
    return make_split_folder(tmp_path_factory.mktemp("img"), train=4, val=2)


@pytest.fixture(scope="module")
def eval_config(tmp_path_factory, images) -> str:
    path = tmp_path_factory.mktemp("cfg") / "tiny.py"
    path.write_text(f"model = dict(type='VGGClassifier', vgg={VGG_CFG!r})\n"
                    "test_dataloader = dict(batch_size=4, dataset=dict(type='ImageFolder', "
                    f"data_root={str(images / 'val')!r}, cache=False))\n")
    return str(path)


def _test_tool(config: str, checkpoint: Path, data_root: Path | None = None) -> int:
    from vggkit.commands.test import main
    extra = ["--data-root", str(data_root)] if data_root else []
    return main([config, str(checkpoint), "--scales", "32", "--workers", "0", "--no-progress",
                 *extra])


def _extract_tool(config: str, checkpoint: Path, images: Path, out: Path) -> int:
    from vggkit.commands.extract import main
    return main([config, str(checkpoint), "--task", "imagefolder", "--data-root", str(images),
                 "--scales", "32", "--out", str(out), "--no-progress"])


def test_test_and_extract_tools_name_a_damaged_checkpoint(good, tmp_path, images, eval_config,
                                                         capsys):
    cases = _one_of_each(_damaged_files(good, tmp_path))
    tensor = _random_net().state_dict()["head.fc6.weight"]
    flipped = _with_byte_flipped(good, tmp_path / "flipped.pth", _offset_of(good, tensor) + 7)
    cases.append((flipped, "tensor 'head.fc6.weight'"))
    for path, word in cases:
        capsys.readouterr()
        assert _test_tool(eval_config, path) == 2
        line = _one_error_line(capsys.readouterr().err, "vggkit test")
        assert str(path) in line and word in line, line
        assert _extract_tool(eval_config, path, images / "val", tmp_path / "feats") == 2
        line = _one_error_line(capsys.readouterr().err, "vggkit extract")
        assert str(path) in line and word in line, line
    assert not (tmp_path / "feats" / "features.npy").exists()


def _train(images: Path, work: Path, *extra: str) -> int:
    from vggkit.commands.train import main
    return main([TINY, "--data-root", str(images), "--work-dir", str(work), "--seed", "0",
                 "--cfg-options", "lr_scaling=none", "default_hooks.logger.interval=1", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, images) -> Path:
    """A one-epoch training run of the tiny config (12 images, one iteration)."""
    work = tmp_path_factory.mktemp("train")
    assert _train(images, work, "train_cfg.max_epochs=1") == 0
    return work


def test_training_checkpoints_record_the_hash(trained):
    saved = torch_load(str(trained / "epoch_1.pth"))
    recorded = saved["meta"][HASH_KEY]
    assert set(recorded) == set(saved["state_dict"]) and "vgg.features.0.weight" in recorded
    weight = saved["state_dict"]["vgg.head.fc8.bias"]
    assert recorded["vgg.head.fc8.bias"] == hashlib.sha256(
        b"torch.float32:3:" + weight.numpy().tobytes()).hexdigest()


def test_resume_from_a_damaged_checkpoint_is_one_error(trained, images, tmp_path, capsys):
    good = trained / "epoch_1.pth"
    weight = torch_load(str(good))["state_dict"]["vgg.features.0.weight"]
    flipped = _with_byte_flipped(good, tmp_path / "flipped.pth", _offset_of(good, weight) + 3)
    cases = [(flipped, "tensor 'vgg.features.0.weight' does not match")]
    cases += _one_of_each(_damaged_files(good, tmp_path))
    for path, word in cases:
        capsys.readouterr()
        assert _train(images, tmp_path / "work", "train_cfg.max_epochs=2", "--resume",
                      str(path)) == 2
        line = _one_error_line(capsys.readouterr().err, "vggkit train")
        assert str(path) in line and word in line, line
    # evaluating it names the tensor too (keys as saved: the classifier's 'vgg.' prefix)
    assert _test_tool(TINY, flipped, images) == 2
    line = _one_error_line(capsys.readouterr().err, "vggkit test")
    assert "tensor 'vgg.features.0.weight'" in line


def test_mmengine_loads_through_the_checked_loader(trained, tmp_path):
    import vggkit.engine.hooks.checkpoint  # noqa: F401  (registers the loader)
    from mmengine.runner import load_checkpoint
    good = trained / "epoch_1.pth"
    weight = torch_load(str(good))["state_dict"]["vgg.head.fc7.weight"]
    flipped = _with_byte_flipped(good, tmp_path / "flipped.pth", _offset_of(good, weight) + 11)
    with pytest.raises(CheckpointError, match="tensor 'vgg.head.fc7.weight' does not match"):
        load_checkpoint(torch.nn.Linear(1, 1), str(flipped))


def test_resume_from_an_intact_checkpoint_still_works(trained, images, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(trained, work)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _train(images, work, "train_cfg.max_epochs=2", "--resume") == 0  # auto
    assert not [w for w in caught if issubclass(w.category, UnverifiedCheckpointWarning)]
    resumed = torch_load(str(work / "epoch_2.pth"))
    assert resumed["meta"]["epoch"] == 2 and set(resumed["meta"][HASH_KEY]) == set(
        resumed["state_dict"])
