"""Bad command-line input: one line naming the argument, value or file and the fix, exit 2;
``--debug`` shows the traceback instead (issue 14)."""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from helpers import write_store
from helpers import REPO, make_split_folder, run_train
from vggkit.cli import SUBCOMMANDS
from vggkit.features.store import StoreError
from vggkit.commands import transfer as svm_tool

TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")


def one_error_line(capsys, prog: str) -> str:
    """The single line a command printed on stderr; it must start with 'PROG: error:'."""
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


@pytest.fixture
def store(tmp_path):
    """A complete 'imagefolder' store: 3 classes x 12 images of separable features."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 12)
    X = np.abs(rng.normal(size=(36, 8)) + 3 * np.eye(3, 8)[y])
    write_store(tmp_path / "feats", X, y, [f"c{c}/{i}.jpg" for i, c in enumerate(y)], [""] * 36,
                ["a", "b", "c"], "imagefolder")
    return tmp_path / "feats"


def transfer(store, *argv):
    return svm_tool.main(["--features", str(store), "--C-grid", "1", *map(str, argv)])


def test_transfer_missing_and_incomplete_store(tmp_path, store, capsys):
    assert transfer(tmp_path / "nowhere") == 2
    line = one_error_line(capsys, "vggkit transfer")
    assert str(tmp_path / "nowhere") in line and "extract_features" in line
    manifest = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps(dict(manifest, status="extracting")))
    assert transfer(store) == 2
    line = one_error_line(capsys, "vggkit transfer")
    assert "incomplete" in line and "rerun the same extract command" in line


@pytest.mark.parametrize("argv, expected", [
    (("--task", "caltech999"), "unknown transfer task 'caltech999'; known tasks:"),
    (("--task-option", "n_train=500"), "500"),
    (("--task-option", "n_trian=5"), "has no option 'n_trian'; its options are:"),
    (("--task-option", "n_train"), "--task-option expects KEY=VALUE, got 'n_train'"),
    (("--out", "/nonexistent-dir-vggkit/res.json"), "directory '/nonexistent-dir-vggkit' does not exist"),
])
def test_transfer_bad_arguments(store, capsys, argv, expected):
    assert transfer(store, *argv) == 2
    assert expected in one_error_line(capsys, "vggkit transfer")


def test_transfer_protocol_that_does_not_fit_names_the_classes(store, capsys):
    assert transfer(store, "--task-option", "n_train=500") == 2
    line = one_error_line(capsys, "vggkit transfer")
    assert "'a' has 12" in line  # 12 images per class, 500 asked for


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_transfer_splits_must_be_a_positive_integer(store, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        transfer(store, "--splits", value)
    assert exit_.value.code == 2
    assert "argument --splits: " in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    with pytest.raises(StoreError, match="holds no feature store"):
        transfer(tmp_path / "nowhere", "--debug")
    monkeypatch.setenv("VGGKIT_DEBUG", "1")
    with pytest.raises(StoreError):
        transfer(tmp_path / "nowhere")


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_command_has_debug(command, capsys):
    module = importlib.import_module(SUBCOMMANDS[command][0])
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    assert "--debug" in capsys.readouterr().out


def test_extract_threads_must_be_positive(capsys):
    from vggkit.commands.extract import main
    with pytest.raises(SystemExit) as exit_:
        main(["cfg.py", "ckpt.pth", "--task", "imagefolder", "--data-root", ".", "--threads", "-2"])
    assert exit_.value.code == 2
    assert "argument --threads: -2 is not a positive integer" in capsys.readouterr().err


def test_extract_odd_pairs_is_one_line(capsys):
    from vggkit.commands.extract import main
    assert main(["cfg.py", "--task", "imagefolder", "--data-root", "."]) == 2
    assert "expected CONFIG CKPT pairs" in one_error_line(capsys, "vggkit extract")


def test_test_tool_refuses_an_output_file_in_a_missing_directory(tmp_path, capsys):
    from vggkit.commands.test import main
    target = tmp_path / "missing" / "deeper" / "res.json"
    assert main([TINY, "ckpt.pth", "--out", str(target)]) == 2
    line = one_error_line(capsys, "vggkit test")
    assert f"--out '{target}'" in line and "does not exist" in line
    assert not (tmp_path / "missing").exists()  # nothing was created


def test_train_on_class_folders_without_images(tmp_path, capsys):
    from vggkit.commands.train import main
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
    assert main([TINY, "--data-root", str(tmp_path / "data"), "--work-dir", str(tmp_path / "w")]) == 2
    line = one_error_line(capsys, "vggkit train")
    assert "no images" in line and str(tmp_path / "data" / "train") in line
    assert not (tmp_path / "w").exists()  # refused before the runner made its work dir


@pytest.mark.parametrize("option, message", [
    ("train_cfg.max_epochs=-1", "train_cfg.max_epochs=-1 must be an integer >= 1"),
    ("train_cfg.max_epochs=2.5", "train_cfg.max_epochs=2.5 must be an integer >= 1"),
    ("train_cfg.val_interval=0", "train_cfg.val_interval=0 must be an integer >= 1"),
])
def test_train_schedule_lengths_must_be_positive(tmp_path, capsys, option, message):
    from vggkit.commands.train import main
    data = make_split_folder(tmp_path / "data", train=2, val=1)
    assert main([TINY, "--data-root", str(data), "--cfg-options", option]) == 2
    assert message in one_error_line(capsys, "vggkit train")


def test_diverged_training_is_one_line(tmp_path):
    data = make_split_folder(tmp_path / "data", train=4, val=2)
    run = run_train([TINY, "--data-root", str(data), "--work-dir", str(tmp_path / "w"),
                     "--cfg-options", "optim_wrapper.optimizer.lr=1e12", "lr_scaling=none"])
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    (line,) = [ln for ln in run.stderr.splitlines() if ln.startswith("vggkit train: error:")]
    assert "the run diverged" in line and "Lower the learning rate" in line
