"""The planner map's overlay layers: a territory's layers or a plan's blocks in a bbox, capped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, Select, func

from gis.accounts import within_areas
from gis.models.base import SRID
from gis.models.plans import Block, Grid
from gis.names import LINE_KIND_NAMES
from gis.obfuscation import wgs84_from_bd09, wgs84_from_gcj02
from gis.plans import get_plan, plan_blocks_query, read_lines
from gis.store import LAYER_COLUMNS, layer_query, layer_table, territory_row

#: The territory layers the map can show, with their Chinese names (the layer control's).
LAYERS: dict[str, str] = {
    "admin_areas": "行政区划边界",
    "roads": "道路",
    "water": "河流水系",
    "ridges": "山脊",
    "railways": "铁路",
    "buildings": "建筑",
    "facilities": "公共设施",
    "dedicated_areas": "专属网格区域",
}
#: The most features one overlay request returns; over it the client must zoom in.
FEATURE_CAP = 20_000
#: A plan's line layers the map can show (``GET /plans/{id}/lines?kind=…``), by kind.
LINE_LAYERS: dict[str, str] = dict(LINE_KIND_NAMES)
BLOCK_COLUMNS = ("block_no", "village_code", "households", "households_estimated", "population",
                 "grid_code")

BBox = tuple[float, float, float, float]


def bbox_to_wgs84(bbox: BBox, display: str) -> BBox:
    """A bbox drawn in the display system (``wgs84``, ``gcj02``, ``bd09``) as WGS84 bounds.

    The shift is smooth over a few kilometres, so the corners' and edges' midpoints
    moved back bound the area; a 10 m margin covers the rest.
    """
    if display == "wgs84":
        return bbox
    inverse = {"gcj02": wgs84_from_gcj02, "bd09": wgs84_from_bd09}[display]
    x0, y0, x1, y1 = bbox
    xs = np.array([x0, x1, x0, x1, (x0 + x1) / 2, (x0 + x1) / 2, x0, x1])
    ys = np.array([y0, y0, y1, y1, y0, y1, (y0 + y1) / 2, (y0 + y1) / 2])
    lon, lat = inverse(xs, ys)
    margin = 1e-4
    return (max(-180.0, float(lon.min()) - margin), max(-90.0, float(lat.min()) - margin),
            min(180.0, float(lon.max()) + margin), min(90.0, float(lat.max()) + margin))


def _frame(rows: Sequence[Any], columns: list[str]) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(rows, columns=[*columns, "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    frame = frame.astype(object).where(frame.notna(), None)
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{SRID}")


def _in_bbox(column: Any, bbox: BBox | None) -> Any:
    if bbox is None:
        return None
    # ST_GeomFromText and ST_Intersects exist on PostGIS (which uses the GiST index) and
    # SpatiaLite alike.
    return func.ST_Intersects(column, func.ST_GeomFromText(shapely.box(*bbox).wkt, SRID))


def _capped(engine: Engine, query: Select[Any], geom: Any, bbox: BBox | None, limit: int,
            columns: list[str]) -> gpd.GeoDataFrame:
    """Up to ``limit + 1`` rows of ``query`` whose ``geom`` meets ``bbox``, as a frame."""
    where = _in_bbox(geom, bbox)
    if where is not None:
        query = query.where(where)
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit + 1)).all()
    return _frame(rows, columns)


def read_overlay(engine: Engine, territory_id: int, layer: str, *, bbox: BBox | None = None,
                 limit: int = FEATURE_CAP) -> gpd.GeoDataFrame:
    """Up to ``limit + 1`` features of a territory's layer (WGS84) meeting ``bbox``.

    One more than ``limit`` tells the caller there are too many. Barrier layers carry
    their ``class`` (roads: motorway … residential) for styling.
    """
    if layer not in LAYERS:
        raise KeyError(layer)
    territory_row(engine, territory_id)   # NotFound when there is no such territory
    columns = LAYER_COLUMNS[layer]
    return _capped(engine, layer_query(territory_id, layer), layer_table(layer).c.geom,
                   bbox, limit, list(columns))


def read_plan_blocks(engine: Engine, plan_id: int, *, bbox: BBox | None = None,
                     limit: int = FEATURE_CAP, grid: str | None = None,
                     village: str | None = None, areas: tuple[str, ...] | None = None
                     ) -> gpd.GeoDataFrame:
    """Up to ``limit + 1`` blocks of a plan (WGS84) meeting ``bbox`` (and of one grid or
    village; of grids within ``areas``), with their number and grid code."""
    get_plan(engine, plan_id)              # NotFound when there is no such plan
    query = plan_blocks_query(plan_id, grid=grid, village=village)
    scope = within_areas(Grid.__table__.c.code, areas)
    if scope is not None:
        query = query.where(scope)
    return _capped(engine, query, Block.__table__.c.geom, bbox, limit, list(BLOCK_COLUMNS))


def read_plan_lines(engine: Engine, plan_id: int, *, kind: str | None = None,
                    bbox: BBox | None = None, limit: int = FEATURE_CAP,
                    areas: tuple[str, ...] | None = None) -> gpd.GeoDataFrame:
    """Up to ``limit + 1`` lines of a plan (WGS84) meeting ``bbox``, of one ``kind`` (the
    inferred streets), in villages within ``areas``."""
    return read_lines(engine, plan_id, kind=kind, bbox=bbox, areas=areas, limit=limit + 1)
