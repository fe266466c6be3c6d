"""vggkit.fileio: every atomic writer gives the file a plain write would, and no leftovers."""
from __future__ import annotations

import os

import pytest
import torch

from vggkit.fileio import (atomic_savefig, atomic_torch_save, atomic_write_json,
                           atomic_write_text)


def test_writers_make_missing_dirs_and_leave_only_the_target(tmp_path):
    out = tmp_path / "a" / "b"
    atomic_write_text(out / "t.txt", "héllo\n")
    atomic_write_json(out / "j.json", {"b": [1, 2], "a": None}, indent=1, sort_keys=True)
    atomic_torch_save(out / "w.pth", {"w": torch.arange(3)})
    assert (out / "t.txt").read_bytes() == "héllo\n".encode()
    assert (out / "j.json").read_text() == '{\n "a": null,\n "b": [\n  1,\n  2\n ]\n}\n'
    assert torch.equal(torch.load(out / "w.pth", weights_only=True)["w"], torch.tensor([0, 1, 2]))
    assert sorted(os.listdir(out)) == ["j.json", "t.txt", "w.pth"]
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "t.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failing_writer_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.json"]


def test_savefig_format_follows_the_extension(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(1, 1))
    atomic_savefig(tmp_path / "f.png", fig, dpi=20)
    atomic_savefig(tmp_path / "f.svg", fig)
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["f.png", "f.svg"]
