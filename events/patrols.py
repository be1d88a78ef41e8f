"""Patrols (日双巡): a grid worker's walks of a grid, their tracks and check-ins, and per grid
and day whether the grid had its two patrols."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gis.accounts import within_areas
from gis.errors import Conflict, NotFound
from gis.models.base import iso, utcnow
from gis.models.staff import Patrol, PatrolPoint
from gis.paging import Page, Paged, read_page
from gis.times import aware

PATROLS = Patrol.__table__
POINTS = PatrolPoint.__table__
#: Patrols a grid needs in a day (日双巡: two).
PER_DAY = 2
#: Points one request may add.
MAX_POINTS = 500


def _dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for k in ("started_at", "ended_at", "at"):
        if k in out:
            out[k] = iso(out[k])
    return out


def start_patrol(engine: Engine, *, territory_id: int, grid_code: str, username: str,
                 walker: str, at: datetime, lon: float, lat: float,
                 accuracy_m: float | None = None, key: str | None = None
                 ) -> tuple[dict[str, Any], bool]:
    """A new patrol of the grid with its first track point; with ``key``, a retry returns
    the patrol made the first time (and False: nothing new stored)."""
    if key is not None:
        found = _by_key(engine, key, username)
        if found is not None:
            return found, False
    try:
        with engine.begin() as conn:
            patrol_id = conn.execute(insert(Patrol).values(
                territory_id=territory_id, grid_code=grid_code, username=username,
                walker=walker, started_at=at, idempotency_key=key)
                .returning(Patrol.id)).scalar_one()
            conn.execute(insert(PatrolPoint).values(
                patrol_id=patrol_id, kind="track", at=at, lon=lon, lat=lat,
                accuracy_m=accuracy_m))
    except IntegrityError:
        found = _by_key(engine, key, username) if key is not None else None
        if found is None:
            raise
        return found, False
    return get_patrol(engine, int(patrol_id)), True


def _by_key(engine: Engine, key: str, username: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(PATROLS.c.id, PATROLS.c.username).where(
            PATROLS.c.idempotency_key == key)).first()
    if row is None:
        return None
    if row.username != username:
        raise Conflict("this idempotency key was used by another account: make a new one")
    return get_patrol(engine, int(row.id))


def _open_patrol(conn: Any, patrol_id: int, username: str) -> Any:
    row = conn.execute(select(PATROLS).where(PATROLS.c.id == patrol_id)).first()
    if row is None:
        raise NotFound(f"no patrol {patrol_id}")
    if row.username != username:
        raise Conflict(f"巡查 {patrol_id} 属于 {row.walker} (patrol {patrol_id} is "
                       f"{row.username}'s): only its walker adds to it or ends it")
    return row


def add_points(engine: Engine, patrol_id: int, username: str,
               points: Iterable[dict[str, Any]]) -> int:
    """Add track points and check-ins to the walker's patrol; points taken before it ended
    are kept (a phone sends what it queued offline), later ones refused. How many stored."""
    rows = list(points)
    with engine.begin() as conn:
        patrol = _open_patrol(conn, patrol_id, username)
        ended = None if patrol.ended_at is None else aware(patrol.ended_at)
        if ended is not None and any(aware(p["at"]) > ended for p in rows):
            raise Conflict(f"巡查已结束 patrol {patrol_id} ended at {ended}: points after its "
                           "end are not added (start a new patrol)")
        if rows:
            conn.execute(insert(PatrolPoint), [{**p, "patrol_id": patrol_id}
                                               for p in rows])
    return len(rows)


def end_patrol(engine: Engine, patrol_id: int, username: str, at: datetime) -> dict[str, Any]:
    """End the walker's patrol (ending it again changes nothing)."""
    with engine.begin() as conn:
        patrol = _open_patrol(conn, patrol_id, username)
        if patrol.ended_at is None:
            conn.execute(update(Patrol).where(PATROLS.c.id == patrol_id)
                         .values(ended_at=at))
    return get_patrol(engine, patrol_id)


def get_patrol(engine: Engine, patrol_id: int, with_points: bool = True) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(PATROLS).where(PATROLS.c.id == patrol_id)).first()
        if row is None:
            raise NotFound(f"no patrol {patrol_id}")
        out = _dict(row)
        out.pop("idempotency_key", None)
        pts = [_dict(p) for p in conn.execute(select(
            POINTS.c.kind, POINTS.c.at, POINTS.c.lon, POINTS.c.lat, POINTS.c.accuracy_m,
            POINTS.c.note).where(POINTS.c.patrol_id == patrol_id)
            .order_by(POINTS.c.at, POINTS.c.id))]
    out["track_points"] = sum(p["kind"] == "track" for p in pts)
    out["checkins"] = sum(p["kind"] == "checkin" for p in pts)
    if with_points:
        out["points"] = pts
    return out


def day_window(day: date, zone: str) -> tuple[datetime, datetime]:
    """The day in ``zone`` as [start, end) in UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return (start.astimezone(utcnow().tzinfo),
            (start + timedelta(days=1)).astimezone(utcnow().tzinfo))


def list_patrols(engine: Engine, *, territory_id: int | None = None,
                 username: str | None = None, grid: str | None = None,
                 window: tuple[datetime, datetime] | None = None,
                 areas: tuple[str, ...] | None = None, limit: int = 200
                 ) -> list[dict[str, Any]]:
    """Patrols, newest first, with their point counts (not the points)."""
    return patrols_page(engine, Page(limit), territory_id=territory_id, username=username,
                        grid=grid, window=window, areas=areas).items


def patrols_page(engine: Engine, page: Page | None, *, territory_id: int | None = None,
                 username: str | None = None, grid: str | None = None,
                 window: tuple[datetime, datetime] | None = None,
                 areas: tuple[str, ...] | None = None) -> Paged[dict[str, Any]]:
    """A page of :func:`list_patrols`."""
    counts = select(POINTS.c.patrol_id,
                    func.sum(case((POINTS.c.kind == "track", 1), else_=0)).label("track_points"),
                    func.sum(case((POINTS.c.kind == "checkin", 1), else_=0)).label("checkins")
                    ).group_by(POINTS.c.patrol_id).subquery()
    query = select(PATROLS.c.id, PATROLS.c.territory_id, PATROLS.c.grid_code,
                   PATROLS.c.username, PATROLS.c.walker, PATROLS.c.started_at,
                   PATROLS.c.ended_at, counts.c.track_points, counts.c.checkins) \
        .join(counts, counts.c.patrol_id == PATROLS.c.id, isouter=True) \
        .order_by(PATROLS.c.started_at.desc(), PATROLS.c.id.desc())
    clause = within_areas(PATROLS.c.grid_code, areas)
    if clause is not None:
        query = query.where(clause)
    for col, value in ((PATROLS.c.territory_id, territory_id), (PATROLS.c.username, username),
                       (PATROLS.c.grid_code, grid)):
        if value is not None:
            query = query.where(col == value)
    if window is not None:
        query = query.where(PATROLS.c.started_at >= window[0],
                            PATROLS.c.started_at < window[1])
    with engine.connect() as conn:
        found = read_page(conn, query, page).map(_dict)
    for p in found.items:
        p["track_points"] = int(p["track_points"] or 0)
        p["checkins"] = int(p["checkins"] or 0)
    return found


def coverage(engine: Engine, grids: dict[str, str | None], window: tuple[datetime, datetime],
             *, territory_id: int) -> list[dict[str, Any]]:
    """For each grid (code -> name): its patrols started in the window, those ended, and
    whether it had its two (日双巡: at least ``PER_DAY`` ended patrols)."""
    query = select(PATROLS.c.grid_code, func.count().label("patrols"),
                   func.count(PATROLS.c.ended_at).label("ended")).where(
        PATROLS.c.territory_id == territory_id, PATROLS.c.started_at >= window[0],
        PATROLS.c.started_at < window[1]).group_by(PATROLS.c.grid_code)
    with engine.connect() as conn:
        seen = {str(r.grid_code): (int(r.patrols), int(r.ended)) for r in conn.execute(query)}
    return [{"code": code, "name": name, "patrols": seen.get(code, (0, 0))[0],
             "ended": seen.get(code, (0, 0))[1],
             "twice": seen.get(code, (0, 0))[1] >= PER_DAY}
            for code, name in sorted(grids.items())]
