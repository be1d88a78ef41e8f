"""Waiting for a server that a test or a benchmark started: a URL polled until it answers 200."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import httpx


def wait_until_up(url: str, within_s: float, every_s: float,
                  alive: Callable[[], bool] | None = None, timeout_s: float = 1.0) -> str:
    """GET ``url`` every ``every_s`` seconds until it answers 200: ``"up"``; ``"stopped"`` as
    soon as ``alive()`` says the server is gone; ``"late"`` after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        if alive is not None and not alive():
            return "stopped"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=timeout_s).status_code == 200:
                return "up"
        if time.monotonic() > deadline:
            return "late"
        time.sleep(every_s)
