"""The audit log: who read personal data or changed what."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from sqlalchemy import Engine

from api.asgi import HttpMiddleware
from gis import accounts
from gis.database import is_unavailable
from gis.models.base import utcnow

log = logging.getLogger("gridmap.audit")
#: Reads that show personal data or whole datasets; every other GET is not logged.
AUDITED_READS = re.compile(r"^/(events(/|$)|screen/data|accounts|audit|plans/\d+/export|"
                           r"territories/\d+/staff|open311/v2/requests)")
#: A credential in a query (Open311's ``api_key``): never written to the log.
_KEY_IN_QUERY = re.compile(r"(^|&)(api_key|token|access_token)=[^&]*", re.IGNORECASE)
#: Entries kept in memory while the database is away (the oldest are dropped past this).
BACKLOG = 100_000


#: Column widths of ``audit_log`` (gis.models.accounts.AuditEntry): longer values are cut.
WIDTHS = {"username": 60, "role": 16, "action": 16, "method": 8, "path": 400}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def storable(value: Any, width: int | None = None) -> str | None:
    """Text any store keeps as it is: control characters (NUL, which PostgreSQL refuses in
    text) and undecodable parts (lone surrogates) written as visible escapes, cut to the
    column's width. What a request sent is still readable in the log, and cannot fail the
    insert."""
    if value is None:
        return None
    text = str(value)
    if not text.isprintable():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
    return text if width is None else text[:width]


def _clean(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    for key in ("username", "role", "action", "method", "path", "detail"):
        out[key] = storable(out.get(key), WIDTHS.get(key))
    out["status"] = int(out.get("status") or 0)
    return out


class AuditLog:
    """Collects entries and writes them in batches from a thread of its own, at least every
    ``interval`` seconds (a request does not wait for the audit insert). Entries wait in
    memory while the database is away and are written when it is back.

    No entry can stop the log: every value is made storable first (:func:`storable`); a
    batch the database refuses for another reason than being away is written entry by
    entry, and an entry refused alone is quarantined (written again with every text as
    ASCII escapes, marked in ``detail``) or, failing that, dropped and logged in full.
    :meth:`health` (shown by ``/readyz``) counts both."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.quarantined = 0
        self.dropped = 0
        self.last_problem: str | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="gridmap-audit")
            self._thread.start()

    def record(self, *, username: str | None, role: str | None, action: str, method: str,
               path: str, status: int, detail: str | None = None) -> None:
        entry = _clean({"at": utcnow(), "username": username, "role": role,
                        "action": action, "method": method, "path": path, "status": status,
                        "detail": detail})
        with self._lock:
            self._pending.append(entry)
            if len(self._pending) > BACKLOG:
                over = len(self._pending) - BACKLOG
                del self._pending[:over]
                self.dropped += over
                self.last_problem = f"{over} entries dropped: over {BACKLOG} waiting"
        if self._thread is None:
            self.flush()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def health(self) -> dict[str, Any]:
        """What ``/readyz`` shows: entries waiting, written, quarantined and dropped."""
        with self._lock:
            return {"pending": len(self._pending), "written": self.written,
                    "quarantined": self.quarantined, "dropped": self.dropped,
                    "last_problem": self.last_problem}

    def flush(self) -> None:
        with self._flushing:  # the writer thread and a reader of /audit, one at a time
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                self._write(batch)

    def _keep(self, entries: list[dict[str, Any]], exc: BaseException) -> None:
        log.warning("audit entries kept in memory (%d): %s", len(entries),
                    str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
        with self._lock:
            self._pending[:0] = entries

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            accounts.write_audit(self.engine, batch)
            self.written += len(batch)
            return
        except Exception as exc:
            if is_unavailable(exc):  # the database is away: keep them for the next round
                self._keep(batch, exc)
                return
            log.warning("an audit batch of %d was refused (%s): writing one by one",
                        len(batch), type(exc).__name__)
        for i, entry in enumerate(batch):
            try:
                accounts.write_audit(self.engine, [entry])
                self.written += 1
            except Exception as exc:
                if is_unavailable(exc):
                    self._keep(batch[i:], exc)
                    return
                self._quarantine(entry, exc)

    def _quarantine(self, entry: dict[str, Any], exc: BaseException) -> None:
        problem = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}" \
            if str(exc).strip() else type(exc).__name__
        safe = {k: (ascii(v)[1:-1][:WIDTHS.get(k, 10_000)] if isinstance(v, str) else v)
                for k, v in entry.items()}
        safe["detail"] = storable(f"quarantined (the entry as sent was refused: {problem}); "
                                  f"{safe.get('detail') or ''}")
        try:
            accounts.write_audit(self.engine, [safe])
            self.quarantined += 1
            self.written += 1
            self.last_problem = f"entry quarantined: {problem}"
            log.error("audit entry quarantined (%s): %s", problem, ascii(entry))
        except Exception as again:
            self.dropped += 1
            self.last_problem = f"entry dropped: {type(again).__name__}"
            log.error("audit entry dropped (%s; then %s): %s", problem,
                      type(again).__name__, ascii(entry))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the writer thread die
                log.exception("audit flush failed")

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


class AuditRequests(HttpMiddleware):
    """ASGI middleware: log changes, refusals and reads of personal data, by whom. Plain
    ASGI (not Starlette's BaseHTTPMiddleware, which doubled the CPU of a routing lookup):
    it only notes the status the app sends and, once the answer is out, who asked."""

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
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
        query = _KEY_IN_QUERY.sub(r"\1\2=***",
                                  scope.get("query_string", b"").decode("latin-1"))
        scope["app"].state.audit.record(
            username=who.username if who else None, role=who.role if who else None,
            action=_action(method, status), method=method,
            path=path + (f"?{query}" if query else ""), status=status)
