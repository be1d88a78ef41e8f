"""Run bench code under another commit: a temporary git worktree, and processes importing from it.

A benchmark that compares today's code with an older commit in the same run (so that
both figures come from the same machine, under the same load) does:

    from refs import Worker, checkout, describe

    with checkout("652f5b1") as tree, Worker(Path(__file__).parent / "engine_step.py",
                                             code=tree) as old, \\
            Worker(Path(__file__).parent / "engine_step.py") as new:
        a = new.call("partition_file", gpkg=..., out=...)
        b = old.call("partition_file", gpkg=..., out=...)

:func:`checkout` adds a detached ``git worktree`` of the commit in a temporary folder
and removes it afterwards. A :class:`Worker` is a Python process (this venv) whose
``PYTHONPATH`` is the given code tree, so ``gis``, ``partitioning``, ... are imported from
there, while the served module itself (a file of this bench folder) stays today's: keep
such a module's imports to what every compared commit has (the engine's public
functions), and pass files, not objects, between the two sides. :func:`run_script` does
the same for one run of a script (``python SCRIPT ARGS``, its last stdout line is JSON).

Only the standard library is imported here, so that any commit can run it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str, repo: Path = ROOT) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def describe(ref: str, repo: Path = ROOT) -> dict[str, str]:
    """The commit ``ref`` names: its full hash, short hash, date and subject."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}", repo=repo)
    line = _git("log", "-1", "--format=%h%x09%cI%x09%s", sha, repo=repo)
    short, date, subject = line.split("\t", 2)
    return {"ref": ref, "commit": sha, "short": short, "date": date, "subject": subject}


@contextlib.contextmanager
def checkout(ref: str, repo: Path = ROOT) -> Iterator[Path]:
    """A detached git worktree of ``ref`` in a temporary folder, removed on exit."""
    sha = describe(ref, repo)["commit"]
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-ref-"))
    tree = tmp / "tree"
    _git("worktree", "add", "--detach", "--quiet", str(tree), sha, repo=repo)
    try:
        yield tree
    finally:
        with contextlib.suppress(RuntimeError):
            _git("worktree", "remove", "--force", str(tree), repo=repo)
        shutil.rmtree(tmp, ignore_errors=True)


def _env(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}


def run_script(script: Path, args: list[str], *, code: Path = ROOT,
               timeout: float | None = None) -> Any:
    """``python SCRIPT ARGS`` with the project's packages from ``code``; the JSON of the
    last line it prints."""
    out = subprocess.run([sys.executable, str(script), *args], cwd=code, env=_env(code),
                         capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed under {code}:\n"
                           f"{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Worker:
    """A process serving calls to the functions of one module file, with the project's
    packages imported from ``code`` (default: this checkout). Arguments and answers are
    JSON."""

    def __init__(self, module: Path, code: Path = ROOT) -> None:
        self.module, self.code = Path(module).resolve(), Path(code)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(self.module)],
            cwd=self.code, env=_env(self.code), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)

    def call(self, function: str, **kwargs: Any) -> Any:
        """``module.function(**kwargs)`` in the worker; its (JSON) answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"function": function, "kwargs": kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker for {self.module.name} under {self.code} died "
                               f"(exit {self.proc.wait()})")
        answer = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(f"{self.module.name}.{function} failed under {self.code}:\n"
                               f"{answer['error']}")
        return answer["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def serve(module_path: str) -> None:
    """The worker's side: answer one JSON line per request line until stdin closes."""
    spec = importlib.util.spec_from_file_location(Path(module_path).stem, module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    answers = sys.stdout
    sys.stdout = sys.stderr  # what the served code prints must not mix with the answers
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = getattr(module, request["function"])(**request["kwargs"])
            answer = {"ok": True, "result": result}
        except Exception:
            answer = {"ok": False, "error": traceback.format_exc()}
        answers.write(json.dumps(answer, ensure_ascii=False) + "\n")
        answers.flush()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        sys.path.insert(0, str(Path(sys.argv[2]).resolve().parent))
        serve(sys.argv[2])
    else:
        sys.exit("usage: refs.py --serve MODULE_FILE (started by refs.Worker)")
