"""Events in the store: create (idempotent), read, move through the workflow, count by light."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from geoalchemy2 import WKBElement
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from events.rules import LEVELS, Rules
from events.workflow import DONE, OPEN, apply
from gis.accounts import within_areas
from gis.errors import NotFound
from gis.models.base import SRID, iso, utcnow
from gis.models.events import Event, EventHistory, EventImport
from gis.paging import Page, Paged, read_page
from gis.workers import this_worker, worker_gone

FloatArray = NDArray[np.float64]
EVENT = Event.__table__
HISTORY = EventHistory.__table__
#: What an event reads as (its import tag is bookkeeping of SpatiaLite imports).
_EVENT_COLUMNS = [c for c in EVENT.c if c.name not in ("geom", "import_id")]
IMPORTS = EventImport.__table__
#: SpatiaLite bulk imports: rows per transaction, and the pause between two, in which
#: another writer waiting for the database (SQLite has one writer at a time; a waiting one
#: polls every ≤ 100 ms) takes its turn.
STAGED_CHUNK = 5_000
STAGED_PAUSE_S = 0.1
#: Columns a caller provides when creating an event (besides the geometry).
FIELDS = ("territory_id", "plan_id", "grid_id", "grid_code", "village_code", "town_code",
          "district_code", "distance_m", "other_grid_code", "category", "source",
          "description", "reporter", "reported_at", "idempotency_key", "coord_sys", "x", "y",
          "flags", "address", "geocode_level")


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


@dataclass(frozen=True)
class Created:
    event: dict[str, Any]
    created: bool


def _point(lon: float, lat: float) -> WKBElement:
    wkb = shapely.to_wkb(shapely.set_srid(shapely.Point(lon, lat), SRID),
                         include_srid=True)
    return WKBElement(wkb, srid=SRID, extended=True)


def _row(fields: dict[str, Any], lon: float, lat: float, rules: Rules) -> dict[str, Any]:
    row = {k: fields.get(k) for k in FIELDS}
    reported: datetime = row["reported_at"] or utcnow()
    row["reported_at"] = reported
    row["flags"] = list(row["flags"] or [])
    row.update(status="reported", level="grid", level_since=reported,
               deadline_at=rules.deadline(str(row["category"]), "grid", reported),
               geom=_point(lon, lat))
    return row


def create_event(engine: Engine, fields: dict[str, Any], lon: float, lat: float,
                 rules: Rules) -> Created:
    """Store one routed event (its report is its first history entry: :func:`reported_entry`).

    With an ``idempotency_key`` already used, nothing is written and the event
    stored under that key is returned (``created`` False), also when two retries
    race: the database's unique index decides, the loser reads the winner.
    The stored row comes back from the insert itself (``RETURNING``): no second read.
    """
    key = fields.get("idempotency_key")
    row = _row(fields, lon, lat, rules)
    try:
        if engine.dialect.name == "postgresql":
            out = _insert_one_statement(engine, row)
        else:
            with engine.begin() as conn:
                out = _as_dict(conn.execute(insert(Event).values(**row)
                                            .returning(*_EVENT_COLUMNS)).one())
    except IntegrityError:
        if key:
            existing = _by_key(engine, key)
            if existing is not None:
                return Created(existing, False)
        raise
    out["history"] = [reported_entry(out)]
    return Created(out, True)


def reported_entry(event: dict[str, Any]) -> dict[str, Any]:
    """The first entry of an event's history, its report: who (the reporter, else the
    source), when and how. It is the event's own row, not a row of ``event_history``, which
    holds the transitions after it (one row fewer per event: a bulk import of a million
    events writes a million rows, not two million)."""
    return {"id": None, "event_id": event["id"], "from_status": None, "to_status": "reported",
            "level": "grid", "actor": event["reporter"] or event["source"],
            "at": event["reported_at"], "reason": f"reported via {event['source']}"}


_ROW_COLUMNS = (*FIELDS, "status", "level", "level_since", "deadline_at")
_HISTORY_NAMES = [c.name for c in HISTORY.c]


@functools.cache
def _one_statement_sql() -> str:
    """The SQL of :func:`_insert_one_statement`, written once (building the SQLAlchemy
    construct for each request cost milliseconds of CPU)."""
    returned = ", ".join(c.name for c in _EVENT_COLUMNS)
    return (f"INSERT INTO events ({', '.join(_ROW_COLUMNS)}, geom) VALUES ("
            + ", ".join(f"%({k})s" for k in _ROW_COLUMNS)
            + f", ST_GeomFromEWKB(%(geom)s)) RETURNING {returned}")


def _insert_one_statement(engine: Engine, row: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL: the event in one statement committed on its own: one round trip and one
    durable commit."""
    params = {k: row[k] for k in _ROW_COLUMNS}
    params["flags"] = json.dumps(list(row["flags"]))
    params["geom"] = bytes(row["geom"].data)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = tuple(conn.exec_driver_sql(_one_statement_sql(), params).one())
    return _as_dict_of(dict(zip([c.name for c in _EVENT_COLUMNS], got, strict=True)))


def create_events(engine: Engine, rows: Iterable[tuple[dict[str, Any], float, float]],
                  rules: Rules, batch: int = 20_000) -> int:
    """Store many routed events (bulk import) in one transaction; returns how many. Each
    event's report is its first history entry (:func:`reported_entry`)."""
    n = 0
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for fields, lon, lat in rows:
            chunk.append(_row(fields, lon, lat, rules))
            if len(chunk) >= batch:
                n += _insert_chunk(conn, chunk)
                chunk = []
        if chunk:
            n += _insert_chunk(conn, chunk)
    return n


def create_events_staged(engine: Engine, rows: Iterable[tuple[dict[str, Any], float, float]],
                         rules: Rules, chunk: int = STAGED_CHUNK,
                         pause_s: float = STAGED_PAUSE_S) -> int:
    """Store many events on SpatiaLite without shutting other writers out: the rows of each
    chunk are made first (outside any transaction), then written in a short transaction of
    their own, tagged with the import's id (``event_imports``); between two, other writers
    get the database. If the import fails, its rows are removed again (in short
    transactions too) and it is marked failed; if its process dies, the next start removes
    them (:func:`recover_imports`). While it runs, the rows written so far are visible."""
    now = utcnow()
    with engine.begin() as conn:
        import_id = int(conn.execute(insert(EventImport).values(
            state="running", worker=this_worker(), rows=0, started_at=now, heartbeat_at=now)
            .returning(IMPORTS.c.id)).scalar_one())
    n = 0
    try:
        made = (_row(fields, lon, lat, rules) for fields, lon, lat in rows)
        while True:
            batch = list(itertools.islice(made, chunk))
            if not batch:
                break
            for row in batch:
                row["import_id"] = import_id
            if n:
                time.sleep(pause_s)
            with engine.begin() as conn:
                conn.execute(insert(Event), batch)
                n += len(batch)
                conn.execute(update(EventImport).where(IMPORTS.c.id == import_id)
                             .values(rows=n, heartbeat_at=utcnow()))
        with engine.begin() as conn:
            conn.execute(update(EventImport).where(IMPORTS.c.id == import_id)
                         .values(state="done", heartbeat_at=utcnow()))
    except BaseException:
        discard_import(engine, import_id, chunk)
        raise
    return n


def discard_import(engine: Engine, import_id: int, chunk: int = STAGED_CHUNK) -> int:
    """Remove a failed import's rows (a chunk per transaction) and mark it failed."""
    removed = 0
    while True:
        with engine.begin() as conn:
            ids = [i for (i,) in conn.execute(select(EVENT.c.id).where(
                EVENT.c.import_id == import_id).limit(chunk))]
            if not ids:
                conn.execute(update(EventImport).where(IMPORTS.c.id == import_id)
                             .values(state="failed", heartbeat_at=utcnow()))
                return removed
            conn.execute(delete(EventHistory).where(HISTORY.c.event_id.in_(ids)))
            conn.execute(delete(Event).where(EVENT.c.id.in_(ids)))
            removed += len(ids)


def recover_imports(engine: Engine, stale_after_s: float = 900.0) -> int:
    """Remove the rows of imports whose process is gone (of this host and not running, or
    silent for ``stale_after_s``); returns how many imports."""
    now = utcnow()
    orphans = []
    with engine.connect() as conn:
        for row in conn.execute(select(IMPORTS.c.id, IMPORTS.c.worker, IMPORTS.c.heartbeat_at)
                                .where(IMPORTS.c.state == "running")):
            seen = _aware(row.heartbeat_at) or now
            if worker_gone(row.worker) or (now - seen).total_seconds() > stale_after_s:
                orphans.append(int(row.id))
    for import_id in orphans:
        discard_import(engine, import_id)
    return len(orphans)




def _insert_chunk(conn: Connection, rows: list[dict[str, Any]]) -> int:
    conn.execute(insert(Event), rows)
    return len(rows)


def create_events_columns(engine: Engine, columns: dict[str, Any], lon: ArrayLike,
                          lat: ArrayLike, rules: Rules) -> int:
    """Store many routed events given as columns (bulk import) in one transaction; returns
    how many. The same rows as :func:`create_events`, written faster.

    ``columns`` maps names of :data:`FIELDS` to a sequence (list or array) of one value per
    event, or to a single value shared by all (``flags``, a list per event, is always a
    sequence). ``lon``/``lat`` are the WGS84 points. On PostgreSQL the rows go in with
    ``COPY``; on SpatiaLite with batched inserts.
    """
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    lat_a = np.asarray(lat, dtype=np.float64).ravel()
    n = len(lon_a)
    if n == 0:
        return 0
    cols = {k: columns.get(k) for k in FIELDS}
    for k, v in cols.items():
        if isinstance(v, list | tuple | np.ndarray) and len(v) != n:
            raise ValueError(f"column {k} has {len(v)} values for {n} events")
    if not isinstance(cols["flags"], list | tuple | np.ndarray):
        raise ValueError("flags must hold one list per event")
    if cols["reported_at"] is None:
        cols["reported_at"] = utcnow()
    if engine.dialect.name != "postgresql":
        return create_events_staged(engine, _rows_of(cols, lon_a, lat_a, n), rules)
    with engine.begin() as conn:
        _copy_events(conn, cols, lon_a, lat_a, n, rules)
    return n


def _column(value: Any, n: int) -> list[Any] | itertools.repeat[Any]:
    """Per-event values as a list (numpy scalars made Python ones), or one value repeated."""
    if isinstance(value, np.ndarray):
        return list(value.tolist())
    if isinstance(value, list | tuple):
        return list(value)
    return itertools.repeat(value, n)


def _rows_of(cols: dict[str, Any], lon: FloatArray, lat: FloatArray, n: int
             ) -> Iterator[tuple[dict[str, Any], float, float]]:
    names = list(cols)
    values = [_column(cols[k], n) for k in names]
    for i, row in enumerate(zip(*values, strict=False)):
        yield dict(zip(names, row, strict=True)), float(lon[i]), float(lat[i])


_COPY_CHUNK = 50_000  # rows formatted and sent at a time
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # int; float (repr: exact)


def _text_column(value: Any, n: int) -> list[str] | str:
    """A column in COPY's text format: one text per row, or one text for every row. Each
    distinct value is formatted once (codes repeat, per grid)."""
    if not isinstance(value, list | tuple | np.ndarray):
        return _text(value)
    values = value.tolist() if isinstance(value, np.ndarray) else list(value)
    if values and all(isinstance(v, float) for v in values[:100]):
        return [_text(v) for v in values]  # coordinates: distinct, no need to look them up
    seen: dict[Any, str] = {}
    return [seen[v] if v in seen else seen.setdefault(v, _text(v)) for v in values]


def _copy(cur: Any, table: str, columns: dict[str, list[str] | str], n: int) -> None:
    """COPY n rows into ``table``; per-row columns first, the shared ones appended to each."""
    from psycopg.copy import QueuedLibpqWriter  # PostGIS only: psycopg may be absent

    varying = [k for k, v in columns.items() if isinstance(v, list)]
    shared = [k for k in columns if k not in varying]
    tail = "".join("\t" + str(columns[k]) for k in shared) + "\n"
    # The queued writer sends from a thread of its own: PostgreSQL takes in one chunk while
    # the next is formatted here.
    with cur.copy(f"COPY {table} ({', '.join(varying + shared)}) FROM STDIN",
                  writer=QueuedLibpqWriter(cur)) as copy:
        for start in range(0, n, _COPY_CHUNK):
            parts = [columns[k][start:start + _COPY_CHUNK] for k in varying]
            copy.write("".join(["\t".join(row) + tail for row in zip(*parts, strict=True)])
                       .encode())


def _copy_events(conn: Connection, cols: dict[str, Any], lon: FloatArray, lat: FloatArray,
                 n: int, rules: Rules) -> None:
    """COPY n events on the caller's transaction: the values :func:`_row` gives, row for
    row."""
    raw = conn.connection.driver_connection
    assert raw is not None
    as_json: dict[tuple[str, ...], str] = {}
    flags = [as_json.get(t) or as_json.setdefault(t, json.dumps(list(t)))
             for t in (tuple(f or ()) for f in cols["flags"])]
    categories = [str(c) for c in _column(cols["category"], n)]
    at = cols["reported_at"]
    reported: list[str] | str
    if isinstance(at, list | tuple | np.ndarray):
        moments: list[Any] = [r or utcnow() for r in _column(at, n)]
        deadlines: list[str] | str = [_text(rules.deadline(c, "grid", r)) for c, r in zip(
            categories, moments, strict=True)]
        reported = [_text(r) for r in moments]
    else:  # one moment for all: one deadline per category
        limit = {c: _text(rules.deadline(c, "grid", at)) for c in set(categories)}
        deadlines = [limit[c] for c in categories]
        reported = _text(at)
    points = shapely.set_srid(shapely.points(lon, lat), SRID)
    events: dict[str, list[str] | str] = {}
    for k in FIELDS:
        events[k] = (_text_column(flags, n) if k == "flags" else reported
                     if k == "reported_at" else _text_column(cols[k], n))
    events.update(status="reported", level="grid", level_since=reported,
                  deadline_at=deadlines, geom=np.asarray(shapely.to_wkb(
                      points, hex=True, include_srid=True)).tolist())
    with raw.cursor() as cur:
        _copy(cur, "events", events, n)


def _by_key(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        found = conn.execute(select(EVENT.c.id).where(EVENT.c.idempotency_key == key)).first()
    return None if found is None else get_event(engine, int(found[0]))


def _as_dict(row: Any) -> dict[str, Any]:
    return _as_dict_of(row._mapping)


def _as_dict_of(mapping: Any) -> dict[str, Any]:
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
        out = _as_dict(row)
        if with_history:
            stored = [_as_dict(h) for h in conn.execute(
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
    query = _within(select(*cols).order_by(*sort), areas)
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
        return read_page(conn, query, page, count=False).map(_as_dict)


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


def _within(query: Any, areas: tuple[str, ...] | None) -> Any:
    clause = within_areas(EVENT.c.grid_code, areas)
    return query if clause is None else query.where(clause)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=utcnow().tzinfo)
    return moment


def transition(engine: Engine, event_id: int, action: str, *, actor: str, rules: Rules,
               now: datetime, reason: str | None = None, handler: str | None = None,
               rating: int | None = None, feedback: str | None = None) -> dict[str, Any]:
    """Apply one workflow action (or ``escalate``) and record who, when and why."""
    with engine.begin() as conn:
        query = select(EVENT.c.id, EVENT.c.status, EVENT.c.level, EVENT.c.reporter,
                       EVENT.c.handler, EVENT.c.category).where(EVENT.c.id == event_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no event {event_id}")
        step = apply(action, row.status, row.level, actor=actor, reporter=row.reporter,
                     handler=row.handler, new_handler=handler, reason=reason, rating=rating)
        values: dict[str, Any] = {"status": step.to_status, "level": step.level}
        if step.escalated:
            values.update(level_since=now, handler=None,
                          deadline_at=rules.deadline(row.category, step.level, now))
        if action == "dispatch":
            values["handler"] = handler
        if action == "resolve":
            values["resolved_at"] = now
        if action == "close":
            values.update(closed_at=now, rating=rating, feedback=feedback)
        if action == "reopen":
            values.update(resolved_at=None, closed_at=None, handler=None)
        conn.execute(update(Event).where(Event.id == event_id).values(**values))
        conn.execute(insert(EventHistory).values(
            event_id=event_id, from_status=row.status, to_status=step.to_status,
            level=step.level, actor=actor, at=now,
            reason=reason or (f"{action}: {handler}" if handler else action)))
    return get_event(engine, event_id)


def escalate_overdue(engine: Engine, rules: Rules, now: datetime,
                     territory_id: int | None = None,
                     areas: tuple[str, ...] | None = None) -> list[int]:
    """Escalate, one level, every open event whose time at its level ran out (``areas``:
    only within these codes)."""
    query = _within(select(EVENT.c.id, EVENT.c.level), areas).where(
        EVENT.c.status.in_(sorted(OPEN)), EVENT.c.deadline_at < now,
        EVENT.c.level != LEVELS[-1])
    if territory_id is not None:
        query = query.where(EVENT.c.territory_id == territory_id)
    with engine.connect() as conn:
        due = [(int(i), str(lv)) for i, lv in conn.execute(query)]
    for event_id, level in due:
        transition(engine, event_id, "escalate", actor="system 系统", rules=rules, now=now,
                   reason=f"time limit at level {level} ran out (超时自动上报)")
    return [i for i, _ in due]


def reroute(engine: Engine, event_id: int, routed: dict[str, Any], *, actor: str,
            reason: str, now: datetime) -> dict[str, Any]:
    """Route an event again under a newer plan: an explicit, audited change."""
    with engine.begin() as conn:
        row = conn.execute(select(EVENT.c.status, EVENT.c.level, EVENT.c.grid_code,
                                  EVENT.c.plan_id).where(EVENT.c.id == event_id)).first()
        if row is None:
            raise NotFound(f"no event {event_id}")
        conn.execute(update(Event).where(Event.id == event_id).values(**routed))
        conn.execute(insert(EventHistory).values(
            event_id=event_id, from_status=row.status, to_status=row.status, level=row.level,
            actor=actor, at=now,
            reason=f"re-routed from grid {row.grid_code} (plan {row.plan_id}) to grid "
                   f"{routed.get('grid_code')} (plan {routed.get('plan_id')}): {reason}"))
    return get_event(engine, event_id)


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
    query = _within(select(key.label("key"), EVENT.c.status, EVENT.c.category, EVENT.c.level,
                           EVENT.c.deadline_at, EVENT.c.resolved_at), areas)
    if territory_id is not None:
        query = query.where(EVENT.c.territory_id == territory_id)
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(query):
            group = out.setdefault(str(r.key), {"open": 0, "green": 0, "yellow": 0, "red": 0,
                                                "resolved": 0, "resolved_on_time": 0})
            deadline = _aware(r.deadline_at)
            if r.status in OPEN:
                group["open"] += 1
                light = rules.light(deadline, rules.limit(r.category, r.level), now)
                group[light] += 1
            elif r.status in DONE and r.resolved_at is not None:
                group["resolved"] += 1
                resolved = _aware(r.resolved_at)
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
    return rules.light(_aware(moment), rules.limit(event["category"], event["level"]), now,
                       _aware(finished) if event["status"] in DONE else None)


__all__ = [
    "Created",
    "client_key",
    "count_events",
    "create_event",
    "create_events",
    "create_events_columns",
    "create_events_staged",
    "escalate_overdue",
    "event_light",
    "get_event",
    "light_counts",
    "list_events",
    "recover_imports",
    "reroute",
    "scoped_key",
    "transition",
]
