"""Crash safety: atomic checkpoints, and a SIGKILLed run resumed mid-epoch ending
with exactly the weights of an uninterrupted run (fixed seed, deterministic, CPU)."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers import REPO, env, make_image_folder

from vggkit.safe_load import torch_load

# 3 classes x 8 images, batch 8 (4 per iteration, accumulated twice): 6 iterations
# per epoch, 2 epochs; a mid-epoch checkpoint every 2 iterations.
COMMON = ["--seed", "7", "--deterministic", "--cfg-options", "total_batch_size=8",
          "batch_per_gpu=4", "train_cfg.max_epochs=2", "default_hooks.checkpoint.iter_interval=4",
          "default_hooks.logger.interval=1"]

KILLER = textwrap.dedent("""
    import os, signal, sys
    from mmengine.hooks import Hook
    from vggkit.hookspecs import hookimpl
    from vggkit.plugins import PluginInfo, load_plugins
    from vggkit.engine import train
    from vggkit.commands.train import parse_args

    class KillAt(Hook):
        priority = 'LOWEST'  # after the checkpoint hook of the same iteration
        def __init__(self, at):
            self.at = at
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == self.at:
                os.kill(os.getpid(), signal.SIGKILL)

    class Plugin:
        @hookimpl
        def vggkit_register_hooks(self, register):
            register(KillAt)

    load_plugins().add(Plugin(), PluginInfo('killer'))
    at, argv = int(sys.argv[1]), sys.argv[2:]
    cfg = train.load_config(parse_args(argv))
    cfg.custom_hooks.append(dict(type='KillAt', at=at))
    train.build_runner(cfg).train()
""")


def _start(program, args, workers):
    cmd = [sys.executable, str(program), *args, *COMMON, f"train_dataloader.num_workers={workers}"]
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait(proc):
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("img"), per_class=8)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(data, tmp_path):
    config = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")
    full, broken = tmp_path / "full", tmp_path / "broken"
    train_py = REPO / "tools" / "train.py"
    # the two runs side by side (2 cores): uninterrupted, and killed by SIGKILL in
    # epoch 2 at iteration 10, after the checkpoint of iteration 8
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    full_run = _start(train_py, [config, "--data-root", str(data), "--work-dir", str(full)], 0)
    killed_run = _start(script, ["10", config, "--data-root", str(data), "--work-dir",
                                 str(broken)], 2)
    code, out = _wait(full_run)
    assert code == 0, out[-3000:]
    code, out = _wait(killed_run)
    assert code == -signal.SIGKILL, out[-3000:]
    assert (broken / "iter_8.pth").is_file() and not (broken / "epoch_2.pth").exists()
    assert (broken / "last_checkpoint").read_text().strip().endswith("iter_8.pth")

    # --resume without a path continues from the newest checkpoint (other worker count)
    code, log = _wait(_start(train_py, [config, "--data-root", str(data), "--work-dir",
                                        str(broken), "--resume"], 1))
    assert code == 0, log[-3000:]
    assert "resuming epoch 2 at batch 3/6" in log
    # batch indices continue where the killed run stopped, not at 1
    assert re.search(r"Epoch\(train\)\s+\[2\]\[3/6\]", log)
    assert not re.search(r"Epoch\(train\)\s+\[2\]\[1/6\]", log)

    a = torch_load(str(full / "epoch_2.pth"))
    b = torch_load(str(broken / "epoch_2.pth"))
    assert a["meta"]["iter"] == b["meta"]["iter"] == 12
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    # the optimiser (momentum buffers) continued exactly too
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    # the contract's meta for evaluation
    assert b["meta"]["train_scale"] == {"S": 32}  # the tiny config's fixed S
    assert b["meta"]["preprocess"]["bgr"] is False
