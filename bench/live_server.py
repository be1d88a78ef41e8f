"""The service in a subprocess for a benchmark: started on a free port, waited for, stopped;
the bench's administrator and API key; every worker's router warmed up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from waiting import wait_until_up

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

#: The bench's credentials (an administrator's API key), sent with every request.
AUTH: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(cmd: list[str], env: dict[str, str], port: int, log: Path
            ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run a server command (logging to ``log``) until it answers /readyz on ``port``;
    stop it when the block ends."""
    with open(log, "ab") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}"
    try:
        state = wait_until_up(f"{base}/readyz", 120, 0.3, lambda: proc.poll() is None,
                              timeout_s=2)
        if state == "stopped":
            raise RuntimeError(f"the server stopped: see {log}")
        if state == "late":
            raise RuntimeError(f"the server did not become ready: see {log}")
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
    cmd = [sys.executable, "-m", "api.script", "serve", "--host", HOST, "--port", str(port),
           "--workers", str(workers), "--no-access-log"]
    with serving(cmd, env, port, log) as running:
        yield running


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
