"""Export a plan's grids as files (GeoPackage, Shapefile, GeoJSON, CSV, XLSX, DXF, KML) in a CRS.

:func:`export_table` builds the table every export (and the OGC API) serves: the
stored grid fields plus the names and codes of the grid's village/community and
town/street (from ``admin_areas``) and its grid workers (from ``staff`` and
``staff_grids``). :func:`write_export` writes it in one format, in the coordinate system
and (Shapefile) text encoding of :class:`Options`; :func:`export_plan` does both for a
stored plan and names the file.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlalchemy import Engine, select

from gis import divisions, models
from gis.crs import WGS84_OUTPUT, OutputCrs, metric_crs_for, output_crs
from gis.errors import CRSError, GridmapError
from gis.geometry import feature_collection
from gis.names import KIND_NAMES, flag_text
from gis.plans import PlanInfo, get_plan, read_grids
from gis.store import territory_row

#: The columns of the grid table, in order (the geometry comes last).
TABLE_FIELDS = ("code", "name", "village_code", "village_name", "town_code", "town_name",
                "kind", "households", "households_estimated", "population", "area_m2",
                "compactness",
                "barrier_share", "radius_m", "boundary_text", "grid_worker", "flags",
                "flag_reason", "barrier_inside_m")

#: Shapefile (dBASE) field names are at most 10 characters: table field → Shapefile field.
SHAPEFILE_FIELDS = {
    "code": "code", "name": "name", "village_code": "vill_code", "village_name": "vill_name",
    "town_code": "town_code", "town_name": "town_name", "kind": "kind",
    "households": "households", "households_estimated": "hh_estim",
    "population": "population", "area_m2": "area_m2",
    "compactness": "compact", "barrier_share": "barr_share", "radius_m": "radius_m",
    "boundary_text": "boundary", "grid_worker": "grid_wkr", "flags": "flags",
    "flag_reason": "flag_rsn", "barrier_inside_m": "barr_in_m",
}
#: The most bytes a dBASE text field holds; longer text is cut (with "…") there.
DBF_TEXT_BYTES = 254
#: The most bytes a dBASE field name holds.
DBF_NAME_BYTES = 10
#: The Chinese field names of a GBK Shapefile (ArcGIS, SuperMap and MapGIS users read these),
#: each within 10 GBK bytes; :func:`shapefile_fields` checks and cuts them all the same.
DBF_NAMES_ZH = {
    "code": "网格编码", "name": "网格名称", "village_code": "村社区代码",
    "village_name": "村社区名称", "town_code": "镇街道代码", "town_name": "镇街道名称",
    "kind": "网格类型", "households": "户数", "households_estimated": "估算户数",
    "population": "人口", "area_m2": "面积平方米", "compactness": "紧凑度",
    "barrier_share": "沿障碍比例", "radius_m": "服务半径米", "boundary_text": "四至",
    "grid_worker": "网格员", "flags": "标记", "flag_reason": "标记原因",
    "barrier_inside_m": "内含障碍米",
}
#: What each table field holds, for the field map in a zipped Shapefile.
FIELD_MEANINGS = {
    "code": "网格编码 15-digit grid code", "name": "网格名称 grid name",
    "village_code": "村/社区代码 village/community code",
    "village_name": "村/社区 village/community name",
    "town_code": "镇/街道代码 town/street code", "town_name": "镇/街道 town/street name",
    "kind": "网格类型 comprehensive 综合网格 / dedicated 专属网格",
    "households": "户数 households",
    "households_estimated": "其中估算户数 of which estimated from footprints",
    "population": "人口 population", "area_m2": "面积(平方米) area m²",
    "compactness": "紧凑度 Polsby–Popper compactness 0–1",
    "barrier_share": "边界沿道路/河流/山脊/铁路的比例 share of the boundary on a barrier",
    "radius_m": "服务半径(米) service radius m",
    "boundary_text": "四至 boundaries", "grid_worker": "网格员 grid workers (、)",
    "flags": "标记 flags, comma-separated", "flag_reason": "标记原因 the flags' reason",
    "barrier_inside_m": "网格内河流/山脊/铁路(米) river, ridge or railway inside m",
}

#: The columns of the CSV and XLSX sheet: table field, Chinese and English heading.
SHEET_COLUMNS = (
    ("code", "网格编码", "Grid code"),
    ("name", "网格名称", "Grid name"),
    ("village_name", "村/社区", "Village/community"),
    ("village_code", "村/社区代码", "Village code"),
    ("town_name", "镇/街道", "Town/street"),
    ("town_code", "镇/街道代码", "Town code"),
    ("kind", "网格类型", "Kind"),
    ("households", "户数", "Households"),
    ("households_estimated", "其中估算户数", "Of which estimated"),
    ("population", "人口", "Population"),
    ("area_m2", "面积(平方米)", "Area m²"),
    ("boundary_text", "四至", "Boundaries"),
    ("grid_worker", "网格员", "Grid worker"),
    ("flags", "标记", "Flags"),
    ("flag_text", "标记说明", "Flags explained"),
    ("barrier_inside_m", "网格内河流/山脊/铁路(米)", "River, ridge or railway inside (m)"),
    ("centroid_x", "中心点X", "Centroid X"),
    ("centroid_y", "中心点Y", "Centroid Y"),
    ("crs", "坐标系", "CRS"),
)
#: The CSV's last column: each grid's outline as WKT (GDAL's CSV driver reads it as the
#: geometry), in the export's coordinate system.
WKT_COLUMN = "WKT"
#: Grid kinds as the sheet shows them.
KIND_LABELS = KIND_NAMES
#: Separator between several grid workers of one grid.
WORKER_SEPARATOR = "、"


#: Text encodings a Shapefile's ``.dbf`` can be written in: name → (Python codec, ``.cpg``).
ENCODINGS = {"utf-8": ("utf-8", "UTF-8"), "gbk": ("gbk", "GBK")}


@dataclass(frozen=True)
class Options:
    """How to write an export: its coordinate system, and the Shapefile's text encoding."""

    crs: OutputCrs = WGS84_OUTPUT
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise GridmapError(f"encoding={self.encoding!r} is not offered; use utf-8 (the "
                               "default) or gbk (ArcGIS 10.x, SuperMap, MapGIS) "
                               "编码只能是 utf-8 或 gbk")


@dataclass(frozen=True)
class Format:
    """One export format: its file suffix, media type and writer."""

    suffix: str
    media_type: str
    write: Callable[[gpd.GeoDataFrame, Path, dict[str, Any], Options], None]
    #: The ``crs`` of a request that names none (DXF: metres, what CAD draws in).
    default_crs: str = "wgs84"


def heading(chinese: str, english: str) -> str:
    """A column heading as the CSV and XLSX show it: Chinese, then English."""
    return f"{chinese} {english}"


# --- the table ------------------------------------------------------------------------------


def _admin_names(engine: Engine, territory_id: int) -> tuple[dict[str, str], dict[str, str]]:
    table = models.AdminArea.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.code, table.c.name, table.c.parent_code).where(
            table.c.territory_id == territory_id)).all()
    return ({r.code: r.name for r in rows},
            {r.code: r.parent_code for r in rows if r.parent_code})


def grid_workers(engine: Engine, territory_id: int) -> dict[str, str]:
    """Grid code → the names of its grid workers (``、``-separated, by name)."""
    staff, links = models.Staff.__table__, models.StaffGrid.__table__
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


# --- writers --------------------------------------------------------------------------------


def _projected(table: gpd.GeoDataFrame, crs: OutputCrs) -> gpd.GeoDataFrame:
    """The table in ``crs`` (the WGS84 table itself when that is what is asked)."""
    if crs.is_wgs84:
        return table
    return table.to_crs(crs.crs)


def _decimals(crs: OutputCrs) -> int:
    """Decimals that keep a coordinate to a millimetre or so: 8 in degrees, 3 in metres
    (7 for WGS84 GeoJSON, as RFC 7946 suggests, about 1 cm)."""
    return 8 if crs.is_geographic else 3


def write_gpkg(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
               options: Options) -> None:
    pyogrio.write_dataframe(_projected(table, options.crs), path, layer="grids",
                            driver="GPKG",
                            layer_options={"DESCRIPTION": meta.get("description", "")})


def dbf_field_name(name: str, codec: str, taken: set[str] | frozenset[str] = frozenset()
                   ) -> str:
    """``name`` as a dBASE field name: at most 10 bytes in ``codec``, cut between characters
    (never through one), only letters, digits and ``_`` (what ArcGIS accepts; a Chinese
    character is a letter), and not one of ``taken`` (a digit replaces the last character
    until it is free)."""
    cleaned = re.sub(r"[^\w]+", "", name) or "field"
    if cleaned[0].isdigit() or cleaned[0] == "_":
        cleaned = "f" + cleaned

    def cut(text: str, limit: int) -> str:
        out = ""
        for ch in text:
            if len((out + ch).encode(codec, errors="replace")) > limit:
                break
            out += ch
        return out

    candidate = cut(cleaned, DBF_NAME_BYTES)
    serial = 1
    while candidate.lower() in {t.lower() for t in taken}:
        suffix = str(serial)
        candidate = cut(cleaned, DBF_NAME_BYTES - len(suffix)) + suffix
        serial += 1
    return candidate


def shapefile_fields(encoding: str = "utf-8") -> dict[str, str]:
    """Table field → ``.dbf`` field name: :data:`SHAPEFILE_FIELDS` (ASCII) for UTF-8, the
    Chinese names of :data:`DBF_NAMES_ZH` (each at most 10 GBK bytes) for GBK."""
    if encoding == "utf-8":
        return dict(SHAPEFILE_FIELDS)
    codec = ENCODINGS[encoding][0]
    out: dict[str, str] = {}
    for field in TABLE_FIELDS:
        out[field] = dbf_field_name(DBF_NAMES_ZH.get(field, field), codec, set(out.values()))
    return out


def _cut_text(text: Any, codec: str, limit: int = DBF_TEXT_BYTES,
              replaced: set[str] | None = None) -> Any:
    """``text`` as ``codec`` can hold it (characters it has no code for become "?", noted in
    ``replaced``), cut to at most ``limit`` bytes on a character boundary, marked "…"."""
    if not isinstance(text, str):
        return text
    raw = text.encode(codec, errors="replace")
    if replaced is not None and raw.decode(codec) != text:
        replaced.update(ch for ch in text if ch.encode(codec, errors="replace") == b"?"
                        and ch != "?")
        text = raw.decode(codec)
    if len(raw) <= limit:
        return text
    room = limit - len("…".encode(codec))
    return raw[:room].decode(codec, errors="ignore") + "…"


def _cut_utf8(text: Any, limit: int = DBF_TEXT_BYTES) -> Any:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary, marked "…"."""
    return _cut_text(text, "utf-8", limit)


def field_map_text(fields: dict[str, str], options: Options, replaced: set[str]) -> str:
    """The zip's ``grids_fields.txt``: which ``.dbf`` field holds which table field."""
    lines = [
        "grids.shp 字段对照表 field map",
        f"编码 encoding: {ENCODINGS[options.encoding][1]} (.cpg); "
        f"坐标系 CRS: {options.crs.label} {options.crs.crs.name} (.prj)",
        "dBASE 字段名最多 10 字节 field names are at most 10 bytes; "
        f"文本最多 {DBF_TEXT_BYTES} 字节 text at most {DBF_TEXT_BYTES} bytes (cut with …)",
        "",
        "dbf\tfield\t说明 meaning",
    ]
    lines += [f"{dbf}\t{field}\t{FIELD_MEANINGS.get(field, '')}"
              for field, dbf in fields.items()]
    if replaced:
        lines += ["", f"{ENCODINGS[options.encoding][1]} 无法表示的字符已替换为 ? "
                      f"characters {options.encoding} cannot hold, written as ?: "
                      + " ".join(sorted(replaced)) + " (use encoding=utf-8 to keep them)"]
    return "\r\n".join(lines) + "\r\n"


#: The dBASE header's language driver id for code page 936 (GBK), for readers without .cpg.
_LDID = {"gbk": 0x4D}


def write_shapefile_zip(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
                        options: Options) -> None:
    """A zip of ``grids.shp`` and its sidecars and ``grids_fields.txt`` (the field map).

    ``.cpg`` says ``UTF-8`` or ``936`` (GBK, with the matching language driver id in the
    ``.dbf`` header); ``.prj`` is the ESRI WKT of the export's CRS. Field names follow
    :func:`shapefile_fields`; text over 254 bytes is cut.
    """
    codec, cpg = ENCODINGS[options.encoding]
    fields = shapefile_fields(options.encoding)
    folder = path.parent / (path.name + ".parts")
    folder.mkdir()
    frame = _projected(table, options.crs).rename(columns=fields)
    replaced: set[str] = set()
    for column in frame.columns:
        if column != frame.geometry.name and not pd.api.types.is_numeric_dtype(
                frame[column].dtype):
            frame[column] = frame[column].map(
                lambda v: _cut_text(v, codec, replaced=replaced))
    pyogrio.write_dataframe(frame, folder / "grids.shp", driver="ESRI Shapefile",
                            encoding=codec.upper())
    (folder / "grids.prj").write_text(options.crs.esri_wkt(), encoding="ascii")
    (folder / "grids.cpg").write_text("936" if options.encoding == "gbk" else cpg,
                                      encoding="ascii")
    if options.encoding in _LDID:
        with (folder / "grids.dbf").open("r+b") as dbf:
            dbf.seek(29)
            dbf.write(bytes([_LDID[options.encoding]]))
    (folder / "grids_fields.txt").write_bytes(
        field_map_text(fields, options, replaced).encode("utf-8-sig"))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.iterdir()):
            zf.write(part, arcname=part.name)
            part.unlink()
    folder.rmdir()


def write_geojson(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
                  options: Options) -> None:
    """GeoJSON; each feature's id is the grid code. WGS84: RFC 7946, 7 decimals. Another
    CRS: named in a ``crs`` member (the 2008 GeoJSON way, which GDAL and QGIS read),
    x = easting/longitude first, 3 decimals in metres or 8 in degrees."""
    extra: dict[str, Any] = {"name": "grids"}
    precision = 7
    if not options.crs.is_wgs84:
        name = (f"urn:ogc:def:crs:EPSG::{options.crs.epsg}" if options.crs.epsg is not None
                else options.crs.crs.to_wkt())
        extra["crs"] = {"type": "name", "properties": {"name": name}}
        precision = _decimals(options.crs)
    path.write_bytes(feature_collection(_projected(table, options.crs), id_column="code",
                                        precision=precision,
                                        extra={**extra, **meta.get("geojson", {})}))


def _centroids(table: gpd.GeoDataFrame, crs: OutputCrs) -> tuple[np.ndarray, np.ndarray]:
    """Each grid's centroid (computed in the metres of its Gauss–Krüger zone) in ``crs``."""
    if table.empty:
        return np.empty(0), np.empty(0)
    zone = metric_crs_for(tuple(float(v) for v in table.total_bounds))  # type: ignore[arg-type]
    centres = gpd.GeoSeries(table.geometry.to_crs(zone).centroid, crs=zone).to_crs(crs.crs)
    digits = _decimals(crs)
    return (np.round(shapely.get_x(centres.to_numpy()), digits),
            np.round(shapely.get_y(centres.to_numpy()), digits))


def _sheet_frame(table: gpd.GeoDataFrame, crs: OutputCrs) -> pd.DataFrame:
    frame = pd.DataFrame({field: table[field] for field, _, _ in SHEET_COLUMNS
                          if field in table})
    # The flags in Chinese with their reason (跨越河流/山脊/铁路（crosses 白沙河: …）).
    frame.insert(list(frame.columns).index("flags") + 1, "flag_text", [
        flag_text([f for f in str(fl or "").split(",") if f], reason)
        for fl, reason in zip(table["flags"], table["flag_reason"], strict=True)])
    frame["kind"] = frame["kind"].map(lambda k: KIND_LABELS.get(k, k))
    frame["area_m2"] = frame["area_m2"].round(1)
    frame["centroid_x"], frame["centroid_y"] = _centroids(table, crs)
    frame["crs"] = crs.label
    return frame


def _no_formula(value: Any) -> Any:
    """Text a spreadsheet would run as a formula, quoted so it stays text (OWASP)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
              options: Options) -> None:
    """UTF-8 with a byte-order mark (so Excel reads the Chinese), one row per grid; the
    centroid and the outline (:data:`WKT_COLUMN`) in the export's CRS."""
    frame = _sheet_frame(table, options.crs)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column].dtype):
            frame[column] = frame[column].map(_no_formula)
    frame.columns = [heading(zh, en) for _, zh, en in SHEET_COLUMNS]
    frame[WKT_COLUMN] = shapely.to_wkt(_projected(table, options.crs).geometry.to_numpy(),
                                       rounding_precision=_decimals(options.crs), trim=True)
    frame.to_csv(path, index=False, encoding="utf-8-sig")


def _display_width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


#: Number formats of the sheet's numeric columns.
NUMBER_FORMATS = {"households": "#,##0", "households_estimated": "#,##0", "population": "#,##0",
                  "area_m2": "#,##0.0", "barrier_inside_m": "#,##0.0"}
#: Number formats of the centroid columns: millimetres, or 8 decimals of a degree.
CENTROID_FORMATS = {True: "0.00000000", False: "0.000"}
TEXT_COLUMNS = {"code", "village_code", "town_code"}


def write_xlsx(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
               options: Options) -> None:
    """One sheet of grids (header frozen, filters, widths, number formats, the centroid in
    the export's CRS) and one 说明 sheet."""
    frame = _sheet_frame(table, options.crs)
    number_formats = dict.fromkeys(("centroid_x", "centroid_y"),
                                   CENTROID_FORMATS[options.crs.is_geographic])
    number_formats.update(NUMBER_FORMATS)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "网格 grids"
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    for col, (_, zh, en) in enumerate(SHEET_COLUMNS, start=1):
        cell = sheet.cell(row=1, column=col, value=heading(zh, en))
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(vertical="center", wrap_text=True)
    for row, record in enumerate(frame.itertuples(index=False), start=2):
        for col, ((field, _, _), value) in enumerate(zip(SHEET_COLUMNS, record, strict=True),
                                                     start=1):
            if pd.isna(value):
                value = None
            elif hasattr(value, "item"):
                value = value.item()
            cell = sheet.cell(row=row, column=col, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever the text starts with
            if field in number_formats:
                cell.number_format = number_formats[field]
            elif field in TEXT_COLUMNS:
                cell.number_format = "@"
    for col, (field, zh, en) in enumerate(SHEET_COLUMNS, start=1):
        widest = max([_display_width(heading(zh, en)) // 2 + 2,
                      *(_display_width(v) for v in frame[field])])
        sheet.column_dimensions[get_column_letter(col)].width = min(60, widest + 2)
        if field == "boundary_text":
            for cells in sheet.iter_rows(min_row=2, min_col=col, max_col=col):
                cells[0].alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "C2"  # the header and the code and name stay in view
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(SHEET_COLUMNS))}{len(frame) + 1}"
    about = book.create_sheet("说明 about")
    about_rows = {**meta.get("about", {}),
                  "坐标系 CRS": f"{options.crs.label} {options.crs.crs.name}"}
    for row, (key, value) in enumerate(about_rows.items(), start=1):
        about.cell(row=row, column=1, value=key).font = Font(bold=True)
        about.cell(row=row, column=2, value=value).data_type = "s"
    about.column_dimensions["A"].width = 28
    about.column_dimensions["B"].width = 60
    book.save(path)


# --- CAD and Google Earth ------------------------------------------------------------------

#: Characters AutoCAD does not allow in a layer name.
_CAD_LAYER_BAD = re.compile(r'[<>/\\":;?*|=`,\x00-\x1f]+')


def cad_layer(village_code: str, village_name: str) -> str:
    """The DXF layer of a village's grids: ``<village code>_<village name>``."""
    return _CAD_LAYER_BAD.sub("_", f"{village_code}_{village_name}".strip("_ ")) or "grids"


#: The suffix of the layer that holds a village's code labels.
LABEL_LAYER_SUFFIX = "_编码"


def _dxf_escape(error: UnicodeError) -> tuple[str, int]:
    """A character GBK lacks, as AutoCAD's ``\\U+XXXX`` escape."""
    assert isinstance(error, UnicodeEncodeError)
    bad = error.object[error.start:error.end]
    return "".join(f"\\U+{ord(ch):04X}" for ch in bad), error.end


codecs.register_error("gridmap-dxf", _dxf_escape)


def write_dxf(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
              options: Options) -> None:
    """AutoCAD DXF (R2000, through GDAL): each grid's rings as closed polylines on a layer
    per village (:func:`cad_layer`), its code as a text label (GDAL's LABEL style, an
    MTEXT centred inside the grid) on the village's ``_编码`` layer. Text is GBK (code page
    ANSI_936, what AutoCAD in China reads); a character GBK lacks is a ``\\U+XXXX`` escape."""
    frame = _projected(table, options.crs)
    geoms = frame.geometry.to_numpy()
    layers = [cad_layer(str(v), str(n or "")) for v, n in zip(
        frame["village_code"], frame["village_name"], strict=True)]
    heights = np.clip(np.sqrt(shapely.area(geoms)) / 12.0,
                      *((1e-5, 2e-4) if options.crs.is_geographic else (1.0, 20.0)))
    anchors = shapely.point_on_surface(geoms)
    styles = [f'LABEL(f:"Arial",t:"{code}",s:{h:.6g}g,p:5,c:#000000)'
              for code, h in zip(frame["code"], heights, strict=True)]
    cad = gpd.GeoDataFrame({
        "Layer": layers + [layer + LABEL_LAYER_SUFFIX for layer in layers],
        "OGR_STYLE": [None] * len(layers) + styles,
    }, geometry=[*geoms, *anchors], crs=frame.crs)
    pyogrio.set_gdal_config_options({"DXF_WRITE_HATCH": "NO"})  # polygons as polylines
    plain = path.with_suffix(".utf8.dxf")
    pyogrio.write_dataframe(cad, plain, driver="DXF")
    text = plain.read_text(encoding="utf-8").replace(
        "$DWGCODEPAGE\n  3\nANSI_1252", "$DWGCODEPAGE\n  3\nANSI_936", 1)
    path.write_bytes(text.encode("gbk", errors="gridmap-dxf"))
    plain.unlink()


def write_kml(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
              options: Options) -> None:
    """KML 2.2 for Google Earth and 奥维 (always WGS84, as KML is): a folder per village, a
    placemark per grid (id = code, ``<name>`` = the grid's name), the other fields as
    ExtendedData, 8 decimals."""
    if not options.crs.is_wgs84:
        raise CRSError(f"crs={options.crs.label}: KML is WGS84 longitude/latitude by its "
                       "standard; leave crs out (or use wgs84) KML 只能是 WGS84")
    ns = "http://www.opengis.net/kml/2.2"
    root = ET.Element("kml", xmlns=ns)
    doc = ET.SubElement(root, "Document")
    ET.SubElement(doc, "name").text = str(meta.get("title", "网格 grids"))
    style = ET.SubElement(doc, "Style", id="grid")
    line = ET.SubElement(style, "LineStyle")
    ET.SubElement(line, "color").text = "ff7f00e4"
    ET.SubElement(line, "width").text = "2"
    ET.SubElement(ET.SubElement(style, "PolyStyle"), "color").text = "227f00e4"
    fields = [f for f in TABLE_FIELDS if f in table]
    folders: dict[str, ET.Element] = {}

    def ring(parent: ET.Element, tag: str, coords: Any) -> None:
        box = ET.SubElement(ET.SubElement(parent, tag), "LinearRing")
        ET.SubElement(box, "coordinates").text = " ".join(
            f"{x:.8f},{y:.8f}" for x, y in np.asarray(coords)[:, :2])

    for record, geom in zip(table[fields].to_dict("records"), table.geometry, strict=True):
        village = f"{record.get('village_name') or ''} {record.get('village_code')}".strip()
        if village not in folders:
            folders[village] = ET.SubElement(doc, "Folder")
            ET.SubElement(folders[village], "name").text = village
        mark = ET.SubElement(folders[village], "Placemark", id=str(record["code"]))
        ET.SubElement(mark, "name").text = str(record.get("name") or record["code"])
        ET.SubElement(mark, "description").text = (
            f"{record['code']} · {record.get('households')} 户 · "
            f"{record.get('boundary_text') or ''}")
        ET.SubElement(mark, "styleUrl").text = "#grid"
        data = ET.SubElement(mark, "ExtendedData")
        for field in fields:
            if field == "name":  # the placemark's <name> (readers fold the two together)
                continue
            value = record[field]
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                value = ""
            ET.SubElement(ET.SubElement(data, "Data", name=field), "value").text = str(value)
        polygons = list(geom.geoms) if isinstance(geom, shapely.MultiPolygon) else [geom]
        parent = ET.SubElement(mark, "MultiGeometry") if len(polygons) > 1 else mark
        for polygon in polygons:
            shape = ET.SubElement(parent, "Polygon")
            ring(shape, "outerBoundaryIs", polygon.exterior.coords)
            for hole in polygon.interiors:
                ring(shape, "innerBoundaryIs", hole.coords)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


FORMATS: dict[str, Format] = {
    "gpkg": Format(".gpkg", "application/geopackage+sqlite3", write_gpkg),
    "shp.zip": Format(".shp.zip", "application/zip", write_shapefile_zip),
    "geojson": Format(".geojson", "application/geo+json", write_geojson),
    "csv": Format(".csv", "text/csv; charset=utf-8", write_csv),
    "xlsx": Format(".xlsx",
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   write_xlsx),
    "dxf": Format(".dxf", "image/vnd.dxf", write_dxf, default_crs="auto"),
    "kml": Format(".kml", "application/vnd.google-earth.kml+xml", write_kml),
}


def write_export(table: gpd.GeoDataFrame, fmt: str, path: Path,
                 meta: dict[str, Any] | None = None, options: Options | None = None) -> Path:
    """Write the grid table (WGS84) to ``path`` in format ``fmt`` (a key of :data:`FORMATS`),
    in the CRS and encoding of ``options`` (WGS84, UTF-8 by default)."""
    if fmt not in FORMATS:
        raise GridmapError(f"unknown export format {fmt!r}; use one of "
                           f"{', '.join(FORMATS)}")
    path.unlink(missing_ok=True)
    FORMATS[fmt].write(table, path, meta or {}, options or Options())
    return path


# --- a stored plan --------------------------------------------------------------------------


def _territory_name(engine: Engine, territory_id: int) -> str:
    return str(territory_row(engine, territory_id).name)


def _file_part(text: str) -> str:
    """Text safe inside a file name: no path separators, quotes or control characters."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f;]+', "_", text).strip(" ._")
    return re.sub(r"\s+", "_", cleaned)[:80]


def export_filename(territory_id: int, territory_name: str, version: int, fmt: str,
                    tag: str = "") -> tuple[str, str]:
    """The file name (``grids_<territory>_v<version>[_<crs tag>].<fmt>``) and an ASCII
    fallback.

    The territory part is its name; the fallback uses the territory id instead
    when the name is not plain ASCII (or is empty once cleaned). ``tag`` names a CRS
    other than WGS84 (``EPSG4549``).
    """
    suffix = FORMATS[fmt].suffix
    name = _file_part(territory_name) or str(territory_id)
    tail = f"_{tag}" if tag else ""
    full = f"grids_{name}_v{version}{tail}{suffix}"
    ascii_name = full if full.isascii() else f"grids_{territory_id}_v{version}{tail}{suffix}"
    return full, ascii_name


def content_disposition(filename: str, ascii_fallback: str) -> str:
    """``attachment`` with a plain filename and, for non-ASCII names, RFC 5987 ``filename*``."""
    value = f'attachment; filename="{ascii_fallback}"'
    if filename != ascii_fallback:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def _meta(plan: PlanInfo, territory_name: str) -> dict[str, Any]:
    exported = datetime.now(UTC).replace(microsecond=0).isoformat()
    published = plan.published_at.isoformat() if plan.published_at is not None else ""
    return {
        "description": f"Grids of {territory_name}, plan {plan.id} v{plan.version} "
                       f"({plan.status})",
        "geojson": {"plan": {"id": plan.id, "territory_id": plan.territory_id,
                             "territory": territory_name, "version": plan.version,
                             "status": plan.status}},
        "about": {
            "区域 territory": f"{territory_name} ({plan.territory_id})",
            "方案 plan": f"{plan.id} v{plan.version}",
            "状态 status": plan.status,
            "发布时间 published": published,
            "导出时间 exported": exported,
            "网格数 grids": str(plan.n_grids),
            "标记 flags": "why a grid is outside the household band or otherwise special; "
                          "comma-separated, empty for a regular grid; 标记说明 names them in "
                          "Chinese with their reason (crosses_barrier 跨越河流/山脊/铁路: which "
                          "one, and why)",
            "网格内河流/山脊/铁路 barrier inside": "metres of river, ridge or railway inside "
                                             "the grid, not along its boundary",
        },
    }


@dataclass(frozen=True)
class Export:
    """A written export: where it is, what to call it, what it is."""

    path: Path
    filename: str
    ascii_filename: str
    media_type: str


def plan_output_crs(engine: Engine, plan_id: int, value: str | int | None,
                    table: gpd.GeoDataFrame | None = None) -> OutputCrs:
    """The CRS ``value`` asks for, for plan ``plan_id``: ``auto`` is its territory's 3°
    Gauss–Krüger zone (``metric_epsg``, from the centre of the territory), and any other
    system must cover the plan's grids (``table``, read when not given)."""
    plan = get_plan(engine, plan_id)
    zone = int(territory_row(engine, plan.territory_id).metric_epsg)
    grids = read_grids(engine, plan_id) if table is None else table
    bounds = None if grids.empty else tuple(float(v) for v in grids.total_bounds)
    return output_crs(value, bounds=bounds, zone_epsg=zone)  # type: ignore[arg-type]


def export_plan(engine: Engine, plan_id: int, fmt: str, folder: Path,
                areas: tuple[str, ...] | None = None, *, crs: str | int | None = None,
                encoding: str = "utf-8") -> Export:
    """Write plan ``plan_id`` into ``folder`` in format ``fmt`` (``areas``: only the grids
    within these codes) in coordinate system ``crs`` (see :func:`gis.crs.output_crs`;
    WGS84 by default) and, for a Shapefile, text ``encoding``; the caller removes it."""
    if fmt not in FORMATS:
        raise GridmapError(f"unknown export format {fmt!r}; use one of "
                           f"{', '.join(FORMATS)}")
    plan = get_plan(engine, plan_id)
    table = export_table(engine, plan_id, areas=areas)
    options = Options(plan_output_crs(
        engine, plan_id, FORMATS[fmt].default_crs if crs is None else crs, table), encoding)
    territory_name = _territory_name(engine, plan.territory_id)
    filename, ascii_filename = export_filename(plan.territory_id, territory_name,
                                               plan.version, fmt, options.crs.tag)
    path = write_export(table, fmt, folder / ascii_filename, _meta(plan, territory_name),
                        options)
    return Export(path, filename, ascii_filename, FORMATS[fmt].media_type)


# --- any table as a sheet (the cross-walk of a plan with a department's units) ---------------

SHEET_TYPES = {"csv": "text/csv; charset=utf-8",
               "xlsx": FORMATS["xlsx"].media_type}


def write_sheet(frame: pd.DataFrame, columns: tuple[tuple[str, str, str], ...], path: Path,
                fmt: str, *, title: str, about: dict[str, str] | None = None) -> Path:
    """``frame``'s ``columns`` (field, Chinese, English heading) as CSV (UTF-8 with BOM) or
    XLSX (header frozen, filters, widths; a 说明 sheet of ``about``); text never a formula."""
    table = pd.DataFrame({field: frame[field] for field, _, _ in columns})
    headings = [heading(zh, en) for _, zh, en in columns]
    if fmt == "csv":
        for column in table.columns:
            if not pd.api.types.is_numeric_dtype(table[column].dtype):
                table[column] = table[column].map(_no_formula)
        table.columns = headings
        table.to_csv(path, index=False, encoding="utf-8-sig")
        return path
    if fmt != "xlsx":
        raise GridmapError(f"unknown sheet format {fmt!r}; use csv or xlsx")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    for col, text in enumerate(headings, start=1):
        cell = sheet.cell(row=1, column=col, value=text)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for row, record in enumerate(table.itertuples(index=False), start=2):
        for col, value in enumerate(record, start=1):
            if value is None or (isinstance(value, float) and pd.isna(value)):
                value = None
            elif hasattr(value, "item"):
                value = value.item()
            cell = sheet.cell(row=row, column=col, value=value)
            if isinstance(value, str):
                cell.data_type = "s"
    for col, text in enumerate(headings, start=1):
        widest = max([_display_width(text) // 2 + 2,
                      *(_display_width(v) for v in table.iloc[:, col - 1])])
        sheet.column_dimensions[get_column_letter(col)].width = min(60, widest + 2)
    sheet.freeze_panes = "B2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(table) + 1}"
    notes = book.create_sheet("说明 about")
    for row, (key, value) in enumerate((about or {}).items(), start=1):
        notes.cell(row=row, column=1, value=key).font = Font(bold=True)
        notes.cell(row=row, column=2, value=value).data_type = "s"
    book.save(path)
    return path
