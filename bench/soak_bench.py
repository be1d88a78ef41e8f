"""Benchmark: a soak of the service on loopback — mixed traffic for a bounded time, memory watched.

Run: PYTHONPATH=. .venv/bin/python bench/soak_bench.py [--minutes 10] [--max-requests N]
     [--workers 2] [--households N] [--events-rate 30] [--route-rate 100] [--tile-rate 40]
     [--screens 6] ... [--smoke] [--out PATH]
Writes bench/results/soak_bench.json (``--out`` to change; ``--smoke``: a temporary file
unless ``--out`` is given).

Set-up as bench/service_bench.py (whose functions it imports): a durable throwaway PostGIS
(tests/pgcluster.py, fsync on), the Baiyun-sized demo district imported with its cached
partition published (``--households`` for a smaller one), ``gridmap serve --workers N`` in a
subprocess (uvicorn), here with the automatic escalation on, as a command centre runs it.

Traffic: one asyncio client (HTTP/1.1 keep-alive over asyncio streams, the answers read by
``service_bench.read_response``), closed loop with a target rate per kind — each kind has a
few connections, each sends its next request when its last answer has arrived and its next
slot has come (never a burst to catch up, so a slow service shows as a rate under target).
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
import contextlib
import gzip
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from service_bench import (  # noqa: E402
    AUTH,
    CATEGORIES,
    HOST,
    count_rows,
    demo_setup,
    in_grids,
    load1,
    pg_settings,
    read_response,
    server,
    sign_in,
    tree_cpu_s,
    warm_up,
)

from events.store import client_key  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "soak_bench.json"
SOURCES = ("patrol", "citizen", "hotline", "sensor")
KINDS = ("post_event", "get_route", "get_tile", "get_tilejson", "screen_data", "get_grids",
         "list_events")
ZOOMS = (12, 13, 14, 15, 16)
ZOOM_WEIGHTS = (0.1, 0.15, 0.25, 0.25, 0.25)
MB = 2**20
#: What a browser (maps, the screen) adds to a GET: the service's GZip middleware compresses.
BROWSER = {"Accept-Encoding": "gzip, deflate"}


def auth_headers() -> dict[str, str]:
    """Headers every request of this benchmark carries: the API key of the administrator
    service_bench.sign_in made (the one place they come from)."""
    return dict(AUTH)


# ------------------------------------------------------------------------------------------------
# The client


#: uvicorn closes a keep-alive connection idle for 5 s (its default): one idle this long is
#: reopened before use, as browsers do, so a close racing a request is not taken for an error.
IDLE_REOPEN_S = 3.0


class Conn:
    """One keep-alive HTTP/1.1 connection, reopened after ``recycle`` requests, an error or
    :data:`IDLE_REOPEN_S` idle."""

    def __init__(self, port: int, recycle: int, timeout: float) -> None:
        self.port, self.recycle, self.timeout = port, recycle, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0
        self.last = 0.0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None, with_body: bool = False
                      ) -> tuple[int, dict[bytes, bytes], bytes]:
        if (self.writer is None or self.used >= self.recycle
                or time.monotonic() - self.last > IDLE_REOPEN_S):
            await self.close()
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.port), self.timeout)
            self.used = 0
        assert self.reader is not None
        self.used += 1
        head = {"Host": f"{HOST}:{self.port}", **auth_headers(), **(headers or {})}
        if body:
            head["Content-Length"] = str(len(body))
        raw = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
        try:
            self.writer.write(raw.encode("latin-1") + body)
            answer = await asyncio.wait_for(read_response(self.reader, with_body),
                                            self.timeout)
        except BaseException:
            await self.close()
            raise
        self.last = time.monotonic()
        if answer[1].get(b"connection", b"").lower() == b"close":
            await self.close()
        return answer


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    with_body: bool = False
    #: Called with (status, headers, body) when answered.
    done: Callable[[int, dict[bytes, bytes], bytes], None] | None = None
    #: Called when no answer came (connection error or timeout).
    failed: Callable[[], None] | None = None


class Recorder:
    """Every answer to a request sent in the measured window (and, apart, of the warm-up):
    kind, when sent, latency, status (or the error's name)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.measuring = False
        self.rows: dict[str, list[tuple[float, float, int | str]]] = {k: [] for k in KINDS}
        self.warmup: dict[str, Counter[int | str]] = {k: Counter() for k in KINDS}
        self.sent = 0
        #: The slowest measured requests of each kind: (ms, at s, status, path).
        self.slowest: dict[str, list[tuple[float, float, int | str, str]]] = {
            k: [] for k in KINDS}

    def start_measuring(self) -> None:
        self.t0 = time.monotonic()
        self.measuring = True

    def add(self, kind: str, latency: float, status: int | str, path: str = "") -> None:
        at = time.monotonic() - latency - self.t0   # when it was sent
        if not self.measuring or at < 0:
            self.warmup[kind][status] += 1
            return
        self.rows[kind].append((at, latency, status))
        slow = self.slowest[kind]
        if len(slow) < 5 or latency * 1000 > slow[-1][0]:
            slow.append((round(latency * 1000, 1), round(at, 1), status, path[:160]))
            slow.sort(key=lambda r: -r[0])
            del slow[5:]


@dataclass
class Limits:
    deadline: float
    max_requests: int
    recorder: Recorder

    last_send: float = 0.0

    def over(self) -> bool:
        if self.recorder.measuring and self.recorder.sent >= self.max_requests:
            self.last_send = self.last_send or time.monotonic()
            return True
        return time.monotonic() >= self.deadline


async def send(conn: Conn, kind: str, req: Request, rec: Recorder) -> None:
    if rec.measuring:
        rec.sent += 1
    started = time.perf_counter()
    try:
        status, headers, body = await conn.request(req.method, req.path, req.body,
                                                   req.headers, req.with_body)
    except TimeoutError:
        rec.add(kind, time.perf_counter() - started, "timeout", req.path)
        if req.failed:
            req.failed()
        return
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        rec.add(kind, time.perf_counter() - started, f"connection:{type(exc).__name__}",
                req.path)
        if req.failed:
            req.failed()
        await asyncio.sleep(0.2)
        return
    rec.add(kind, time.perf_counter() - started, status, req.path)
    if req.done:
        req.done(status, headers, body)


async def lane(kind: str, make: Callable[[], Request], interval: float, conn: Conn,
               rec: Recorder, limits: Limits, rng: random.Random) -> None:
    """Closed loop: the next request when the last one is answered and its slot has come."""
    slot = time.monotonic() + rng.uniform(0, interval)
    while True:
        wait = slot - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if limits.over():
            break
        slot = max(slot + interval, time.monotonic())
        await send(conn, kind, make(), rec)
    await conn.close()


# ------------------------------------------------------------------------------------------------
# What is asked


@dataclass
class World:
    """What the traffic is made from: the plan, points, areas, tiles."""

    plan_id: int
    territory_id: int
    inside: np.ndarray        # (n, 2) WGS84 points inside the grids
    inside_gcj: np.ndarray    # the same in GCJ-02
    box: np.ndarray           # (n, 2) points anywhere in the grids' bounding box
    box_gcj: np.ndarray
    bounds: tuple[float, float, float, float]
    token: str
    districts: list[str]
    towns: list[str]
    villages: list[str]
    grids: list[str]
    grids_url: str


@dataclass
class Ledger:
    """The idempotency keys posted and what came back for them."""

    answered: dict[str, int] = field(default_factory=dict)   # key → event id (2xx)
    bodies: dict[str, bytes] = field(default_factory=dict)   # key → the body sent
    unsure: set[str] = field(default_factory=set)            # sent, no answer
    created: int = 0            # 201
    first_answered_200: int = 0  # a new key answered 200 (a retry of nothing)
    retries: int = 0
    retries_200_same: int = 0
    retries_new_event: int = 0  # a retry answered 201 or with another id: a duplicate
    routed_outside: int = 0     # inside points the answer put outside every grid


def event_maker(world: World, ledger: Ledger, prefix: str, retry_share: float,
                rng: random.Random) -> Callable[[], Request]:
    counter = iter(range(10**12))

    def make() -> Request:
        if ledger.answered and rng.random() < retry_share:
            key = rng.choice(list(ledger.answered)[-500:])
            expect = ledger.answered[key]
            ledger.retries += 1

            def retried(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
                if status // 100 != 2:
                    return
                got = json.loads(body)["id"]
                if status == 200 and got == expect:
                    ledger.retries_200_same += 1
                else:
                    ledger.retries_new_event += 1

            return Request("POST", "/events", ledger.bodies[key],
                           {"Content-Type": "application/json"}, True, retried)
        n = next(counter)
        key = f"{prefix}-{n}"
        i = rng.randrange(len(world.inside))
        gcj = rng.random() < 0.5
        x, y = (world.inside_gcj if gcj else world.inside)[i]
        payload = {"x": float(x), "y": float(y), "coord_sys": "gcj02" if gcj else "wgs84",
                   "category": rng.choice(CATEGORIES), "source": rng.choice(SOURCES),
                   "territory_id": world.territory_id,
                   "description": f"压测事件 soak {n}", "reporter": f"网格员{n % 97}",
                   "idempotency_key": key}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")

        def answered(status: int, headers: dict[bytes, bytes], body_: bytes) -> None:
            if status // 100 != 2:
                return
            event = json.loads(body_)
            ledger.answered[key] = int(event["id"])
            ledger.bodies[key] = body
            ledger.unsure.discard(key)
            if status == 201:
                ledger.created += 1
            else:
                ledger.first_answered_200 += 1
            if not event.get("grid_code"):
                ledger.routed_outside += 1

        def failed() -> None:
            ledger.unsure.add(key)

        return Request("POST", "/events", body, {"Content-Type": "application/json"}, True,
                       answered, failed)

    return make


def route_maker(world: World, rng: random.Random) -> Callable[[], Request]:
    def make() -> Request:
        inside = rng.random() < 0.8
        gcj = rng.random() < 0.5
        pts = (world.inside_gcj if gcj else world.inside) if inside else \
            (world.box_gcj if gcj else world.box)
        x, y = pts[rng.randrange(len(pts))]
        return Request("GET", f"/route?x={float(x)!r}&y={float(y)!r}&coord_sys="
                              f"{'gcj02' if gcj else 'wgs84'}&territory={world.territory_id}")

    return make


@dataclass
class TileLog:
    """What the tile traffic met: the server's cache header, sizes, distinct tiles."""

    etags: dict[tuple[int, int, int], str] = field(default_factory=dict)
    sizes: dict[tuple[int, int, int], int] = field(default_factory=dict)
    cache: Counter[str] = field(default_factory=Counter)
    revalidations: int = 0


def tile_maker(world: World, log: TileLog, rng: random.Random) -> Callable[[], Request]:
    from maps.tiles import tile_at, tiles_covering

    ranges = {}
    for z in ZOOMS:
        tiles = list(tiles_covering(world.bounds, z))
        ranges[z] = (min(t.x for t in tiles), max(t.x for t in tiles),
                     min(t.y for t in tiles), max(t.y for t in tiles))
    spots = [world.inside[i] for i in rng.sample(range(len(world.inside)), 12)]
    weights = [1 / (k + 1) for k in range(len(spots))]   # Zipf: a few places are busy

    def make() -> Request:
        if log.etags and rng.random() < 0.1:   # a client revalidating what it has
            address = rng.choice(list(log.etags))
            log.revalidations += 1
            z, x, y = address
            return Request("GET", f"/tiles/{world.plan_id}/{z}/{x}/{y}.mvt",
                           headers={**BROWSER, "If-None-Match": log.etags[address]})
        z = rng.choices(ZOOMS, ZOOM_WEIGHTS)[0]
        x0, x1, y0, y1 = ranges[z]
        if rng.random() < 0.8:
            lon, lat = rng.choices(spots, weights)[0]
            centre = tile_at(float(lon), float(lat), z)
            x = min(max(centre.x + rng.randint(-2, 2), x0), x1)
            y = min(max(centre.y + rng.randint(-2, 2), y0), y1)
        else:
            x, y = rng.randint(x0, x1), rng.randint(y0, y1)

        def done(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
            if status == 200:
                log.etags[(z, x, y)] = headers.get(b"etag", b"").decode()
                raw = (gzip.decompress(body) if headers.get(b"content-encoding") == b"gzip"
                       else body)
                log.sizes[(z, x, y)] = len(raw)   # what the server's cache holds
                log.cache[headers.get(b"x-tile-cache", b"?").decode()] += 1

        return Request("GET", f"/tiles/{world.plan_id}/{z}/{x}/{y}.mvt?v={world.token}",
                       headers=BROWSER, with_body=True, done=done)

    return make


def grids_maker(world: World, rng: random.Random) -> Callable[[], Request]:
    base = f"/plans/{world.plan_id}/grids"

    def make() -> Request:
        r = rng.random()
        if r < 0.5:
            lon, lat = world.inside[rng.randrange(len(world.inside))]
            half = rng.uniform(0.005, 0.02)   # a viewport of 1–4 km
            path = (f"{base}?bbox={lon - half:.5f},{lat - half:.5f},{lon + half:.5f},"
                    f"{lat + half:.5f}")
        elif r < 0.75:
            path = f"{base}?town={rng.choice(world.towns)}"
        elif r < 0.95:
            path = f"{base}?village={rng.choice(world.villages)}&simplify=3"
        else:
            path = world.grids_url
        return Request("GET", path, headers=BROWSER)

    return make


def lists_maker(world: World, rng: random.Random) -> Callable[[], Request]:
    base = f"/events?territory={world.territory_id}"

    def make() -> Request:
        r = rng.random()
        if r < 0.3:
            path = f"{base}&town={rng.choice(world.towns)}&open=true&limit=100"
        elif r < 0.6:
            path = f"{base}&village={rng.choice(world.villages)}&limit=50"
        elif r < 0.85:
            path = f"{base}&grid={rng.choice(world.grids)}&limit=50"
        else:
            path = f"{base}&limit=100&offset={rng.randrange(0, 2000, 100)}"
        return Request("GET", path, headers=BROWSER)

    return make


@dataclass
class ScreenLog:
    by_level: dict[str, Counter[int | str]] = field(default_factory=dict)


async def screen(level: str, area: str | None, world: World, port: int, interval: float,
                 recycle: int, timeout: float, rec: Recorder, limits: Limits,
                 log: ScreenLog, rng: random.Random) -> None:
    """One command-centre screen: loads the plan's grids once, then polls its area's figures
    with the last ETag."""
    conn = Conn(port, recycle, timeout)
    counts = log.by_level.setdefault(level, Counter())
    await asyncio.sleep(rng.uniform(0, interval))
    if limits.over():
        return
    await send(conn, "get_grids", Request("GET", world.grids_url, headers=BROWSER), rec)
    etag: list[str] = []
    query = f"/screen/data?territory={world.territory_id}" + (f"&area={area}" if area else "")

    def done(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        if rec.measuring:
            counts[status] += 1
        if status == 200:
            etag[:] = [headers.get(b"etag", b"").decode()]

    slot = time.monotonic()
    while True:
        slot += interval
        wait = slot - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if limits.over():
            break
        slot = max(slot, time.monotonic())
        headers = {**BROWSER, "If-None-Match": etag[0]} if etag else BROWSER
        await send(conn, "screen_data", Request("GET", query, headers=headers, done=done), rec)
    await conn.close()


# ------------------------------------------------------------------------------------------------
# Memory from /proc


def _status_kb(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon (private), RssShmem (kB) from /proc/PID/status and Pss (the process's
    share of pages it shares with others) from /proc/PID/smaps_rollup."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssShmem", "Threads"):
            out[name] = int(value.split()[0])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    return out


def _tree(root: int) -> list[int]:
    from service_bench import _children

    children = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _label(pid: int, root: int) -> str:
    if pid == root:
        return "supervisor"
    with contextlib.suppress(OSError):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "resource_tracker" in cmd:
            return "resource_tracker"
        if "spawn_main" in cmd or "multiprocessing" in cmd:
            return "worker"
    return "other"


def sample(server_pid: int, pg_pid: int, t: float) -> dict[str, Any]:
    """RSS (MB) of each server process and of PostgreSQL's processes summed."""
    procs: dict[str, Any] = {}
    for pid in _tree(server_pid):
        with contextlib.suppress(OSError, ValueError):
            kb = _status_kb(pid)
            procs[str(pid)] = {"label": _label(pid, server_pid),
                               "rss_mb": round(kb.get("VmRSS", 0) / 1024, 2),
                               "anon_mb": round(kb.get("RssAnon", 0) / 1024, 2),
                               "threads": kb.get("Threads", 0)}
    pg: dict[str, float] = {"rss_mb": 0.0, "anon_mb": 0.0, "pss_mb": 0.0, "shmem_mb": 0.0,
                            "processes": 0}
    for pid in _tree(pg_pid):
        with contextlib.suppress(OSError, ValueError):
            kb = _status_kb(pid)
            pg["rss_mb"] += kb.get("VmRSS", 0) / 1024
            pg["anon_mb"] += kb.get("RssAnon", 0) / 1024
            pg["pss_mb"] += kb.get("Pss", 0) / 1024
            pg["shmem_mb"] += kb.get("RssShmem", 0) / 1024
            pg["processes"] += 1
    pg = {k: v if k == "processes" else round(v, 2) for k, v in pg.items()}
    return {"t_s": round(t, 1), "load1": load1(), "server": procs, "postgres": pg}


async def sampler(server_pid: int, pg_pid: int, every: float, rec: Recorder, limits: Limits,
                  out: list[dict[str, Any]]) -> None:
    while not rec.measuring:
        await asyncio.sleep(0.05)
    while True:
        taken = time.monotonic()
        out.append(sample(server_pid, pg_pid, taken - rec.t0))
        if limits.over():
            break
        while time.monotonic() < taken + every and not limits.over():
            await asyncio.sleep(0.1)


def trend(ts: list[float], mbs: list[float], threshold: float, min_points: int = 4,
          min_span_s: float = 60.0) -> dict[str, Any]:
    """Start, end, peak and the least-squares slope (MB/min) over the second half; judged
    flat or not only when the second half holds ``min_points`` samples over ``min_span_s``."""
    out: dict[str, Any] = {"start_mb": mbs[0], "end_mb": mbs[-1], "peak_mb": max(mbs),
                           "samples": len(mbs)}
    half = ts[-1] / 2
    xs = [t for t in ts if t >= half]
    ys = [m for t, m in zip(ts, mbs, strict=True) if t >= half]
    if len(xs) >= 2 and xs[-1] > xs[0]:
        slope = float(np.polyfit(np.array(xs) / 60, np.array(ys), 1)[0])
        out["slope_mb_per_min_second_half"] = round(slope, 3)
        judged = len(xs) >= min_points and xs[-1] - xs[0] >= min_span_s
        out["flat"] = slope < threshold if judged else None
    else:
        out["slope_mb_per_min_second_half"] = None
        out["flat"] = None
    if out["flat"] is None:
        out["why_not_judged"] = (f"the second half holds fewer than {min_points} samples or "
                                 f"spans under {min_span_s:g} s: too short a run to judge")
    return out


def memory_report(samples: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    ts = [s["t_s"] for s in samples]
    out: dict[str, Any] = {"threshold_mb_per_min": threshold, "server": {}, "postgres": {}}
    pids = {pid: info["label"] for s in samples for pid, info in s["server"].items()}
    for pid, label in sorted(pids.items(), key=lambda p: (p[1], p[0])):
        seen = [(s["t_s"], s["server"][pid]["rss_mb"]) for s in samples if pid in s["server"]]
        entry = trend([t for t, _ in seen], [m for _, m in seen], threshold)
        threads = [s["server"][pid]["threads"] for s in samples if pid in s["server"]]
        entry["threads"] = {"start": threads[0], "end": threads[-1], "max": max(threads)}
        if len(seen) < len(samples):
            entry["note"] = f"present in {len(seen)} of {len(samples)} samples (restarted?)"
        out["server"][f"{label} {pid}"] = entry
    for key in ("rss_mb", "pss_mb", "anon_mb"):
        out["postgres"][key.removesuffix("_mb")] = trend(
            ts, [s["postgres"][key] for s in samples], threshold)
    procs = [s["postgres"]["processes"] for s in samples]
    out["postgres"]["processes"] = {"start": procs[0], "end": procs[-1], "max": max(procs)}
    out["postgres"]["note"] = (
        "sums over the postmaster and all its children. rss counts the shared buffers "
        "(shared_buffers) once per backend that touched them; pss splits shared pages among "
        "the processes sharing them (the real footprint; it grows while shared_buffers "
        "fills, bounded by its size); anon is private memory only (work_mem, caches per "
        "backend): a leak in PostgreSQL shows there. all_flat judges PostgreSQL by anon, "
        "the server processes by rss.")
    judged = [e["flat"] for e in out["server"].values()] + [out["postgres"]["anon"]["flat"]]
    out["all_flat"] = None if None in judged else all(judged)
    return out


# ------------------------------------------------------------------------------------------------
# Figures


def kind_report(rows: list[tuple[float, float, int | str]], seconds: float,
                target: float | None) -> dict[str, Any]:
    statuses = Counter(str(s) for _, _, s in rows)
    errors = {s: n for s, n in statuses.items()
              if not s.isdigit() or int(s) >= 500}
    unexpected = {s: n for s, n in statuses.items() if s.isdigit() and 400 <= int(s) < 500}
    ms = np.array([lat for _, lat, _ in rows]) * 1000
    out: dict[str, Any] = {
        "target_per_s": target, "requests": len(rows),
        "requests_per_s": round(len(rows) / seconds, 2) if seconds else 0.0,
        "statuses": dict(sorted(statuses.items())),
        "errors": errors, "errors_total": sum(errors.values()),
        "unexpected_4xx": unexpected}
    if len(ms):
        out["latency_ms"] = {q: round(float(np.percentile(ms, p)), 2) for q, p in
                             (("p50", 50), ("p90", 90), ("p99", 99))}
        out["latency_ms"].update(max=round(float(ms.max()), 2), mean=round(float(ms.mean()), 2))
    return out


def timeline(rows: list[tuple[float, float, int | str]], bucket: float) -> list[dict[str, Any]]:
    by: dict[int, list[tuple[float, int | str]]] = {}
    for t, lat, status in rows:
        by.setdefault(int(t // bucket), []).append((lat * 1000, status))
    out = []
    for b in sorted(by):
        ms = np.array([m for m, _ in by[b]])
        errs = sum(1 for _, s in by[b] if not isinstance(s, int) or s >= 500)
        out.append({"from_s": round(b * bucket), "requests": len(ms),
                    "p50_ms": round(float(np.percentile(ms, 50)), 1),
                    "p99_ms": round(float(np.percentile(ms, 99)), 1), "errors": errs})
    return out


def uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True)
    return out.stdout.strip()


# ------------------------------------------------------------------------------------------------
# The run


def make_world(url: str, setup: dict[str, Any], grids_path: Path, seed: int) -> World:
    import psycopg

    from gis.obfuscation import gcj02_from_wgs84
    from gis.settings import Settings
    from maps.screen import grids_url

    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = setup["bbox_wgs84"]
    n = 20_000
    box = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
    inside = box[in_grids(box[:, 0], box[:, 1], grids_path)][:n]
    box = box[:n]
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    tid, plan_id = setup["territory_id"], setup["plan_id"]
    with psycopg.connect(conninfo) as conn:
        areas = conn.execute("SELECT level::text, code FROM admin_areas WHERE territory_id = "
                             "%s ORDER BY code", (tid,)).fetchall()
        grid_codes = [r[0] for r in conn.execute(
            "SELECT code FROM grids WHERE plan_id = %s ORDER BY code", (plan_id,))]
    level = {lv: [c for lv_, c in areas if lv_ == lv] for lv in ("district", "town", "village")}
    return World(plan_id=plan_id, territory_id=tid, inside=inside,
                 inside_gcj=np.column_stack(gcj02_from_wgs84(inside[:, 0], inside[:, 1])),
                 box=box, box_gcj=np.column_stack(gcj02_from_wgs84(box[:, 0], box[:, 1])),
                 bounds=(minx, miny, maxx, maxy), token="",
                 districts=level["district"], towns=level["town"], villages=level["village"],
                 grids=grid_codes, grids_url=grids_url(plan_id, Settings().basemap_crs))


async def fetch_token(port: int, world: World) -> None:
    """The plan's generation token, from its TileJSON (as a map client gets it)."""
    conn = Conn(port, 10, 60)
    status, _, body = await conn.request("GET", f"/tiles/{world.plan_id}.json",
                                         with_body=True)
    await conn.close()
    if status != 200:
        raise RuntimeError(f"TileJSON answered {status}")
    template = json.loads(body)["tiles"][0]
    world.token = template.split("?v=")[1]


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


def events_check(url: str, prefix: str, ledger: Ledger, before: int) -> dict[str, Any]:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT idempotency_key, id FROM events WHERE idempotency_key "
                            "LIKE %s", ("%:" + prefix + "-%",)).fetchall()
    # Keys are stored scoped to the account (``<account id>:<key>``, events.store).
    stored = {str(client_key(k)): int(i) for k, i in rows}
    total = count_rows(url)[0]
    lost = [k for k in ledger.answered if k not in stored]
    other_id = [k for k, i in ledger.answered.items() if k in stored and stored[k] != i]
    extra = [k for k in stored if k not in ledger.answered]
    extra_unsure = [k for k in extra if k in ledger.unsure]
    return {
        "keys_answered_2xx": len(ledger.answered), "answered_201": ledger.created,
        "new_key_answered_200": ledger.first_answered_200,
        "events_stored_with_our_keys": len(stored),
        "events_table_grew_by": total - before,
        "lost": len(lost), "lost_examples": lost[:5],
        "answered_with_another_id": len(other_id),
        "stored_without_a_2xx": len(extra),
        "of_which_the_request_failed_client_side": len(extra_unsure),
        "retries_sent": ledger.retries, "retries_200_same_event": ledger.retries_200_same,
        "retries_made_a_new_event": ledger.retries_new_event,
        "inside_points_routed_outside": ledger.routed_outside,
        "consistent": (not lost and not other_id and ledger.retries_new_event == 0
                       and len(extra) == len(extra_unsure)
                       and total - before == len(stored)),
    }


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
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work), "
                   f"Python {platform.python_version()}, {platform.platform()}",
        "uptime_at_start": uptime(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "client": "the asyncio client in this file (keep-alive HTTP/1.1, closed loop at a "
                  "target rate per kind), on the same 2 cores as the server and PostgreSQL",
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
                warm_up(base, paths, args.workers, auth_headers(), fast_s=0.25, give_up_s=60)
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


def report(args: argparse.Namespace, run: dict[str, Any], load_start: float, load_end: float,
           alive: bool) -> dict[str, Any]:
    rec: Recorder = run["rec"]
    seconds = run["seconds"]
    kinds = {k: kind_report(rec.rows[k], seconds, run["targets"].get(k)) for k in KINDS}
    total = sum(len(r) for r in rec.rows.values())
    tiles: TileLog = run["tiles"]
    sizes = list(tiles.sizes.values())
    screens: ScreenLog = run["screens"]
    memory = memory_report(run["samples"], args.flat_mb_per_min)
    errors = sum(k["errors_total"] for k in kinds.values())
    unexpected = sum(sum(k["unexpected_4xx"].values()) for k in kinds.values())
    return {
        "run": {"seconds": round(seconds, 1), "requests": total,
                "requests_per_s": round(total / seconds, 1),
                "stopped_by": "max_requests" if rec.sent >= args.max_requests else "time",
                "load_average_1min": [load_start, load_end],
                "server_alive_at_end": alive, **run["cpu"],
                "warmup": {k: dict(Counter({str(s): n for s, n in c.items()}))
                           for k, c in rec.warmup.items() if c}},
        "kinds": kinds,
        "slowest": {k: [{"ms": ms, "at_s": at, "status": st, "path": path}
                        for ms, at, st, path in rec.slowest[k]] for k in KINDS},
        "tiles": {"answers_by_server_cache": dict(tiles.cache),
                  "hit_share": round(tiles.cache["hit"] / max(1, sum(tiles.cache.values())), 3),
                  "distinct_tiles": len(sizes), "distinct_bytes_mb": round(sum(sizes) / MB, 2),
                  "empty_tiles": sum(1 for s in sizes if s == 0),
                  "revalidations_sent": tiles.revalidations,
                  "note": "the server keeps up to GRIDMAP_TILE_CACHE_MB (64) of tiles per "
                          "worker; distinct_bytes_mb is how much of it this run could fill"},
        "screens": {"answers_by_level": {lv: dict(Counter({str(s): n for s, n in c.items()}))
                                         for lv, c in screens.by_level.items()}},
        "memory": {**memory, "samples": run["samples"]},
        "timeline": {k: timeline(rec.rows[k], args.bucket) for k in KINDS},
        "verdict": {"errors": errors, "unexpected_4xx": unexpected,
                    "every_kind_answered": all(
                        any(isinstance(s, int) and s < 400 for _, _, s in rec.rows[k])
                        for k in KINDS),
                    "memory_flat": memory["all_flat"],
                    "events_consistent": None},
    }


if __name__ == "__main__":
    results = main()
    out_path = Path(results["config"]["out"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
    summary = {k: {"per_s": v["requests_per_s"], "p50": v.get("latency_ms", {}).get("p50"),
                   "p99": v.get("latency_ms", {}).get("p99"), "errors": v["errors_total"]}
               for k, v in results["kinds"].items()}
    print(json.dumps({"kinds": summary, "verdict": results["verdict"],
                      "events": results["events"], "out": str(out_path)},
                     ensure_ascii=False, indent=2))
