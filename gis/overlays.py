"""Department grids as overlays (多网融合): read one polygon layer, store it as given, read it."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from sqlalchemy import Engine, delete, func, insert, select

from gis.contract import LayerSpec, Repair, _as_text, _check_geometry, _to_wgs84
from gis.crs import parse_coord_sys
from gis.errors import Conflict, GridmapError, LayerError, NotFound, gdal_reason
from gis.io.archive import unpacked
from gis.io.limits import Budget, ReadLimits
from gis.io.vector import VECTOR_SUFFIXES, _check_shapefile, _read_source, _Source, check_geopackage
from gis.models.base import iso, utcnow
from gis.models.overlays import Overlay, OverlayAlignment, OverlayUnit
from gis.paging import Page, Paged, read_page
from gis.store import _wkb

#: The contract of an overlay: polygons with a unit code and (optionally) a name.
OVERLAY_SPEC = LayerSpec("overlay", ("polygon",), ("code",), ("name",),
                         "a department's own grid units (警格, 城管网格, …)")
#: Column names taken for the code and the name when no field map names them.
CODE_NAMES = ("code", "unit_code", "编码", "代码", "编号", "网格编码", "警格编码", "警格编号",
              "单元编码", "bm", "dm")
NAME_NAMES = ("name", "unit_name", "名称", "网格名称", "警格名称", "单元名称", "mc")
#: A department is named in Chinese or English (公安, 城管, police): letters, digits, CJK.
DEPARTMENT_MAX = 40


@dataclass
class OverlayLayer:
    """One department layer as read: units (code, name, WGS84 geometry), the geometries
    exactly as the file gave them, and the coordinate system they were drawn in."""

    units: gpd.GeoDataFrame
    source_geoms: np.ndarray
    source_crs: str
    field_map: dict[str, str]
    repairs: list[Repair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: The territory layer under which a partition takes overlays' unit boundaries as a strong
#: barrier class (partitioning/blocks.py, kind ``overlay``).
BARRIER_LAYER = "overlay_lines"


def boundary_lines(units: gpd.GeoDataFrame, department: str) -> gpd.GeoDataFrame:
    """The unit boundaries of a department's overlay as lines in the units' CRS, each edge
    once (an edge two units share is one line, not two copies), named
    ``{department}单元界`` (what a grid crossing one is flagged with)."""
    crs = units.crs
    polygons = shapely.get_parts(shapely.make_valid(units.geometry.to_numpy()))
    polygons = polygons[shapely.get_type_id(polygons) == 3]
    if not len(polygons):
        return gpd.GeoDataFrame({"name": [], "department": []}, geometry=[], crs=crs)
    # Noded and merged between junctions: every shared edge once.
    merged = shapely.line_merge(shapely.union_all(shapely.boundary(polygons)))
    parts = shapely.get_parts(merged)
    parts = parts[(shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 0)]
    return gpd.GeoDataFrame({"name": np.full(len(parts), f"{department}单元界", dtype=object),
                             "department": np.full(len(parts), department, dtype=object)},
                            geometry=parts, crs=crs)


def barrier_layer(engine: Engine, territory_id: int, departments: list[str]
                  ) -> gpd.GeoDataFrame:
    """The unit boundaries of the territory's overlays of ``departments`` (WGS84), for a
    partition to take as barriers; NotFound when one is not there."""
    frames = [boundary_lines(read_units(engine, int(get_overlay(engine, territory_id,
                                                                 d)["id"])), d)
              for d in departments]
    if not frames:
        return gpd.GeoDataFrame({"name": [], "department": []}, geometry=[], crs=4326)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                            crs=4326)


def check_department(department: str) -> str:
    """The department name, stripped; a clear error when it is empty or too long."""
    text = (department or "").strip()
    if not text or len(text) > DEPARTMENT_MAX or not text.isprintable() or "/" in text:
        raise LayerError(f"department must be 1–{DEPARTMENT_MAX} printable characters "
                         "without '/' (部门名称，如 公安、城管), got "
                         f"{department!r}")
    return text


def _candidates(root: Path, folder: Path) -> list[_Source]:
    """The polygon layers a file, a folder or an unpacked .zip offers."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [root]
    found: list[_Source] = []
    for path in files:
        lower = path.name.lower()
        label = path.relative_to(folder).as_posix() if folder.is_dir() else path.name
        if not lower.endswith(VECTOR_SUFFIXES) or lower.endswith(".csv"):
            continue
        if lower.endswith(".gpkg"):
            check_geopackage(path, label)
            try:
                listed = pyogrio.list_layers(str(path))
            except Exception as exc:
                raise LayerError(f"cannot be read: {gdal_reason(exc, path, label)}",
                                 file=label) from exc
            for name, kind in listed:
                if kind is None or "polygon" in str(kind).lower():
                    found.append(_Source("overlay", str(path), f"{label}:{name}", str(name)))
        else:
            if lower.endswith(".shp"):
                _check_shapefile(path, label)
            found.append(_Source("overlay", str(path), label))
    return found


def _pick_column(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {str(c).strip().lower(): str(c) for c in columns}
    return next((lowered[n] for n in wanted if n in lowered), None)


def read_overlay(path: str | Path, *, field_map: Mapping[str, str] | None = None,
                 crs: str | int | None = None, encoding: str | None = None,
                 limits: ReadLimits | None = None) -> OverlayLayer:
    """Read a department's layer: one polygon layer in a GeoPackage, GeoJSON, Shapefile
    (set, or zipped), any coordinate system the territory reader takes (``crs`` where the
    file declares none or declares it wrongly), GBK names (``encoding`` for a Shapefile
    without .cpg). ``field_map`` names the code and name columns, either way round
    (``{"警格编号": "code"}`` or ``{"code": "警格编号"}``).

    Raises :class:`LayerError` (file, row, what to fix) on anything unusable.
    """
    root = Path(path)
    if not root.exists():
        raise LayerError(f"no such file or folder: {root}")
    if crs is not None:
        parse_coord_sys(crs)
    budget = Budget(limits or ReadLimits.from_settings())
    with ExitStack() as stack:
        folder = unpacked(stack, root, budget.limits, "gridmap-overlay-")
        sources = _candidates(root, folder)
        if not sources:
            raise LayerError("no polygon layer found: give the department's units as a "
                             "GeoPackage, GeoJSON or Shapefile (.shp with .shx, .dbf, .prj, "
                             ".cpg; or zipped) — 未找到面图层", file=root.name)
        if len(sources) > 1:
            raise LayerError("more than one layer found (" + ", ".join(
                s.label for s in sources[:6]) + "): upload one department layer at a time "
                "— 一次只上传一个部门图层", file=root.name)
        src = sources[0]
        raw = _read_source(src, encoding, budget)
    return _checked(raw, src.label, field_map or {}, crs)


def _checked(raw: gpd.GeoDataFrame, label: str, field_map: Mapping[str, str],
             crs: str | int | None) -> OverlayLayer:
    columns = [str(c) for c in raw.columns if c != raw.geometry.name]
    renames: dict[str, str] = {}
    for a, b in field_map.items():
        if b in ("code", "name") and a in columns:
            renames[b] = a
        elif a in ("code", "name") and b in columns:
            renames[a] = b
        else:
            raise LayerError(f"field map {a}={b}: no column {a if b in ('code', 'name') else b} "
                             f"in the layer (columns: {', '.join(columns) or 'none'}); map "
                             "the unit code and name, e.g. 警格编号=code, 警格名称=name",
                             file=label)
    code_col = renames.get("code") or _pick_column(columns, CODE_NAMES)
    name_col = renames.get("name") or _pick_column(columns, NAME_NAMES)
    if code_col is None:
        raise LayerError("no unit code column: name it with the field map, e.g. "
                         f"警格编号=code (columns: {', '.join(columns) or 'none'}) — "
                         "请用字段映射指定单元编码列", file=label)
    if len(raw) == 0:
        raise LayerError("the layer is empty — 图层为空", file=label)
    source_geoms = raw.geometry.to_numpy().copy()
    repairs: list[Repair] = []
    geoms = _check_geometry(OVERLAY_SPEC, raw.geometry.to_numpy(), label, repairs)
    codes = _as_text(raw[code_col])
    missing = np.flatnonzero(codes.isna().to_numpy())
    if missing.size:
        raise LayerError(f"unit code ({code_col}) is empty — 单元编码为空", file=label,
                         row=int(missing[0]))
    too_long = np.flatnonzero((codes.str.len() > 60).to_numpy())
    if too_long.size:
        raise LayerError(f"unit code ({code_col}) longer than 60 characters", file=label,
                         row=int(too_long[0]))
    dup = codes.duplicated(keep="first").to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise LayerError(f"unit code {codes.iloc[row]!r} ({code_col}) appears twice: each "
                         "unit needs its own code — 单元编码重复", file=label, row=row)
    names = _as_text(raw[name_col]).str.slice(0, 200) if name_col else pd.Series(
        [None] * len(raw), dtype="object")
    frame = gpd.GeoDataFrame({"code": codes.astype(str).to_numpy(),
                              "name": names.astype(object).where(names.notna(), None)
                              .to_numpy()},
                             geometry=geoms, crs=raw.crs)
    given = crs if crs is not None else None
    if given is not None:
        source_crs = parse_coord_sys(given).name
    elif raw.crs is not None:
        source_crs = _crs_text(raw.crs)
    else:
        source_crs = ""
    units = _to_wgs84("overlay", frame, label, given)
    if not source_crs:  # _to_wgs84 refused a file with none; kept for mypy
        raise LayerError("no coordinate system", file=label)
    return OverlayLayer(units.reset_index(drop=True), source_geoms, source_crs,
                        {"code": code_col, **({"name": name_col} if name_col else {})},
                        repairs)


def _crs_text(crs: Any) -> str:
    """EPSG:xxxx where the file's CRS has one, else its WKT."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else str(crs.to_wkt())


# --- the store -------------------------------------------------------------------------------


def store_overlay(engine: Engine, territory_id: int, department: str, layer: OverlayLayer,
                  *, name: str | None = None, source: str | None = None,
                  created_by: str | None = None, replace: bool = False) -> int:
    """Store a department's layer in one transaction; 409 when the territory already has
    one of that department (unless ``replace``). Returns the overlay's id."""
    table = Overlay.__table__
    with engine.begin() as conn:
        exists = conn.execute(select(table.c.id).where(
            table.c.territory_id == territory_id,
            table.c.department == department)).scalar_one_or_none()
        if exists is not None:
            if not replace:
                raise Conflict(f"territory {territory_id} already has the {department} "
                               f"overlay ({exists}); delete it first or replace it — "
                               "该部门图层已存在")
            conn.execute(delete(Overlay).where(Overlay.id == exists))
        overlay_id = int(conn.execute(insert(Overlay).values(
            territory_id=territory_id, department=department, name=name, source=source,
            source_crs=layer.source_crs, field_map=layer.field_map, created_by=created_by,
            created_at=utcnow()).returning(Overlay.id)).scalar_one())
        rows = [{"overlay_id": overlay_id, "code": c, "name": n, "source_wkb": w, "geom": g}
                for c, n, w, g in zip(layer.units["code"], layer.units["name"],
                                      shapely.to_wkb(layer.source_geoms),
                                      _wkb(layer.units.geometry.to_numpy()), strict=True)]
        for start in range(0, len(rows), 2_000):
            conn.execute(insert(OverlayUnit), rows[start:start + 2_000])
    return overlay_id


def _info(row: Any, n_units: int) -> dict[str, Any]:
    return {"id": int(row.id), "territory_id": int(row.territory_id),
            "department": row.department, "name": row.name, "source": row.source,
            "source_crs": row.source_crs, "field_map": row.field_map or {},
            "created_by": row.created_by, "created_at": iso(row.created_at),
            "units": n_units}


def list_overlays(engine: Engine, territory_id: int) -> list[dict[str, Any]]:
    """A territory's overlays, by department, with their unit counts."""
    return overlays_page(engine, territory_id, None).items


def overlays_page(engine: Engine, territory_id: int, page: Page | None
                  ) -> Paged[dict[str, Any]]:
    """A page of :func:`list_overlays`."""
    table = Overlay.__table__
    units = OverlayUnit.__table__

    with engine.connect() as conn:
        found = read_page(conn, select(table).where(table.c.territory_id == territory_id)
                          .order_by(table.c.department, table.c.id), page)
        counts: dict[int, int] = dict(conn.execute(
            select(units.c.overlay_id, func.count()).where(
                units.c.overlay_id.in_([r.id for r in found.items]))
            .group_by(units.c.overlay_id)).all())
    return found.map(lambda r: _info(r, int(counts.get(r.id, 0))))


def get_overlay(engine: Engine, territory_id: int, department: str) -> dict[str, Any]:
    """One overlay's description, or NotFound."""
    for info in list_overlays(engine, territory_id):
        if info["department"] == department:
            return info
    raise NotFound(f"territory {territory_id} has no {department!r} overlay — 无该部门图层")


def read_units(engine: Engine, overlay_id: int, *, source: bool = False) -> gpd.GeoDataFrame:
    """An overlay's units (code, name) in WGS84, by code; ``source``: also the geometry as
    the file gave it (``source_geometry``, in the overlay's source CRS)."""
    units = OverlayUnit.__table__
    columns = [units.c.code, units.c.name, units.c.geom.ST_AsBinary().label("wkb")]
    if source:
        columns.append(units.c.source_wkb)
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).where(units.c.overlay_id == overlay_id)
                            .order_by(units.c.code)).all()
    frame = gpd.GeoDataFrame(
        {"code": [r.code for r in rows], "name": [r.name for r in rows]},
        geometry=shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else [],
        crs="EPSG:4326")
    if source:
        frame["source_geometry"] = shapely.from_wkb([bytes(r.source_wkb) for r in rows]) \
            if rows else []
    return frame


def delete_overlay(engine: Engine, territory_id: int, department: str) -> None:
    """Remove an overlay with its units and alignments."""
    with engine.begin() as conn:
        done = conn.execute(delete(Overlay).where(
            Overlay.territory_id == territory_id, Overlay.department == department))
        if done.rowcount == 0:
            raise NotFound(f"territory {territory_id} has no {department!r} overlay — "
                           "无该部门图层")


def store_alignment(engine: Engine, overlay_id: int, plan_id: int,
                    assignment: Mapping[str, str]) -> int:
    """Adopt an aligned cross-walk: each grid code of the plan to its unit code (replaces
    one stored before for the same overlay and plan). Returns the grids stored."""
    rows = [{"overlay_id": overlay_id, "plan_id": plan_id, "grid_code": g, "unit_code": u}
            for g, u in sorted(assignment.items())]
    if not rows:
        raise GridmapError("the alignment assigns no grid: nothing to store")
    with engine.begin() as conn:
        conn.execute(delete(OverlayAlignment).where(
            OverlayAlignment.overlay_id == overlay_id,
            OverlayAlignment.plan_id == plan_id))
        for start in range(0, len(rows), 5_000):
            conn.execute(insert(OverlayAlignment), rows[start:start + 5_000])
    return len(rows)


def read_alignment(engine: Engine, overlay_id: int, plan_id: int) -> dict[str, str]:
    """The stored alignment of a plan's grids to an overlay's units (empty when none)."""
    table = OverlayAlignment.__table__
    with engine.connect() as conn:
        return {str(g): str(u) for g, u in conn.execute(
            select(table.c.grid_code, table.c.unit_code).where(
                table.c.overlay_id == overlay_id, table.c.plan_id == plan_id))}
