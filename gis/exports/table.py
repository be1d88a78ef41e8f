"""The grid table of a plan that every export and the OGC API serve (names, towns, grid workers)."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine, select

from gis import divisions
from gis.models.staff import Staff, StaffGrid
from gis.models.territories import AdminArea
from gis.plans import get_plan, read_grids

#: The columns of the grid table, in order (the geometry comes last).
TABLE_FIELDS = ("code", "name", "village_code", "village_name", "town_code", "town_name",
                "kind", "households", "households_estimated", "population", "area_m2",
                "compactness",
                "barrier_share", "radius_m", "boundary_text", "grid_worker", "flags",
                "flag_reason", "barrier_inside_m")


#: Separator between several grid workers of one grid.
WORKER_SEPARATOR = "、"


def _admin_names(engine: Engine, territory_id: int) -> tuple[dict[str, str], dict[str, str]]:
    table = AdminArea.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.code, table.c.name, table.c.parent_code).where(
            table.c.territory_id == territory_id)).all()
    return ({r.code: r.name for r in rows},
            {r.code: r.parent_code for r in rows if r.parent_code})


def grid_workers(engine: Engine, territory_id: int) -> dict[str, str]:
    """Grid code → the names of its grid workers (``、``-separated, by name)."""
    staff, links = Staff.__table__, StaffGrid.__table__
    query = select(links.c.grid_code, staff.c.name).select_from(
        links.join(staff, links.c.staff_id == staff.c.id)).where(
        staff.c.territory_id == territory_id, staff.c.role == "grid_worker").order_by(
        links.c.grid_code, staff.c.name)
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for code, name in conn.execute(query):
            out.setdefault(str(code), []).append(str(name))
    return {code: WORKER_SEPARATOR.join(names) for code, names in out.items()}


def export_table(engine: Engine, plan_id: int, *,
               bbox: tuple[float, float, float, float] | None = None,
               areas: tuple[str, ...] | None = None) -> gpd.GeoDataFrame:
    """A plan's grids (WGS84, by code) with the columns of :data:`TABLE_FIELDS`.

    The village's town is its parent in ``admin_areas`` (the first nine digits of
    the village code when the territory does not say); ``flags`` is comma text,
    empty for a regular grid; ``grid_worker`` is empty when no one is assigned.
    """
    info = get_plan(engine, plan_id)
    grids = read_grids(engine, plan_id, bbox=bbox, areas=areas)
    names, parents = _admin_names(engine, info.territory_id)
    workers = grid_workers(engine, info.territory_id)
    villages = grids["village_code"].astype(str)
    towns = [parents.get(v) or divisions.ancestor(v, "town") or "" for v in villages]
    table = pd.DataFrame({
        "code": grids["code"].astype(str),
        "name": grids["name"],
        "village_code": villages,
        "village_name": [names.get(v, "") for v in villages],
        "town_code": towns,
        "town_name": [names.get(t, "") for t in towns],
        "kind": grids["kind"],
        "households": grids["households"].astype("int64"),
        "households_estimated": grids["households_estimated"].fillna(0).astype("int64"),
        "population": grids["population"].astype("int64"),
        "area_m2": grids["area_m2"].astype("float64"),
        "compactness": grids["compactness"].astype("float64"),
        "barrier_share": grids["barrier_share"].astype("float64"),
        "radius_m": grids["radius_m"].astype("float64"),
        "boundary_text": grids["boundary_text"],
        "grid_worker": [workers.get(c, "") for c in grids["code"]],
        "flags": [",".join(f or []) for f in grids["flags"]],
        "flag_reason": [str(r or "") if f else "" for f, r in zip(
            grids["flags"], grids["flag_reason"], strict=True)],
        "barrier_inside_m": pd.to_numeric(grids["barrier_inside_m"], errors="coerce")
        .astype("float64"),
    })
    return gpd.GeoDataFrame(table, geometry=grids.geometry.to_numpy(), crs=grids.crs)
