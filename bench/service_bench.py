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
   installed, else a small asyncio client in this file; either way it runs on the same two
   cores as the server and PostgreSQL (its CPU time is reported). Each load runs ``--rounds``
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
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results" / "service_bench.json"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CATEGORIES = ("sanitation", "safety_hazard", "dispute", "municipal")


# ------------------------------------------------------------------------------------------------
# CPU accounting from /proc (Linux)


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, live or ended (an ended
    child's time is in its parent's cutime/cstime once reaped)."""
    children = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += sum(int(f) for f in fields[11:15])
        todo.extend(children.get(pid, []))
    return total / CLK_TCK


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------------------------------------
# The database


def demo_setup(url: str, households: int, seed: int) -> dict[str, Any]:
    """Migrate, import the demo district, store its cached partition as the published plan."""
    import geopandas as gpd
    import pyogrio
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED, demo_grids

    from data.demo import generate
    from gis.database import make_engine, upgrade
    from gis.io.territory import read_territory
    from gis.plans import publish_plan, write_plan
    from gis.store import import_territory

    out: dict[str, Any] = {}
    engine = make_engine(url)
    started = time.perf_counter()
    upgrade(engine)
    out["migrate_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    if (households, seed) == (DEMO_HOUSEHOLDS, DEMO_SEED):
        path, made = demo_grids()
    else:  # pragma: no cover - other sizes are partitioned here, not cached
        path, made = _partition(households, seed)
    grids = pyogrio.read_dataframe(path)
    out["partition_s"] = round(made, 1) if made else "cached"
    with tempfile.TemporaryDirectory() as tmp:  # through the checks of a real import
        territory = read_territory(generate(households, seed).write(Path(tmp) / "demo.gpkg"))
    out["generate_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    tid = import_territory(engine, territory)
    out["import_territory_s"] = round(time.perf_counter() - started, 1)
    blocks = gpd.GeoDataFrame(
        {"village_code": [], "households": [], "population": [], "grid_code": []},
        geometry=[], crs=4326)
    started = time.perf_counter()
    plan_id = write_plan(engine, tid, grids.to_crs(4326), blocks, {}, {"seed": 0},
                         note="service bench")
    publish_plan(engine, plan_id)
    out["write_plan_s"] = round(time.perf_counter() - started, 1)
    engine.dispose()
    out.update(territory_id=tid, plan_id=plan_id, grids=len(grids),
               households=territory.layers["buildings"]["households"].sum().item(),
               layers=territory.counts(),
               bbox_wgs84=[round(float(v), 5) for v in grids.to_crs(4326).total_bounds])
    return out


def _partition(households: int, seed: int) -> tuple[Path, float]:  # pragma: no cover
    from route_bench import demo_grids

    return demo_grids(households, seed)


def in_grids(lon: np.ndarray, lat: np.ndarray, grids: Path | None = None) -> np.ndarray:
    """Which points lie in a grid of the demo partition (or of the grid layer ``grids``)."""
    import pyogrio
    import shapely
    from route_bench import demo_grids

    path = grids if grids is not None else demo_grids()[0]
    geoms = pyogrio.read_dataframe(path).to_crs(4326).geometry.to_numpy()
    pi, _ = shapely.STRtree(geoms).query(shapely.points(lon, lat), predicate="within")
    mask = np.zeros(len(lon), dtype=bool)
    mask[pi] = True
    return mask


def pg_settings(url: str) -> dict[str, Any]:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
                 "shared_buffers", "max_connections")
        values = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}  # type: ignore
        version = conn.execute("SELECT version(), postgis_lib_version()").fetchone()
    assert version is not None
    return {"version": f"{str(version[0]).split(',')[0]}, PostGIS {version[1]}", **values}


def fsync_rate(cluster: Any) -> dict[str, Any]:
    """What one fsync costs on this disk (pg_test_fsync, 2 s per method), for context."""
    tool = cluster.bindir / "pg_test_fsync"
    if not tool.exists():
        return {"skipped": "no pg_test_fsync"}
    target = cluster.root / "fsync_test"
    cmd = [str(tool), "-s", "2", "-f", str(target)]
    if cluster.as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    rates = {}
    for line in out.splitlines():
        parts = line.split()
        if "ops/sec" in parts and parts[0] in ("fdatasync", "fsync", "open_datasync",
                                               "open_sync") and parts[0] not in rates:
            rates[parts[0]] = float(parts[parts.index("ops/sec") - 1])
    return {"ops_per_s_one_8kB_write": rates, "disk": _disk_of(cluster.root)}


def _disk_of(path: Path) -> str:
    out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True).stdout
    lines = out.splitlines()
    return " ".join(lines[1].split()[:2]) if len(lines) > 1 else "?"


def count_rows(url: str) -> tuple[int, int]:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        a = conn.execute("SELECT count(*) FROM events").fetchone()
        b = conn.execute("SELECT count(*) FROM event_history").fetchone()
    assert a is not None and b is not None
    return int(a[0]), int(b[0])


# ------------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(cmd: list[str], env: dict[str, str], port: int, log: Path
            ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run a server command (logging to ``log``) until it answers /readyz on ``port``;
    stop it when the block ends."""
    import httpx

    with open(log, "ab") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server stopped: see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become ready: see {log}")
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def server(url: str, workers: int, log: Path, env_extra: dict[str, str] | None = None
           ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRIDMAP_DATABASE_URL": url,
           "GRIDMAP_ESCALATION_INTERVAL_S": "0", "GRIDMAP_JOB_WORKERS": "1",
            # One account posts every event here: the per-account limit would cap the
            # measurement, so it is off (an integration's account would be given a high one).
            "GRIDMAP_EVENT_RATE_PER_MINUTE": "0",
            **(env_extra or {})}
    cmd = [sys.executable, "-m", "api.cli", "serve", "--host", HOST, "--port", str(port),
           "--workers", str(workers), "--no-access-log"]
    with serving(cmd, env, port, log) as running:
        yield running


#: The bench's credentials (an administrator's API key), sent with every request.
AUTH: dict[str, str] = {}


def sign_in(url: str) -> dict[str, str]:
    """Make the bench's administrator in the store and keep its API key in :data:`AUTH`."""
    from signin import account_key

    from gis.database import make_engine

    AUTH["X-API-Key"] = account_key(make_engine(url), "bench", "admin", "*")
    return AUTH


def warm_up(base: str, paths: list[str], workers: int, headers: dict[str, str] | None = None,
            fast_s: float = 0.05, give_up_s: float | None = None) -> float:
    """Route until every worker has built its router (each builds it on its first request):
    200 answers in a row under ``fast_s``, or ``give_up_s`` seconds."""
    import httpx

    started = time.perf_counter()

    async def one(client: httpx.AsyncClient, path: str) -> float:
        t = time.perf_counter()
        r = await client.get(base + path)
        r.raise_for_status()
        return time.perf_counter() - t

    async def run() -> None:
        # No keep-alive: each request a new connection, so the kernel spreads them over
        # every worker process (a kept connection stays with one).
        limits = httpx.Limits(max_connections=4 * workers, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=120, limits=limits,
                                     headers=AUTH if headers is None else headers) as client:
            fast = 0
            i = 0
            while fast < 200:  # 200 answers in a row under 50 ms: every worker is warm
                if give_up_s is not None and time.perf_counter() - started > give_up_s:
                    break
                batch = [paths[(i + k) % len(paths)] for k in range(4 * workers)]
                i += len(batch)
                times = await asyncio.gather(*(one(client, p) for p in batch))
                fast = fast + len(times) if max(times) < fast_s else 0

    asyncio.run(run())
    return round(time.perf_counter() - started, 1)


# ------------------------------------------------------------------------------------------------
# Load generators


WRK_COMMON = """
local out_path = "%(out)s"
done = function(summary, latency, requests)
  local e = summary.errors
  local f = io.open(out_path, "w")
  f:write(string.format(
    '{"requests": %%d, "duration_us": %%d, "bytes": %%d, "errors": {"connect": %%d, ' ..
    '"read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, "latency_us": {"p50": %%d, ' ..
    '"p90": %%d, "p99": %%d, "p999": %%d, "max": %%d, "mean": %%.1f}}',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  f:close()
end
"""

WRK_GET = """
local paths = {%(paths)s}
local headers = {["X-API-Key"] = "%(key)s"}
local i = 0
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i], headers)
end
"""

WRK_POST = """
local points = {%(points)s}
local counter = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = "%(key)s"}
request = function()
  counter = counter + 1
  local p = points[(counter %% #points) + 1]
  local body = string.format(
    '{"x": %%s, "y": %%s, "coord_sys": "wgs84", "category": "%%s", "source": "patrol", ' ..
    '"reporter": "bench", "idempotency_key": "%(prefix)s-%%d-%%d"}',
    p[1], p[2], p[3], tid or 0, counter)
  return wrk.format("POST", "/events", headers, body)
end
"""


def run_wrk(base: str, script: str, connections: int, duration: float, threads: int = 1
            ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        lua = Path(tmp) / "script.lua"
        lua.write_text(WRK_COMMON % {"out": out} + script)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d",
                               f"{duration:g}s", "--timeout", "10s", "-s", str(lua), base],
                              capture_output=True, text=True, timeout=duration + 120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed: {proc.stdout}\n{proc.stderr}")
        raw = json.loads(out.read_text())
    seconds = raw["duration_us"] / 1e6
    errors = {k: v for k, v in raw["errors"].items() if v}
    return {"requests": raw["requests"], "seconds": round(seconds, 2),
            "requests_per_s": round(raw["requests"] / seconds),
            "latency_ms": {k: round(v / 1000, 2) for k, v in raw["latency_us"].items()},
            "errors": errors,
            "client_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime
                                  - before.ru_stime, 1)}


async def read_response(reader: asyncio.StreamReader, with_body: bool = False
                        ) -> tuple[int, dict[bytes, bytes], bytes]:
    """Read one HTTP/1.1 answer: status, headers (lower-case names) and the body (read
    whole — by Content-Length, chunked, or none for 1xx/204/304 — kept when ``with_body``).
    Raises ``asyncio.IncompleteReadError`` when the connection closes first."""
    line = await reader.readline()
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    status = int(line[9:12])
    headers: dict[bytes, bytes] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if status in (204, 304) or status < 200:
        return status, headers, body
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            if with_body:
                parts.append(chunk[:-2])
        body = b"".join(parts)
    else:
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body if with_body else b""


async def _py_load(host: str, port: int, requests: list[bytes], connections: int,
                   duration: float) -> tuple[list[float], int, float]:
    """Closed-loop HTTP/1.1 keep-alive load: ``connections`` connections, each sending its
    next request when the answer to the last one has been read."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    counter = iter(range(10**12))

    async def conn() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop:
                req = requests[next(counter) % len(requests)]
                t = time.perf_counter()
                writer.write(req)
                status, _, _ = await read_response(reader)
                latencies.append(time.perf_counter() - t)
                if status // 100 != 2:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    return latencies, errors, time.perf_counter() - started


def run_python(base: str, requests: list[bytes], connections: int, duration: float
               ) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    before = time.process_time()
    lat, errors, seconds = asyncio.run(_py_load(host, int(port), requests, connections,
                                                duration))
    ms = np.array(lat) * 1000
    return {"requests": len(lat), "seconds": round(seconds, 2),
            "requests_per_s": round(len(lat) / seconds),
            "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 2),
                           "p90": round(float(np.percentile(ms, 90)), 2),
                           "p99": round(float(np.percentile(ms, 99)), 2),
                           "p999": round(float(np.percentile(ms, 99.9)), 2),
                           "max": round(float(ms.max()), 2),
                           "mean": round(float(ms.mean()), 2)},
            "errors": {"status": errors} if errors else {},
            "client_cpu_s": round(time.process_time() - before, 1)}


def get_requests(points: np.ndarray) -> tuple[str, list[bytes], list[str]]:
    paths = [f"/route?x={x!r}&y={y!r}&coord_sys=wgs84" for x, y, _ in points.tolist()]
    key = AUTH.get("X-API-Key", "")
    script = WRK_GET % {"paths": ",".join(f'"{p}"' for p in paths), "key": key}
    raw = [f"GET {p} HTTP/1.1\r\nHost: {HOST}\r\nX-API-Key: {key}\r\n\r\n".encode()
           for p in paths]
    return script, raw, paths


def post_requests(points: np.ndarray, prefix: str, count: int) -> tuple[str, list[bytes]]:
    key = AUTH.get("X-API-Key", "")
    script = WRK_POST % {"prefix": prefix, "key": key, "points": ",".join(
        f'{{"{x!r}","{y!r}","{CATEGORIES[int(c)]}"}}' for x, y, c in points.tolist())}
    raw = []
    for i in range(count):  # the python client gets pre-made requests, each with its key
        x, y, c = points[i % len(points)]
        body = json.dumps({"x": float(x), "y": float(y), "coord_sys": "wgs84",
                           "category": CATEGORIES[int(c)], "source": "patrol",
                           "reporter": "bench", "idempotency_key": f"{prefix}-py-{i}"})
        raw.append((f"POST /events HTTP/1.1\r\nHost: {HOST}\r\nX-API-Key: {key}\r\n"
                    "Content-Type: application/json"
                    f"\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    return script, raw


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
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work), "
                   f"Python {platform.python_version()}, {platform.platform()}",
        "load_average_1min_at_start": load_start,
        "client": (f"wrk {_wrk_version()}, 1 thread" if client == "wrk"
                   else "the asyncio client in this file") +
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
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    out_path = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else RESULTS
    out_path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
