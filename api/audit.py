"""The audit log (who read personal data or changed what) and per-account rate limits."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from sqlalchemy import Engine

from api.problems import TooManyRequests
from gis import accounts, models

log = logging.getLogger("gridmap.audit")
#: Reads that show personal data or whole datasets; every other GET is not logged.
AUDITED_READS = re.compile(r"^/(events(/|$)|screen/data|accounts|audit|plans/\d+/export|"
                           r"territories/\d+/staff)")
#: Entries kept in memory while the database is away (the oldest are dropped past this).
BACKLOG = 100_000


class AuditLog:
    """Collects entries and writes them in batches from a thread of its own, at least every
    ``interval`` seconds (a request does not wait for the audit insert). Entries wait in
    memory while the database is away and are written when it is back."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="gridmap-audit")
            self._thread.start()

    def record(self, *, username: str | None, role: str | None, action: str, method: str,
               path: str, status: int, detail: str | None = None) -> None:
        entry = {"at": models.utcnow(), "username": username, "role": role, "action": action,
                 "method": method, "path": path[:400], "status": status, "detail": detail}
        with self._lock:
            self._pending.append(entry)
            if len(self._pending) > BACKLOG:
                del self._pending[: len(self._pending) - BACKLOG]
        if self._thread is None:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            accounts.write_audit(self.engine, batch)
        except Exception as exc:  # the database may be away: keep them for the next round
            log.warning("audit entries kept in memory (%d): %s", len(batch), exc)
            with self._lock:
                self._pending[:0] = batch

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _action(method: str, status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "read" if method in ("GET", "HEAD") else "change"


class AuditRequests:
    """ASGI middleware: log changes, refusals and reads of personal data, by whom. Plain
    ASGI (not Starlette's BaseHTTPMiddleware, which doubled the CPU of a routing lookup):
    it only notes the status the app sends and, once the answer is out, who asked."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def noted(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            self._record(scope, status)

    @staticmethod
    def _record(scope: Any, status: int) -> None:
        method, path = scope["method"], scope["path"]
        if method in ("GET", "HEAD") and status not in (401, 403) and not AUDITED_READS.match(
                path):
            return
        who = (scope.get("state") or {}).get("principal")
        if who is None and status not in (401, 403):
            return  # unauthenticated public routes (sign-in records itself)
        query = scope.get("query_string", b"").decode("latin-1")
        scope["app"].state.audit.record(
            username=who.username if who else None, role=who.role if who else None,
            action=_action(method, status), method=method,
            path=path + (f"?{query}" if query else ""), status=status)


class RateLimit:
    """A token bucket per account: ``per_minute`` on average, bursts of ``burst``."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, username: str, what: str = "requests") -> None:
        """Spend one token of the account, or raise 429 with when to retry."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(username, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens < 1.0:
                wait = max(1, int((1.0 - tokens) / self.rate + 0.999))
                self._buckets[username] = (tokens, now)
                raise TooManyRequests(
                    f"more {what} than the {self.rate * 60:g} per minute allowed to one "
                    f"account (bursts of {self.burst:g}); retry in {wait} s, or ask an "
                    "administrator to raise GRIDMAP_EVENT_RATE_PER_MINUTE", wait)
            self._buckets[username] = (tokens - 1.0, now)
