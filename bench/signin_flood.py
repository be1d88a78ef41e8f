"""Benchmark: a flood of wrong sign-ins against a real server — memory, /healthz, answers.

Run: PYTHONPATH=. .venv/bin/python bench/signin_flood.py [--parallel 40] [--rounds 3]
     [--workers 1] [--out PATH]

The review's probe (issue 15, item 6): 40 parallel wrong sign-ins took the server from
348 MB to 1.76 GB and /healthz to 4 s. Here ``gridmap serve`` (uvicorn, ``--workers``) runs
over a fresh SpatiaLite file in a subprocess; one account exists. Each round sends
``--parallel`` wrong sign-ins at once, first all for that account, then each for another
name (guesses from one address), while /healthz is polled. Measured: the server processes'
resident memory (VmRSS summed over the workers, before and the most seen), /healthz
latency (max, p50) during the floods, answers by status, the time each flood took. Run it
with PYTHONPATH pointing at another checkout for an A/B in one window.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from browser import free_port
from waiting import wait_until_up


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the uvicorn workers), MB."""
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        pids += [int(p) for p in out.stdout.split()]
    except OSError:
        pass
    total = 0.0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/signin_flood.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-flood-"))
    env = {**os.environ, "GRIDMAP_DATABASE_URL": f"sqlite:///{tmp / 'flood.sqlite'}",
           "GRIDMAP_ESCALATION_INTERVAL_S": "0"}
    gridmap = [sys.executable, "-c", "from api.cli import app; app()"]
    subprocess.run([*gridmap, "user", "add", "victim", "--role", "viewer", "--area", "*",
                    "--password-stdin"], input="right password 123\n", text=True, env=env,
                   check=True, capture_output=True, cwd=tmp)
    port = free_port()
    server = subprocess.Popen([*gridmap, "serve", "--port", str(port), "--workers",
                               str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(f"{base}/healthz", 60, 0.1) == "up", "the server did not start"
        time.sleep(1)
        before = _rss_mb(server.pid)
        peak = before
        health: list[float] = []
        statuses: dict[str, int] = {}
        floods: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            nonlocal peak
            with httpx.Client(base_url=base, timeout=30) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    client.get("/healthz")
                    health.append(time.perf_counter() - started)
                    peak = max(peak, _rss_mb(server.pid))
                    time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()

        def sign_in(name: str) -> int:
            with httpx.Client(base_url=base, timeout=60) as client:
                return client.post("/token", data={"username": name,
                                                   "password": "wrong password!"}).status_code

        with ThreadPoolExecutor(args.parallel) as pool:
            for r in range(args.rounds):
                for kind in ("one account", "many names"):
                    names = (["victim"] * args.parallel if kind == "one account"
                             else [f"guess{r}-{i}" for i in range(args.parallel)])
                    started = time.perf_counter()
                    for code in pool.map(sign_in, names):
                        statuses[str(code)] = statuses.get(str(code), 0) + 1
                    floods.append(time.perf_counter() - started)
        stop.set()
        watcher.join()
        right = httpx.post(f"{base}/token", data={"username": "victim",
                                                  "password": "right password 123"}).status_code
        result = {
            "parallel": args.parallel, "rounds": args.rounds, "workers": args.workers,
            "code": os.environ.get("PYTHONPATH", "."),
            "rss_mb_before": round(before, 1), "rss_mb_peak": round(peak, 1),
            "healthz_s_max": round(max(health), 3),
            "healthz_s_p50": round(statistics.median(health), 4),
            "answers": statuses, "flood_s": [round(f, 2) for f in floods],
            "right_password_after": right,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
