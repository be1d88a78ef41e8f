"""The benchmarks' smoke tests: a bench script run as a user runs it, its results read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(script: str, folder: Path, timeout: float) -> dict[str, Any]:
    """Run ``bench/<script> --smoke --out FILE`` from the repository root (this checkout
    first on the path) within ``timeout`` seconds, FILE in ``folder``; the results it wrote."""
    out = folder / f"{Path(script).stem}.json"
    proc = subprocess.run(
        [sys.executable, f"bench/{script}", "--smoke", "--out", str(out)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(out.read_text(encoding="utf-8")))
