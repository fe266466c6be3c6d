"""No import cycles in vggkit/, counting the imports inside functions.

A cycle hidden in a function body still ties the modules together: neither can be
understood, tested or moved without the other, and the import order decides whether
it works. Every ``import`` statement of every module under ``vggkit/`` is read with
:mod:`ast` (relative imports resolved), except those under ``if TYPE_CHECKING:``,
which never run.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vggkit"

#: cycles owned elsewhere, each to be removed by the change that breaks it
ALLOWED: set[frozenset[str]] = set()


def module_names() -> dict[str, Path]:
    """``{'vggkit.models.vgg': path}`` of every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, but not under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if _type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """The vggkit modules that module ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # 'from pkg import mod' imports the module pkg.mod, 'from mod import name' mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        for target in targets:
            while target and target not in modules:  # 'import a.b.name' -> a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imported(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path(graph: dict[str, set[str]], component: frozenset[str]) -> str:
    """One cycle through the component, for the message: a -> b -> a."""
    start = min(component)
    trail, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[trail[-1]] if w in component)
        back = [w for w in nxt if w in seen]
        if back:
            return " -> ".join(trail[trail.index(back[0]):] + [back[0]])
        trail.append(nxt[0])
        seen.add(nxt[0])


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    graph = import_graph()
    # function-level: vggkit.factory imports the weights inside build_vgg
    assert "vggkit.weights.resolve" in graph["vggkit.factory"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    unexpected = [_path(graph, c) for c in found if c not in ALLOWED]
    assert not unexpected, "import cycles:\n" + "\n".join(unexpected)


def test_the_models_know_nothing_of_the_weights_or_the_builder():
    graph = import_graph()
    reaching = {m: sorted(t for t in targets if t.startswith(("vggkit.weights", "vggkit.factory",
                                                               "vggkit.commands")))
                for m, targets in graph.items() if m.startswith("vggkit.models")}
    assert not {m: t for m, t in reaching.items() if t}


def test_only_the_commands_import_the_commands():
    graph = import_graph()
    outside = {m for m, targets in graph.items() if any(t.startswith("vggkit.commands")
                                                         for t in targets)
               and not m.startswith("vggkit.commands") and m != "vggkit.cli"}
    assert not outside, outside
