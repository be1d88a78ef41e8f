"""Export a plan's grids as files: GeoPackage, zipped Shapefile, GeoJSON, CSV and XLSX.

:func:`grid_table` builds the table every export (and the OGC API) serves: the
stored grid fields plus the names and codes of the grid's village/community and
town/street (from ``admin_areas``) and its grid workers (from ``staff`` and
``staff_grids``). :func:`write_export` writes it in one format;
:func:`export_plan` does both for a stored plan and names the file.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import pandas as pd
import pyogrio
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlalchemy import Engine, select

from gis import divisions, models
from gis.errors import GridmapError
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
#: The most bytes a dBASE text field holds; longer UTF-8 text is cut (with "…") there.
DBF_TEXT_BYTES = 254

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
)
#: Grid kinds as the sheet shows them.
KIND_LABELS = KIND_NAMES
#: Separator between several grid workers of one grid.
WORKER_SEPARATOR = "、"


@dataclass(frozen=True)
class Format:
    """One export format: its file suffix, media type and writer."""

    suffix: str
    media_type: str
    write: Callable[[gpd.GeoDataFrame, Path, dict[str, Any]], None]


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


def grid_table(engine: Engine, plan_id: int, *,
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


def _cut_utf8(text: Any, limit: int = DBF_TEXT_BYTES) -> Any:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary, marked "…"."""
    if not isinstance(text, str) or len(text.encode("utf-8")) <= limit:
        return text
    room = limit - len("…".encode())
    return text.encode("utf-8")[:room].decode("utf-8", errors="ignore") + "…"


def write_gpkg(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any]) -> None:
    pyogrio.write_dataframe(table, path, layer="grids", driver="GPKG",
                            layer_options={"DESCRIPTION": meta.get("description", "")})


def write_shapefile_zip(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any]) -> None:
    """A zip of ``grids.shp`` and its sidecars; ``.cpg`` says UTF-8, ``.prj`` is WGS84.

    Field names follow :data:`SHAPEFILE_FIELDS`; text over 254 bytes is cut.
    """
    folder = path.parent / (path.name + ".parts")
    folder.mkdir()
    frame = table.rename(columns=SHAPEFILE_FIELDS)
    for column in frame.columns:
        if column != frame.geometry.name and not pd.api.types.is_numeric_dtype(
                frame[column].dtype):
            frame[column] = frame[column].map(_cut_utf8)
    pyogrio.write_dataframe(frame, folder / "grids.shp", driver="ESRI Shapefile",
                            encoding="UTF-8")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.iterdir()):
            zf.write(part, arcname=part.name)
            part.unlink()
    folder.rmdir()


def write_geojson(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any]) -> None:
    """RFC 7946 GeoJSON (WGS84, 7 decimals); each feature's id is the grid code."""
    path.write_bytes(feature_collection(table, id_column="code",
                                        extra={"name": "grids", **meta.get("geojson", {})}))


def _sheet_frame(table: gpd.GeoDataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({field: table[field] for field, _, _ in SHEET_COLUMNS
                          if field in table})
    # The flags in Chinese with their reason (跨越河流/山脊/铁路（crosses 白沙河: …）).
    frame.insert(list(frame.columns).index("flags") + 1, "flag_text", [
        flag_text([f for f in str(fl or "").split(",") if f], reason)
        for fl, reason in zip(table["flags"], table["flag_reason"], strict=True)])
    frame["kind"] = frame["kind"].map(lambda k: KIND_LABELS.get(k, k))
    frame["area_m2"] = frame["area_m2"].round(1)
    return frame


def _no_formula(value: Any) -> Any:
    """Text a spreadsheet would run as a formula, quoted so it stays text (OWASP)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any]) -> None:
    """UTF-8 with a byte-order mark (so Excel reads the Chinese), one row per grid."""
    frame = _sheet_frame(table)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column].dtype):
            frame[column] = frame[column].map(_no_formula)
    frame.columns = [heading(zh, en) for _, zh, en in SHEET_COLUMNS]
    frame.to_csv(path, index=False, encoding="utf-8-sig")


def _display_width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


#: Number formats of the sheet's numeric columns.
NUMBER_FORMATS = {"households": "#,##0", "households_estimated": "#,##0", "population": "#,##0",
                  "area_m2": "#,##0.0", "barrier_inside_m": "#,##0.0"}
TEXT_COLUMNS = {"code", "village_code", "town_code"}


def write_xlsx(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any]) -> None:
    """One sheet of grids (header frozen, filters, widths, number formats) and one 说明 sheet."""
    frame = _sheet_frame(table)
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
            if field in NUMBER_FORMATS:
                cell.number_format = NUMBER_FORMATS[field]
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
    for row, (key, value) in enumerate(meta.get("about", {}).items(), start=1):
        about.cell(row=row, column=1, value=key).font = Font(bold=True)
        about.cell(row=row, column=2, value=value).data_type = "s"
    about.column_dimensions["A"].width = 28
    about.column_dimensions["B"].width = 60
    book.save(path)


FORMATS: dict[str, Format] = {
    "gpkg": Format(".gpkg", "application/geopackage+sqlite3", write_gpkg),
    "shp.zip": Format(".shp.zip", "application/zip", write_shapefile_zip),
    "geojson": Format(".geojson", "application/geo+json", write_geojson),
    "csv": Format(".csv", "text/csv; charset=utf-8", write_csv),
    "xlsx": Format(".xlsx",
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   write_xlsx),
}


def write_export(table: gpd.GeoDataFrame, fmt: str, path: Path,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write the grid table to ``path`` in format ``fmt`` (a key of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise GridmapError(f"unknown export format {fmt!r}; use one of "
                           f"{', '.join(FORMATS)}")
    path.unlink(missing_ok=True)
    FORMATS[fmt].write(table, path, meta or {})
    return path


# --- a stored plan --------------------------------------------------------------------------


def _territory_name(engine: Engine, territory_id: int) -> str:
    return str(territory_row(engine, territory_id).name)


def _file_part(text: str) -> str:
    """Text safe inside a file name: no path separators, quotes or control characters."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f;]+', "_", text).strip(" ._")
    return re.sub(r"\s+", "_", cleaned)[:80]


def export_filename(territory_id: int, territory_name: str, version: int, fmt: str
                    ) -> tuple[str, str]:
    """The file name (``grids_<territory>_v<version>.<fmt>``) and an ASCII fallback.

    The territory part is its name; the fallback uses the territory id instead
    when the name is not plain ASCII (or is empty once cleaned).
    """
    suffix = FORMATS[fmt].suffix
    name = _file_part(territory_name) or str(territory_id)
    full = f"grids_{name}_v{version}{suffix}"
    ascii_name = full if full.isascii() else f"grids_{territory_id}_v{version}{suffix}"
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


def export_plan(engine: Engine, plan_id: int, fmt: str, folder: Path,
                areas: tuple[str, ...] | None = None) -> Export:
    """Write plan ``plan_id`` into ``folder`` in format ``fmt`` (``areas``: only the grids
    within these codes); the caller removes it."""
    if fmt not in FORMATS:
        raise GridmapError(f"unknown export format {fmt!r}; use one of "
                           f"{', '.join(FORMATS)}")
    plan = get_plan(engine, plan_id)
    territory_name = _territory_name(engine, plan.territory_id)
    filename, ascii_filename = export_filename(plan.territory_id, territory_name,
                                               plan.version, fmt)
    path = write_export(grid_table(engine, plan_id, areas=areas), fmt, folder / ascii_filename,
                        _meta(plan, territory_name))
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
