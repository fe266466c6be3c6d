"""Shared fixtures: plugins installed for real on sys.path, isolation of the
process-wide plugin manager between tests, tiny nets and data for the feature tests.
Plain helpers (no fixtures) are in helpers.py."""
from __future__ import annotations

import os

# Tests share a 2-core machine: keep torch from oversubscribing it (set before torch loads).
os.environ.setdefault("OMP_NUM_THREADS", "2")
# 'auto' backends take the static order in tests: a measured choice would make results
# depend on timing and write ~/.cache/vggkit/autotune/autotune.json (test_autotune.py turns it on)
os.environ.setdefault("VGGKIT_AUTOTUNE", "off")
os.environ.setdefault("VGGKIT_AUTOTUNE_CACHE", os.path.join(
    os.environ.get("TMPDIR", "/tmp"), f"vggkit-test-autotune-{os.getpid()}.json"))

import importlib  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import FOLDER_CLASSES, FolderTaskPlugin, register_plugin, small_jpeg, zygote  # noqa: E402


def write_distribution(root: Path, dist: str, entry_points: dict[str, str],
                       modules: dict[str, str], version: str = "1.0") -> Path:
    """Write an installed distribution (dist-info + modules) under ``root``.

    This is what ``pip install`` leaves in site-packages, so importlib.metadata
    discovers the entry points exactly as it would for a real plugin.
    """
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[vggkit]\n{lines}")
    return root


@pytest.fixture
def site(tmp_path, monkeypatch) -> Callable[..., Path]:
    """Factory installing plugin distributions into a fresh site dir on sys.path.

    Plugins are reloaded from a clean state after the test, so one test's
    plugins or environment never leak into the next.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)

    def install(dist: str, entry_points: dict[str, str], modules: dict[str, str],
                version: str = "1.0") -> Path:
        write_distribution(root, dist, entry_points, modules, version)
        importlib.invalidate_caches()
        return root

    yield install
    monkeypatch.undo()
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", "") or "").startswith(str(root)):
            del sys.modules[name]
    from vggkit.plugins import reload_plugins
    reload_plugins()


@pytest.fixture(scope="module")
def warm_zygote():
    """Start the process that forks tools/*.py runs (helpers.zygote) at the start of a module
    (``pytestmark = pytest.mark.usefixtures('warm_zygote')``): it imports torch, mmengine and
    vggkit in the background while the module's quick tests run."""
    zygote()


@pytest.fixture(scope="module")
def one_thread():
    # tiny convs on a shared 2-core machine: threads only contend
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folder_task():
    """FolderTask registered for a module (``pytestmark = usefixtures('folder_task')``)."""
    from vggkit.plugins import reload_plugins
    register_plugin(FolderTaskPlugin(), "features_tests")
    yield
    reload_plugins()


@pytest.fixture(scope="module")
def feature_setup(tmp_path_factory) -> dict:
    """Two tiny nets d (fc 64) and e (fc 32) with configs, and a 2-class JPEG folder."""
    root = tmp_path_factory.mktemp("feat")
    data = root / "data"
    sizes = [(48, 40), (40, 56), (48, 40), (44, 44), (40, 56)]
    for c, cls in enumerate(FOLDER_CLASSES):
        (data / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            small_jpeg(data / cls / f"img_{i}.jpg", w, h, 10 * c + i)
    # the mirror of cat/img_0, decoded and re-saved losslessly
    Image.open(data / "cat" / "img_0.jpg").transpose(Image.FLIP_LEFT_RIGHT).save(
        data / "cat" / "img_9_mirror.png")
    from vggkit.factory import build_vgg
    out = {"root": root, "data": data, "n": 2 * len(sizes) + 1}
    for name, fc in (("d", 64), ("e", 32)):
        torch.manual_seed(len(name) + fc)
        model = build_vgg("A", num_classes=3, width_mult=1 / 16, fc_width=fc, input_size=32,
                          init="glorot")
        cfg = root / f"tiny_{name}.py"
        classes = 3 if name == "d" else None  # None: taken from the checkpoint
        cfg.write_text("model = dict(type='VGGClassifier', vgg=dict(arch='A', "
                       f"num_classes={classes}, "
                       f"width_mult=1 / 16, fc_width={fc}, input_size=32))\n")
        ckpt = root / f"tiny_{name}.pth"
        torch.save({"state_dict": {f"vgg.{k}": v for k, v in model.state_dict().items()},
                    "meta": {"preprocess": {"mean": [110.0, 120.0, 100.0], "std": [1, 1, 1],
                                            "bgr": False}}}, ckpt)
        out[name] = [str(cfg), str(ckpt)]
    return out


def pytest_terminal_summary(terminalreporter):
    """How many hostile cases the command fuzz test ran (issue 25 asks for the count)."""
    fuzz = sys.modules.get("test_fuzz_commands")
    if fuzz is not None and fuzz.CASES:
        terminalreporter.write_line(
            f"command fuzz: {sum(fuzz.CASES.values())} hostile cases over "
            f"{len(fuzz.CASES)} commands ({', '.join(f'{k} {v}' for k, v in fuzz.CASES.items())})")
