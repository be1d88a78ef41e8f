"""Module size: no module over 600 lines outside the tests (a file that does one thing fits)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where the project's modules are (tests/ and vendored code are not counted).
DIRS = ("api", "bench", "data", "events", "gis", "maps", "partitioning", "scripts")
LIMIT = 600


def _lines() -> dict[str, int]:
    out = {}
    for folder in DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "vendor" in rel.parts or "migrations" in rel.parts:
                continue
            with path.open(encoding="utf-8") as fh:
                out[rel.as_posix()] = sum(1 for _ in fh)
    return out


def test_no_module_is_over_the_limit() -> None:
    over = {name: n for name, n in _lines().items() if n > LIMIT}
    assert over == {}, f"split these modules (at most {LIMIT} lines each): {over}"



def test_the_modules_are_counted() -> None:
    """The walk finds the project's modules (a wrong root would pass the limit vacuously)."""
    lines = _lines()
    assert {"partitioning/engine.py", "api/cli.py", "gis/store.py"} <= set(lines)
    assert all(n > 0 for n in lines.values())
