"""Pages under test: a real uvicorn server in a thread and a real headless Chromium.

Chromium is Debian's (``scripts/setup.sh --postgis`` installs it; ``GRIDMAP_CHROMIUM`` names
another binary), driven by Playwright with ``executable_path`` because Playwright's own
browser download is not used. Every page opened through :func:`open_page` records console
errors and uncaught exceptions; :func:`screenshot` saves a PNG under ``tests/artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from signin import account_key
from waiting import wait_until_up

ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass
class LiveServer:
    """A uvicorn server in a background thread, and the requests it received."""

    url: str
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)

    def paths(self, pattern: str) -> list[str]:
        """Request paths matching the regular expression ``pattern``."""
        return [p for p, _ in self.requests if re.search(pattern, p)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any, sign_in: bool = True) -> Iterator[LiveServer]:
    """Serve ``app`` on a free local port until the block ends. With ``sign_in``, a request
    that brings no credentials of its own (bearer token, API key or sign-in cookie) is made
    as the test administrator: the pages and clients of most tests need no sign-in step,
    while the service still checks every credential."""
    port = free_port()
    running = LiveServer(f"http://127.0.0.1:{port}")
    key = account_key(app.state.engine).encode() if sign_in else b""

    async def logged(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            running.requests.append((scope["path"],
                                     parse_qs(scope["query_string"].decode())))
            headers = dict(scope["headers"])
            if key and not (b"authorization" in headers or b"x-api-key" in headers
                            or b"gridmap_token=" in headers.get(b"cookie", b"")):
                scope = {**scope, "headers": [*scope["headers"], (b"x-api-key", key)]}
        await app(scope, receive, send)

    uv = uvicorn.Server(uvicorn.Config(logged, host="127.0.0.1", port=port,
                                       log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    assert wait_until_up(f"{running.url}/healthz", 30, 0.05, thread.is_alive) == "up", \
        "uvicorn did not start"
    try:
        yield running
    finally:
        uv.should_exit = True
        thread.join(timeout=15)


def chromium_path() -> str:
    path = os.environ.get("GRIDMAP_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    assert path, "Chromium not found: run scripts/setup.sh --postgis or set GRIDMAP_CHROMIUM"
    return path


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions a page produced."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.console or self.exceptions)


def open_page(browser: Any, url: str, *, viewport: tuple[int, int] = (1600, 900),
              wait_until: str = "networkidle", requests: list[str] | None = None
              ) -> tuple[Any, PageErrors]:
    """A new page at ``url`` and the errors it reports (keep checking after interactions);
    the URL of every request it makes, from the first, is added to ``requests``."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors = PageErrors()
    page.on("console", lambda m: errors.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.exceptions.append(str(e)))
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url))
    page.goto(url, wait_until=wait_until)
    return page, errors


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG as ``tests/artifacts/<name>.png`` (kept after the run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


def wait_for(page: Any, expression: str, timeout: float = 30_000, polling: float = 50) -> Any:
    """Wait until the JavaScript ``expression`` is truthy in ``page`` and return its value.

    Playwright's ``wait_for_function`` evaluates its predicate with ``eval`` inside the page,
    which the pages' Content-Security-Policy (no ``unsafe-eval``) refuses; this asks through
    ``page.evaluate`` (the DevTools protocol, not subject to the page's CSP) instead."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(f"() => ({expression})")
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} still false after {timeout / 1000:g} s")
        time.sleep(polling / 1000)
