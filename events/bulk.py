"""Bulk writes of events given as columns: COPY on PostGIS; on SpatiaLite short transactions
tagged with their import, removed again when it fails or its process dies."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import Connection, Engine, delete, insert, select, update

from events.intake import FIELDS, new_row
from events.rules import Rules
from events.store import EVENT, HISTORY, as_aware
from gis.models.base import SRID, utcnow
from gis.models.events import Event, EventHistory, EventImport
from gis.workers import this_worker, worker_gone

FloatArray = NDArray[np.float64]
IMPORTS = EventImport.__table__
#: SpatiaLite bulk imports: rows per transaction, and the pause between two, in which
#: another writer waiting for the database (SQLite has one writer at a time; a waiting one
#: polls every ≤ 100 ms) takes its turn.
STAGED_CHUNK = 5_000
STAGED_PAUSE_S = 0.1


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
        made = (new_row(fields, lon, lat, rules) for fields, lon, lat in rows)
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
            seen = as_aware(row.heartbeat_at) or now
            if worker_gone(row.worker) or (now - seen).total_seconds() > stale_after_s:
                orphans.append(int(row.id))
    for import_id in orphans:
        discard_import(engine, import_id)
    return len(orphans)


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
    """COPY n events on the caller's transaction: the values :func:`new_row` gives, row for
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


__all__ = ["create_events_columns", "create_events_staged", "discard_import", "recover_imports"]
