"""The Dask benchmark's --smoke mode: tiny territories through every part of
bench/dask_bench.py (1 and 2 workers, the CLI, a real server's routing during a job)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_smoke import run_smoke


@pytest.mark.postgis
def test_dask_bench_smoke(tmp_path: Path) -> None:
    result = run_smoke("dask_bench.py", tmp_path, 900)
    for name in ("district", "province"):
        run = result["speedup"][name]
        assert run["all_runs_same_grids"], name      # 1 and 2 workers: the same grids
        assert {r["workers"] for r in run["runs"]} == {1, 2}
        assert run["best_1_s"] > 0 and run["best_2_s"] > 0 and run["speedup_best"] > 0
        assert all(p["seconds"] > 0 for r in run["runs"] for p in r["piece_times"])
        projected = result["projection"][name]
        spans = [projected[f"workers_{w}"]["projected_s"] for w in (1, 2, 8, 32, 128)]
        assert spans == sorted(spans, reverse=True) and spans[-1] >= projected["serial_s"]
    assert result["cli"]["n_grids"] > 0 and result["cli"]["peak_pss_mb_command"] > 0
    assert len([mb for mb in result["cli"]["peak_pss_mb_per_worker_process"].values()
                if mb > 50]) >= 2
    route = result["route"]
    assert route["job"]["state"] == "done" and route["job"]["towns_total"] >= 1
    assert route["idle"]["n"] > 0 and route["during_job"]["n"] > 0
    assert 0 < route["idle"]["p50"] <= route["idle"]["p99"]
