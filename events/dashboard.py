"""The command-centre screen's figures: counts by light for an area and its children, the worst
light per grid, and the open events' points, aggregated in SQL in one pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import Connection, Engine, and_, case, func, literal, null, or_, select
from sqlalchemy.sql.elements import ColumnElement

from events.departments import department_units
from events.rules import Rules
from events.workflow import DONE, OPEN
from gis.codes import starts_with
from gis.errors import NotFound
from gis.geometry import for_basemap
from gis.models.events import Event
from gis.models.plans import Grid, Plan
from gis.models.territories import AdminArea, Territory
from gis.times import offset_text

EVENT = Event.__table__
AREA = AdminArea.__table__
GRID = Grid.__table__
PLAN = Plan.__table__
#: China Standard Time (no daylight saving since 1991): "today" on the screen is the CST day.
CST = timezone(timedelta(hours=8), "CST")
#: At most this many open events are sent as points, the most urgent first.
MAX_POINTS = 5_000
LIGHTS = ("green", "yellow", "red")
#: Counts each area carries.
#: The screen's urgent list shows this many events, each with its department unit.
UNIT_ROWS = 60
COUNTS = ("open", "green", "yellow", "red", "resolved", "resolved_on_time", "today")
#: Whose children an area's children are, and the event column that names them.
CHILD_LEVEL = {"territory": "district", "district": "town", "town": "village",
               "village": "grid", "grid": None}
LEVEL_NAMES = {"territory": "辖区", "district": "区", "town": "镇/街道",
               "village": "村/社区", "grid": "网格"}
_KEY = {"district": EVENT.c.district_code, "town": EVENT.c.town_code,
        "village": EVENT.c.village_code, "grid": EVENT.c.grid_code}


@dataclass(frozen=True)
class Area:
    """One place on the screen's ladder: the whole territory, a district, town, village or
    grid."""

    code: str | None
    name: str
    level: str

    def ref(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "level": self.level}


def first_published_territory(engine: Engine) -> int | None:
    """The territory (smallest id) that has a published plan, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(func.min(PLAN.c.territory_id))
                           .where(PLAN.c.status == "published")).first()
    return None if row is None or row[0] is None else int(row[0])


def _as_utc(moment: datetime) -> datetime:
    """UTC, as the store keeps times (SQLite compares them as text without an offset)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def today_window(now: datetime, zone: str | None = None
                 ) -> tuple[datetime, datetime, str]:
    """Start and end (UTC) of the day holding ``now`` in ``zone`` (an IANA name; CST when
    none), and that day as YYYY-MM-DD."""
    local = _as_utc(now).astimezone(ZoneInfo(zone) if zone else CST)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return _as_utc(start), _as_utc(start + timedelta(days=1)), start.date().isoformat()


def light_rank(rules: Rules, now: datetime) -> ColumnElement[int]:
    """SQL: 0 for a finished event, else 1 green, 2 yellow, 3 red — :meth:`Rules.light`.

    Red: past the deadline. Yellow: ``now >= deadline - limit * share``, i.e. the deadline is
    at most ``now + limit * share``, a moment computed here per category and level, so the
    database only compares times (the same on PostGIS and SpatiaLite).
    """
    now = _as_utc(now)
    stamp = EVENT.c.deadline_at.type
    # CASE category WHEN … THEN CASE level WHEN … : a few equality tests per event.
    yellow_from = case({c: case({lv: literal(now + timedelta(hours=h) * rules.yellow_share,
                                             stamp) for lv, h in row.items()},
                                value=EVENT.c.level, else_=literal(now, stamp))
                        for c, row in rules.limits.items()},
                       value=EVENT.c.category, else_=literal(now, stamp))
    return case(
        (EVENT.c.status.not_in(sorted(OPEN)), 0),
        (EVENT.c.deadline_at.is_(None), 1),
        (EVENT.c.deadline_at < literal(now, stamp), 3),
        (EVENT.c.deadline_at <= yellow_from, 2),
        else_=1)


def _areas(conn: Connection, territory_id: int) -> dict[str, tuple[str, str, str | None]]:
    """code → (name, level, parent code) of the territory's admin areas."""
    return {str(r.code): (str(r.name), str(r.level), r.parent_code) for r in conn.execute(
        select(AREA.c.code, AREA.c.name, AREA.c.level, AREA.c.parent_code)
        .where(AREA.c.territory_id == territory_id))}


def _roots(areas: dict[str, tuple[str, str, str | None]]) -> list[str]:
    return sorted(c for c, (_, _, parent) in areas.items() if not parent or parent not in areas)


def _bbox(conn: Connection, plan_id: int | None, territory_id: int, area: Area,
          children: list[str]) -> list[float] | None:
    """The area's extent (WGS84): its grids' under the published plan, else its outline."""
    names = (("ST_XMin", "ST_YMin", "ST_XMax", "ST_YMax") if conn.dialect.name == "postgresql"
             else ("MbrMinX", "MbrMinY", "MbrMaxX", "MbrMaxY"))

    def extent(table: Any, *where: Any) -> list[float] | None:
        aggregates: list[Any] = [func.min, func.min, func.max, func.max]
        row = conn.execute(select(
            *[agg(getattr(func, n)(table.c.geom)) for agg, n in zip(aggregates, names,
                                                                    strict=True)]
        ).where(*where)).first()
        if row is None or row[0] is None:
            return None
        return [round(float(v), 6) for v in row]

    if plan_id is not None:
        where: list[Any] = [GRID.c.plan_id == plan_id]
        if area.level == "grid":
            where.append(GRID.c.code == area.code)
        elif area.level == "village":
            where.append(GRID.c.village_code == area.code)
        elif area.level == "town":
            where.append(GRID.c.village_code.in_(children or [""]))
        elif area.level == "district" and area.code is not None:
            where.append(starts_with(GRID.c.village_code, area.code))
        found = extent(GRID, *where)
        if found is not None:
            return found
    where = [AREA.c.territory_id == territory_id]
    if area.code is not None and area.level != "grid":
        where.append(AREA.c.code == area.code)
    return extent(AREA, *where)


def _shift_bbox(bbox: list[float] | None, basemap_crs: str) -> list[float] | None:
    if bbox is None or basemap_crs == "wgs84":
        return bbox
    box = gpd.GeoDataFrame(geometry=[shapely.box(bbox[0], bbox[1], bbox[2], bbox[3])], crs=4326)
    return [round(float(v), 6) for v in for_basemap(box, basemap_crs).total_bounds]


def _empty() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def _finish(counts: dict[str, Any]) -> dict[str, Any]:
    """Adds the on-time rate and the worst light of the open events (None when none open)."""
    counts["on_time_rate"] = (round(counts["resolved_on_time"] / counts["resolved"], 4)
                              if counts["resolved"] else None)
    counts["light"] = ("red" if counts["red"] else "yellow" if counts["yellow"]
                       else "green" if counts["open"] else None)
    return counts


def screen_data(engine: Engine, rules: Rules, now: datetime, territory_id: int,
                area: str | None = None, *, max_points: int = MAX_POINTS,
                basemap_crs: str = "wgs84", zone: str = "Asia/Shanghai",
                departments: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything the command-centre screen shows for one area, in one call ("today" is
    the day in ``zone``, GRIDMAP_TIMEZONE).

    ``area`` is a district, town, village/community or grid code (grids of the published
    plan); None is the whole territory. Returns the area and its path from the top, its
    counts (open, by light, resolved, on-time rate, reported today in CST), the same per
    child area (every child, zero when quiet; events under a code that is not a known child
    are listed under that code, so the children always add up to the area), the worst light
    and open count of each grid with open events, and up to ``max_points`` open events as
    points (most urgent first: red, yellow, green, then earliest deadline), shifted into
    ``basemap_crs``; with ``departments`` (category → department, 多网融合), the department
    unit of each of the :data:`UNIT_ROWS` most urgent (``department_units``, by event id).
    Raises NotFound for an unknown territory or area.
    """
    with engine.connect() as conn:
        territory = conn.execute(select(Territory.__table__.c.name).where(
            Territory.__table__.c.id == territory_id)).first()
        if territory is None:
            raise NotFound(f"no territory {territory_id}")
        plan_row = conn.execute(select(PLAN.c.id).where(
            PLAN.c.territory_id == territory_id, PLAN.c.status == "published")).first()
        plan_id = None if plan_row is None else int(plan_row[0])
        areas = _areas(conn, territory_id)
        roots = _roots(areas)
        top = (Area(roots[0], areas[roots[0]][0], areas[roots[0]][1]) if len(roots) == 1
               else Area(None, str(territory.name), "territory"))
        here, grid_village = _resolve(conn, area, top, areas, plan_id, territory_id)
        path = _path(here, top, areas, grid_village)
        children = _children(conn, here, top, areas, plan_id, roots)
        child_level = CHILD_LEVEL[here.level]
        bbox = _bbox(conn, plan_id, territory_id, here,
                     [c.code for c in children if c.code] if here.level == "town" else [])

        where = [EVENT.c.territory_id == territory_id]
        if here.code is not None and here != top:
            where.append(_KEY[here.level] == here.code)
        rank = light_rank(rules, now).label("rank")
        start, end, day = today_window(now, zone)
        resolved = and_(EVENT.c.status.in_(sorted(DONE)), EVENT.c.resolved_at.is_not(None))
        child_key = _KEY[child_level] if child_level else null()
        inner = select(
            child_key.label("child"), EVENT.c.grid_code.label("grid"), rank,
            case((resolved, 1), else_=0).label("resolved"),
            case((and_(resolved, or_(EVENT.c.deadline_at.is_(None),
                                     EVENT.c.resolved_at <= EVENT.c.deadline_at)), 1),
                 else_=0).label("on_time"),
            case((and_(EVENT.c.reported_at >= literal(start, EVENT.c.reported_at.type),
                       EVENT.c.reported_at < literal(end, EVENT.c.reported_at.type)), 1),
                 else_=0).label("today"),
        ).where(*where).offset(0).subquery()   # OFFSET 0: not flattened, so the light is
        r = inner.c.rank                           # computed once per event, not per SUM
        grouped = conn.execute(select(
            inner.c.child, inner.c.grid,
            func.sum(case((r > 0, 1), else_=0)), func.sum(case((r == 1, 1), else_=0)),
            func.sum(case((r == 2, 1), else_=0)), func.sum(case((r == 3, 1), else_=0)),
            func.sum(inner.c.resolved), func.sum(inner.c.on_time), func.sum(inner.c.today),
        ).group_by(inner.c.child, inner.c.grid)).all()

        # The most urgent first: only ids and what orders them go through the sort, the rest
        # is looked up by id for those kept (carrying coordinates through the sort of every
        # open event cost three times as much).
        urgent = (select(EVENT.c.id, rank, EVENT.c.deadline_at)
                  .where(*where, EVENT.c.status.in_(sorted(OPEN)))
                  .order_by(rank.desc(), EVENT.c.deadline_at.is_(None), EVENT.c.deadline_at,
                            EVENT.c.id)
                  .limit(max_points).subquery())
        points = conn.execute(
            select(EVENT.c.id, func.ST_X(EVENT.c.geom), func.ST_Y(EVENT.c.geom),
                   urgent.c.rank, EVENT.c.category, EVENT.c.grid_code)
            .join(urgent, urgent.c.id == EVENT.c.id)
            .order_by(urgent.c.rank.desc(), urgent.c.deadline_at.is_(None),
                      urgent.c.deadline_at, urgent.c.id)).all()

    total = _empty()
    by_child: dict[str | None, dict[str, int]] = {}
    grids: dict[str, dict[str, Any]] = {}
    # In code order, so that the same figures always make the same answer (and ETag): the
    # database returns groups in any order.
    for child, grid, *values in sorted(grouped, key=lambda g: (str(g[0]), str(g[1]))):
        row = dict(zip(COUNTS, (int(v or 0) for v in values), strict=True))
        into = by_child.setdefault(child, _empty())
        for k in COUNTS:
            total[k] += row[k]
            into[k] += row[k]
        if row["open"] and grid is not None:
            g = grids.setdefault(str(grid), {"open": 0, "red": 0, "yellow": 0})
            for k in ("open", "red", "yellow"):
                g[k] += row[k]
    child_rows = []
    if child_level is not None:
        known = {c.code for c in children}
        listed = children + [Area(None if k is None else str(k),
                                  "未定位" if k is None else areas.get(str(k), (str(k),))[0],
                                  child_level)
                             for k in sorted(by_child, key=str) if k not in known]
        for c in listed:
            child_rows.append({**c.ref(), **_finish(dict(by_child.get(c.code, _empty())))})
    lights = ["red" if g["red"] else "yellow" if g["yellow"] else "green"
              for g in grids.values()]
    return {
        "territory": {"id": territory_id, "name": str(territory.name)},
        "plan_id": plan_id,
        "today": day,
        "timezone": f"{zone} ({offset_text(now, zone)})",
        "area": here.ref(),
        "path": [a.ref() for a in path],
        "bbox": _shift_bbox(bbox, basemap_crs),
        "display_crs": basemap_crs,
        "counts": _finish(total),
        "children_level": child_level,
        "children": child_rows,
        "grids": {code: {"open": g["open"], "light": light}
                  for (code, g), light in zip(grids.items(), lights, strict=True)},
        "points": _points(points, total["open"], max_points, basemap_crs),
        "department_units": {} if not departments else {
            str(key): unit for key, unit in department_units(
                engine, territory_id, plan_id,
                [(int(r[0]), r[4], r[5], r[1], r[2]) for r in points[:UNIT_ROWS]],
                departments).items()},
    }


def _resolve(conn: Connection, code: str | None, top: Area,
             areas: dict[str, tuple[str, str, str | None]], plan_id: int | None,
             territory_id: int) -> tuple[Area, str | None]:
    """The area a code names, and for a grid its village."""
    if code is None or code == top.code:
        return top, None
    if code in areas:
        name, level, _ = areas[code]
        return Area(code, name, level), None
    if plan_id is not None:
        row = conn.execute(select(GRID.c.name, GRID.c.village_code).where(
            GRID.c.plan_id == plan_id, GRID.c.code == code)).first()
        if row is not None:
            return Area(code, str(row.name or code), "grid"), str(row.village_code)
    raise NotFound(f"no area {code!r} in territory {territory_id}: give a district, town, "
                   "village/community code, or a grid code of the published plan")


def _path(here: Area, top: Area, areas: dict[str, tuple[str, str, str | None]],
          grid_village: str | None) -> list[Area]:
    """From the top of the territory down to ``here``."""
    out = [here]
    code = grid_village if here.level == "grid" else (
        areas[here.code][2] if here.code in areas else None)
    seen: set[str] = set()
    while code and code in areas and code not in seen and here != top:
        seen.add(code)
        name, level, parent = areas[code]
        out.append(Area(code, name, level))
        if code == top.code:
            break
        code = parent
    if out[-1] != top:
        out.append(top)
    return out[::-1]


def _children(conn: Connection, here: Area, top: Area,
              areas: dict[str, tuple[str, str, str | None]], plan_id: int | None,
              roots: list[str]) -> list[Area]:
    if here.level == "grid":
        return []
    if here.level == "village":
        if plan_id is None:
            return []
        return [Area(str(r.code), str(r.name or r.code), "grid") for r in conn.execute(
            select(GRID.c.code, GRID.c.name).where(GRID.c.plan_id == plan_id,
                                                   GRID.c.village_code == here.code)
            .order_by(GRID.c.code))]
    codes = roots if here.level == "territory" else sorted(
        c for c, (_, _, parent) in areas.items() if parent == here.code)
    return [Area(c, areas[c][0], areas[c][1]) for c in codes]


def _points(rows: Sequence[Any], open_total: int, max_points: int,
            basemap_crs: str) -> dict[str, Any]:
    lon = np.array([float(r[1]) for r in rows], dtype=np.float64)
    lat = np.array([float(r[2]) for r in rows], dtype=np.float64)
    if len(rows) and basemap_crs != "wgs84":
        moved = for_basemap(gpd.GeoDataFrame(geometry=shapely.points(lon, lat), crs=4326),
                            basemap_crs).geometry.to_numpy()
        lon, lat = shapely.get_x(moved), shapely.get_y(moved)
    return {
        "fields": ["id", "lon", "lat", "light", "category", "grid_code"],
        "rows": [[int(r[0]), round(float(x), 6), round(float(y), 6), LIGHTS[int(r[3]) - 1],
                  str(r[4]), r[5]] for r, x, y in zip(rows, lon, lat, strict=True)],
        "total_open": open_total,
        "limit": max_points,
        "truncated": open_total > len(rows),
        "order": "most urgent first: red, then yellow, then green; earliest deadline first",
    }


__all__ = ["CST", "MAX_POINTS", "first_published_territory", "light_rank", "screen_data",
           "today_window"]
