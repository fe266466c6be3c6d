"""Shared fixtures: plugins installed for real on sys.path, and isolation of the
process-wide plugin manager between tests."""
from __future__ import annotations

import importlib
import os
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

# Tests share a 2-core machine: keep torch from oversubscribing it.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: trains on real data for a minute or more "
                            "(`make test` runs them; -m 'not slow' skips them)")


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
