"""The layers, read from the source: wrappers/ below compare/ below ui/, and no import cycle.

A request goes down (ui -> compare -> wrappers) and comes back as return values,
so nothing below imports from above, and Gradio stays in the UI. Every import
counts, a function-level one too: a lazy import still ties two modules together.
Pure AST reading, no module is imported: milliseconds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wrappers.config import ROOT

PACKAGES = ("wrappers", "compare", "ui", "benchmarks", "training")
TOP_MODULES = ("app",)
# Each layer, and what it must never import (a package, or a third-party module).
FORBIDDEN = {
    "wrappers": ("compare", "ui", "app", "benchmarks", "gradio"),
    "compare": ("ui", "app", "benchmarks", "gradio"),
    "ui": ("app", "benchmarks"),
    # The tiny model's training stands apart: the app and the benchmarks use it, never the reverse.
    "training": ("wrappers", "compare", "ui", "app", "benchmarks", "gradio"),
}


def project_modules() -> dict[str, Path]:
    """Every module of the project outside tests/, by dotted name: {"compare.service": Path, ...}."""
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES if (ROOT / f"{name}.py").exists()}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, name: str, modules=()) -> set[str]:
    """The dotted names `path` imports, anywhere in it.

    `from ui import tables` is `ui.tables` when that is one of `modules`, else `ui` (a name in it).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        targets = {imported for imported in imports_of(path, name, modules) if imported in modules}
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm).

    >>> cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b']]
    """
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_there_is_no_import_cycle():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_never_imports_from_above(layer):
    modules = project_modules()
    reaching_up = {
        name: sorted(i for i in imports_of(path, name) if i.split(".")[0] in FORBIDDEN[layer])
        for name, path in modules.items()
        if name.split(".")[0] == layer
    }
    assert {name: found for name, found in reaching_up.items() if found} == {}


def test_the_graph_sees_the_imports_it_checks():
    """The check would catch a cycle: the known edges are in the graph."""
    graph = import_graph()
    assert "compare.service" in graph["ui.api"]
    assert "compare.recorder" in graph["compare.service"]
    assert "wrappers.limits" in graph["compare.service"]
