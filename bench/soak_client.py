"""The soak's client: requests of a kind sent in a closed loop at a target rate over keep-alive
connections, and every answer recorded (kind, when sent, latency, status)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from http_client import Conn

KINDS = ("post_event", "get_route", "get_tile", "get_tilejson", "screen_data", "get_grids",
         "list_events")


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
