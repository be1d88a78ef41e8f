"""bench/refs.py: another commit's code in a temporary worktree, served by a worker process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from refs import Worker, checkout, describe, run_script  # noqa: E402


def test_a_worker_imports_the_engine_from_the_checked_out_commit(tmp_path: Path) -> None:
    head = describe("HEAD")
    assert len(head["commit"]) == 40 and head["subject"]
    with checkout("HEAD") as tree:
        assert (tree / "partitioning" / "engine.py").is_file()
        with Worker(ROOT / "bench" / "engine_step.py", code=tree) as old, \
                Worker(ROOT / "bench" / "engine_step.py") as new:
            assert Path(old.call("where")["partitioning"]) == tree / "partitioning"
            assert Path(new.call("where")["partitioning"]) == ROOT / "partitioning"
            with pytest.raises(RuntimeError, match="no_such_function"):
                old.call("no_such_function")
            # The worker survives a failed call.
            assert Path(old.call("where")["gis"]) == tree / "gis"
    assert not tree.exists()
    script = tmp_path / "answer.py"
    script.write_text("import json, partitioning\nprint('noise')\n"
                      "print(json.dumps({'at': partitioning.__file__}))\n")
    assert run_script(script, [])["at"] == str(ROOT / "partitioning" / "__init__.py")


def test_an_unknown_ref_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="rev-parse"):
        describe("no-such-ref-anywhere")
