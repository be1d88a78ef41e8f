"""Who runs a stored piece of work (a job, an import): ``host:pid``, and whether that process
is gone, so that what a dead server left behind is recovered."""

from __future__ import annotations

import os
import socket


def this_worker() -> str:
    """``host:pid`` of this process, as a job or import row stores it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_gone(worker: str | None) -> bool:
    """Whether ``worker`` (``host:pid``) was a process of this machine, other than this one,
    that no longer runs (one of another machine is judged by its heartbeat instead)."""
    host, _, pid = (worker or ":").partition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
