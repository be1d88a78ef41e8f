"""The `gridmap` console script: the command line (api/cli.py), then a quick exit."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading

from api.cli import app


def main() -> None:
    """The ``gridmap`` console script: the command, then a quick exit. When the command is
    done and no thread of it is left running, the exit handlers run (clusters close, logs
    flush) and the process ends without taking the interpreter down object by object:
    after a partition of the 1.4 M district that took ~0.45 s of nothing a user wants."""
    try:
        app()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        sys.exit(code)                    # (the interpreter waits for those, as ever)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    _stop_fork_server()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):   # (a closed pipe)
            stream.flush()
    os._exit(int(code or 0))


def _stop_fork_server() -> None:
    """The fork server the Dask workers came from (partitioning/cluster.py) only waits for
    this process to end, then takes its own interpreter down (~0.3 s, holding the output
    pipe open): with its workers gone (the exit handlers closed the cluster), stop it."""
    server = getattr(sys.modules.get("multiprocessing.forkserver"), "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if isinstance(pid, int) and pid > 0:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":  # pragma: no cover
    main()
