"""Benchmark: the command-centre screen — GET /screen/data and the page's first render.

Run: PYTHONPATH=. .venv/bin/python bench/screen_bench.py [--events 100000] [--requests 40]
Writes bench/results/screen_bench.json.

1. A throwaway PostgreSQL + PostGIS (tests/pgcluster.py), the Baiyun-sized demo district
   (1.4 M households, ~3,500 grids; bench/demo_db.py::demo_setup, partition cached in
   bench/.cache/) with its plan published.
2. ``--events`` events at random points in the grids, reported over the last ten days, stored
   by the bulk path (``events.store.create_events_columns``: COPY); then 55 % of them marked
   resolved (some late), so every light, the on-time rate and "today" have figures.
3. The service in a uvicorn thread (``tests/browser.py::live_server``), its clock fixed; one
   client asks ``/screen/data`` for the district, the busiest town and the busiest village,
   interleaved, ``--requests`` times each (p50/p99 in ms, answer bytes), the same with a
   matching ``If-None-Match`` (304), and — the named baseline — ``/events/stats?by=grid``,
   which counts the same lights by looping over every event in Python.
4. Headless Chromium (Debian's) opens ``/screen`` three times: milliseconds from navigation
   to the ``gridmap-screen-ready`` mark (grids drawn and figures shown), and bytes loaded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from procs import load1  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "screen_bench.json"
CATEGORIES = ("sanitation", "safety_hazard", "dispute", "municipal", "livelihood", "other")
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def add_events(url: str, territory_id: int, n: int, seed: int = 1) -> dict[str, Any]:
    """``n`` events inside the grids, by the bulk path, then 55 % resolved."""
    import geopandas as gpd
    import shapely
    from sqlalchemy import text

    from events.router_cache import RouterCache
    from events.rules import Rules
    from events.store import create_events_columns
    from gis.database import make_engine

    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    published = RouterCache(engine).get(territory_id)
    grids = gpd.GeoDataFrame(published.router.grids)
    minx, miny, maxx, maxy = grids.total_bounds
    tree = shapely.STRtree(grids.geometry.to_numpy())
    lon, lat = np.empty(0), np.empty(0)
    while len(lon) < n:
        x = rng.uniform(minx, maxx, 2 * n)
        y = rng.uniform(miny, maxy, 2 * n)
        pi, _ = tree.query(shapely.points(x, y), predicate="within")
        keep = np.unique(pi)
        lon, lat = np.concatenate([lon, x[keep]]), np.concatenate([lat, y[keep]])
    lon, lat = lon[:n], lat[:n]
    started = time.perf_counter()
    cols = published.route_columns(lon, lat, "wgs84")
    ages = rng.uniform(0, 10 * 24 * 3600, n)
    columns = {k: cols[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                    "village_code", "town_code", "district_code",
                                    "distance_m", "other_grid_code", "flags")}
    columns.update(category=rng.choice(CATEGORIES, n).astype(object),
                   source=rng.choice(["patrol", "citizen", "hotline"], n).astype(object),
                   coord_sys="wgs84", x=lon, y=lat,
                   reported_at=[NOW - timedelta(seconds=float(a)) for a in ages])
    stored = create_events_columns(engine, columns, cols["lon"], cols["lat"], Rules())
    with engine.begin() as conn:   # 55 % finished, resolved 0–60 h after the report
        conn.execute(text(
            "UPDATE events SET status = (ARRAY['resolved','verified','closed'])[1 + id % 3], "
            "resolved_at = LEAST(reported_at + (id % 61) * interval '1 hour', :now) "
            "WHERE id % 100 < 55"), {"now": NOW})
        conn.execute(text("ANALYZE events"))
    engine.dispose()
    return {"events": stored, "store_s": round(time.perf_counter() - started, 1)}


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def timed_gets(client: Any, jobs: dict[str, tuple[str, dict[str, Any], dict[str, str]]],
               repeat: int) -> dict[str, dict[str, Any]]:
    """Each job ``repeat`` times, interleaved; ms per request and the answer's bytes."""
    times: dict[str, list[float]] = {k: [] for k in jobs}
    sizes: dict[str, int] = {}
    status: dict[str, int] = {}
    for _ in range(repeat):
        for name, (path, params, headers) in jobs.items():
            started = time.perf_counter()
            r = client.get(path, params=params, headers=headers)
            times[name].append((time.perf_counter() - started) * 1000)
            sizes[name], status[name] = len(r.content), r.status_code
    return {k: {"p50_ms": pct(v, 50), "p99_ms": pct(v, 99), "max_ms": round(max(v), 1),
                "requests": len(v), "status": status[k], "bytes": sizes[k]}
            for k, v in times.items()}


def first_render(url: str, runs: int = 3) -> dict[str, Any]:
    from browser import chromium_path, wait_for
    from playwright.sync_api import sync_playwright

    out: list[float] = []
    loaded: list[int] = []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(),
                                      args=["--no-sandbox", "--disable-gpu"])
        for _ in range(runs):
            page = chromium.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(f"{url}/screen")
            wait_for(page, "performance.getEntriesByName('gridmap-screen-ready').length > 0",
                     timeout=60_000)
            out.append(page.evaluate(
                "performance.getEntriesByName('gridmap-screen-ready')[0].startTime"))
            loaded.append(int(page.evaluate(
                "performance.getEntriesByType('resource').reduce((s, e) => s + "
                "e.encodedBodySize, 0) + performance.getEntriesByType('navigation')[0]"
                ".encodedBodySize")))
            page.close()
        chromium.close()
    return {"ms": [round(v) for v in out], "median_ms": round(statistics.median(out)),
            "bytes_loaded": loaded[-1]}


def main() -> dict[str, Any]:
    from browser import live_server
    from demo_db import demo_setup
    from pgcluster import ThrowawayCluster
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    import httpx

    from api.app import create_app
    from gis.database import make_engine
    from gis.settings import Settings

    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work)",
        "started": datetime.now(UTC).isoformat(timespec="seconds")}
    cluster = ThrowawayCluster().start()
    try:
        url = cluster.url("postgres")
        setup = demo_setup(url, DEMO_HOUSEHOLDS, DEMO_SEED)
        result["setup"] = {k: setup[k] for k in ("grids", "households", "write_plan_s")}
        result["setup"].update(add_events(url, setup["territory_id"], args.events))
        engine = make_engine(url)
        app = create_app(Settings(database_url=url, escalation_interval_s=0), engine)
        app.state.clock = lambda: NOW
        tid = setup["territory_id"]
        with live_server(app) as server, httpx.Client(base_url=server.url,
                                                      timeout=120) as client:
            top = client.get("/screen/data", params={"territory": tid}).json()
            town = max(top["children"], key=lambda c: c["open"])["code"]
            mid = client.get("/screen/data", params={"territory": tid, "area": town}).json()
            village = max(mid["children"], key=lambda c: c["open"])["code"]
            result["data"] = {"counts": top["counts"], "towns": len(top["children"]),
                              "town": town, "town_open": mid["counts"]["open"],
                              "village": village, "points_sent": len(top["points"]["rows"]),
                              "points_truncated": top["points"]["truncated"]}
            tags = {a: client.get("/screen/data", params={"territory": tid, **p}
                                  ).headers["etag"]
                    for a, p in (("district", {}), ("town", {"area": town}))}
            jobs = {
                "district": ("/screen/data", {"territory": tid}, {}),
                "town": ("/screen/data", {"territory": tid, "area": town}, {}),
                "village": ("/screen/data", {"territory": tid, "area": village}, {}),
                "district_304": ("/screen/data", {"territory": tid},
                                 {"If-None-Match": tags["district"]}),
                "town_304": ("/screen/data", {"territory": tid, "area": town},
                             {"If-None-Match": tags["town"]}),
            }
            load = [load1()]
            result["screen_data"] = timed_gets(client, jobs, args.requests)
            result["baseline_events_stats_by_grid"] = timed_gets(
                client, {"stats": ("/events/stats", {"by": "grid", "territory": tid}, {})},
                max(5, args.requests // 4))["stats"]
            load.append(load1())
            for name in ("district", "town"):
                body = client.get("/screen/data", params={"territory": tid, **(
                    {"area": town} if name == "town" else {})}).content
                result["screen_data"][name]["bytes_gzip"] = len(gzip.compress(body))
            grids = client.get(f"/plans/{setup['plan_id']}/grids", params={"simplify": 3})
            result["grids_geojson_bytes"] = len(grids.content)
            result["first_render"] = first_render(server.url)
            load.append(load1())
            result["load_average_1min"] = load
        engine.dispose()
    finally:
        cluster.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return result


if __name__ == "__main__":
    main()
