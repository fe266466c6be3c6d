"""VGGDataPreprocessor (mean subtraction) and dataset statistics (tools/dataset_stats.py)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vggkit.data.lighting import PCALighting
from vggkit.data.data_preprocessor import VGGDataPreprocessor
from vggkit.commands.stats import main as stats_main
from vggkit.data.stats import load_stats


def _pixel_batch(rgb, n=2, size=(4, 5)):
    x = torch.empty(n, 3, *size, dtype=torch.uint8)
    for c in range(3):
        x[:, c] = rgb[c]
    return x


def test_default_mean_subtraction_hand_values():
    pre = VGGDataPreprocessor()
    out = pre({"inputs": list(_pixel_batch((130, 120, 110))), "data_samples": None})["inputs"]
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 5)
    # ImageNet mean RGB (123.68, 116.779, 103.939), std 1
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([6.32, 3.221, 6.061]), atol=1e-4)
    assert pre.preprocess == {"mean": [123.68, 116.779, 103.939], "std": [1.0, 1.0, 1.0],
                              "bgr": False}


def test_std_and_bgr_hand_values():
    pre = VGGDataPreprocessor(mean=[100, 100, 100], std=[2, 4, 5], bgr=True)
    out = pre({"inputs": _pixel_batch((130, 120, 110)), "data_samples": None})["inputs"]
    # RGB (30/2, 20/4, 10/5) = (15, 5, 2), then reversed to BGR
    assert out[1, :, 3, 4].tolist() == [2.0, 5.0, 15.0]


def test_channels_last_mixed_sizes_and_device():
    pre = VGGDataPreprocessor(channels_last=True).to("cpu")
    batch = pre({"inputs": list(_pixel_batch((1, 2, 3))), "data_samples": ["a", "b"]})
    assert batch["inputs"].is_contiguous(memory_format=torch.channels_last)
    assert batch["data_samples"] == ["a", "b"]
    mixed = pre({"inputs": [torch.zeros(3, 4, 6, dtype=torch.uint8),
                            torch.zeros(3, 6, 4, dtype=torch.uint8)], "data_samples": None})
    assert [t.shape for t in mixed["inputs"]] == [(1, 3, 4, 6), (1, 3, 6, 4)]
    assert pre.state_dict() == {}  # mean/std are not weights: checkpoints stay model-only


def test_bad_preprocessor_values():
    with pytest.raises(ValueError, match="3 mean"):
        VGGDataPreprocessor(mean=[1, 2])
    with pytest.raises(ValueError, match="positive"):
        VGGDataPreprocessor(std=[1, 0, 1])


def test_registered_preprocessor():
    from vggkit.plugins import load_plugins
    from vggkit.registry import MODELS
    load_plugins()
    assert isinstance(MODELS.build(dict(type="VGGDataPreprocessor")), VGGDataPreprocessor)


def test_dataset_stats_two_colours(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.new("RGB", (8, 6), (255, 0, 0)).save(root / "a" / "red.png")
    Image.new("RGB", (8, 6), (0, 0, 255)).save(root / "b" / "blue.png")
    out = tmp_path / "stats" / "s.json"
    assert stats_main([str(root), "--out", str(out)]) == 2  # no such directory: refused, as cp does
    assert "directory" in capsys.readouterr().err and not out.parent.exists()
    out.parent.mkdir()
    assert stats_main([str(root), "--out", str(out), "--scale", "0", "--no-progress"]) == 0
    stats = load_stats(out)
    # half red, half blue pixels: mean (127.5, 0, 127.5); var R = var B = 127.5^2,
    # cov(R, B) = -127.5^2; on the 0-1 scale the top eigenvalue is 2 * 0.5^2 = 0.5
    # along (1, 0, -1)/sqrt(2), the others 0
    assert np.allclose(stats["mean"], [127.5, 0, 127.5])
    assert np.allclose(stats["cov"], [[16256.25, 0, -16256.25], [0, 0, 0],
                                      [-16256.25, 0, 16256.25]])
    assert np.allclose(stats["eigval"], [0.5, 0, 0], atol=1e-9)
    v = np.asarray(stats["eigvec"])[:, 0]
    assert np.allclose(np.abs(v), [2 ** -0.5, 0, 2 ** -0.5])
    assert v[0] * v[2] < 0 and stats["n_images"] == 2
    assert not [f for f in os.listdir(out.parent) if f.endswith(".tmp")]  # atomic write
    assert "wrote" in capsys.readouterr().out
    # configs point at the file
    assert VGGDataPreprocessor(stats_file=str(out)).preprocess["mean"] == stats["mean"]
    lighting = PCALighting(stats_file=str(out))
    assert np.allclose(lighting.shift([1, 0, 0]), 255 * 0.5 * v)


def test_load_stats_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_stats.py"):
        load_stats(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"mean": [1, 2, 3]}))
    with pytest.raises(ValueError, match="bad.json.*eigval"):
        load_stats(tmp_path / "bad.json")
