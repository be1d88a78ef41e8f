"""Events that still need a location (``needs_location``): stored without a point, placed later."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, false, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from gis.codes import starts_with
from gis.errors import Conflict, NotFound
from gis.models.base import iso
from gis.models.events import UnlocatedEvent
from gis.paging import Page, Paged, read_page

TABLE: Any = UnlocatedEvent.__table__
STATUS = "needs_location"


def _as_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = iso(value)
    out["status"] = "placed" if out.get("event_id") else STATUS
    out["area_code"] = (out.get("geocode") or {}).get("area_code")
    return out


def create_unlocated(engine: Engine, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Store one; with an idempotency key already used, the one stored under it (False)."""
    try:
        with engine.begin() as conn:
            row = conn.execute(insert(TABLE).values(**fields).returning(*TABLE.c)).one()
        return _as_dict(row), True
    except IntegrityError:
        key = fields.get("idempotency_key")
        if key:
            with engine.connect() as conn:
                found = conn.execute(select(TABLE).where(TABLE.c.idempotency_key == key)).first()
            if found is not None:
                return _as_dict(found), False
        raise


def create_unlocated_many(engine: Engine, rows: list[dict[str, Any]]) -> list[int]:
    """Store many (an import's rows too vague to route) in one transaction; their ids."""
    if not rows:
        return []
    with engine.begin() as conn:
        return [int(conn.execute(insert(TABLE).values(**r).returning(TABLE.c.id)).scalar_one())
                for r in rows]


def forget_unlocated(engine: Engine, ids: list[int]) -> None:
    """Remove rows stored by an import that then failed."""
    if ids:
        with engine.begin() as conn:
            conn.execute(delete(TABLE).where(TABLE.c.id.in_(ids)))


def get_unlocated(engine: Engine, unlocated_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(TABLE).where(TABLE.c.id == unlocated_id)).first()
    if row is None:
        raise NotFound(f"no event {unlocated_id} waiting for a location")
    return _as_dict(row)


def list_unlocated(engine: Engine, territory_id: int | None = None, *,
                   include_placed: bool = False, limit: int = 500) -> list[dict[str, Any]]:
    """Those still waiting (oldest first)."""
    return unlocated_page(engine, Page(limit), territory_id,
                          include_placed=include_placed).items


def unlocated_page(engine: Engine, page: Page | None, territory_id: int | None = None, *,
                   include_placed: bool = False, areas: tuple[str, ...] | None = None
                   ) -> Paged[dict[str, Any]]:
    """A page of :func:`list_unlocated`; ``areas``: only those whose geocoded area contains
    or lies within one of these codes (None or ``*``: all)."""
    query = select(TABLE).order_by(TABLE.c.id)
    if territory_id is not None:
        query = query.where(TABLE.c.territory_id == territory_id)
    if not include_placed:
        query = query.where(TABLE.c.event_id.is_(None))
    if areas is not None and "*" not in areas:
        area = TABLE.c.geocode["area_code"].as_string()
        # codes are digits (checked where they are stored), so a LIKE of the column is exact
        query = query.where(or_(false(), *[or_(starts_with(area, a), literal(a).like(area + "%"))
                                           for a in areas]))
    with engine.connect() as conn:
        return read_page(conn, query, page).map(_as_dict)


def claim(engine: Engine, unlocated_id: int) -> None:
    """Take it for placing (event_id 0 while the event is made); a second placing, or one
    racing this one, is refused (409)."""
    with engine.begin() as conn:
        done = conn.execute(update(TABLE).where(TABLE.c.id == unlocated_id,
                                                TABLE.c.event_id.is_(None))
                            .values(event_id=0)).rowcount
    if not done:
        raise Conflict(f"event {unlocated_id} has been placed already (or is being placed)")


def placed(engine: Engine, unlocated_id: int, event_id: int | None) -> None:
    """Record the event it became (None: the placing failed, it waits again)."""
    with engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == unlocated_id).values(event_id=event_id))
