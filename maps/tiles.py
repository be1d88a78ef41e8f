"""Vector tiles of a plan's grids: tile math, Mapbox Vector Tiles (PostGIS or Python), a cache."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import Engine, select, text

from gis.band import classify, classify_sql
from gis.codes import like_prefix_sql, like_prefix_value
from gis.errors import GridmapError, NotFound
from gis.models.base import iso
from gis.models.plans import Plan

#: Tile coordinates per side (the MVT ``extent``), the margin kept around a tile in those
#: units (so that strokes of neighbouring tiles meet), the layer name and the zoom range.
EXTENT = 4096
BUFFER = 64
LAYER = "grids"
MAX_ZOOM = 22
#: Bumped whenever what a tile holds changes (it is part of every ETag).
FORMAT_VERSION = 2
#: Half the side of the Web-Mercator square (EPSG:3857), metres.
HALF_WORLD = 20037508.342789244
#: Properties of each feature (the feature id is the grid's database id), as TileJSON
#: ``vector_layers[].fields`` describes them.
FIELDS: dict[str, str] = {
    "code": "String: 15-digit grid code 网格编码",
    "name": "String: grid name 网格名称 (absent when the grid has none)",
    "village_code": "String: 12-digit village/community code 村/社区编码",
    "kind": "String: comprehensive 综合网格 or dedicated 专属网格",
    "households": "Number: households 户数",
    "households_estimated": "Number: of the households, those estimated from footprints "
                            "without a count 其中估算户数",
    "barrier_inside_m": "Number: metres of river, ridge or railway inside the grid, not along "
                        "its boundary 网格内河流/山脊/铁路长度 (absent when not known)",
    "status": "String: below / in_band / above the household band, or dedicated",
    "flags": "String: comma-separated irregularity flags (crosses_barrier: the grid crosses "
             "a river, ridge or railway), empty when regular",
}

_TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)
_TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)


class TileError(GridmapError):
    """A tile address (z/x/y) outside the tile pyramid."""

    code = "bad-tile"


@dataclass(frozen=True, order=True)
class Tile:
    """A tile of the Web-Mercator (XYZ, y down from the north) pyramid."""

    z: int
    x: int
    y: int

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def check_tile(z: int, x: int, y: int) -> Tile:
    """The tile z/x/y, or a :class:`TileError` saying which number is out of range."""
    if not 0 <= z <= MAX_ZOOM:
        raise TileError(f"瓦片层级 z={z} 超出范围 0–{MAX_ZOOM}; zoom z={z} is outside "
                        f"0–{MAX_ZOOM}")
    n = 2**z
    for name, value in (("x", x), ("y", y)):
        if not 0 <= value < n:
            raise TileError(f"瓦片编号 {name}={value} 超出范围 0–{n - 1} (层级 {z}); tile "
                            f"{name}={value} is outside 0–{n - 1} at zoom {z}")
    return Tile(z, x, y)


def tile_envelope(tile: Tile, margin: float = 0.0) -> tuple[float, float, float, float]:
    """The tile's (minx, miny, maxx, maxy) in EPSG:3857 metres, as PostGIS'
    ``ST_TileEnvelope`` gives it, widened by ``margin`` (a share of the tile's side) on
    every side but never past the edges of the world (which would wrap round)."""
    size = 2 * HALF_WORLD / 2**tile.z
    minx = -HALF_WORLD + tile.x * size
    maxy = HALF_WORLD - tile.y * size
    pad = margin * size
    return (max(minx - pad, -HALF_WORLD), max(maxy - size - pad, -HALF_WORLD),
            min(minx + size + pad, HALF_WORLD), min(maxy + pad, HALF_WORLD))


def tile_bounds(tile: Tile, margin: float = 0.0) -> tuple[float, float, float, float]:
    """The tile's (west, south, east, north) in WGS84 degrees (as ``mercantile.bounds``)."""
    minx, miny, maxx, maxy = tile_envelope(tile, margin)
    west, south = _TO_LONLAT.transform(minx, miny)
    east, north = _TO_LONLAT.transform(maxx, maxy)
    return (float(west), float(south), float(east), float(north))


def tile_at(lon: float, lat: float, z: int) -> Tile:
    """The tile at zoom ``z`` holding the point (WGS84 degrees)."""
    n = 2**z
    lat = max(min(lat, 85.05112878), -85.05112878)
    x = int((lon + 180.0) / 360.0 * n)
    rad = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(rad)) / math.pi) / 2.0 * n)
    return Tile(z, min(max(x, 0), n - 1), min(max(y, 0), n - 1))


def tiles_covering(bounds: tuple[float, float, float, float], z: int) -> Iterator[Tile]:
    """Every tile at zoom ``z`` touching the WGS84 box (west, south, east, north)."""
    west, south, east, north = bounds
    top_left, bottom_right = tile_at(west, north, z), tile_at(east, south, z)
    for x in range(top_left.x, bottom_right.x + 1):
        for y in range(top_left.y, bottom_right.y + 1):
            yield Tile(z, x, y)


def to_tile_coords(geoms: np.ndarray, tile: Tile) -> np.ndarray:
    """WGS84 geometries in the tile's coordinates (0..EXTENT, y down), not rounded."""
    minx, _, maxx, maxy = tile_envelope(tile)
    scale = EXTENT / (maxx - minx)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = _TO_MERCATOR.transform(coords[:, 0], coords[:, 1])
        return np.column_stack(((np.asarray(x) - minx) * scale, (maxy - np.asarray(y)) * scale))

    return shapely.transform(geoms, project)


def from_tile_coords(geoms: np.ndarray, tile: Tile) -> np.ndarray:
    """Tile coordinates (y down) back to WGS84 geometries."""
    minx, _, maxx, maxy = tile_envelope(tile)
    unit = (maxx - minx) / EXTENT

    def unproject(coords: np.ndarray) -> np.ndarray:
        lon, lat = _TO_LONLAT.transform(minx + coords[:, 0] * unit, maxy - coords[:, 1] * unit)
        return np.column_stack((lon, lat))

    return shapely.transform(geoms, unproject)


# ------------------------------------------------------------------------------------------
# Which plan generation a tile belongs to


@dataclass(frozen=True)
class PlanStamp:
    """A plan as tiles see it: its id and a token of its generation.

    A plan's grids change only by edits of a draft (each bumps its ``edit_version``), and
    publishing only changes the plan's status, which no tile carries. The token (from the
    territory, the plan's creation time and its edit version) tells a plan from an edited
    one, and from a later one that reuses its id after a deletion (SQLite may reuse the
    highest id), so no cached tile outlives what it was made from.
    """

    plan_id: int
    token: str


def plan_stamp(engine: Engine, plan_id: int) -> PlanStamp:
    """The plan's stamp, or :class:`NotFound`."""
    table = Plan.__table__
    with engine.connect() as conn:
        row = conn.execute(select(table.c.territory_id, table.c.created_at,
                                  table.c.edit_version).where(table.c.id == plan_id)).first()
    if row is None:
        raise NotFound(f"没有方案 {plan_id}; no plan {plan_id}")
    # (The tile format is in it too: URLs carrying the token are cached as immutable, so
    # tiles of another format must come under another token.)
    seed = (f"{plan_id}:{row.territory_id}:{iso(row.created_at)}:{row.edit_version}"
            f":f{FORMAT_VERSION}")
    return PlanStamp(plan_id, hashlib.sha1(seed.encode()).hexdigest()[:12])


def etag(stamp: PlanStamp, tile: Tile, band: tuple[int, int], backend: str,
         areas: tuple[str, ...] | None = None) -> str:
    """A strong ETag for a tile: what its bytes are a function of (the plan, the band and
    the areas of the account asking), hashed."""
    seed = (f"{FORMAT_VERSION}:{backend}:{stamp.plan_id}:{stamp.token}:{band[0]}-{band[1]}:"
            f"{tile}:{','.join(areas or ())}")
    return '"' + hashlib.sha1(seed.encode()).hexdigest()[:24] + '"'


# ------------------------------------------------------------------------------------------
# Rendering


#: One statement: grids whose box meets the buffered tile (the GiST index on the 4326
#: geometry; the box is the buffered ``ST_TileEnvelope`` in WGS84, as :func:`tile_bounds`
#: gives it, kept inside the world so that it never wraps round at 180°), clipped,
#: projected and snapped by ST_AsMVTGeom, encoded by ST_AsMVT, feature id = grid id.
POSTGIS_SQL = f"""
WITH env AS (
    SELECT ST_TileEnvelope(:z, :x, :y) AS tile, ST_MakeEnvelope(:w, :s, :e, :n, 4326) AS box
), features AS (
    SELECT g.id, g.code, g.name, g.village_code, g.kind, g.households,
           g.households_estimated, g.barrier_inside_m,
           {classify_sql("g.kind", "g.households")} AS status,
           COALESCE((SELECT string_agg(f, ',') FROM json_array_elements_text(g.flags) AS f),
                    '') AS flags,
           ST_AsMVTGeom(ST_Transform(g.geom, 3857), env.tile, {EXTENT}, {BUFFER}, true) AS geom
    FROM grids AS g, env
    WHERE g.plan_id = :plan AND g.geom && env.box {{areas}}
    ORDER BY g.code
)
SELECT ST_AsMVT(features.*, '{LAYER}', {EXTENT}, 'geom', 'id') FROM features
WHERE geom IS NOT NULL
"""


def _area_sql(areas: tuple[str, ...] | None) -> tuple[str, dict[str, str]]:
    """SQL keeping grids whose code lies within the areas (empty for every area)."""
    if areas is None or "*" in areas:
        return "", {}
    params = {f"area{i}": like_prefix_value(a) for i, a in enumerate(areas)}
    return "AND (" + " OR ".join(like_prefix_sql("g.code", k) for k in params) + ")", params


def render_postgis(engine: Engine, plan_id: int, tile: Tile, band: tuple[int, int],
                   areas: tuple[str, ...] | None = None) -> bytes:
    """The tile by PostGIS' ST_AsMVT (b'' when no grid meets it)."""
    west, south, east, north = tile_bounds(tile, BUFFER / EXTENT)
    where, params = _area_sql(areas)
    with engine.connect() as conn:
        data = conn.execute(text(POSTGIS_SQL.replace("{areas}", where)), {
            "z": tile.z, "x": tile.x, "y": tile.y, "w": west, "s": south, "e": east,
            "n": north, "plan": plan_id, "lo": band[0], "hi": band[1], **params}).scalar_one()
    return bytes(data or b"")


def _read_box(engine: Engine, plan_id: int, box: tuple[float, float, float, float],
              areas: tuple[str, ...] | None = None) -> list[Any]:
    """Rows of the plan's grids whose bounding box meets ``box`` (WGS84), by the spatial
    index of either backend."""
    west, south, east, north = box
    columns = "g.id, g.code, g.name, g.village_code, g.kind, g.households, " \
              "g.households_estimated, g.barrier_inside_m, g.flags, ST_AsBinary(g.geom) AS wkb"
    if engine.dialect.name == "sqlite":  # SpatiaLite's R*Tree beside the table
        where = ("g.id IN (SELECT pkid FROM idx_grids_geom WHERE xmin <= :e AND xmax >= :w "
                 "AND ymin <= :n AND ymax >= :s)")
    else:
        where = "g.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
    scope, params = _area_sql(areas)
    query = text(f"SELECT {columns} FROM grids AS g WHERE g.plan_id = :plan AND {where} "
                 f"{scope} ORDER BY g.code")
    with engine.connect() as conn:
        return list(conn.execute(query, {"plan": plan_id, "w": west, "s": south, "e": east,
                                         "n": north, **params}))


def _flags(value: Any) -> str:
    if isinstance(value, str):  # JSON text (a raw query hands the column back undecoded)
        value = json.loads(value) if value.strip() else []
    return ",".join(str(f) for f in (value or []))


def _polygons(geom: Any) -> Any:
    """The polygonal part of a clipped, snapped geometry (None when nothing is left)."""
    if geom is None or shapely.is_empty(geom):
        return None
    if isinstance(geom, shapely.Polygon | shapely.MultiPolygon):
        return geom
    parts = [p for p in shapely.get_parts(geom)
             if isinstance(p, shapely.Polygon | shapely.MultiPolygon) and not p.is_empty]
    if not parts:
        return None
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def status_of(kind: str, households: int, band: tuple[int, int]) -> str:
    """The status a tile gives a grid: its class against the band (:func:`gis.band.classify`,
    which the PostGIS statement runs as SQL)."""
    return classify(kind, households, band)


def render_python(engine: Engine, plan_id: int, tile: Tile, band: tuple[int, int],
                  areas: tuple[str, ...] | None = None) -> bytes:
    """The same tile made in Python: the grids of the buffered tile's box read from the
    store, projected, clipped and snapped with shapely, encoded by mapbox-vector-tile.
    For SpatiaLite, which has no ST_AsMVT (and the benchmark's baseline on PostGIS)."""
    rows = _read_box(engine, plan_id, tile_bounds(tile, BUFFER / EXTENT), areas)
    if not rows:
        return b""
    geoms = to_tile_coords(shapely.from_wkb([bytes(r.wkb) for r in rows]), tile)
    clipped = shapely.clip_by_rect(geoms, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    snapped = shapely.set_precision(clipped, 1.0)
    features = []
    for row, geom in zip(rows, snapped, strict=True):
        shape = _polygons(geom)
        if shape is None:
            continue
        inside = row.barrier_inside_m
        properties = {"code": row.code, "name": row.name, "village_code": row.village_code,
                      "kind": row.kind, "households": int(row.households),
                      "households_estimated": int(row.households_estimated or 0),
                      "barrier_inside_m": None if inside is None else float(inside),
                      "status": status_of(row.kind, int(row.households), band),
                      "flags": _flags(row.flags)}
        features.append({"id": int(row.id), "geometry": shape,
                         "properties": {k: v for k, v in properties.items() if v is not None}})
    if not features:
        return b""
    return bytes(mapbox_vector_tile.encode(
        {"name": LAYER, "features": features},
        default_options={"extents": EXTENT, "y_coord_down": True}))


def render_tile(engine: Engine, plan_id: int, tile: Tile, band: tuple[int, int],
                method: str = "auto", areas: tuple[str, ...] | None = None) -> bytes:
    """The grids of ``plan_id`` in ``tile`` as MVT bytes (layer :data:`LAYER`); b'' when the
    tile holds none. ``method``: ``sql`` (PostGIS ST_AsMVT), ``python``, or ``auto`` (SQL on
    PostGIS, Python on SpatiaLite). ``areas``: only grids whose code lies within these."""
    if method == "auto":
        method = "python" if engine.dialect.name == "sqlite" else "sql"
    if method == "sql":
        return render_postgis(engine, plan_id, tile, band, areas)
    if method == "python":
        return render_python(engine, plan_id, tile, band, areas)
    raise ValueError(f"unknown tile method {method!r}")


def plan_bounds(engine: Engine, plan_id: int) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of a plan's grids in WGS84; None when it has none."""
    if engine.dialect.name == "sqlite":
        parts = ("MbrMinX", "MbrMinY", "MbrMaxX", "MbrMaxY")
    else:
        parts = ("ST_XMin", "ST_YMin", "ST_XMax", "ST_YMax")
    aggs = ", ".join(f"{'min' if i < 2 else 'max'}({f}(geom))" for i, f in enumerate(parts))
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {aggs} FROM grids WHERE plan_id = :plan"),
                           {"plan": plan_id}).one()
    if row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


# ------------------------------------------------------------------------------------------
# The cache


class TileCache:
    """Tiles in memory, least recently used dropped first, bounded in bytes (thread-safe).
    Keys are a plan's stamp and a tile, or any other hashable name of bytes made from the
    plan alone (the map's simplified grids are kept here too).

    Each entry counts its bytes plus :attr:`OVERHEAD` (the key and bookkeeping), so empty
    tiles are bounded too.
    """

    OVERHEAD = 200

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[PlanStamp, Hashable], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, stamp: PlanStamp, tile: Hashable) -> bytes | None:
        with self._lock:
            data = self._items.get((stamp, tile))
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end((stamp, tile))
            self.hits += 1
            return data

    def put(self, stamp: PlanStamp, tile: Hashable, data: bytes) -> None:
        cost = len(data) + self.OVERHEAD
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop((stamp, tile), None)
            if old is not None:
                self.size -= len(old) + self.OVERHEAD
            self._items[(stamp, tile)] = data
            self.size += cost
            while self.size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.size -= len(dropped) + self.OVERHEAD

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"tiles": len(self._items), "bytes": self.size, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses}
