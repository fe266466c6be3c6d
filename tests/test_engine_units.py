"""Engine units: atomic checkpoint files, resume-file discovery, the train-scale record,
batch splitting, per-sample augmentation seeds, the progress bar."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config

from helpers import env
from vggkit.engine.batch_size import apply_batch, scale_learning_rate, split_batch
from vggkit.engine.hooks.checkpoint import BACKEND_NAME, find_resume_checkpoint
from vggkit.engine.scales import checkpoint_train_scale
from vggkit.engine.seeding import SeededDataset
from vggkit.fileio import atomic_write_bytes
from vggkit.safe_load import torch_load

WRITER = textwrap.dedent(f"""
    import sys, torch
    import vggkit.engine.hooks.checkpoint  # registers the backend
    from mmengine.runner.checkpoint import save_checkpoint
    path = sys.argv[1]
    for i in range(10_000):
        save_checkpoint({{'state_dict': {{'w': torch.full((4_000_000,), float(i))}},
                          'meta': {{'i': i}}}}, path, backend_args={{'backend': '{BACKEND_NAME}'}})
        print(i, flush=True)
""")


def test_sigkill_during_checkpoint_writes_never_leaves_a_truncated_file(tmp_path):
    path = tmp_path / "epoch_1.pth"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env(),
                            stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # the first checkpoint is complete
    time.sleep(0.35)        # ... and the process is somewhere inside a later write
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    ckpt = torch_load(str(path))  # loads: complete, never half-written
    assert torch.all(ckpt["state_dict"]["w"] == float(ckpt["meta"]["i"]))
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # umask-respecting, not mkstemp's


def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.pth"
    atomic_write_bytes(path, b"old")

    def broken_fsync(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new" * 1000)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pth"]


def test_find_resume_checkpoint(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None
    old, new = tmp_path / "epoch_1.pth", tmp_path / "iter_30.pth"
    old.write_bytes(b"1")
    new.write_bytes(b"2")
    os.utime(old, (1, 1))
    (tmp_path / "last_checkpoint").write_text(str(old))
    assert find_resume_checkpoint(str(tmp_path)) == str(old)  # the pointer wins
    (tmp_path / "last_checkpoint").write_text("")  # e.g. a crash while mmengine wrote it
    assert find_resume_checkpoint(str(tmp_path)) == str(new)


def test_checkpoint_train_scale_reads_the_training_pipeline():
    def cfg(scale, wrapped=True):
        ds = dict(type="ImageNet", pipeline=[dict(type="LoadScaleCrop", scale=scale, crop=224)])
        return Config(dict(train_dataloader=dict(
            dataset=dict(type="SeededDataset", dataset=ds) if wrapped else ds)))
    assert checkpoint_train_scale(cfg(256)) == {"S": 256}
    assert checkpoint_train_scale(cfg((256, 512))) == {"S_min": 256, "S_max": 512}
    assert checkpoint_train_scale(cfg(384, wrapped=False)) == {"S": 384}
    assert checkpoint_train_scale(Config(dict())) is None


def test_split_batch_keeps_256_in_total():
    assert split_batch(256, 1, 32) == (32, 8)
    assert split_batch(256, 4, 32) == (32, 2)
    assert split_batch(256, 8, 32) == (32, 1)
    assert split_batch(16, 2, None) == (8, 1)
    with pytest.raises(ValueError, match="not a multiple"):
        split_batch(256, 3, 32)
    with pytest.raises(ValueError, match="split evenly"):
        split_batch(16, 3, None)
    cfg = Config(dict(total_batch_size=256, batch_per_gpu=16, train_dataloader=dict(),
                      optim_wrapper=dict(), default_hooks=dict(checkpoint=dict(iter_interval=1000))))
    assert apply_batch(cfg, 1) == (16, 16)
    # a mid-epoch checkpoint must not fall inside an accumulation window: 1000 -> 1008
    assert cfg.default_hooks.checkpoint.iter_interval == 1008


def _lr_cfg(total, **extra):
    return Config(dict(total_batch_size=total, optim_wrapper=dict(optimizer=dict(lr=0.01)),
                       param_scheduler=[dict(type="ReduceOnPlateauLR", min_value=1e-5)], **extra))


def test_lr_is_scaled_linearly_with_the_total_batch():
    # the paper's 0.01 is for 256 images per step (Goyal et al.: lr proportional to batch)
    cfg = _lr_cfg(16)
    assert scale_learning_rate(cfg) == pytest.approx(1 / 16)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.000625)
    assert cfg.param_scheduler[0].min_value == pytest.approx(6.25e-7)  # the floor scales too
    cfg = _lr_cfg(256)  # the paper's configs are left as written
    assert scale_learning_rate(cfg) == 1.0 and cfg.optim_wrapper.optimizer.lr == 0.01
    cfg = _lr_cfg(1024, base_batch_size=256, lr_scaling="sqrt")
    scale_learning_rate(cfg)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.02)
    cfg = _lr_cfg(16, lr_scaling="none")
    scale_learning_rate(cfg)
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    with pytest.raises(ValueError, match="lr_scaling"):
        scale_learning_rate(_lr_cfg(16, lr_scaling="cubic"))


def test_one_cycle_peak_scales_with_the_batch_but_momentum_targets_do_not():
    cfg = Config(dict(total_batch_size=64, optim_wrapper=dict(optimizer=dict(lr=0.2)),
                      param_scheduler=[dict(type="OneCycleLR", eta_max=0.2),
                                       dict(type="CosineAnnealingLR", eta_min=0.004),
                                       dict(type="CosineAnnealingMomentum", eta_min=0.95),
                                       dict(type="OneCycleMomentum", max_momentum=0.95)]))
    scale_learning_rate(cfg)
    lr_cycle, cosine, momentum, momentum_cycle = cfg.param_scheduler
    assert lr_cycle.eta_max == pytest.approx(0.05) and cosine.eta_min == pytest.approx(0.001)
    assert momentum.eta_min == 0.95 and momentum_cycle.max_momentum == 0.95


@pytest.mark.parametrize("steps, pct_start", [(100, 0.3), (7, 0.25), (1570, 0.3)])
def test_one_cycle_lr_and_momentum_follow_torch_one_cycle_step_for_step(steps, pct_start):
    # the independent expectation: torch's OneCycleLR (cycle_momentum=True) on its own SGD
    from vggkit.engine.schedules import OneCycleMomentum
    from vggkit.registry import PARAM_SCHEDULERS

    def sgd():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05, momentum=0.9)

    ref_opt, opt = sgd(), sgd()
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.05, total_steps=steps,
                                              pct_start=pct_start)
    # vggkit's OneCycleLR peaks at the optimiser's lr (0.05) when eta_max is left out
    ours = [PARAM_SCHEDULERS.get("OneCycleLR")(opt, total_steps=steps, pct_start=pct_start,
                                                by_epoch=False),
            OneCycleMomentum(opt, pct_start=pct_start, end=steps, by_epoch=False)]
    for _ in range(steps - 1):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-6)
        assert opt.param_groups[0]["momentum"] == pytest.approx(
            ref_opt.param_groups[0]["momentum"], rel=1e-9)
        ref_opt.step(), opt.step(), ref.step()
        for scheduler in ours:
            scheduler.step()


def test_one_cycle_momentum_rejects_what_torch_would_not_run():
    from vggkit.engine.schedules import OneCycleMomentum
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleMomentum(opt, pct_start=1.5, end=10)
    with pytest.raises(ValueError, match="base_momentum"):
        OneCycleMomentum(opt, base_momentum=0.99, max_momentum=0.9, end=10)
    with pytest.raises(ValueError, match="at least 1 step"):
        OneCycleMomentum(opt, begin=0, end=10, total_steps=0)
    # one step (a folder smaller than a batch, one epoch): the momentum stays at its maximum
    assert OneCycleMomentum(opt, begin=0, end=1).momentum_at(0) == pytest.approx(0.95)


class _Draws(torch.utils.data.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return np.random.rand()  # what the transforms do (numpy's global RNG)


def test_seeded_dataset_draws_depend_on_seed_epoch_and_index_only():
    a, b = SeededDataset(_Draws(), seed=1), SeededDataset(_Draws(), seed=1)
    forward = [a[i] for i in range(6)]
    np.random.seed(123)  # global state and visiting order do not matter
    assert [b[i] for i in reversed(range(6))] == forward[::-1]
    state = np.random.get_state()[1].copy()
    b[0]
    assert np.array_equal(np.random.get_state()[1], state)  # global RNG left untouched
    a.set_epoch(1)
    assert [a[i] for i in range(6)] != forward  # a new epoch, new augmentation
    assert len(set(forward)) == 6
    assert [SeededDataset(_Draws(), seed=2)[i] for i in range(6)] != forward


def test_progress_bar_only_on_a_terminal(monkeypatch):
    from vggkit.engine.hooks.logging import ProgressBarHook
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not ProgressBarHook()._enabled()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert ProgressBarHook()._enabled()
    assert not ProgressBarHook(force=False)._enabled()
