"""The README is a front door and the docs reach everything: the README stays small, every
link of the README and of docs/ resolves, docs/index.md reaches every page, and the
paper-section -> module map (docs/paper_map.md) names files that exist and every part of
the package (issue 12: the map must match the tree)."""
from __future__ import annotations

import os
import re

from helpers import REPO

SECTION = "# Paper section → module"
MAP = os.path.join("docs", "paper_map.md")
#: the README is the front door, not the manual (issue 29)
README_LIMIT = 12 * 1024


def _map_cells() -> list[str]:
    text = open(os.path.join(REPO, MAP), encoding="utf-8").read()
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
    assert not missing, f"{MAP} names missing files: {missing}"


def test_every_module_and_package_is_in_the_map():
    named = {p.rstrip("/") for cell in _map_cells() for p in _paths(cell)}
    package = os.path.join(REPO, "vggkit")
    parts = [f"vggkit/{n}" for n in sorted(os.listdir(package))
             if (n.endswith(".py") and n != "__init__.py")
             or os.path.isfile(os.path.join(package, n, "__init__.py"))]
    absent = [p for p in parts if not any(n == p or n.startswith(p + "/") for n in named)]
    assert not absent, f"not in the module map {MAP}: {absent}"


def _pages() -> list[str]:
    docs = os.path.join(REPO, "docs")
    return ["README.md"] + sorted(os.path.join("docs", n) for n in os.listdir(docs)
                                  if n.endswith(".md"))


def _anchors(path: str) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file (outside code blocks)."""
    anchors, fence = set(), False
    for line in open(os.path.join(REPO, path), encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _links(path: str) -> list[str]:
    text = open(os.path.join(REPO, path), encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code is not links
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_the_readme_is_a_front_door():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert len(text.encode("utf-8")) <= README_LIMIT
    first = text.split("\n\n")[1]  # what vggkit is comes first, after the title
    assert first.startswith("vggkit is "), first[:80]
    for topic in ("## Install", "make demo", "make test", "## Quick starts", "## Tools",
                  "docs/index.md"):
        assert topic in text, topic


def test_every_link_resolves():
    broken = []
    for page in _pages():
        for link in _links(page):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            target, _, anchor = link.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
            if not os.path.exists(os.path.join(REPO, path)):
                broken.append(f"{page}: {link}")
            elif anchor and path.endswith(".md") and anchor not in _anchors(path):
                broken.append(f"{page}: {link} (no such heading)")
    assert not broken, broken


def test_the_index_reaches_every_page_and_the_readme_the_index():
    assert "docs/index.md" in _links("README.md")
    linked = {os.path.normpath(os.path.join("docs", link.partition("#")[0]))
              for link in _links(os.path.join("docs", "index.md"))}
    pages = {p for p in _pages() if p.startswith("docs") and not p.endswith("index.md")}
    assert not pages - linked, f"not reached from docs/index.md: {sorted(pages - linked)}"
