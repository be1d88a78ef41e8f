"""Events read from the store: one with its history, pages of them, clocks, counts by state
and by light; the stored form of idempotency keys."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from events.rules import Rules
from events.workflow import DONE, OPEN
from gis.accounts import within_areas
from gis.errors import NotFound
from gis.models.base import iso, utcnow
from gis.models.events import Event, EventHistory
from gis.paging import Page, Paged, read_page

EVENT = Event.__table__
HISTORY = EventHistory.__table__
#: What an event reads as (its import tag is bookkeeping of SpatiaLite imports).
EVENT_COLUMNS = [c for c in EVENT.c if c.name not in ("geom", "import_id")]

#: The stored form of an idempotency key: ``<scope>:<the client's key>``.
_SCOPED = re.compile(r"^\d+:")
_KEY_LENGTH = 100


def scoped_key(scope: int, key: str | None) -> str | None:
    """The stored idempotency key of one account (``scope``: its id): keys are unique per
    account, so one account's key never returns nor blocks another account's event (hotline
    ticket numbers are predictable). A key too long for the column with its scope is stored
    as its SHA-256."""
    if not key:
        return None
    stored = f"{scope}:{key}"
    if len(stored) > _KEY_LENGTH:
        stored = f"{scope}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return stored


def client_key(stored: str | None) -> str | None:
    """The key as the client sent it (the stored form without its scope)."""
    return _SCOPED.sub("", stored, count=1) if stored else stored


def reported_entry(event: dict[str, Any]) -> dict[str, Any]:
    """The first entry of an event's history, its report: who (the reporter, else the
    source), when and how. It is the event's own row, not a row of ``event_history``, which
    holds the transitions after it (one row fewer per event: a bulk import of a million
    events writes a million rows, not two million)."""
    return {"id": None, "event_id": event["id"], "from_status": None, "to_status": "reported",
            "level": "grid", "actor": event["reporter"] or event["source"],
            "at": event["reported_at"], "reason": f"reported via {event['source']}"}


def event_dict(row: Any) -> dict[str, Any]:
    """A stored row as callers read it (see :func:`event_dict_of`)."""
    return event_dict_of(row._mapping)


def event_dict_of(mapping: Any) -> dict[str, Any]:
    """Columns by name as callers read them: no geometry, the key as the client sent it,
    times as ISO text."""
    out = {k: v for k, v in mapping.items() if k != "geom"}
    if out.get("idempotency_key"):
        out["idempotency_key"] = client_key(out["idempotency_key"])
    for k, v in list(out.items()):
        if isinstance(v, datetime):
            out[k] = iso(v)
    return out


def _columns() -> list[Any]:
    """Every column but the geometry, and the stored point's WGS84 lon/lat (for maps)."""
    return [*(c for c in EVENT.c if c.name not in ("geom", "import_id")),
            func.ST_X(EVENT.c.geom).label("lon"), func.ST_Y(EVENT.c.geom).label("lat")]


def get_event(engine: Engine, event_id: int, with_history: bool = True) -> dict[str, Any]:
    cols = _columns()
    with engine.connect() as conn:
        row = conn.execute(select(*cols).where(EVENT.c.id == event_id)).first()
        if row is None:
            raise NotFound(f"no event {event_id}")
        out = event_dict(row)
        if with_history:
            stored = [event_dict(h) for h in conn.execute(
                select(HISTORY).where(HISTORY.c.event_id == event_id)
                .order_by(HISTORY.c.at, HISTORY.c.id))]
            # Events stored before 2026-11-22 have their report as a row of its own.
            reported = [] if stored and stored[0]["from_status"] is None else [
                reported_entry(out)]
            out["history"] = reported + stored
    return out


def event_location(engine: Engine, event_id: int) -> Any:
    """Where an event was reported: its ``x``, ``y`` and ``coord_sys`` as given."""
    with engine.connect() as conn:
        return conn.execute(select(EVENT.c.x, EVENT.c.y, EVENT.c.coord_sys)
                            .where(EVENT.c.id == event_id)).one()


def list_events(engine: Engine, *, territory_id: int | None = None, status: str | None = None,
                grid: str | None = None, village: str | None = None, town: str | None = None,
                open_only: bool = False, limit: int = 100, offset: int = 0,
                areas: tuple[str, ...] | None = None, category: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                order: str = "newest") -> list[dict[str, Any]]:
    """Events newest first (``order="deadline"``: soonest deadline first); ``areas``: only
    those whose grid lies within these codes; ``since``/``until``: reported in [since,
    until)."""
    return events_page(engine, Page(limit, offset), territory_id=territory_id, status=status,
                       grid=grid, village=village, town=town, open_only=open_only,
                       areas=areas, category=category, since=since, until=until,
                       order=order).items


def events_page(engine: Engine, page: Page | None, *, territory_id: int | None = None,
                status: str | None = None, grid: str | None = None,
                village: str | None = None, town: str | None = None,
                open_only: bool = False, areas: tuple[str, ...] | None = None,
                category: str | None = None, since: datetime | None = None,
                until: datetime | None = None, order: str = "newest"
                ) -> Paged[dict[str, Any]]:
    """A page of :func:`list_events` (no total: the events grow without bound)."""
    cols = _columns()
    sort = ((EVENT.c.deadline_at.is_(None), EVENT.c.deadline_at, EVENT.c.id)
            if order == "deadline" else (EVENT.c.id.desc(),))
    query = in_areas(select(*cols).order_by(*sort), areas)
    for col, value in ((EVENT.c.territory_id, territory_id), (EVENT.c.status, status),
                       (EVENT.c.grid_code, grid), (EVENT.c.village_code, village),
                       (EVENT.c.town_code, town), (EVENT.c.category, category)):
        if value is not None:
            query = query.where(col == value)
    if since is not None:
        query = query.where(EVENT.c.reported_at >= since)
    if until is not None:
        query = query.where(EVENT.c.reported_at < until)
    if open_only:
        query = query.where(EVENT.c.status.in_(sorted(OPEN)))
    with engine.connect() as conn:
        return read_page(conn, query, page, count=False).map(event_dict)


def event_clocks(engine: Engine, territory_id: int) -> list[tuple[int, datetime, datetime]]:
    """A territory's events as (id, reported, deadline), oldest report first."""
    with engine.connect() as conn:
        return [(int(i), at, due) for i, at, due in conn.execute(
            select(EVENT.c.id, EVENT.c.reported_at, EVENT.c.deadline_at)
            .where(EVENT.c.territory_id == territory_id)
            .order_by(EVENT.c.reported_at, EVENT.c.id))]


def status_counts(engine: Engine, territory_id: int) -> dict[str, int]:
    """How many of a territory's events are in each state (the states present, by name)."""
    with engine.connect() as conn:
        return {str(s): int(c) for s, c in conn.execute(
            select(EVENT.c.status, func.count()).where(EVENT.c.territory_id == territory_id)
            .group_by(EVENT.c.status).order_by(EVENT.c.status))}


def in_areas(query: Any, areas: tuple[str, ...] | None) -> Any:
    """``query`` limited to events whose grid lies within ``areas`` (None: all)."""
    clause = within_areas(EVENT.c.grid_code, areas)
    return query if clause is None else query.where(clause)


def as_aware(moment: datetime | None) -> datetime | None:
    """A stored time with its zone (SpatiaLite gives them naive, in UTC)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=utcnow().tzinfo)
    return moment


GROUPS = {"grid": EVENT.c.grid_code, "village": EVENT.c.village_code,
          "town": EVENT.c.town_code, "district": EVENT.c.district_code}


def light_counts(engine: Engine, rules: Rules, now: datetime, *, by: str = "grid",
                 territory_id: int | None = None, areas: tuple[str, ...] | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Per grid (or village, town, district): open events by light, and the on-time rate.

    The on-time rate is the share of resolved events resolved by their deadline. ``areas``:
    only events whose grid lies within these codes.
    """
    key = GROUPS[by]
    query = in_areas(select(key.label("key"), EVENT.c.status, EVENT.c.category, EVENT.c.level,
                           EVENT.c.deadline_at, EVENT.c.resolved_at), areas)
    if territory_id is not None:
        query = query.where(EVENT.c.territory_id == territory_id)
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(query):
            group = out.setdefault(str(r.key), {"open": 0, "green": 0, "yellow": 0, "red": 0,
                                                "resolved": 0, "resolved_on_time": 0})
            deadline = as_aware(r.deadline_at)
            if r.status in OPEN:
                group["open"] += 1
                light = rules.light(deadline, rules.limit(r.category, r.level), now)
                group[light] += 1
            elif r.status in DONE and r.resolved_at is not None:
                group["resolved"] += 1
                resolved = as_aware(r.resolved_at)
                group["resolved_on_time"] += int(deadline is None or (
                    resolved is not None and resolved <= deadline))
    for group in out.values():
        group["on_time_rate"] = (round(group["resolved_on_time"] / group["resolved"], 4)
                                 if group["resolved"] else None)
    return out


def count_events(engine: Engine, territory_id: int | None = None) -> int:
    query = select(func.count()).select_from(EVENT)
    if territory_id is not None:
        query = query.where(EVENT.c.territory_id == territory_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def event_light(event: dict[str, Any], rules: Rules, now: datetime) -> str:
    deadline = event.get("deadline_at")
    moment = datetime.fromisoformat(deadline) if isinstance(deadline, str) else deadline
    done = event.get("resolved_at")
    finished = datetime.fromisoformat(done) if isinstance(done, str) else done
    return rules.light(as_aware(moment), rules.limit(event["category"], event["level"]), now,
                       as_aware(finished) if event["status"] in DONE else None)

__all__ = [
    "client_key",
    "count_events",
    "event_light",
    "get_event",
    "light_counts",
    "list_events",
    "scoped_key",
]
