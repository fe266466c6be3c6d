"""torch >= 2.6 with mmengine 0.10.7: resume works, malicious pickles do not run."""
from __future__ import annotations

import pathlib

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import vggkit  # noqa: F401  (installs the allow-list)
from vggkit.safe_load import UnsafeCheckpointError, torch_load


class _Points(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 4, generator=g)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


class _Linear(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, inputs, labels=None, mode="tensor"):
        logits = self.fc(inputs)
        if mode == "loss":
            return {"loss": torch.nn.functional.cross_entropy(logits, labels)}
        return logits


def _runner(work_dir, max_epochs, resume=False):
    return Runner(
        model=_Linear(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=_Points(), sampler=dict(type="DefaultSampler", shuffle=True),
                              collate_fn=dict(type="default_collate"), batch_size=8, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        resume=resume, randomness=dict(seed=0), default_scope="mmengine", log_level="WARNING")


def test_runner_resume_continues_at_epoch_3_with_optimizer_state(tmp_path):
    _runner(tmp_path, 2).train()
    saved = torch_load(str(tmp_path / "epoch_2.pth"))
    momentum = saved["optimizer"]["state"][0]["momentum_buffer"]
    assert saved["meta"]["epoch"] == 2

    runner = _runner(tmp_path, 3, resume=True)
    runner.load_or_resume()  # what train() does first; raises on torch>=2.6 without the fix
    assert runner.epoch == 2  # the next epoch run is the third
    state = runner.optim_wrapper.optimizer.state_dict()["state"][0]["momentum_buffer"]
    torch.testing.assert_close(state, momentum)
    runner.train()
    assert runner.epoch == 3 and (tmp_path / "epoch_3.pth").exists()


class _Payload:
    """Pickles to a call of Path.touch: loading it would create ``marker``."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": _Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth.*could run code"):
        torch_load(str(path))
    # mmengine's runner (resume, load_from) loads through the same checks
    import vggkit.engine.hooks.checkpoint  # noqa: F401  (registers vggkit's loader)
    from mmengine.runner import load_checkpoint
    with pytest.raises(UnsafeCheckpointError, match="evil.pth.*could run code"):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert not marker.exists()


class _Attr:
    """Pickles to getattr(owner, name): the first step of any escape via getattr."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


@pytest.mark.parametrize("owner,name", [
    (__import__("collections").OrderedDict, "fromkeys"),  # an allow-listed type
    (__import__("mmengine.logging", fromlist=["HistoryBuffer"]).HistoryBuffer, "__init__"),
])
def test_getattr_is_allowed_only_for_history_buffer_methods(tmp_path, owner, name):
    path = tmp_path / "attr.pth"
    torch.save({"meta": _Attr(owner, name)}, path)
    with pytest.raises(Exception, match="only HistoryBuffer's statistics methods"):
        torch_load(str(path))
