"""Imports: no cycle between modules; packages depend one way (api → maps, partitioning → gis)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "gis", "maps", "partitioning", "events", "data")
#: What each package may import from the others (docs/architecture.md).
ALLOWED = {
    "gis": set(),
    "events": {"gis"},
    "partitioning": {"gis"},
    "maps": {"gis"},
    "data": set(),
    "api": {"gis", "maps", "partitioning", "events", "data"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and "." in name:      # a module, not a package's __init__
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_a_cycle_is_found() -> None:
    assert _cycles({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}) == \
        [["a.x", "a.y", "a.z"]]


def test_packages_depend_one_way() -> None:
    wrong = sorted(
        f"{name} imports {dep}" for name, deps in _graph().items() for dep in deps
        if dep.split(".")[0] != name.split(".")[0]
        and dep.split(".")[0] not in ALLOWED[name.split(".")[0]])
    assert wrong == []


def test_the_http_layer_runs_no_sql() -> None:
    """Route modules, the job runner and its tasks call readers and writers of gis/ and
    events/; they build no statement and open no connection (only the Engine type comes from
    SQLAlchemy, and Connection for the jobs, which hand a plan's transaction to gis.jobs)."""
    found = []
    runner = [ROOT / "api" / "jobs.py", ROOT / "api" / "job_tasks.py"]
    for path in [*sorted((ROOT / "api" / "routes").glob("*.py")), *runner]:
        types = ("Engine", "Connection") if path in runner else ("Engine",)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                found += [f"{path.name}: {a.name}" for a in node.names if a.name not in types]
            elif isinstance(node, ast.Import):
                found += [f"{path.name}: {a.name}" for a in node.names
                          if a.name.startswith("sqlalchemy")]
            elif isinstance(node, ast.Attribute) and node.attr in ("connect", "begin") and \
                    "engine" in ast.unparse(node.value):
                found.append(f"{path.name}:{node.lineno}: engine.{node.attr}")
    assert found == []
