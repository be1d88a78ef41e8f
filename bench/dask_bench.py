"""Benchmark: partitions on Dask — speed-up from 1 to 2 workers, the 1.4 M district end to end,
memory per worker, per-town task times and a projected schedule, and the web process's
routing latency while a 1.4 M partition job runs.

Run from the repository root (about 15–25 minutes on the shared 2-core machine):

    PYTHONPATH=. .venv/bin/python bench/dask_bench.py                 # everything
    PYTHONPATH=. .venv/bin/python bench/dask_bench.py --only speedup  # speedup|cli|route
    PYTHONPATH=. .venv/bin/python bench/dask_bench.py --smoke --out /tmp/x.json   # tiny

What it measures (results in ``bench/results/dask_bench.json``):

1. **speedup** — the 1.4 M-household demo district (``generate(1_400_000, 7)``) and a
   4-district territory of the same size in all (``generate_province(4, 350_000, 7)``):
   each is read and cut into towns once (``split_territory``), then partitioned on a fresh
   ``LocalCluster`` of 1 worker and of 2 workers (worker processes, one thread each),
   alternating 1, 2, 1, 2: the time from handing the pieces to the cluster to the joined
   result. Speed-up = the 1-worker time over the 2-worker time (best of the repeats, and
   the median pair). The grids of every run are compared (they must be identical).
2. **cli** — ``gridmap partition territory.gpkg --out DIR --workers 2`` on the 1.4 M district
   as a user runs it (interpreter start, reading, the cluster's start, partitioning,
   writing the files): wall time, and the peak proportional set size (PSS, sampled every
   50 ms) of the command's own process and of each worker process.
3. **projection** — from the per-town task times of the 1-worker runs (a worker alone: no
   contention), the time on 8, 32 and 128 workers by a schedule simulation: the pieces
   largest-first onto the worker free earliest (what the scheduler does with the pieces'
   priorities), plus the measured serial parts (cutting, join). A projection, not a
   measurement: it leaves out the transfer of pieces and the scheduler's overhead.
4. **route** — a server (``gridmap serve``, its default LocalCluster of 2 workers at nice
   10, durable throwaway PostGIS) with the 1.4 M district imported and a plan published:
   ``GET /route`` at a steady 40 requests/s for 20 s idle, then while a partition job of the
   district runs (submitted through the API), p50/p99 of each; the job's time is recorded.

The machine is shared with other work: the load average is recorded around every run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from procs import PeakPss, load1  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "dask_bench.json"
CACHE = Path(__file__).parent / ".cache"
SEED = 7
MB = 2**20


def territory_file(kind: str, households: int, districts: int) -> Path:
    """The demo territory as a GeoPackage, generated once (bench/.cache)."""
    from data.demo import generate, generate_province

    name = f"dask_{kind}_{households}_{districts}_{SEED}.gpkg"
    path = CACHE / name
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"generating {name} ...", flush=True)
        demo = generate(households, SEED) if districts == 1 else \
            generate_province(districts, households // districts, SEED)
        part = path.with_suffix(".part.gpkg")
        part.unlink(missing_ok=True)
        demo.write(part)
        part.rename(path)
    return path


# --- 1. speed-up ---------------------------------------------------------------------------


def _grids_key(result: Any) -> list[tuple[str, int, str]]:
    return list(zip(result.grids["code"].astype(str), result.grids["households"].astype(int),
                    result.grids["boundary_text"].astype(str), strict=True))


def speedup(path: Path, repeats: int) -> dict[str, Any]:
    from distributed import Client

    from gis.io.territory import read_territory
    from partitioning.cluster import partition_on_cluster, start_local_cluster, worker_memory
    from partitioning.params import PartitionParams
    from partitioning.towns import split_territory

    started = time.perf_counter()
    territory = read_territory(path)
    read_s = time.perf_counter() - started
    split = split_territory(territory)
    out: dict[str, Any] = {
        "territory": path.name, "households": int(sum(p.households for p in split.pieces)),
        "pieces": len(split.pieces), "read_s": round(read_s, 2), "split_s": split.seconds,
        "runs": []}
    reference = None
    for workers in [1, 2] * repeats:
        cluster = start_local_cluster(workers)
        client = Client(cluster, set_as_default=False)
        try:
            client.wait_for_workers(workers)
            before = load1()
            t0, c0 = time.perf_counter(), time.process_time()
            result = partition_on_cluster(client, split, PartitionParams())
            wall = time.perf_counter() - t0
            memory = worker_memory(client)
        finally:
            client.close()
            cluster.close()
        key = _grids_key(result)
        if reference is None:
            reference = key
        report = result.report
        run = {"workers": workers, "wall_s": round(wall, 2),
               "driver_cpu_s": round(time.process_time() - c0, 2),
               "pieces_s": report["pieces_seconds"],
               "pieces_cpu_s": round(sum(p["cpu_seconds"] for p in report["pieces"]), 2),
               "join_s": report["timings_s"]["join"],
               "worker_pss_mb_after": {k: round(v / MB) for k, v in memory.items()},
               "n_grids": report["n_grids"], "in_range_share": report["in_range_share"],
               "same_grids_as_first_run": key == reference,
               "load1_before": before, "load1_after": load1(),
               "piece_times": [{"key": p["key"], "households": p["households"],
                                "seconds": p["seconds"], "cpu_seconds": p["cpu_seconds"]}
                               for p in report["pieces"]]}
        print(f"  {path.name}: {workers} worker(s) {wall:.1f} s (load {before} → "
              f"{run['load1_after']})", flush=True)
        out["runs"].append(run)
    ones = [r["wall_s"] for r in out["runs"] if r["workers"] == 1]
    twos = [r["wall_s"] for r in out["runs"] if r["workers"] == 2]
    out["best_1_s"], out["best_2_s"] = min(ones), min(twos)
    out["speedup_best"] = round(min(ones) / min(twos), 2)
    out["speedup_pairs"] = [round(a / b, 2) for a, b in zip(ones, twos, strict=True)]
    out["speedup_median_pair"] = round(statistics.median(out["speedup_pairs"]), 2)
    ones_cpu = [r["pieces_cpu_s"] for r in out["runs"] if r["workers"] == 1]
    out["pieces_cpu_s_1_worker"] = min(ones_cpu)
    out["all_runs_same_grids"] = all(r["same_grids_as_first_run"] for r in out["runs"])
    return out


# --- 3. projection -------------------------------------------------------------------------


def lpt(seconds: list[float], workers: int) -> float:
    """Makespan of the pieces largest-first onto the worker free earliest."""
    import heapq

    free = [0.0] * workers
    heapq.heapify(free)
    for s in sorted(seconds, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def projection(run: dict[str, Any], serial_s: float) -> dict[str, Any]:
    one = [r for r in run["runs"] if r["workers"] == 1]
    best = min(one, key=lambda r: r["wall_s"])
    seconds = [p["seconds"] for p in best["piece_times"]]
    largest = max(best["piece_times"], key=lambda p: p["seconds"])
    out: dict[str, Any] = {
        "from": f"{run['territory']}, 1 worker, {len(seconds)} pieces",
        "pieces_total_s": round(sum(seconds), 2), "largest_piece": largest,
        "serial_s": round(serial_s, 2),
        "note": "projection (schedule simulation), not a measurement"}
    for w in (1, 2, 8, 32, 128):
        span = lpt(seconds, w)
        out[f"workers_{w}"] = {"pieces_makespan_s": round(span, 2),
                               "projected_s": round(serial_s + span, 2),
                               "speedup_over_1": round((serial_s + sum(seconds))
                                                       / (serial_s + span), 2)}
    return out


# --- 2. the CLI end to end -----------------------------------------------------------------


def _cli_once(path: Path, workers: int, sample: bool) -> tuple[dict[str, Any], Any]:
    """One ``gridmap partition`` run; its wall time, and the PSS peaks when ``sample``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plan"
        cmd = [sys.executable, "-m", "api.script", "partition", str(path), "--out", str(out),
               "--workers", str(workers), "--quiet"]
        before = load1()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if sample:
            with PeakPss(proc.pid) as mem:
                output, _ = proc.communicate()
        else:
            mem = None
            output, _ = proc.communicate()
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"gridmap partition failed:\n{output}")
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"wall_s": round(wall, 2), "load1_before": before, "load1_after": load1(),
            "report_runtime_s": report["runtime_s"], "n_grids": report["n_grids"],
            "in_range_share": report["in_range_share"], "memory_sampled": sample}, mem


def cli(path: Path, workers: int, repeats: int = 3) -> dict[str, Any]:
    """``gridmap partition`` end to end: ``repeats`` timed runs (nothing else running in
    them), then one run with the memory of every process sampled (the sampling costs CPU,
    so its time is not among the timed ones)."""
    runs = [_cli_once(path, workers, sample=False)[0] for _ in range(repeats)]
    for r in runs:
        print(f"  gridmap partition, {workers} workers: {r['wall_s']} s (load "
              f"{r['load1_before']} → {r['load1_after']})", flush=True)
    sampled, mem = _cli_once(path, workers, sample=True)
    walls = [r["wall_s"] for r in runs]
    # The worker processes: spawned (spawn_main), or forked from the fork server (children
    # of the process running multiprocessing.forkserver, itself a child of the command).
    server = {pid for pid, what in mem.what.items() if "multiprocessing.forkserver" in what
              and mem.parent.get(pid) == mem.root}
    workers_mb = {str(pid): round(kb / 1024) for pid, kb in mem.peak_kb.items()
                  if "spawn_main" in mem.what.get(pid, "") or mem.parent.get(pid) in server}
    others_mb = {str(pid): {"mb": round(kb / 1024), "what": (
        "fork server" if pid in server else mem.what.get(pid, "")[:80])}
        for pid, kb in mem.peak_kb.items() if str(pid) not in workers_mb and pid != mem.root}
    return {"workers": workers, "runs": runs, "best_wall_s": min(walls),
            "median_wall_s": statistics.median(walls), "wall_s": statistics.median(walls),
            "n_grids": runs[0]["n_grids"], "in_range_share": runs[0]["in_range_share"],
            "sampled_run": sampled,
            "peak_pss_mb_command": round(mem.peak_kb.get(mem.root, 0) / 1024),
            "peak_pss_mb_per_worker_process": workers_mb,
            "peak_pss_mb_other_processes": others_mb,
            "peak_pss_mb_tree": round(mem.total_kb / 1024)}


# --- 4. routing latency during a job -------------------------------------------------------


def _pace(base: str, headers: dict[str, str], points: list[tuple[float, float]], rate: float,
          until: Any) -> list[float]:
    """GET /route at ``rate`` per second until ``until()``; latencies (ms)."""
    import httpx

    out: list[float] = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        nxt = time.perf_counter()
        i = 0
        while not until():
            x, y = points[i % len(points)]
            i += 1
            t = time.perf_counter()
            r = http.get("/route", params={"x": x, "y": y, "coord_sys": "wgs84"})
            out.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"/route answered {r.status_code}: {r.text[:300]}")
            nxt += 1.0 / rate
            time.sleep(max(0.0, nxt - time.perf_counter()))
    return out


def _quantiles(ms: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.array(ms)
    return {"n": len(ms), "p50": round(float(np.percentile(a, 50)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "max": round(float(a.max()), 2)}


def route_during_job(path: Path, idle_s: float, rate: float) -> dict[str, Any]:
    import httpx
    import numpy as np
    from live_server import server, sign_in
    from pgcluster import ThrowawayCluster

    from gis.database import make_engine, upgrade

    out: dict[str, Any] = {"territory": path.name, "rate_per_s": rate}
    cluster = ThrowawayCluster(durable=True).start()
    try:
        url = cluster.create_database("gridmap_dask_bench")
        upgrade(make_engine(url))
        headers = sign_in(url)
        with tempfile.TemporaryDirectory() as tmp, \
                server(url, 1, Path(tmp) / "server.log",
                       {"GRIDMAP_JOB_TIMEOUT_S": "0"}) as (base, _proc), \
                httpx.Client(base_url=base, headers=headers, timeout=600) as http:
            started = time.perf_counter()
            with path.open("rb") as fh:
                r = http.post("/territories", files={"files": (path.name, fh)},
                              data={"name": "dask bench"})
            r.raise_for_status()
            tid = r.json()["id"]
            out["import_s"] = round(time.perf_counter() - started, 1)

            def run_job() -> dict[str, Any]:
                r = http.post(f"/territories/{tid}/plans", json={"seed": 0})
                r.raise_for_status()
                job_id = r.json()["id"]
                while True:
                    job = http.get(f"/jobs/{job_id}").json()
                    if job["state"] not in ("queued", "running"):
                        return dict(job)
                    time.sleep(1.0)

            first = run_job()
            if first["state"] != "done":
                raise RuntimeError(f"the first job failed: {first}")
            http.post(f"/plans/{first['plan_id']}/publish").raise_for_status()
            grids = http.get(f"/plans/{first['plan_id']}/grids",
                             params={"simplify": 2}).json()
            import shapely

            geoms = [shapely.geometry.shape(f["geometry"]) for f in grids["features"]]
            pts = shapely.point_on_surface(np.array(geoms, dtype=object))
            points = list(zip(shapely.get_x(pts).tolist(), shapely.get_y(pts).tolist(),
                              strict=True))
            warm = time.monotonic() + 3                 # the router is built
            _pace(base, headers, points, rate, lambda: time.monotonic() > warm)
            before = load1()
            end = time.monotonic() + idle_s
            idle = _pace(base, headers, points, rate, lambda: time.monotonic() > end)
            out["idle"] = {**_quantiles(idle), "load1_before": before, "load1_after": load1()}
            holder: dict[str, Any] = {}
            thread = threading.Thread(target=lambda: holder.update(run_job()))
            started = time.perf_counter()
            thread.start()
            time.sleep(0.5)
            during = _pace(base, headers, points, rate, lambda: not thread.is_alive())
            thread.join()
            job_s = time.perf_counter() - started
            out["during_job"] = {**_quantiles(during), "load1_after": load1()}
            out["job"] = {"state": holder.get("state"), "wall_s": round(job_s, 1),
                          "towns_total": holder.get("towns_total"),
                          "first_job": {"state": first["state"],
                                        "towns_total": first["towns_total"]}}
            out["p99_during_over_idle"] = round(out["during_job"]["p99"]
                                                / out["idle"]["p99"], 2)
            out["p50_during_over_idle"] = round(out["during_job"]["p50"]
                                                / out["idle"]["p50"], 2)
    finally:
        cluster.stop()
    return out


# --- main ------------------------------------------------------------------------------------


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("speedup", "cli", "route"), action="append")
    parser.add_argument("--households", type=int, default=1_400_000)
    parser.add_argument("--districts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cli-repeats", type=int, default=5,
                        help="timed runs of `gridmap partition` (the median is quoted)")
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny territories, one repeat (checks the bench runs)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.smoke:
        args.households, args.districts, args.repeats, args.idle_s = 20_000, 2, 1, 3.0
    what = args.only or ["speedup", "cli", "route"]
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "households": args.households}
    district = territory_file("district", args.households, 1)
    province = territory_file("province", args.households, args.districts)
    if "speedup" in what:
        print("speed-up 1 → 2 workers", flush=True)
        result["speedup"] = {"district": speedup(district, args.repeats),
                             "province": speedup(province, args.repeats)}
        for name, run in result["speedup"].items():
            serial = run["split_s"] + statistics.median(
                r["join_s"] for r in run["runs"] if r["workers"] == 1)
            result.setdefault("projection", {})[name] = projection(run, serial)
    if "cli" in what:
        print("gridmap partition end to end, 2 workers", flush=True)
        result["cli"] = cli(district, 2, 1 if args.smoke else args.cli_repeats)
    if "route" in what:
        print("GET /route idle and during a partition job", flush=True)
        result["route"] = route_during_job(district, args.idle_s, args.rate)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out = args.out or (Path(tempfile.mkdtemp()) / "dask_bench.json" if args.smoke
                       else RESULTS)
    if args.only and not args.smoke and out.exists():   # keep the parts not re-run
        old = json.loads(out.read_text(encoding="utf-8"))
        result = {**old, **result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("speedup",)},
                     ensure_ascii=False, indent=1)[:4000])
    print(f"→ {out}")
    return result


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
