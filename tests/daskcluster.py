"""A real Dask cluster for tests and benchmarks: `dask scheduler` and `dask worker` processes
(the `distributed` package's own commands), started as an operator starts them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaskCluster:
    """A scheduler on a free port and ``workers`` worker processes of one thread each,
    without nannies (a killed worker stays dead, as a lost machine does); the workers import
    this checkout (PYTHONPATH). :meth:`kill_worker` kills one with SIGKILL."""

    def __init__(self, workers: int = 2, memory_limit: str = "2GB") -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.n_workers = workers
        self.memory_limit = memory_limit
        self.log_dir = Path(tempfile.mkdtemp(prefix="gridmap-dask-"))
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        cmd = [sys.executable, "-m", "dask", *args]   # the `dask` command of this venv
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                cwd=ROOT, start_new_session=True)

    def start(self, timeout: float = 60) -> DaskCluster:
        self.scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1",
                                     "--port", str(self.port), "--dashboard-address", ":0",
                                     "--no-show")
        for _ in range(self.n_workers):
            self.add_worker()
        self.wait_for_workers(self.n_workers, timeout)
        return self

    def add_worker(self) -> subprocess.Popen[bytes]:
        proc = self._spawn(f"worker-{len(self.workers)}", "worker", self.address,
                           "--nthreads", "1", "--no-nanny",
                           "--memory-limit", self.memory_limit, "--host", "127.0.0.1",
                           "--dashboard-address", ":0")
        self.workers.append(proc)
        return proc

    def alive_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout="5s", set_as_default=False) as client:
                    client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Dask cluster did not start: see {self.log_dir}"
                                       ) from exc
                time.sleep(0.5)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.alive_workers()]

    def kill_worker(self, pid: int | None = None) -> int:
        """SIGKILL one worker process (the first alive one, or ``pid``); its pid."""
        proc = next(w for w in self.alive_workers() if pid is None or w.pid == pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return proc.pid

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers, self.scheduler]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
