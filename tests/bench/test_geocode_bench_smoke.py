"""The geocoding benchmark's --smoke mode: a small demo district through bench/geocode_bench.py."""

from __future__ import annotations

from pathlib import Path

from bench_smoke import run_smoke


def test_geocode_bench_smoke(tmp_path: Path) -> None:
    result = run_smoke("geocode_bench.py", tmp_path, 600)
    kinds = set(result["by_variant"])
    assert {"complete", "abbreviated", "reordered", "fullwidth", "typo", "no_admin_town",
            "neighbour", "intersection"} <= kinds
    assert result["by_variant"]["complete"]["right_grid"] >= 0.95
    assert result["overall"]["right_grid"] >= 0.85
    assert result["overall"]["wrong_grid_conf_ge_0_9"] < 0.01
    assert result["throughput"]["batch_per_s"] > 0
