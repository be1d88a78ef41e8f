"""The service benchmark's load generators: wrk with Lua scripts, or a closed-loop asyncio
client; the GET /route and POST /events requests they send."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from http_client import read_response
from latency import latency_ms
from live_server import AUTH, HOST

CATEGORIES = ("sanitation", "safety_hazard", "dispute", "municipal")


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
            "latency_ms": latency_ms(ms, (50, 90, 99, 99.9)),
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

