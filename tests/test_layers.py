"""The package's layers, checked from its imports: no cycle, and arrows only point down
(web → ingest, query → store). The store knows the query types and nothing else above
it: no query algorithm, no HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "collector"

# What each subpackage may import from the others (the shared top-level modules —
# models, errors, settings, ids, timeutil — are open to all).
ALLOWED = {
    "store": {"store", "query.types"},
    "query": {"query", "store"},
    "ingest": {"ingest", "store"},
    "web": {"web", "ingest", "query", "store", "dashboard"},
    "dashboard": {"dashboard", "web", "ingest", "query", "store"},
    "demo": {"demo", "ingest", "store"},
}
SHARED = {"models", "errors", "settings", "ids", "timeutil", "native"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exists(module: str) -> bool:
    path = PACKAGE / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports() -> dict[str, set[str]]:
    """Module → the collector modules it imports (relative to the package)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module != "collector" and not node.module.startswith("collector."):
                    continue
                base = node.module.removeprefix("collector").removeprefix(".")
                for alias in node.names:
                    # `from collector.store import core` imports the module store.core;
                    # `from collector.store import open_store`, the package's __init__.
                    sub = f"{base}.{alias.name}" if base else alias.name
                    found.add(sub if _exists(sub) else base)
            elif isinstance(node, ast.Import):
                found.update(
                    a.name.removeprefix("collector.")
                    for a in node.names
                    if a.name.startswith("collector.")
                )
        graph[name] = {m for m in found if m and _exists(m)} - {name}
    return graph


def test_no_import_cycle() -> None:
    graph = _imports()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_imports_point_down() -> None:
    wrong = []
    for module, deps in _imports().items():
        layer = module.split(".")[0]
        if layer not in ALLOWED:
            continue
        for dep in deps:
            if dep.split(".")[0] in SHARED:
                continue
            if not any(dep == a or dep.startswith(a + ".") for a in ALLOWED[layer]):
                wrong.append(f"{module} imports {dep}")
    assert not wrong, wrong


def test_the_check_sees_imports() -> None:
    graph = _imports()
    assert "store.core" in graph["store.sqlite.store"]
    assert "query.types" in graph["store.base"]
