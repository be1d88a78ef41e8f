"""Benchmark: the planner map of a Baiyun-sized plan in headless Chromium vs folium's usual way.

Run: PYTHONPATH=. .venv/bin/python bench/page_bench.py [--rounds 3]
Writes bench/results/page_bench.json.

1. Starts a throwaway PostgreSQL + PostGIS (tests/pgcluster.py), imports the Baiyun-sized demo
   district (``data.demo.generate(1_400_000, 7)``) and publishes its partition (~3,500 grids,
   cached in bench/.cache/ by bench/route_bench.py), as bench/service_bench.py does.
2. Serves the app with uvicorn in a subprocess, once as it is (GZip on) and once with the
   GZip middleware taken out, and loads ``/plans/{id}/map`` in Debian's headless Chromium
   (Playwright, a fresh context each time: nothing cached), ``--rounds`` times each,
   interleaved. Per load: the HTML's bytes, every response's bytes as transferred (Chromium's
   encoded body size) and decoded, and the first render time: from navigation start to the
   moment every grid is drawn (``window.gridmap.drawnAt``, two animation frames after the
   grid layer was added: the canvas has painted).
3. The baseline, in the same run: folium's usual way — ``folium.GeoJson`` of the whole plan,
   unsimplified, embedded in the HTML (with a style function by band and a popup per grid),
   Leaflet from the same local /static (no CDN) — served as a static file, and loaded the same
   way; its render time is taken from navigation start to two animation frames after its
   inline script ran.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results" / "page_bench.json"
HOST = "127.0.0.1"
TARGETS = {"html_bytes": 2_000_000, "data_bytes_over_the_wire": 5_000_000,
           "first_render_ms": 3_000}


def serve(port: int, gzip_on: bool) -> None:
    """The app under uvicorn (run in a subprocess by :func:`server`)."""
    import uvicorn
    from starlette.middleware.gzip import GZipMiddleware

    from api.app import create_app

    app = create_app()
    if not gzip_on:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not GZipMiddleware]
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def server(url: str, gzip_on: bool, log: Path) -> Iterator[str]:
    from live_server import free_port, serving

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRIDMAP_DATABASE_URL": url,
           "GRIDMAP_ESCALATION_INTERVAL_S": "0"}
    code = f"import sys; sys.path.insert(0, 'bench'); import page_bench; " \
           f"page_bench.serve({port}, {gzip_on})"
    with serving([sys.executable, "-c", code], env, port, log) as (base, _):
        yield base


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """A plain file server for the baseline's HTML (no compression, like most)."""
    from live_server import free_port

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer((HOST, port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def cold_page(browser: Any, **context: Any) -> Iterator[tuple[Any, list[Any], list[str]]]:
    """A page in a fresh browser context (nothing cached) carrying the bench's API key, with
    every response and console error it meets; the context is closed when the block ends."""
    from live_server import AUTH

    ctx = browser.new_context(**context, extra_http_headers=AUTH)
    page = ctx.new_page()
    responses: list[Any] = []
    errors: list[str] = []
    page.on("response", lambda r: responses.append(r))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, responses, errors
    finally:
        ctx.close()


def load(browser: Any, url: str, ready: str, drawn: str) -> dict[str, Any]:
    """One cold load: bytes per response (transferred and decoded) and the render time."""
    from browser import wait_for

    with cold_page(browser, viewport={"width": 1600, "height": 900}) as (page, responses,
                                                                          errors):
        page.goto(url, wait_until="commit", timeout=120_000)
        wait_for(page, ready, timeout=120_000, polling=50)
        render_ms = float(page.evaluate(drawn))
        timings = page.evaluate("window.gridmap ? window.gridmap.timings : null")
        if timings:
            timings = {k: round(v) for k, v in timings.items()}
            nav = page.evaluate("(() => { const n = performance.getEntriesByType("
                                "'navigation')[0]; return [n.responseStart, n.responseEnd, "
                                "n.domContentLoadedEventEnd]; })()")
            timings.update(htmlResponseStart=round(nav[0]), htmlResponseEnd=round(nav[1]),
                           domContentLoaded=round(nav[2]))
        page.wait_for_load_state("networkidle")
        rows = []
        for r in responses:
            with contextlib.suppress(Exception):
                body = r.body()
                sizes = r.request.sizes()
                rows.append({"path": r.url.split("//", 1)[1].split("/", 1)[1][:60],
                             "status": r.status,
                             "encoding": r.headers.get("content-encoding", "identity"),
                             "decoded": len(body), "transferred": sizes["responseBodySize"]})
        n = page.evaluate("window.gridmap ? window.gridmap.gridsDrawn : "
                          "document.querySelectorAll('.leaflet-overlay-pane path').length")
    return {"render_ms": round(render_ms), "timings_ms": timings, "responses": rows,
            "grids_drawn": n, "console_errors": errors}


def summary(loads: list[dict[str, Any]]) -> dict[str, Any]:
    first = loads[0]["responses"]
    html = first[0]
    data = [r for r in first if "/grids" in r["path"]]
    static = [r for r in first if r["path"].startswith("static/")]
    return {
        "first_render_ms": {"median": statistics.median(x["render_ms"] for x in loads),
                            "rounds": [x["render_ms"] for x in loads]},
        "where_the_time_goes_ms": [x["timings_ms"] for x in loads],
        "html_bytes": html["decoded"], "html_bytes_transferred": html["transferred"],
        "data_bytes_decoded": sum(r["decoded"] for r in data),
        "data_bytes_over_the_wire": sum(r["transferred"] for r in data),
        "static_bytes_over_the_wire": sum(r["transferred"] for r in static),
        "all_bytes_over_the_wire": sum(r["transferred"] for r in first),
        "grids_drawn": loads[0]["grids_drawn"],
        "console_errors": sorted({e for x in loads for e in x["console_errors"]}),
        "responses": first,
    }


def baseline_html(engine: Any, plan_id: int, base: str) -> str:
    """folium's usual way: the whole plan as GeoJSON in the page, unsimplified."""
    import folium

    from gis.plans import read_grids

    grids = read_grids(engine, plan_id).drop(columns=["id"])
    grids["flags"] = [",".join(f) for f in grids["flags"]]
    band = {"below": "#f0b429", "within": "#3f9a5b", "above": "#d64545",
            "dedicated": "#7c5cc4"}

    def style(feature: dict[str, Any]) -> dict[str, Any]:
        p = feature["properties"]
        key = ("dedicated" if p["kind"] == "dedicated" else "below" if p["households"] < 300
               else "above" if p["households"] > 500 else "within")
        return {"fillColor": band[key], "color": "#1f2933", "weight": 0.8, "fillOpacity": 0.45}

    fmap = folium.Map(tiles=None)
    fmap.default_js = [("leaflet", f"{base}/static/vendor/leaflet/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{base}/static/vendor/leaflet/leaflet.css")]
    fields = ["code", "name", "households", "population", "compactness", "barrier_share",
              "boundary_text", "flags"]
    folium.GeoJson(grids, style_function=style,
                   popup=folium.GeoJsonPopup(fields=fields)).add_to(fmap)
    fmap.fit_bounds([[grids.total_bounds[1], grids.total_bounds[0]],
                     [grids.total_bounds[3], grids.total_bounds[2]]])
    html: str = fmap.get_root().render()
    marker = ("<script>requestAnimationFrame(() => requestAnimationFrame(() => "
              "{ window.__drawnAt = performance.now(); }));</script>")
    return html.replace("</html>", marker + "\n</html>")


def demo_plan(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Baiyun-sized demo district imported into ``url`` with its partition published, and
    the bench signed in: what was set up, and the results' entry for the territory."""
    from demo_db import demo_setup
    from live_server import sign_in
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED

    setup = demo_setup(url, DEMO_HOUSEHOLDS, DEMO_SEED)
    sign_in(url)
    return setup, {"source": f"data.demo.generate({DEMO_HOUSEHOLDS:,}, {DEMO_SEED}); its "
                             "partition published", **setup}


def chromium(pw: Any) -> Any:
    """Debian's headless Chromium (tests/browser.py finds it), launched through Playwright."""
    from browser import chromium_path

    return pw.chromium.launch(executable_path=chromium_path(),
                              args=["--no-sandbox", "--disable-gpu"])


def main() -> dict[str, Any]:
    from pgcluster import ThrowawayCluster
    from playwright.sync_api import sync_playwright
    from procs import load1
    from run_record import machine

    from gis.database import make_engine

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": machine(with_platform=False),
        "load_average_1min_at_start": load1(),
        "targets": TARGETS,
    }
    cluster = ThrowawayCluster().start()
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-page-bench-"))
    try:
        url = cluster.url("postgres")
        setup, result["territory"] = demo_plan(url)
        print(json.dumps(result["territory"], ensure_ascii=False), flush=True)
        plan = setup["plan_id"]
        with sync_playwright() as pw, \
                server(url, True, tmp / "server.log") as gz_base, \
                server(url, False, tmp / "server.log") as plain_base:
            browser = chromium(pw)
            result["chromium"] = browser.version
            engine = make_engine(url)
            (tmp / "site").mkdir()
            (tmp / "site" / "baseline.html").write_text(
                baseline_html(engine, plan, gz_base), encoding="utf-8")
            engine.dispose()
            runs: dict[str, list[dict[str, Any]]] = {"gzip": [], "no_gzip": [], "baseline": []}
            ours = ("window.gridmap && window.gridmap.drawnAt !== null", "gridmap.drawnAt")
            with static_server(tmp / "site") as site:
                # One load each first, not counted: the servers' first requests import and
                # warm up (and the page's Leaflet is then in the OS cache for all alike).
                load(browser, f"{gz_base}/plans/{plan}/map", *ours)
                load(browser, f"{plain_base}/plans/{plan}/map", *ours)
                for i in range(args.rounds):
                    print(f"round {i + 1}/{args.rounds}", flush=True)
                    runs["gzip"].append(load(browser, f"{gz_base}/plans/{plan}/map", *ours))
                    runs["no_gzip"].append(load(browser, f"{plain_base}/plans/{plan}/map",
                                                *ours))
                    runs["baseline"].append(load(
                        browser, f"{site}/baseline.html", "window.__drawnAt !== undefined",
                        "window.__drawnAt"))
            browser.close()
        result["planner_map_gzip"] = summary(runs["gzip"])
        result["planner_map_no_gzip"] = summary(runs["no_gzip"])
        base = summary(runs["baseline"])
        html = (tmp / "site" / "baseline.html").read_bytes()
        base["html_bytes_gzipped"] = len(gzip.compress(html, 5))
        base["responses"] = base["responses"][:3]
        result["baseline_folium_geojson_embedded"] = base
        ours_s = result["planner_map_gzip"]
        result["ratios_baseline_over_planner_map"] = {
            "html_bytes": round(base["html_bytes"] / ours_s["html_bytes"], 1),
            "first_render": round(base["first_render_ms"]["median"]
                                  / ours_s["first_render_ms"]["median"], 2),
            "bytes_over_the_wire": round(base["all_bytes_over_the_wire"]
                                         / ours_s["all_bytes_over_the_wire"], 2),
        }
        result["targets_met"] = {
            "html_bytes": ours_s["html_bytes"] <= TARGETS["html_bytes"],
            "data_bytes_over_the_wire": (ours_s["data_bytes_over_the_wire"]
                                         <= TARGETS["data_bytes_over_the_wire"]),
            "data_bytes_without_gzip": (result["planner_map_no_gzip"]["data_bytes_over_the_wire"]
                                        <= TARGETS["data_bytes_over_the_wire"]),
            "first_render_ms": ours_s["first_render_ms"]["median"] <= TARGETS["first_render_ms"],
        }
        result["load_average_1min_at_end"] = load1()
    finally:
        cluster.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "territory"}, ensure_ascii=False,
                     indent=2))
    return result


if __name__ == "__main__":
    main()
