"""A throwaway PostgreSQL/PostGIS cluster for tests and benchmarks (as `postgres` under root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if found:
        return Path(found[-1])
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayCluster:
    """initdb + pg_ctl in a temporary directory; removed again by :meth:`stop`.

    By default fsync and full-page writes are off (fast tests; a crash loses the cluster, which
    is thrown away anyway). ``durable=True`` keeps PostgreSQL's defaults (fsync,
    synchronous_commit and full_page_writes on): for benchmarks of durable commits."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="gridmap-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=True)

    def start(self) -> ThrowawayCluster:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-locale")
        self.start_server()
        return self

    def _options(self) -> str:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200")
        if not self.durable:
            opts += " -c fsync=off -c full_page_writes=off"
        return opts

    def start_server(self) -> None:
        """Start PostgreSQL on the cluster's data directory and port; return once it accepts
        connections (after crash recovery, when it was stopped in ``immediate`` mode)."""
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l",
                  str(self.root / "log"), "-w", "-t", "120", "start")

    def stop_server(self, mode: str = "immediate") -> None:
        """Stop PostgreSQL and keep the cluster (data directory and port) for
        :meth:`start_server`. ``immediate`` is a crash as far as clients and the data go:
        every backend is killed, nothing is flushed, the next start replays the WAL; ``fast``
        rolls back open transactions and shuts down cleanly."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def pause_server(self) -> None:
        """Freeze the postmaster (SIGSTOP): the port still takes TCP connections but no new
        session ever answers (a hung host); open sessions keep working. Undo with
        :meth:`resume_server`."""
        os.kill(self._postmaster(), signal.SIGSTOP)

    def resume_server(self) -> None:
        os.kill(self._postmaster(), signal.SIGCONT)

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def restart(self, mode: str = "immediate", down_s: float = 0.0) -> None:
        """Stop (``mode``), stay down ``down_s`` seconds, start again."""
        self.stop_server(mode)
        if down_s > 0:
            time.sleep(down_s)
        self.start_server()

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` in the cluster; its URL."""
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
