"""What a poster shows: its plan, area, grids, barriers, streets (and a department's units),
read from the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine, func, select

from gis.errors import NotFound
from gis.models.base import SRID
from gis.models.territories import BarrierFeature
from gis.overlays import get_overlay, read_units
from gis.plans import PlanInfo, get_plan, read_grids, read_lines
from gis.store import read_layer, territory_row
from maps.poster.style import (
    DEFAULT_ZONE,
    LEVEL_NAMES,
)

# --- what a poster shows ----------------------------------------------------------------


@dataclass
class PosterData:
    """Everything a poster of one town or village shows, in the territory's metric CRS."""

    plan: PlanInfo
    territory_name: str
    metric_epsg: int
    code: str
    name: str
    #: ``town`` or ``village``.
    level: str
    #: Names of the enclosing areas, outermost first (district, town).
    parents: list[str]
    area: Any
    #: The town's villages/communities (code, name); empty for a village poster.
    villages: gpd.GeoDataFrame
    #: The area's grids, by code (code, name, village_code, kind, households, population,
    #: boundary_text).
    grids: gpd.GeoDataFrame
    #: Roads, water, railways and ridges near the area (layer, class, name).
    barriers: gpd.GeoDataFrame
    made_on: date
    #: The zone the dates are written in (GRIDMAP_TIMEZONE).
    zone: str = "Asia/Shanghai"
    #: The plan's inferred streets near the area (name, width_m), clipped to the map.
    streets: gpd.GeoDataFrame | None = None
    #: A department's overlay drawn on request: its units meeting the map (code, name),
    #: the department and the overlay's id.
    overlay: gpd.GeoDataFrame | None = None
    overlay_department: str | None = None
    overlay_id: int | None = None

    @property
    def title(self) -> str:
        return f"{self.name}网格划分图"


def _read_barriers(engine: Engine, territory_id: int, window: Any) -> gpd.GeoDataFrame:
    """The territory's barrier lines (WGS84) meeting ``window`` (a WGS84 polygon)."""
    table = BarrierFeature.__table__
    envelope = func.ST_GeomFromText(shapely.to_wkt(window), SRID)
    query = select(table.c.layer, table.c["class"].label("class"), table.c.name,
                   func.ST_AsBinary(table.c.geom).label("wkb")).where(
        table.c.territory_id == territory_id,
        func.ST_Intersects(table.c.geom, envelope)).order_by(table.c.id)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=["layer", "class", "name", "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    frame = frame.astype(object).where(frame.notna(), None)
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}")


def load_poster_data(engine: Engine, plan_id: int, area_code: str, *,
                     made_on: date | None = None, zone: str = DEFAULT_ZONE,
                     overlay: str | None = None) -> PosterData:
    """Read what the poster of town or village ``area_code`` under plan ``plan_id`` shows;
    with ``overlay`` (a department), that overlay's units too.

    NotFound when the plan's territory has no such town or village, or the plan has no
    grids in it, or no such overlay.
    """
    plan = get_plan(engine, plan_id)
    territory = territory_row(engine, plan.territory_id)
    admin = read_layer(engine, plan.territory_id, "admin_areas")
    match = admin[(admin["code"] == area_code) & admin["level"].isin(list(LEVEL_NAMES))]
    if match.empty:
        raise NotFound(
            f"方案 {plan_id} 所属区域“{territory.name}”没有代码为 {area_code} 的街道/镇或社区/村 / "
            f"the territory of plan {plan_id} ({territory.name}) has no town or "
            f"village/community with code {area_code}")
    area = match.iloc[0]
    level = str(area["level"])
    if level == "town":
        villages = admin[(admin["level"] == "village") & (admin["parent_code"] == area_code)]
        codes = set(villages["code"])
    else:
        villages = admin.iloc[0:0]
        codes = {area_code}
    prefix = area_code if all(c.startswith(area_code) for c in codes) else None
    grids = read_grids(engine, plan_id, town=prefix)
    grids = grids[grids["village_code"].isin(codes)].sort_values("code")
    if grids.empty:
        raise NotFound(
            f"方案 {plan_id} 在{area['name']}（{area_code}）没有网格 / plan {plan_id} has no "
            f"grids in {area_code}")
    parents: list[str] = []
    names = dict(zip(admin["code"], admin["name"], strict=True))
    up = dict(zip(admin["code"], admin["parent_code"], strict=True))
    parent = up.get(area_code)
    while parent and parent in names and len(parents) < 5:
        parents.insert(0, str(names[parent]))
        parent = up.get(parent)
    epsg = int(territory.metric_epsg)
    outline = shapely.union_all([area.geometry, *grids.geometry])
    x0, y0, x1, y1 = gpd.GeoSeries([outline], crs=4326).to_crs(epsg).total_bounds
    half = max(x1 - x0, y1 - y0) * 0.62
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    window_m = shapely.box(cx - half, cy - half, cx + half, cy + half)
    window = gpd.GeoSeries([window_m], crs=epsg).to_crs(4326).iloc[0]
    barriers = _read_barriers(engine, plan.territory_id, window).to_crs(epsg)
    barriers["geometry"] = shapely.clip_by_rect(barriers.geometry.to_numpy(), *window_m.bounds)
    barriers = barriers[~barriers.geometry.is_empty]
    streets = read_lines(engine, plan_id, kind="inferred_street",
                         bbox=tuple(shapely.bounds(window))).to_crs(epsg)
    streets["geometry"] = shapely.clip_by_rect(streets.geometry.to_numpy(), *window_m.bounds)
    streets = streets[~streets.geometry.is_empty]
    return PosterData(
        plan=plan, territory_name=str(territory.name), metric_epsg=epsg, code=area_code,
        name=str(area["name"]), level=level, parents=parents,
        area=gpd.GeoSeries([area.geometry], crs=4326).to_crs(epsg).iloc[0],
        villages=villages[["code", "name", "geometry"]].to_crs(epsg).reset_index(drop=True),
        grids=grids.to_crs(epsg).reset_index(drop=True),
        barriers=barriers.reset_index(drop=True),
        made_on=made_on or datetime.now(ZoneInfo(zone)).date(), zone=zone,
        streets=streets.reset_index(drop=True),
        **_overlay(engine, plan.territory_id, overlay, window, window_m, epsg))


def _overlay(engine: Engine, territory_id: int, department: str | None, window: Any,
             window_m: Any, epsg: int) -> dict[str, Any]:
    """The ``overlay*`` fields of PosterData: the department's units meeting the map."""
    if department is None:
        return {}
    info = get_overlay(engine, territory_id, department)
    units = read_units(engine, int(info["id"]))
    units = units[units.intersects(window)].to_crs(epsg)
    units["geometry"] = shapely.clip_by_rect(units.geometry.to_numpy(), *window_m.bounds)
    units = units[~units.geometry.is_empty].reset_index(drop=True)
    return {"overlay": units[["code", "name", "geometry"]], "overlay_department":
            str(info["department"]), "overlay_id": int(info["id"])}
