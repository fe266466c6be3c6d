"""Extraction in other processes: a real SIGKILL then resume, and torchrun with 2 gloo ranks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# the task, its plugin and the data/checkpoint fixtures are shared with the store tests
from helpers import extraction_script
from helpers import FolderTask
from vggkit.commands import extract as extract_tool
from vggkit.features.store import load_features

pytestmark = pytest.mark.usefixtures("folder_task")



@pytest.fixture(autouse=True)
def _keep_threads():
    """--threads sets torch's global thread count; give the next tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _script(tmp_path: Path, body: str) -> Path:
    """A script that registers the test task, runs ``body`` and then the tool on argv."""
    script = tmp_path / "extract_script.py"
    script.write_text(extraction_script(body))
    return script


def _args(feature_setup: dict, *extra: str) -> list[str]:
    return [*feature_setup["d"], "--task", FolderTask.name, "--data-root", str(feature_setup["data"]),
            "--no-progress", *extra]


def test_sigkill_then_resume_is_byte_identical(feature_setup, tmp_path):
    args = _args(feature_setup, "--shard-size", "2", "--scales", "32", "48", "--threads", "1")
    body = ("done = []\n"
            "def write(self, i, f, e):\n"
            "    real(self, i, f, e)\n"
            "    done.append(i)\n"
            "    if len(done) == 3:\n"
            "        import signal; os.kill(os.getpid(), signal.SIGKILL)\n"
            "runner.FeatureStore.write_shard = write\n")
    proc = subprocess.run([sys.executable, str(_script(tmp_path, body)), *args,
                           "--out", str(tmp_path / "killed")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9, proc.stderr
    shards = sorted(os.listdir(tmp_path / "killed" / "shards"))
    assert shards[:3] == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    assert not any(name.startswith("shard-0000") for name in shards[3:])  # only tmp files
    assert extract_tool.main([*args, "--out", str(tmp_path / "killed")]) == 0
    assert extract_tool.main([*args, "--out", str(tmp_path / "whole")]) == 0
    for name in ("features.npy", "manifest.json"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_distributed_ranks_write_disjoint_shards(feature_setup, tmp_path):
    """torchrun with 2 gloo ranks gives the single-process store (up to float rounding)."""
    body = ("def write(self, i, f, e):\n"
            "    import torch.distributed as dist\n"
            "    rank = dist.get_rank()\n"
            "    assert i % dist.get_world_size() == rank, (i, rank)\n"
            f"    with open({str(tmp_path)!r} + f'/rank{{rank}}.txt', 'a') as log:\n"
            "        log.write(f'{i}\\n')\n"
            "    real(self, i, f, e)\n"
            "runner.FeatureStore.write_shard = write\n")
    args = _args(feature_setup, "--scales", "32", "--shard-size", "2", "--threads", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(29500 + os.getpid() % 1000),
         str(_script(tmp_path, body)), *args, "--launcher", "pytorch",
         "--out", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 11 images in shards of 2: shard i on rank i % 2
    assert (tmp_path / "rank0.txt").read_text().split() == ["0", "2", "4"]
    assert (tmp_path / "rank1.txt").read_text().split() == ["1", "3", "5"]
    assert extract_tool.main([*args, "--out", str(tmp_path / "single")]) == 0
    dist_fs, single = load_features(str(tmp_path / "dist")), load_features(str(tmp_path / "single"))
    assert dist_fs.ids == single.ids and dist_fs.meta["status"] == "complete"
    np.testing.assert_allclose(dist_fs.features, single.features, atol=1e-6)
