"""One writer per feature store: the OS lock on DIR/.lock (vggkit.features.lock)."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest
import torch

# the task, its plugin and the data/checkpoint fixtures are shared with the store tests
from helpers import extraction_script
from helpers import FolderTask, run_extract
from vggkit.commands import extract as extract_tool
from vggkit.features import runner
from vggkit.features.lock import LOCK_FILE, StoreLock, StoreLockedError
from vggkit.features.store import StoreError, load_features

pytestmark = pytest.mark.usefixtures("folder_task")

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
#: a real extraction that pauses after its first shard until its stdin closes
PAUSED_WRITER = extraction_script(
    "def write(self, i, f, e):\n"
    "    real(self, i, f, e)\n"
    "    if i == 0:\n"
    "        print('held', flush=True)\n"
    "        sys.stdin.read()\n"
    "runner.FeatureStore.write_shard = write")
ARGS = ("--shard-size", "3", "--scales", "32")


def _hold(root: str, ready, stop) -> None:
    with StoreLock(root):
        ready.set()
        stop.wait(60)


@contextmanager
def _holder(root: Path) -> Iterator[multiprocessing.Process]:
    """Another process (forked: no second torch import) holding the lock of ``root``."""
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(root), ready, stop))
    proc.start()
    try:
        assert ready.wait(30), "the holder process did not get the lock"
        yield proc
    finally:
        stop.set()
        proc.join(30)
    assert proc.exitcode == 0


def _start_writer(argv: list[str]) -> subprocess.Popen:
    """A real extraction in another process, paused after its first shard."""
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_WRITER, *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    line = proc.stdout.readline()
    if line.strip() != "held":
        proc.kill()
        raise AssertionError(f"the writer did not start: {line}{proc.communicate()[1]}")
    return proc


def _writer_argv(feature_setup: dict, out: Path) -> list[str]:
    return [*feature_setup["d"], "--task", FolderTask.name, "--data-root", str(feature_setup["data"]),
            "--out", str(out), "--no-progress", "--threads", "1", *ARGS]


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(autouse=True)
def _keep_threads():
    """--threads sets torch's global thread count; give the next tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the tool starts any extraction work."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a refused writer must not load nets or extract")
    monkeypatch.setattr("vggkit.features.extraction.load_net", forbidden)
    monkeypatch.setattr("vggkit.features.runner.run_extraction", forbidden)  # imported per run
    monkeypatch.setattr(FolderTask, "scan", forbidden)


# -- the lock itself --------------------------------------------------------------
def test_lock_records_holder_and_refuses_a_second_open(tmp_path):
    root = tmp_path / "store"
    first = StoreLock(str(root)).acquire()
    record = json.loads((root / LOCK_FILE).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert datetime.fromisoformat(record["started"]).tzinfo is not None
    # flock is per open file description: a second open in this process is refused too
    with pytest.raises(StoreLockedError) as info:
        StoreLock(str(root)).acquire()
    message = str(info.value)
    assert f"PID {os.getpid()} on host {socket.gethostname()} since {record['started']}" in message
    assert f"{root / LOCK_FILE} is held" in message and "--out" in message
    assert isinstance(info.value, StoreError) and isinstance(info.value, ValueError)
    assert info.value.holder == record
    first.release()
    assert not (root / LOCK_FILE).exists()
    with StoreLock(str(root)) as again:
        assert again.held


def test_release_removes_only_an_empty_directory_it_created(tmp_path):
    with StoreLock(str(tmp_path / "new")):
        assert os.listdir(tmp_path / "new") == [LOCK_FILE]
    assert not (tmp_path / "new").exists()  # e.g. the run failed on a bad --data-root
    with StoreLock(str(tmp_path / "kept")):
        (tmp_path / "kept" / "manifest.json").write_text("{}")
    assert os.listdir(tmp_path / "kept") == ["manifest.json"]
    (tmp_path / "existing").mkdir()
    with StoreLock(str(tmp_path / "existing")):
        pass
    assert (tmp_path / "existing").is_dir()


def test_another_process_holding_the_lock_is_named(tmp_path):
    with _holder(tmp_path) as holder:
        with pytest.raises(StoreLockedError, match=f"PID {holder.pid} on host "
                           f"{socket.gethostname()} since "):
            StoreLock(str(tmp_path)).acquire()
    StoreLock(str(tmp_path)).acquire().release()  # free once the holder let go


@pytest.mark.parametrize("errno_name", ["ENOSYS", "ENOLCK"])
def test_without_os_locks_it_warns_and_goes_on(tmp_path, monkeypatch, errno_name):
    import errno

    import filelock._unix

    def no_locks(fd):  # e.g. NFS without a lock daemon (ENOLCK), a platform without flock
        raise OSError(getattr(errno, errno_name), "No locks available")
    monkeypatch.setattr(filelock._unix, "lock_fd_nonblocking", no_locks)
    with pytest.warns(UserWarning, match="not locked against a second writer"):
        with StoreLock(str(tmp_path)) as lock:
            assert not lock.held


def test_only_rank_0_of_a_distributed_run_locks(tmp_path, monkeypatch):
    with StoreLock(str(tmp_path)):  # stands for rank 0 of the same run
        monkeypatch.setattr(runner, "rank_and_world", lambda: (1, 2))
        with runner.writer_lock(str(tmp_path)) as lock:
            assert lock is None  # rank 1 shares the store, is not refused
        monkeypatch.setattr(runner, "rank_and_world", lambda: (0, 2))
        with pytest.raises(StoreLockedError):
            with runner.writer_lock(str(tmp_path)):
                pass


# -- the tool -----------------------------------------------------------------------
def test_second_writer_is_refused_at_once_and_a_killed_one_frees_the_store(
        feature_setup, tmp_path, capsys, monkeypatch, no_work):
    out = tmp_path / "s"
    first = _start_writer(_writer_argv(feature_setup, out))
    try:
        before = _snapshot(out)
        assert "shards/shard-00000.npz" in before and LOCK_FILE in before
        assert extract_tool.main(_writer_argv(feature_setup, out)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("vggkit extract: error: ")
        assert f"PID {first.pid} on host {socket.gethostname()}" in err
        assert f"{out / LOCK_FILE} is held" in err
        assert _snapshot(out) == before  # nothing written: no shard, manifest as it was
    finally:
        first.kill()  # SIGKILL: no chance to release the lock itself
        first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    # the dead writer's record is left behind, its lock is not: the next writer resumes
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == first.pid
    monkeypatch.undo()  # work allowed again (no_work)
    # same --threads as the killed run: the manifest records the thread count
    assert extract_tool.main(_writer_argv(feature_setup, out)) == 0
    assert extract_tool.main(_writer_argv(feature_setup, tmp_path / "whole")) == 0
    for name in ("features.npy", "labels.npy", "manifest.json"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert sorted(os.listdir(out)) == ["features.npy", "labels.npy", "manifest.json"]


def test_complete_store_is_not_reported_done_while_another_run_writes(feature_setup, tmp_path, capsys):
    out = tmp_path / "s"
    assert run_extract(feature_setup, out, *ARGS) == 0
    with _holder(out) as holder:
        assert load_features(str(out)).features.shape[0] == feature_setup["n"]  # readers take no lock
        capsys.readouterr()
        assert run_extract(feature_setup, out, *ARGS) == 2
        assert f"PID {holder.pid}" in capsys.readouterr().err
    assert run_extract(feature_setup, out, *ARGS) == 0
    assert "already complete" in capsys.readouterr().out
