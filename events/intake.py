"""Events written to the store as they are reported: one (idempotent, in one statement on
PostGIS), or many in one transaction."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely
from geoalchemy2 import WKBElement
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from events.rules import Rules
from events.store import EVENT, EVENT_COLUMNS, event_dict, event_dict_of, get_event, reported_entry
from gis.models.base import SRID, utcnow
from gis.models.events import Event

#: Columns a caller provides when creating an event (besides the geometry).
FIELDS = ("territory_id", "plan_id", "grid_id", "grid_code", "village_code", "town_code",
          "district_code", "distance_m", "other_grid_code", "category", "source",
          "description", "reporter", "reported_at", "idempotency_key", "coord_sys", "x", "y",
          "flags", "address", "geocode_level")


@dataclass(frozen=True)
class Created:
    event: dict[str, Any]
    created: bool


def _point(lon: float, lat: float) -> WKBElement:
    wkb = shapely.to_wkb(shapely.set_srid(shapely.Point(lon, lat), SRID),
                         include_srid=True)
    return WKBElement(wkb, srid=SRID, extended=True)


def new_row(fields: dict[str, Any], lon: float, lat: float, rules: Rules) -> dict[str, Any]:
    """The row of a newly reported event: reported at the grid level, its deadline set."""
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
    row = new_row(fields, lon, lat, rules)
    try:
        if engine.dialect.name == "postgresql":
            out = _insert_one_statement(engine, row)
        else:
            with engine.begin() as conn:
                out = event_dict(conn.execute(insert(Event).values(**row)
                                            .returning(*EVENT_COLUMNS)).one())
    except IntegrityError:
        if key:
            existing = _by_key(engine, key)
            if existing is not None:
                return Created(existing, False)
        raise
    out["history"] = [reported_entry(out)]
    return Created(out, True)


_ROW_COLUMNS = (*FIELDS, "status", "level", "level_since", "deadline_at")

@functools.cache
def _one_statement_sql() -> str:
    """The SQL of :func:`_insert_one_statement`, written once (building the SQLAlchemy
    construct for each request cost milliseconds of CPU)."""
    returned = ", ".join(c.name for c in EVENT_COLUMNS)
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
    return event_dict_of(dict(zip([c.name for c in EVENT_COLUMNS], got, strict=True)))


def create_events(engine: Engine, rows: Iterable[tuple[dict[str, Any], float, float]],
                  rules: Rules, batch: int = 20_000) -> int:
    """Store many routed events (bulk import) in one transaction; returns how many. Each
    event's report is its first history entry (:func:`reported_entry`)."""
    n = 0
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for fields, lon, lat in rows:
            chunk.append(new_row(fields, lon, lat, rules))
            if len(chunk) >= batch:
                n += _insert_chunk(conn, chunk)
                chunk = []
        if chunk:
            n += _insert_chunk(conn, chunk)
    return n


def _insert_chunk(conn: Connection, rows: list[dict[str, Any]]) -> int:
    conn.execute(insert(Event), rows)
    return len(rows)


def _by_key(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        found = conn.execute(select(EVENT.c.id).where(EVENT.c.idempotency_key == key)).first()
    return None if found is None else get_event(engine, int(found[0]))


__all__ = ["FIELDS", "Created", "create_event", "create_events"]
