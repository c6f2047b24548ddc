"""The shape of ``worker/`` as ARCHITECTURE.md draws it, read from the code's own imports.

Every import counts, the ones inside functions too (only ``if TYPE_CHECKING:`` blocks are
left out, since they never run): no two modules may reach each other, and the core (the
pipeline, the policy, the store, the recorder, the decision) reaches no transport, no web
side, no command line, no ``serve`` and no entry point, even through others.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "worker"
CORE = ("worker.pipeline", "worker.recorder", "worker.decision", "worker.policy", "worker.store")
OUTER = ("worker.ingress", "worker.web", "worker.cli", "worker.serve", "worker.launcher")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement that can run, at any depth; ``if TYPE_CHECKING:`` bodies left out."""
    for node in body:
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            yield from _statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _statements(getattr(node, field, []))


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _statements(ast.parse(path.read_text()).body):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in edges[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_no_import_circle_counting_imports_inside_functions() -> None:
    edges = graph()
    circles = {name for name in edges if name in reach(edges, name)}
    assert not circles, f"modules that import themselves through others: {sorted(circles)}"


def test_the_core_reaches_no_transport_web_command_line_or_entry_point() -> None:
    edges = graph()
    core = [name for name in edges if name.startswith(CORE)]
    assert "worker.pipeline" in core and "worker.policy.chain" in core
    outer = {name: sorted(t for t in reach(edges, name) if t.startswith(OUTER)) for name in core}
    assert {name: found for name, found in outer.items() if found} == {}


def test_the_entry_point_is_imported_by_nobody_but_python_dash_m() -> None:
    edges = graph()
    importers = {name for name, targets in edges.items() if "worker.launcher" in targets}
    assert importers == {"worker.__main__"}


def test_the_imports_are_read_lazy_ones_included(tmp_path: Path) -> None:
    """The reader sees an import inside a function, and skips a TYPE_CHECKING one."""
    module = tmp_path / "x.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from worker.pipeline import Mailgate\n"
        "def f():\n    try:\n        from worker.store import db\n    finally:\n        pass\n"
    )
    known = {name: module for name in ("worker.x", "worker.pipeline", "worker.store.db")}
    assert imports("worker.x", module, known) == {"worker.store.db"}
    assert "worker.pipeline" in graph()["worker.startup"]  # imported inside open_gate()
