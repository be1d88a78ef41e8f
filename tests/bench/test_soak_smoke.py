"""The soak benchmark's --smoke mode: a real server (2 workers) on a throwaway PostGIS under
mixed traffic for ~15 s: no 5xx, every kind of request answered, the results complete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench_smoke import run_smoke

KINDS = ("post_event", "get_route", "get_tile", "get_tilejson", "screen_data", "get_grids",
         "list_events")


@pytest.mark.postgis
def test_soak_smoke(tmp_path: Path) -> None:
    result = run_smoke("soak_bench.py", tmp_path, 180)

    for kind in KINDS:
        got = result["kinds"][kind]
        assert got["requests"] > 0, kind
        assert got["errors_total"] == 0, (kind, got["errors"])
        assert not [s for s in got["statuses"] if not s.isdigit() or int(s) >= 500], kind
        assert got["unexpected_4xx"] == {}, (kind, got["unexpected_4xx"])
        assert any(s in got["statuses"] for s in ("200", "201", "304")), kind
        assert set(got["latency_ms"]) == {"p50", "p90", "p99", "max", "mean"}
        assert 0 < got["latency_ms"]["p50"] <= got["latency_ms"]["p99"] <= got["latency_ms"][
            "max"]
        assert got["requests_per_s"] > 0 and got["target_per_s"] > 0
    assert "201" in result["kinds"]["post_event"]["statuses"]
    # Revalidated tiles (If-None-Match) come back 304, not a body.
    assert "304" in result["kinds"]["get_tile"]["statuses"]
    assert result["run"]["server_alive_at_end"] is True
    assert result["run"]["requests"] == sum(result["kinds"][k]["requests"] for k in KINDS)
    assert result["verdict"]["errors"] == 0 and result["verdict"]["every_kind_answered"]

    # Every 2xx answer to a new key is one stored event, retries made none.
    events = result["events"]
    assert events["consistent"] is True, events
    assert events["lost"] == 0 and events["retries_made_a_new_event"] == 0
    assert events["keys_answered_2xx"] == events["answered_201"] > 0
    assert events["retries_sent"] > 0
    assert events["retries_200_same_event"] == events["retries_sent"]

    memory = result["memory"]
    workers = [k for k in memory["server"] if k.startswith("worker ")]
    # The 2 web workers, and the Dask LocalCluster's worker processes (one per CPU) that
    # the server starts for its jobs (forked from the fork server, labelled apart).
    cpus = len(os.sched_getaffinity(0))
    assert 2 <= len(workers) <= 2 + cpus, memory["server"].keys()
    assert any(k.startswith("supervisor ") for k in memory["server"])
    assert all(memory["server"][k]["threads"]["end"] >= 1 for k in workers)
    for entry in [*memory["server"].values(), memory["postgres"]["rss"],
                  memory["postgres"]["pss"], memory["postgres"]["anon"]]:
        assert {"start_mb", "end_mb", "peak_mb", "slope_mb_per_min_second_half",
                "flat"} <= set(entry)
        assert entry["start_mb"] > 0 and entry["end_mb"] > 0
    assert memory["postgres"]["processes"]["end"] > 1
    assert len(memory["samples"]) >= 5
    assert memory["threshold_mb_per_min"] == 1.0
    assert result["uptime_at_start"] and result["uptime_at_end"]
    assert all(result["timeline"][k] for k in KINDS)
    assert result["tiles"]["distinct_tiles"] > 0
