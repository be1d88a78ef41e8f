"""Benchmark: the workspace pages on the 1.4 M-household demo — page weight before map data
and time to first render, in headless Chromium.

Run: PYTHONPATH=. .venv/bin/python bench/workspace_bench.py [--rounds 3] [--events 5000]
Writes bench/results/workspace_bench.json.

1. A throwaway PostgreSQL + PostGIS (tests/pgcluster.py), the Baiyun-sized demo district
   (``data.demo.generate(1_400_000, 7)``) with its partition published (~3,500 grids, cached in
   bench/.cache/ as for bench/page_bench.py), ``--events`` events imported over HTTP at random
   points of the district (POST /events/import).
2. The app under uvicorn (GZip on, as served), each page loaded ``--rounds`` times in a fresh
   Chromium context (nothing cached): the planner's workspace ``/``, the accounts page
   ``/admin`` and the event desk ``/desk`` at 1366×768, the grid worker's ``/m`` under phone
   emulation (390×844, touch). Per load: every response's bytes as transferred (Chromium's
   encoded body size), split into the page itself (HTML, scripts, styles, fonts, icons) and
   its data (``/plans/…/grids``, ``/events``, ``/ogc/…``, ``/patrols…``, ``/accounts``,
   ``/audit``, tiles); the first contentful paint; and the moment the page's script says it
   is ready (``window.gridmapWorkspace|Admin|Desk|Phone.ready``: its lists and map drawn).
Targets (issue 18): desktop first render ≤ 2 s; phone page ≤ 300 kB before map data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results" / "workspace_bench.json"
TARGETS = {"desktop_first_render_ms": 2_000, "phone_page_bytes_before_data": 300_000}
DATA = ("/plans/", "/events", "/ogc/", "/patrols", "/accounts", "/audit", "/territories/",
        "/tiles/", "/screen/data")
DESKTOP = {"viewport": {"width": 1366, "height": 768}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
PAGES = (("/", "gridmapWorkspace", DESKTOP), ("/admin", "gridmapAdmin", DESKTOP),
         ("/desk", "gridmapDesk", DESKTOP), ("/m", "gridmapPhone", PHONE))


def load(browser: Any, url: str, ready: str, context: dict[str, Any]) -> dict[str, Any]:
    """One cold load of a page: bytes by kind, first paint, ready time."""
    from browser import wait_for
    from page_bench import cold_page

    with cold_page(browser, **context) as (page, responses, errors):
        page.goto(url, wait_until="commit", timeout=120_000)
        wait_for(page, f"window.{ready} && {ready}.ready", timeout=120_000, polling=20)
        ready_ms = page.evaluate("performance.now()")
        page.wait_for_load_state("networkidle")
        paint = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] "
                              "|| {startTime: null}).startTime")
        rows = []
        for r in responses:
            with contextlib.suppress(Exception):
                path = "/" + r.url.split("//", 1)[1].split("/", 1)[1]
                rows.append({"path": path[:80], "status": r.status,
                             "transferred": r.request.sizes()["responseBodySize"],
                             "decoded": len(r.body()),
                             "data": path != "/" and path.startswith(DATA)
                             and not path.startswith(("/static/",))})
    page_bytes = sum(r["transferred"] for r in rows if not r["data"])
    return {"first_paint_ms": round(paint) if paint is not None else None,
            "ready_ms": round(ready_ms), "page_bytes": page_bytes,
            "data_bytes": sum(r["transferred"] for r in rows if r["data"]),
            "responses": rows, "console_errors": errors}


def import_events(base: str, n: int, bbox: list[float]) -> dict[str, Any]:
    import httpx
    import numpy as np
    from live_server import AUTH

    rng = np.random.default_rng(18)
    x0, y0, x1, y1 = bbox
    lines = ["lon,lat,category,description"] + [
        f"{rng.uniform(x0, x1):.6f},{rng.uniform(y0, y1):.6f},sanitation,测试事件{i}"
        for i in range(n)]
    r = httpx.post(f"{base}/events/import", headers=AUTH, timeout=600,
                   files={"file": ("events.csv", "\n".join(lines).encode())},
                   data={"coord_sys": "wgs84", "source": "hotline"})
    r.raise_for_status()
    return dict(r.json())


def main() -> dict[str, Any]:
    from page_bench import chromium, demo_plan, server
    from pgcluster import ThrowawayCluster
    from playwright.sync_api import sync_playwright
    from procs import load1
    from run_record import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": machine(with_platform=False),
        "load_average_1min_at_start": load1(), "targets": TARGETS}
    cluster = ThrowawayCluster().start()
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-workspace-bench-"))
    try:
        url = cluster.url("postgres")
        setup, result["territory"] = demo_plan(url)
        with sync_playwright() as pw, server(url, True, tmp / "server.log") as base:
            result["events_import"] = import_events(base, args.events, setup["bbox_wgs84"])
            browser = chromium(pw)
            result["chromium"] = browser.version
            for path, ready, context in PAGES:   # warm-up, not counted
                load(browser, base + path, ready, context)
            runs: dict[str, list[dict[str, Any]]] = {p: [] for p, _, _ in PAGES}
            for i in range(args.rounds):
                print(f"round {i + 1}/{args.rounds}", flush=True)
                for path, ready, context in PAGES:
                    runs[path].append(load(browser, base + path, ready, context))
            browser.close()
        pages = {}
        for path, loads in runs.items():
            first = loads[0]
            pages[path] = {
                "first_paint_ms": {"median": statistics.median(
                    x["first_paint_ms"] for x in loads), "rounds": [x["first_paint_ms"]
                                                               for x in loads]},
                "ready_ms": {"median": statistics.median(x["ready_ms"] for x in loads),
                             "rounds": [x["ready_ms"] for x in loads]},
                "page_bytes_before_data": first["page_bytes"],
                "data_bytes": first["data_bytes"],
                "console_errors": sorted({e for x in loads for e in x["console_errors"]}),
                "responses": first["responses"]}
        result["pages"] = pages
        desktop = [pages[p]["first_paint_ms"]["median"] for p in ("/", "/admin", "/desk")]
        result["verdict"] = {
            "desktop_first_render_ms_max": max(desktop),
            "desktop_first_render_ok": max(desktop) <= TARGETS["desktop_first_render_ms"],
            "phone_page_bytes_before_data": pages["/m"]["page_bytes_before_data"],
            "phone_page_ok": pages["/m"]["page_bytes_before_data"]
            <= TARGETS["phone_page_bytes_before_data"]}
    finally:
        cluster.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(result["verdict"], ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
