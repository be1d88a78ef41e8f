"""Benchmark: the service over loopback — GET /route, POST /events (durable), 1M-event import.

Run: PYTHONPATH=. .venv/bin/python bench/service_bench.py [--duration 15] [--connections 64]
     [--workers 1,2] [--rounds 3] [--bulk 1000000] [--bulk-rounds 2] [--client wrk|python]
Writes bench/results/service_bench.json.

What it does, end to end, on this machine only (127.0.0.1):

1. Starts a throwaway PostgreSQL + PostGIS (tests/pgcluster.py) **with fsync,
   synchronous_commit and full_page_writes on** (PostgreSQL's defaults: every commit waits
   for its WAL to reach the disk), migrates it, generates the demo district
   (``data.demo.generate(1_400_000, 7)``, Baiyun-sized), imports it and stores its partition
   (~3,500 grids, cached in bench/.cache/ by bench/route_bench.py) as a published plan.
2. For each worker count, runs ``gridmap serve --no-access-log --workers N`` (uvicorn, with
   uvloop and httptools as installed by uvicorn[standard]) in a subprocess, warms every
   worker's router, then drives it with a load generator for ``--duration`` seconds each:
   ``GET /route`` (random points over the grids' bounding box, WGS84) and ``POST /events``
   (the same points; every request a new idempotency key, so every one is a new event and a
   durable commit of two rows). The load generator is ``wrk`` (Debian's package ``wrk``) when
   installed, else a small asyncio client (bench/load_gen.py); either way it runs on the same
   two cores as the server and PostgreSQL (its CPU time is reported). Each load runs ``--rounds``
   times, interleaved; the median, best and worst rounds are reported.
3. Imports ``--bulk`` events (1,000,000 by default) from a CSV through ``POST
   /events/import`` (parse, check, route, store in one transaction), timed end to end by the
   client, with the server's own split into parse/route/store.

Latencies are measured by the client per request (closed loop: each connection sends its next
request when the last answer arrived), p50/p90/p99/p99.9 in milliseconds. CPU seconds used
by the server processes, PostgreSQL and the client over each run are reported beside the
1-minute load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from demo_db import count_rows, demo_setup, fsync_rate, in_grids, pg_settings  # noqa: E402
from live_server import AUTH, server, sign_in, warm_up  # noqa: E402
from load_gen import CATEGORIES, get_requests, post_requests, run_python, run_wrk  # noqa: E402
from procs import load1, tree_cpu_s  # noqa: E402
from run_record import machine, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "service_bench.json"


# ------------------------------------------------------------------------------------------------
# Bulk import


def write_csv(path: Path, points: np.ndarray, coord_sys: str) -> None:
    """The bulk CSV: lon, lat (in ``coord_sys``), category, description."""
    import pandas as pd

    from gis.obfuscation import bd09_from_wgs84, gcj02_from_wgs84

    lon, lat = points[:, 0], points[:, 1]
    if coord_sys == "gcj02":
        lon, lat = gcj02_from_wgs84(lon, lat)
    elif coord_sys == "bd09":
        lon, lat = bd09_from_wgs84(lon, lat)
    cats = np.array(CATEGORIES)[points[:, 2].astype(int)]
    frame = pd.DataFrame({"lon": np.round(lon, 7), "lat": np.round(lat, 7), "category": cats,
                          "description": [f"热线工单 {i}" for i in range(len(points))]})
    frame.to_csv(path, index=False)


def bulk_import(base: str, csv: Path, coord_sys: str) -> dict[str, Any]:
    import httpx

    started = time.perf_counter()
    with open(csv, "rb") as f:
        r = httpx.post(f"{base}/events/import", data={"coord_sys": coord_sys}, headers=AUTH,
                       files={"file": (csv.name, f, "text/csv")}, timeout=None)
    seconds = time.perf_counter() - started
    r.raise_for_status()
    return {"seconds": round(seconds, 1), "response": r.json()}


# ------------------------------------------------------------------------------------------------


def main() -> dict[str, Any]:
    from pgcluster import ThrowawayCluster
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each load, interleaved")
    parser.add_argument("--workers", default="1,2", help="server processes, e.g. 1,2")
    parser.add_argument("--bulk", type=int, default=1_000_000, help="events imported (0: skip)")
    parser.add_argument("--bulk-rounds", type=int, default=2)
    parser.add_argument("--bulk-coord-sys", default="gcj02", choices=("wgs84", "gcj02", "bd09"))
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--households", type=int, default=DEMO_HOUSEHOLDS)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on the way out
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    load_start = load1()
    cluster = ThrowawayCluster(durable=True).start()
    log = Path(tempfile.mkdtemp(prefix="gridmap-bench-")) / "server.log"
    result: dict[str, Any] = {
        "machine": machine(),
        "load_average_1min_at_start": load_start,
        "client": (f"wrk {_wrk_version()}, 1 thread" if client == "wrk"
                   else "the asyncio client of bench/load_gen.py") +
                  f", {args.connections} keep-alive connections, closed loop, on the same 2 "
                  "cores as the server and PostgreSQL",
    }
    try:
        url = cluster.url("postgres")
        setup = demo_setup(url, args.households, args.seed)
        sign_in(url)
        result["postgres"] = {**pg_settings(url), "cluster": "tests/pgcluster.py "
                              "ThrowawayCluster(durable=True): fsync, synchronous_commit and "
                              "full_page_writes on (PostgreSQL's defaults)",
                              "fsync_test": fsync_rate(cluster)}
        print(json.dumps(result, ensure_ascii=False, indent=2), flush=True)
        result["territory"] = {"source": f"data.demo.generate({args.households:,}, "
                                         f"{args.seed}), imported whole; its partition "
                                         "(bench/route_bench.py's cache) published", **setup}
        print(json.dumps(result["territory"], ensure_ascii=False), flush=True)
        rng = np.random.default_rng(1)
        minx, miny, maxx, maxy = setup["bbox_wgs84"]
        n_points = 10_000
        box = np.column_stack([rng.uniform(minx, maxx, 4 * n_points),
                               rng.uniform(miny, maxy, 4 * n_points),
                               rng.integers(0, len(CATEGORIES), 4 * n_points)])
        inside = box[in_grids(box[:, 0], box[:, 1])][:n_points]
        box = box[:n_points]
        requests = {"get_route": get_requests(inside), "get_route_bbox": get_requests(box)}
        paths = requests["get_route"][2]
        result["points"] = {
            "get_route, post_events": f"{len(inside):,} points uniform over the grids (the "
                                      "district), in turn",
            "get_route_bbox": f"{len(box):,} points uniform over the grids' bounding box, "
                              f"{1 - in_grids(box[:, 0], box[:, 1]).mean():.0%} outside every "
                              "grid (routed to the nearest, some far away: the slow case)"}
        runs: dict[str, Any] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            with server(url, workers, log) as (base, proc):
                entry: dict[str, Any] = {"warm_up_s": warm_up(base, paths, workers)}
                events_before = count_rows(url)[0]
                rounds: dict[str, list[dict[str, Any]]] = {}
                for r in range(args.rounds):  # interleaved: noise hits every kind alike
                    for name in ("get_route", "get_route_bbox", "post_events"):
                        if name in requests:
                            script, raw, _ = requests[name]
                        else:
                            count = int(args.duration * 4_000) if client == "python" else 0
                            script, raw = post_requests(inside, f"w{workers}r{r}", count)
                        pg_pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
                        cpu0 = tree_cpu_s(proc.pid), tree_cpu_s(pg_pid)
                        load0 = load1()
                        if client == "wrk":
                            out = run_wrk(base, script, args.connections, args.duration)
                        else:
                            out = run_python(base, raw, args.connections, args.duration)
                        cpu1 = tree_cpu_s(proc.pid), tree_cpu_s(pg_pid)
                        out["server_cpu_ms_per_request"] = round(
                            (cpu1[0] - cpu0[0]) / max(out["requests"], 1) * 1000, 2)
                        out["postgres_cpu_ms_per_request"] = round(
                            (cpu1[1] - cpu0[1]) / max(out["requests"], 1) * 1000, 2)
                        out["load_average_1min"] = [load0, load1()]
                        rounds.setdefault(name, []).append(out)
                        print(f"workers={workers} round {r + 1} {name}: {json.dumps(out)}",
                              flush=True)
                for name, outs in rounds.items():
                    rates = sorted(o["requests_per_s"] for o in outs)
                    median = outs[[o["requests_per_s"] for o in outs].index(
                        rates[len(rates) // 2])]
                    entry[name] = {"requests_per_s_median": median["requests_per_s"],
                                   "p99_ms_of_median_round": median["latency_ms"]["p99"],
                                   "requests_per_s_best": rates[-1],
                                   "requests_per_s_worst": rates[0], "rounds": outs}
                stored = count_rows(url)[0] - events_before
                entry["post_events"]["events_stored"] = stored
                entry["post_events"]["requests_answered"] = sum(
                    o["requests"] for o in rounds["post_events"])
                runs[f"workers_{workers}"] = entry
        result["runs"] = runs
        if args.bulk:
            with tempfile.TemporaryDirectory() as tmp:
                csv = Path(tmp) / "events.csv"
                rng = np.random.default_rng(2)
                bulk_points = np.column_stack([rng.uniform(minx, maxx, args.bulk),
                                               rng.uniform(miny, maxy, args.bulk),
                                               rng.integers(0, len(CATEGORIES), args.bulk)])
                write_csv(csv, bulk_points, args.bulk_coord_sys)
                size_mb = round(csv.stat().st_size / 2**20, 1)
                imports = []
                with server(url, 1, log) as (base, proc):
                    warm_up(base, paths, 1)
                    for r in range(args.bulk_rounds):  # the table grows by --bulk each time
                        before = count_rows(url)
                        load0 = load1()
                        pg_pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
                        cpu0 = tree_cpu_s(proc.pid), tree_cpu_s(pg_pid)
                        one = bulk_import(base, csv, args.bulk_coord_sys)
                        cpu1 = tree_cpu_s(proc.pid), tree_cpu_s(pg_pid)
                        after = count_rows(url)
                        one.update(
                            events_before=before[0], rows_per_s=round(args.bulk / one["seconds"]),
                            events_stored=after[0] - before[0],
                            history_stored=after[1] - before[1],
                            server_cpu_s=round(cpu1[0] - cpu0[0], 1),
                            postgres_cpu_s=round(cpu1[1] - cpu0[1], 1),
                            load_average_1min=[load0, load1()])
                        imports.append(one)
                        print(f"bulk {r + 1}: {json.dumps(one, ensure_ascii=False)}", flush=True)
            result["bulk_import"] = {
                "rows": args.bulk, "csv_mb": size_mb, "coord_sys": args.bulk_coord_sys,
                "seconds": min(i["seconds"] for i in imports),
                "seconds_each": [i["seconds"] for i in imports],
                "how": "POST /events/import of a CSV (lon, lat in the coord_sys, category, "
                       "description), points uniform over the grids' bounding box; timed by the "
                       "client from the first byte sent to the answer (upload, parse, check, "
                       "route, store: COPY of the events, whose report is their own row, no "
                       "history row; one durable commit); "
                       "imported --bulk-rounds times in a row, so the later imports go into a "
                       "table already holding the earlier ones",
                "imports": imports}
        result["targets"] = targets(result)
    finally:
        cluster.stop()
    result["load_average_1min_at_end"] = load1()
    return result


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against the worker count with the best median."""
    runs = result.get("runs", {})
    out: dict[str, Any] = {}
    for name, goal in (("get_route", 2_000), ("post_events", 500)):
        if not runs:
            continue
        key = max(runs, key=lambda k: runs[k][name]["requests_per_s_median"])
        got = runs[key][name]
        out[name] = {"target_per_s": goal, "workers": int(key.split("_")[1]),
                     "median_per_s": got["requests_per_s_median"],
                     "best_per_s": got["requests_per_s_best"],
                     "p99_ms": got["p99_ms_of_median_round"],
                     "met_by_median": got["requests_per_s_median"] >= goal,
                     "met_by_best": got["requests_per_s_best"] >= goal}
    if "bulk_import" in result:
        seconds = result["bulk_import"]["seconds"]
        out["bulk_import_1m"] = {"target_s": 60, "seconds_best": seconds,
                                 "seconds_each": result["bulk_import"]["seconds_each"],
                                 "met": seconds <= 60 and result["bulk_import"]["rows"]
                                 >= 1_000_000}
    return out


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).split()[1] if (out.stdout or out.stderr) else "?"




if __name__ == "__main__":
    results = main()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    write_json(Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else RESULTS,
               results)
