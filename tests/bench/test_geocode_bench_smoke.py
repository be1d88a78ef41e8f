"""The geocoding benchmark's --smoke mode: a small demo district through bench/geocode_bench.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_geocode_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "geocode.json"
    proc = subprocess.run(
        [sys.executable, "bench/geocode_bench.py", "--smoke", "--out", str(out)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    kinds = set(result["by_variant"])
    assert {"complete", "abbreviated", "reordered", "fullwidth", "typo", "no_admin_town",
            "neighbour", "intersection"} <= kinds
    assert result["by_variant"]["complete"]["right_grid"] >= 0.95
    assert result["overall"]["right_grid"] >= 0.85
    assert result["overall"]["wrong_grid_conf_ge_0_9"] < 0.01
    assert result["throughput"]["batch_per_s"] > 0
