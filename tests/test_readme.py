"""The README's paper-section -> module map names files that exist, and every part of the
package is in it (issue 12: the map must match the tree)."""
from __future__ import annotations

import os
import re

from helpers import REPO

SECTION = "## Paper section → module"


def _map_cells() -> list[str]:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    table = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [row.split("|")[2] for row in table.splitlines() if row.startswith("| ")][1:]


def _paths(cell: str) -> list[str]:
    """The cell's file paths; a relative one (`caffe.py`, `hooks/health.py`) is in the
    directory of the cell's previous full path."""
    out, base = [], ""
    for token in re.findall(r"`([^`]+)`", cell):
        if not re.fullmatch(r"[\w/-]+/|[\w/-]+\.(py|md)", token):
            continue  # an API name such as `vggkit.extract_features`
        if token.split("/", 1)[0] in {"vggkit", "configs", "tools", "docs", "plugins"}:
            base = token if token.endswith("/") else os.path.dirname(token) + "/"
        else:
            token = os.path.join(base, token)
        out.append(token)
    return out


def test_every_path_in_the_module_map_exists():
    paths = [p for cell in _map_cells() for p in _paths(cell)]
    assert len(paths) > 20
    missing = [p for p in paths if not os.path.exists(os.path.join(REPO, p))]
    assert not missing, f"README module map names missing files: {missing}"


def test_every_module_and_package_is_in_the_map():
    named = {p.rstrip("/") for cell in _map_cells() for p in _paths(cell)}
    package = os.path.join(REPO, "vggkit")
    parts = [f"vggkit/{n}" for n in sorted(os.listdir(package))
             if (n.endswith(".py") and n != "__init__.py")
             or os.path.isfile(os.path.join(package, n, "__init__.py"))]
    absent = [p for p in parts if not any(n == p or n.startswith(p + "/") for n in named)]
    assert not absent, f"not in the README's module map: {absent}"
