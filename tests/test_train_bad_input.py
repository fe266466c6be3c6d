"""Training refuses what would run but be wrong (issue 25): data of fewer than two classes
or with an empty class, a batch_size the batch rule overrides, a --resume of another run's
classes, and --cfg-options the config has no place for -- each as one line, exit 2."""
from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from mmengine.runner import BaseLoop

from helpers import CLASSES, REPO, make_image_folder, run_train, train_in_process
from test_cli_errors import one_error_line

from vggkit.safe_load import torch_load

TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")
LOC = str(REPO / "configs" / "loc" / "tiny" / "digits_scr.py")


def train(*argv) -> int:
    from vggkit.commands.train import main
    return main([TINY, *map(str, argv)])


# -- item 6: degenerate data ---------------------------------------------------------------
def split_folder(root, classes):
    """``root/train/<class>/`` and ``root/val/<class>/``, 2 and 1 images per class."""
    for split, n in (("train", 2), ("val", 1)):
        make_image_folder(root / split, per_class=n, classes=classes)
    return root


def test_one_class_is_refused_naming_the_data_root(tmp_path, capsys):
    data = split_folder(tmp_path / "data", ("only",))
    assert train("--data-root", data, "--work-dir", tmp_path / "w",
                 "--cfg-options", "train_cfg.max_epochs=1") == 2
    line = one_error_line(capsys, "vggkit train")
    assert f"'{data / 'train'}' has 1 class ('only')" in line
    assert "at least 2 classes with images" in line
    assert not (tmp_path / "w").exists()  # before the runner made its work dir


def test_a_class_folder_without_images_is_refused_by_name(tmp_path, capsys):
    data = split_folder(tmp_path / "data", CLASSES[:1])
    (data / "train" / "nothing_here").mkdir()
    (data / "val" / "nothing_here").mkdir()
    assert train("--data-root", data, "--work-dir", tmp_path / "w",
                 "--cfg-options", "train_cfg.max_epochs=1") == 2
    line = one_error_line(capsys, "vggkit train")
    assert f"class folder '{data / 'train' / 'nothing_here'}' has no images" in line


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """3 classes x 8 training images (4 to validate)."""
    root = tmp_path_factory.mktemp("three")
    make_image_folder(root / "train", per_class=8)
    make_image_folder(root / "val", per_class=4, seed=1)
    return root


def test_a_batch_size_the_batch_rule_overrides_is_refused(three_classes, tmp_path, capsys):
    assert train("--data-root", three_classes, "--work-dir", tmp_path / "w", "--cfg-options",
                 "train_dataloader.batch_size=8", "train_cfg.max_epochs=1") == 2
    line = one_error_line(capsys, "vggkit train")
    # the config's total_batch_size=16 (one process) would have made it 16, silently
    assert "train_dataloader.batch_size=8 is not used" in line and "total_batch_size" in line
    assert "batch_per_gpu=8" in line


def test_a_batch_size_equal_to_the_rule_is_accepted(three_classes):
    from vggkit.commands.train import parse_args
    from vggkit.engine.train import load_config
    cfg = load_config(parse_args([TINY, "--data-root", str(three_classes), "--cfg-options",
                                  "train_dataloader.batch_size=16"]))
    assert cfg.train_dataloader.batch_size == 16


# -- item 7: --resume of another run -------------------------------------------------------
@pytest.fixture(scope="module")
def trained(three_classes, tmp_path_factory):
    """One epoch of 3 iterations (batch 8 of 24 images) with a mid-epoch checkpoint at 2
    (the library call of ``vggkit train``, in this process: the checkpoints are the point)."""
    work = tmp_path_factory.mktemp("trained")
    train_in_process(TINY, data_root=str(three_classes), work_dir=str(work), cfg_options={
        "total_batch_size": 8, "train_cfg.max_epochs": 1,
        "default_hooks.checkpoint.iter_interval": 2})
    assert (work / "epoch_1.pth").is_file() and (work / "iter_2.pth").is_file()
    return work


def test_resume_with_another_class_count_is_refused(trained, tmp_path, capsys):
    data = split_folder(tmp_path / "two", CLASSES[:2])
    ckpt = trained / "epoch_1.pth"
    assert train("--data-root", data, "--work-dir", tmp_path / "w", "--resume", ckpt) == 2
    line = one_error_line(capsys, "vggkit train")
    assert f"checkpoint '{ckpt}' has 3 classes" in line and f"'{TINY}'" in line
    assert "has 2 (model.vgg.num_classes)" in line


def test_resume_with_other_class_names_is_refused(trained, tmp_path, capsys):
    data = split_folder(tmp_path / "other", ("ant", "bee", "cat"))
    ckpt = trained / "epoch_1.pth"
    assert train("--data-root", data, "--work-dir", tmp_path / "w", "--resume", ckpt) == 2
    line = one_error_line(capsys, "vggkit train")
    # the checkpoint's classes are the sorted folders of the training data
    assert f"checkpoint '{ckpt}' was trained on other classes" in line
    assert f"'{sorted(CLASSES)[0]}' in the checkpoint, 'ant' in the data" in line


def test_an_epoch_checkpoint_resumes_with_another_batch(trained, three_classes, tmp_path):
    work = tmp_path / "w"
    run = run_train([TINY, "--data-root", three_classes, "--work-dir", work, "--resume",
                     trained / "epoch_1.pth", "--cfg-options", "total_batch_size=16",
                     "train_cfg.max_epochs=2", "default_hooks.checkpoint.save_best=None"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resuming epoch" not in run.stderr  # no batch of epoch 2 was done: none skipped
    # 3 iterations of 8 in epoch 1, then all 24 images in 2 iterations of 16
    assert torch_load(str(work / "epoch_2.pth"))["meta"]["iter"] == 3 + 2


class _Loop(BaseLoop):
    def run(self):  # pragma: no cover - never run
        pass


class _Loader(list):
    """A data loader of ``n`` batches of ``batch_size`` images."""

    def __init__(self, n: int, batch_size: int, images: int) -> None:
        super().__init__(range(n))
        self.batch_size, self.dataset = batch_size, list(range(images))


def _resuming_runner(batches: int, batch_size: int, path: str) -> SimpleNamespace:
    runner = SimpleNamespace(_resume=True, _load_from=path,
                             train_dataloader=_Loader(batches, batch_size, 24))
    runner._train_loop = _Loop(runner, runner.train_dataloader)
    return runner


def test_a_mid_epoch_checkpoint_with_another_batch_is_refused_as_such():
    from vggkit.engine.hooks.resume import ResumeHook
    # iter_2.pth of the run above: iteration 2 of 3 of epoch 1, 8 images per iteration
    meta = {"epoch": 0, "iter": 2, "samples_per_iter": 8, "iters_per_epoch": 3}
    with pytest.raises(ValueError) as refused:
        ResumeHook().after_load_checkpoint(_resuming_runner(2, 16, "w/iter_2.pth"), {"meta": meta})
    message = str(refused.value)
    assert "'w/iter_2.pth': it stopped inside epoch 1 (batch 2/3)" in message
    assert "epoch_" not in message  # there is no epoch checkpoint to go back to
    # the end of epoch 1 (3 iterations of 8) is no mid-epoch checkpoint, whatever the new batch
    for batches, size in ((2, 16), (6, 4)):
        runner = _resuming_runner(batches, size, "w/epoch_1.pth")
        ResumeHook().after_load_checkpoint(runner, {"meta": dict(meta, epoch=1, iter=3)})


# -- item 8: --cfg-options -----------------------------------------------------------------
@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return split_folder(tmp_path_factory.mktemp("imgs"), CLASSES[:2])


def _argv(command: str, images, tmp_path) -> list[str]:
    """The rest of a command line that reaches the configs of ``command``."""
    return {"train": [TINY, "--data-root", str(images), "--work-dir", str(tmp_path / "w")],
            "test": [TINY, str(tmp_path / "missing.pth")],
            "extract": [TINY, str(tmp_path / "missing.pth"), "--out", str(tmp_path / "store"),
                        "--data-root", str(images / "train")],  # a folder of class folders
            "localise": [LOC, str(tmp_path / "missing.pth"), "--cls-config", TINY,
                         "--cls-checkpoint", str(tmp_path / "missing.pth")]}[command]


COMMANDS = ("train", "test", "extract", "localise")


@pytest.mark.parametrize("command", COMMANDS)
def test_cfg_option_without_a_value_is_an_argument_error(command, capsys):
    main = importlib.import_module(f"vggkit.commands.{command}").main
    with pytest.raises(SystemExit) as exit_:
        main(["--cfg-options", "foo"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --cfg-options: expects KEY=VALUE" in err and "got 'foo'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_misspelt_cfg_option_names_the_nearest_key(command, images, tmp_path, capsys):
    main = importlib.import_module(f"vggkit.commands.{command}").main
    assert main([*_argv(command, images, tmp_path), "--cfg-options",
                 "model.vgg.widht_mult=0.5"]) == 2
    line = one_error_line(capsys, f"vggkit {command}")
    assert "has no 'model.vgg.widht_mult'" in line
    assert "did you mean 'model.vgg.width_mult'?" in line


@pytest.mark.parametrize("option, nearest", [
    ("train_dataloader.pinmemory=True", "train_dataloader.pin_memory"),      # a DataLoader's
    ("optim_wrapper.optimizer.nesterof=True", "optim_wrapper.optimizer.nesterov"),  # SGD's
    ("modle.vgg.fc_width=8", "model.vgg.fc_width"),
])
def test_cfg_options_are_checked_against_what_builds_them(images, tmp_path, capsys, option,
                                                          nearest):
    assert train(*_argv("train", images, tmp_path)[1:], "--cfg-options", option) == 2
    assert f"did you mean '{nearest}'?" in one_error_line(capsys, "vggkit train")


def test_arguments_the_config_leaves_out_are_accepted(images):
    from vggkit.commands import read_config
    cfg = read_config(TINY, {"model.vgg.batch_norm": True, "train_dataloader.pin_memory": True,
                             "optim_wrapper.optimizer.nesterov": True,
                             "custom_hooks.2.loss_window_iters": 200})
    assert cfg.model.vgg.batch_norm and cfg.optim_wrapper.optimizer.nesterov
    assert cfg.custom_hooks[2].loss_window_iters == 200


def test_text_for_a_number_is_one_line(images, tmp_path, capsys):
    assert train(*_argv("train", images, tmp_path)[1:], "--cfg-options",
                 "model.vgg.width_mult=abc") == 2
    line = one_error_line(capsys, "vggkit train")
    assert "model.vgg.width_mult='abc'" in line and "needs a number" in line


def test_a_vgg_argument_of_the_wrong_type_names_key_and_value():
    from vggkit.engine.classifier import VGGClassifier
    with pytest.raises(ValueError, match=r"model\.vgg\.fc_width=1\.5 must be of type int"):
        VGGClassifier(vgg=dict(arch="A", num_classes=2, fc_width=1.5))
