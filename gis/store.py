"""Write a checked territory into the store in one transaction, and read its layers back."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geoalchemy2 import WKBElement
from sqlalchemy import Connection, Engine, Select, delete, func, insert, select

from gis.contract import Territory
from gis.database import row_by_id
from gis.errors import GridmapError, NotFound
from gis.models import territories as territory_models
from gis.models.base import SRID, utcnow
from gis.models.events import Event
from gis.models.territories import BARRIER_LAYERS, LAYER_MODELS, AdminArea, BarrierFeature
from gis.paging import Page, Paged, read_page

#: How many rows go to the database per INSERT round trip.
BATCH = 5_000
ProgressFn = Callable[[str, int], None]


def _wkb(geoms: np.ndarray) -> list[WKBElement]:
    ewkb = shapely.to_wkb(shapely.set_srid(geoms, SRID), include_srid=True)
    return [WKBElement(b, srid=SRID, extended=True) for b in ewkb]


def _records(gdf: gpd.GeoDataFrame, columns: dict[str, str], **fixed: Any
             ) -> list[dict[str, Any]]:
    """Rows as dicts with Python scalars (None for missing), geometry as EWKB."""
    # A column the layer lacks (an optional one, e.g. the address fields of layers made
    # before they existed) is stored empty.
    frame = pd.DataFrame({target: gdf[source] if source in gdf.columns else None
                          for source, target in columns.items()}, index=gdf.index)
    frame = frame.astype(object).where(frame.notna(), None)
    rows: list[dict[str, Any]] = frame.to_dict("records")
    for row, geom in zip(rows, _wkb(gdf.geometry.to_numpy()), strict=True):
        row.update(fixed)
        row["geom"] = geom
    return rows


LAYER_COLUMNS: dict[str, dict[str, str]] = {
    "admin_areas": {"code": "code", "name": "name", "level": "level",
                    "parent_code": "parent_code", "kind": "kind"},
    "buildings": {"households": "households", "population": "population", "floors": "floors",
                  "height": "height", "use": "use", "address": "address", "road": "road",
                  "house_number": "house_number", "compound": "compound",
                  "building_no": "building_no"},
    "facilities": {"kind": "kind", "name": "name"},
    "dedicated_areas": {"name": "name", "kind": "kind"},
    "landuse": {"use": "use", "name": "name"},
    "roads": {"class": "class", "name": "name"},
    "water": {"name": "name"},
    "ridges": {"name": "name"},
    "railways": {"name": "name"},
}


def layer_table(layer: str) -> Any:
    """The table a layer is stored in (the barrier layers share one, told apart by `layer`)."""
    if layer in BARRIER_LAYERS:
        return BarrierFeature.__table__
    return LAYER_MODELS[layer].__table__


def write_territory(conn: Connection, territory: Territory, *, name: str | None = None,
                    source: str | None = None, progress: ProgressFn | None = None) -> int:
    """Insert the territory and all its layers on ``conn`` (the caller's transaction)."""
    result = conn.execute(
        insert(territory_models.Territory).values(
            name=name or territory.name,
            metric_epsg=int(territory.metric_crs.to_epsg() or 0),
            source=source,
            created_at=utcnow(),
        ).returning(territory_models.Territory.id)
    )
    territory_id = int(result.scalar_one())
    for layer, gdf in territory.layers.items():
        fixed: dict[str, Any] = {"territory_id": territory_id}
        if layer in BARRIER_LAYERS:
            fixed["layer"] = layer
        rows = _records(gdf, LAYER_COLUMNS[layer], **fixed)
        table = layer_table(layer)
        for start in range(0, len(rows), BATCH):
            conn.execute(insert(table), rows[start:start + BATCH])
            if progress is not None:
                progress(layer, min(BATCH, len(rows) - start))
    return territory_id


def import_territory(engine: Engine, territory: Territory, *, name: str | None = None,
                     source: str | None = None, progress: ProgressFn | None = None) -> int:
    """Store a territory in one transaction: on any failure nothing is written."""
    with engine.begin() as conn:
        return write_territory(conn, territory, name=name, source=source, progress=progress)


def layer_counts(engine: Engine, territory_id: int) -> dict[str, int]:
    """Stored feature count of each layer of a territory (layers with none omitted)."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for layer, model in LAYER_MODELS.items():
            n = conn.execute(select(func.count()).select_from(model.__table__).where(
                model.__table__.c.territory_id == territory_id)).scalar_one()
            if n:
                counts[layer] = int(n)
        barriers = BarrierFeature.__table__
        for layer, n in conn.execute(
            select(barriers.c.layer, func.count()).where(barriers.c.territory_id == territory_id)
            .group_by(barriers.c.layer)
        ):
            counts[str(layer)] = int(n)
    return counts


def layer_query(territory_id: int, layer: str) -> Select[Any]:
    """The select of one stored layer: its contract columns and ``wkb``, in insertion
    order (callers may add filters, e.g. a bbox, and a limit)."""
    table = layer_table(layer)
    query = select(*(table.c[target].label(source)
                     for source, target in LAYER_COLUMNS[layer].items()),
                   func.ST_AsBinary(table.c.geom).label("wkb")).where(
        table.c.territory_id == territory_id)
    if layer in BARRIER_LAYERS:
        query = query.where(table.c.layer == layer)
    return query.order_by(table.c.id)


def read_layer(engine: Engine, territory_id: int, layer: str) -> gpd.GeoDataFrame:
    """One stored layer back as a GeoDataFrame in WGS84, in insertion order."""
    columns = LAYER_COLUMNS[layer]
    query = layer_query(territory_id, layer)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=[*columns, "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    frame = frame.astype(object).where(frame.notna(), None)
    return gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")


def delete_territory(engine: Engine, territory_id: int) -> None:
    """Remove a territory with everything stored under it (its events explicitly: they hold
    no foreign key to it, see migration 0006; their history goes with them)."""
    with engine.begin() as conn:
        conn.execute(delete(Event).where(Event.territory_id == territory_id))
        deleted = conn.execute(delete(territory_models.Territory).where(
            territory_models.Territory.id == territory_id))
        if deleted.rowcount == 0:
            raise NotFound(f"no territory {territory_id}")


def territory_roots(engine: Engine, territory_id: int) -> tuple[str, ...]:
    """The codes of a territory's top admin areas (its district, or the towns when no
    district is stored): every area of it lies under one of them."""
    table = AdminArea.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.code, table.c.parent_code).where(
            table.c.territory_id == territory_id)).all()
    codes = {str(r.code) for r in rows}
    return tuple(sorted(str(r.code) for r in rows if r.parent_code not in codes))


def list_territories(engine: Engine) -> list[tuple[int, str]]:
    """Every territory's id and name, by id."""
    return territories_page(engine, None, None).items


def territories_page(engine: Engine, ids: Collection[int] | None, page: Page | None
                     ) -> Paged[tuple[int, str]]:
    """A page of the territories' ids and names, by id; ``ids``: only these."""
    rows = territory_models.Territory
    query = select(rows.id, rows.name).order_by(rows.id)
    if ids is not None:
        query = query.where(rows.id.in_(sorted(ids)))
    with engine.connect() as conn:
        found = read_page(conn, query, page)
    return found.map(lambda r: (int(r.id), str(r.name)))


def town_names(engine: Engine, territory_id: int) -> list[tuple[str, str]]:
    """The codes and names of a territory's towns (streets), by code."""
    table = AdminArea.__table__
    with engine.connect() as conn:
        return [(str(c), str(n)) for c, n in conn.execute(
            select(table.c.code, table.c.name).where(
                table.c.territory_id == territory_id, table.c.level == "town")
            .order_by(table.c.code))]


def area_outlines(engine: Engine, territory_id: int) -> list[bytes]:
    """The outlines (WKB, WGS84) of a territory's admin areas."""
    table = AdminArea.__table__
    with engine.connect() as conn:
        return [bytes(r[0]) for r in conn.execute(
            select(func.ST_AsBinary(table.c.geom)).where(
                table.c.territory_id == territory_id))]


def read_area(engine: Engine, code: str, territory_id: int | None = None
              ) -> tuple[Any, Any, list[Any]] | None:
    """The admin area with ``code`` (in ``territory_id``, else the newest territory holding
    it: territory_id, code, name, level, kind, parent_code, wkb), its parent and its
    children (code, name, level; children by code); None when there is none."""
    table = AdminArea.__table__
    query = select(table.c.territory_id, table.c.code, table.c.name, table.c.level,
                   table.c.kind, table.c.parent_code,
                   func.ST_AsBinary(table.c.geom).label("wkb")).where(table.c.code == code)
    if territory_id is not None:
        query = query.where(table.c.territory_id == territory_id)
    with engine.connect() as conn:
        row = conn.execute(query.order_by(table.c.territory_id.desc())).first()
        if row is None:
            return None
        tid = int(row.territory_id)
        ref = (table.c.code, table.c.name, table.c.level)
        parent = conn.execute(select(*ref).where(
            table.c.territory_id == tid, table.c.code == row.parent_code)).first() \
            if row.parent_code else None
        children = conn.execute(select(*ref).where(
            table.c.territory_id == tid, table.c.parent_code == code)
            .order_by(table.c.code)).all()
    return row, parent, list(children)


def territory_row(engine: Engine, territory_id: int) -> Any:
    """A territory's row (id, name, metric_epsg, source, created_at), or NotFound."""
    with engine.connect() as conn:
        return row_by_id(conn, territory_models.Territory.__table__, territory_id,
                         f"no territory {territory_id}")


def load_territory(engine: Engine, territory_id: int) -> Territory:
    """A stored territory as the engine reads it: every stored layer, in WGS84."""
    row = territory_row(engine, territory_id)
    layers = {layer: read_layer(engine, territory_id, layer)
              for layer in layer_counts(engine, territory_id)}
    if "admin_areas" not in layers:
        raise GridmapError(f"territory {territory_id} has no admin areas stored: grids are "
                           "cut inside villages and communities, so import them")
    return Territory(str(row.name), layers)
