"""Benchmark: a soak of the service on loopback — mixed traffic for a bounded time, memory watched.

Run: PYTHONPATH=. .venv/bin/python bench/soak_bench.py [--minutes 10] [--max-requests N]
     [--workers 2] [--households N] [--events-rate 30] [--route-rate 100] [--tile-rate 40]
     [--screens 6] ... [--smoke] [--out PATH]
Writes bench/results/soak_bench.json (``--out`` to change; ``--smoke``: a temporary file
unless ``--out`` is given).

Set-up as bench/service_bench.py (the same bench/demo_db.py and bench/live_server.py): a
durable throwaway PostGIS (tests/pgcluster.py, fsync on), the Baiyun-sized demo district
imported with its cached partition published (``--households`` for a smaller one),
``gridmap serve --workers N`` in a subprocess (uvicorn), here with the automatic escalation
on, as a command centre runs it.

Traffic (bench/soak_traffic.py): one asyncio client (bench/soak_client.py: HTTP/1.1
keep-alive over asyncio streams, bench/http_client.py), closed loop with a target rate per
kind — each kind has a few connections, each sends its next request when its last answer
has arrived and its next slot has come (never a burst to catch up, so a slow service shows
as a rate under target).
Connections are closed and reopened every ``--recycle`` requests (spreading them over the
workers and exercising connection set-up). The kinds:

* ``post_event`` — ``POST /events``, points inside the grids, WGS84 or GCJ-02 at random, each
  with a new idempotency key; ``--retry-share`` of them re-send an already answered key
  (must be 200 with the same event, never a second event);
* ``get_route`` — ``GET /route``, 80 % points inside the grids, 20 % anywhere in their
  bounding box (routed to the nearest grid), WGS84 or GCJ-02;
* ``get_tile`` — ``GET /tiles/{plan}/{z}/{x}/{y}.mvt?v=…`` at z12–z16 over the plan's extent:
  80 % in 5×5-tile viewports around a dozen hot spots (Zipf-weighted, so the cache gets
  repeats), 20 % anywhere (the long tail); 10 % are revalidations of a tile already fetched
  (no ``v``, ``If-None-Match``: 304);
* ``get_tilejson`` — ``GET /tiles/{plan}.json``;
* ``screen_data`` — ``--screens`` command-centre screens, a third each at district, town and
  village level, each polling ``GET /screen/data`` every ``--screen-interval`` seconds with
  ``If-None-Match`` (304 is fine); each first loads the plan's grids as the page does;
* ``get_grids`` — ``GET /plans/{id}/grids`` by viewport bbox, town, village, or the whole
  plan simplified (the screen's URL);
* ``list_events`` — ``GET /events?…`` by town (open only), village, grid, or a page of all.

Bounded by ``--minutes`` (after a ``--warmup`` not counted) and ``--max-requests``.
Measured per kind: requests, rate, latency p50/p90/p99/max (client-side, from the first
byte sent to the last byte read), answers by status and errors (any 5xx, connection error
or timeout; 4xx are counted apart as unexpected: every request sent is valid), and a
per-minute timeline. Every ``--sample-every`` seconds the RSS of each server process and of
PostgreSQL (the sum over the postmaster and its children; also without shared memory, which
every backend maps and which grows as shared_buffers is touched) is read from /proc; start
(after warm-up), end, peak and the slope of a least-squares line over the second half of the
run (MB/min) are reported, and "flat" means that slope is under ``--flat-mb-per-min``.
At the end the events table is compared with the 2xx answers (lost or duplicated events).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from demo_db import count_rows, demo_setup, pg_settings  # noqa: E402
from http_client import Conn  # noqa: E402
from live_server import AUTH, server, sign_in, warm_up  # noqa: E402
from procs import load1, tree_cpu_s  # noqa: E402
from run_record import machine, uptime, write_json  # noqa: E402
from soak_client import Limits, Recorder, Request, lane  # noqa: E402
from soak_figures import events_check, report  # noqa: E402
from soak_memory import sampler  # noqa: E402
from soak_traffic import (  # noqa: E402
    BROWSER,
    Ledger,
    ScreenLog,
    TileLog,
    World,
    event_maker,
    fetch_token,
    grids_maker,
    lists_maker,
    make_world,
    route_maker,
    screen,
    tile_maker,
)

RESULTS = Path(__file__).parent / "results" / "soak_bench.json"


async def drive(args: argparse.Namespace, port: int, world: World, server_pid: int,
                pg_pid: int) -> dict[str, Any]:
    rec = Recorder()
    warm_until = time.monotonic() + args.warmup
    limits = Limits(warm_until + args.minutes * 60, args.max_requests, rec)
    await fetch_token(port, world)
    rng = random.Random(args.traffic_seed)
    ledger, tiles, screens = Ledger(), TileLog(), ScreenLog()
    prefix = f"soak-{os.getpid()}-{int(time.time())}"
    plan: list[tuple[str, float, int, Callable[[], Request]]] = [
        ("post_event", args.events_rate, args.events_connections,
         event_maker(world, ledger, prefix, args.retry_share, random.Random(rng.random()))),
        ("get_route", args.route_rate, args.route_connections,
         route_maker(world, random.Random(rng.random()))),
        ("get_tile", args.tile_rate, args.tile_connections,
         tile_maker(world, tiles, random.Random(rng.random()))),
        ("get_tilejson", args.tilejson_rate, 1,
         lambda: Request("GET", f"/tiles/{world.plan_id}.json", headers=BROWSER)),
        ("get_grids", args.grids_rate, 2, grids_maker(world, random.Random(rng.random()))),
        ("list_events", args.lists_rate, 2, lists_maker(world, random.Random(rng.random()))),
    ]
    tasks = []
    for kind, rate, conns, make in plan:
        if rate <= 0:
            continue
        for _ in range(conns):
            tasks.append(lane(kind, make, conns / rate, Conn(port, args.recycle, args.timeout),
                              rec, limits, random.Random(rng.random())))
    levels = [("district", world.districts or [None]), ("town", world.towns),
              ("village", world.villages)]
    for i in range(args.screens):
        level, codes = levels[i % 3]
        area = codes[(i // 3 * 7) % len(codes)] if codes else None
        tasks.append(screen(level, area, world, port, args.screen_interval, args.recycle,
                            args.timeout, rec, limits, screens, random.Random(rng.random())))
    samples: list[dict[str, Any]] = []
    tasks.append(sampler(server_pid, pg_pid, args.sample_every, rec, limits, samples))

    async def switch() -> None:
        await asyncio.sleep(max(0.0, warm_until - time.monotonic()))
        rec.start_measuring()
        limits.deadline = rec.t0 + args.minutes * 60

    cpu0: list[float] = []
    client0 = time.process_time()

    async def cpu_mark() -> None:
        while not rec.measuring:
            await asyncio.sleep(0.05)
        cpu0.extend([tree_cpu_s(server_pid), tree_cpu_s(pg_pid), time.process_time()])

    await asyncio.gather(switch(), cpu_mark(), *tasks)
    # The measured window: from the end of the warm-up to the deadline (or the request that
    # reached --max-requests); answers still in flight then are counted, not the wait for them.
    seconds = min(time.monotonic(), limits.deadline, limits.last_send or limits.deadline) \
        - rec.t0
    cpu = {"server_cpu_s": round(tree_cpu_s(server_pid) - cpu0[0], 1),
           "postgres_cpu_s": round(tree_cpu_s(pg_pid) - cpu0[1], 1),
           "client_cpu_s": round(time.process_time() - cpu0[2], 1),
           "client_cpu_s_with_warmup": round(time.process_time() - client0, 1)}
    return {"rec": rec, "seconds": seconds, "ledger": ledger, "tiles": tiles,
            "screens": screens, "samples": samples, "cpu": cpu, "prefix": prefix,
            "targets": {k: r for k, r, _, _ in plan} | {
                "screen_data": round(args.screens / args.screen_interval, 3)}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="measured time (after warm-up)")
    p.add_argument("--max-requests", type=int, default=1_000_000,
                   help="stop after this many measured requests")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds of traffic not counted")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--households", type=int, default=DEMO_HOUSEHOLDS)
    p.add_argument("--seed", type=int, default=DEMO_SEED, help="the demo district's seed")
    p.add_argument("--traffic-seed", dest="traffic_seed", type=int, default=1)
    p.add_argument("--events-rate", type=float, default=30.0, help="POST /events per second")
    p.add_argument("--events-connections", type=int, default=6)
    p.add_argument("--retry-share", type=float, default=0.05,
                   help="share of posts re-sending an answered idempotency key")
    p.add_argument("--route-rate", type=float, default=100.0, help="GET /route per second")
    p.add_argument("--route-connections", type=int, default=8)
    p.add_argument("--tile-rate", type=float, default=40.0, help="vector tiles per second")
    p.add_argument("--tile-connections", type=int, default=6)
    p.add_argument("--tilejson-rate", type=float, default=0.5)
    p.add_argument("--screens", type=int, default=6, help="command-centre screens polling")
    p.add_argument("--screen-interval", type=float, default=5.0)
    p.add_argument("--grids-rate", type=float, default=0.5, help="GET /plans/{id}/grids per s")
    p.add_argument("--lists-rate", type=float, default=2.0, help="GET /events?… per second")
    p.add_argument("--recycle", type=int, default=200, help="requests per connection")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request "
                                                               "counts as timed out")
    p.add_argument("--sample-every", type=float, default=15.0, help="memory sample, seconds")
    p.add_argument("--bucket", type=float, default=60.0, help="timeline bucket, seconds")
    p.add_argument("--flat-mb-per-min", type=float, default=1.0,
                   help="memory is flat when its second-half slope is under this")
    p.add_argument("--escalation-interval", type=float, default=60.0,
                   help="the service's automatic escalation (GRIDMAP_ESCALATION_INTERVAL_S)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment of the server (e.g. MALLOC_ARENA_MAX=2); repeatable")
    p.add_argument("--smoke", action="store_true",
                   help="12 s (after 2 s of warm-up) on the 10,000-household demo (for CI)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        given = set(argv if argv is not None else sys.argv[1:])
        for name, value in (("--households", 10_000), ("--minutes", 0.2), ("--warmup", 2.0),
                            ("--sample-every", 2.0), ("--bucket", 5.0),
                            ("--screen-interval", 2.0)):
            if name not in given:
                setattr(args, name[2:].replace("-", "_"), value)
    if args.out is None:
        args.out = (Path(tempfile.mkdtemp(prefix="gridmap-soak-")) / "soak_bench.json"
                    if args.smoke else RESULTS)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from pgcluster import ThrowawayCluster
    from route_bench import demo_grids

    from gis.database import make_engine, upgrade

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on the way out
    result: dict[str, Any] = {
        "benchmark": "bench/soak_bench.py" + (" --smoke" if args.smoke else ""),
        "machine": machine(),
        "uptime_at_start": uptime(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "client": "the asyncio client of bench/soak_client.py (keep-alive HTTP/1.1, closed "
                  "loop at a target rate per kind), on the same 2 cores as the server and "
                  "PostgreSQL",
    }
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        phases[name] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()

    cluster = ThrowawayCluster(durable=True).start()
    phase("cluster_start")
    log = Path(tempfile.mkdtemp(prefix="gridmap-soak-")) / "server.log"
    try:
        url = cluster.url("postgres")
        engine = make_engine(url)
        upgrade(engine)   # first, so the server's and demo_setup's migrations find nothing to do
        engine.dispose()
        sign_in(url)      # the administrator whose API key every request carries
        phase("migrate")
        env = {"GRIDMAP_ESCALATION_INTERVAL_S": f"{args.escalation_interval:g}",
               **dict(kv.split("=", 1) for kv in args.server_env)}
        with ThreadPoolExecutor(1) as pool:
            # The district is imported while the server starts (it reads the plan on demand).
            importing = pool.submit(demo_setup, url, args.households, args.seed)
            with server(url, args.workers, log, env) as (base, proc):
                phase("server_start")
                setup = importing.result()
                phase("demo_setup_after_server_start")
                result["postgres"] = {**pg_settings(url), "cluster": "tests/pgcluster.py "
                                      "ThrowawayCluster(durable=True)"}
                result["territory"] = {"source": f"data.demo.generate({args.households:,}, "
                                                 f"{args.seed}), its partition published",
                                       **setup}
                print(json.dumps(result["territory"], ensure_ascii=False), flush=True)
                world = make_world(url, setup, demo_grids(args.households, args.seed)[0],
                                   args.traffic_seed)
                result["areas"] = {"districts": len(world.districts),
                                   "towns": len(world.towns), "villages": len(world.villages),
                                   "grids": len(world.grids)}
                before = count_rows(url)[0]
                pg_pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
                phase("traffic_data")
                port = int(base.rsplit(":", 1)[1])
                # Every worker builds its router on its first routing request: done before
                # the traffic (fresh connections spread over the workers), as service_bench.
                paths = [f"/route?x={x!r}&y={y!r}&coord_sys=wgs84"
                         for x, y in world.inside[:2000].tolist()]
                warm_up(base, paths, args.workers, dict(AUTH), fast_s=0.25, give_up_s=60)
                phase("router_warm_up")
                load_start = load1()
                run = asyncio.run(drive(args, port, world, proc.pid, pg_pid))
                phase("traffic")
                load_end = load1()
                alive = proc.poll() is None
        result["server_log_tail"] = log.read_text(errors="replace").splitlines()[-20:]
        result["events"] = events_check(url, run["prefix"], run["ledger"], before)
    finally:
        cluster.stop()
    phase("stop")
    result["phases_s"] = phases
    result["uptime_at_end"] = uptime()
    result.update(report(args, run, load_start, load_end, alive))
    result["verdict"]["events_consistent"] = result["events"]["consistent"]
    return result


if __name__ == "__main__":
    results = main()
    out_path = Path(results["config"]["out"])
    write_json(out_path, results)
    summary = {k: {"per_s": v["requests_per_s"], "p50": v.get("latency_ms", {}).get("p50"),
                   "p99": v.get("latency_ms", {}).get("p99"), "errors": v["errors_total"]}
               for k, v in results["kinds"].items()}
    print(json.dumps({"kinds": summary, "verdict": results["verdict"],
                      "events": results["events"], "out": str(out_path)},
                     ensure_ascii=False, indent=2))
