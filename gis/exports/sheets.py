"""CSV and XLSX exports: the grid table, or any table, as a sheet (text never a formula)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from gis.errors import GridmapError
from gis.exports.options import Options, decimals, projected
from gis.names import KIND_NAMES, flag_text
from gis.zones import OutputCrs, metric_crs_for

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


def heading(chinese: str, english: str) -> str:
    """A column heading as the CSV and XLSX show it: Chinese, then English."""
    return f"{chinese} {english}"


def _centroids(table: gpd.GeoDataFrame, crs: OutputCrs) -> tuple[np.ndarray, np.ndarray]:
    """Each grid's centroid (computed in the metres of its Gauss–Krüger zone) in ``crs``."""
    if table.empty:
        return np.empty(0), np.empty(0)
    zone = metric_crs_for(tuple(float(v) for v in table.total_bounds))  # type: ignore[arg-type]
    centres = gpd.GeoSeries(table.geometry.to_crs(zone).centroid, crs=zone).to_crs(crs.crs)
    digits = decimals(crs)
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
    frame[WKT_COLUMN] = shapely.to_wkt(projected(table, options.crs).geometry.to_numpy(),
                                       rounding_precision=decimals(options.crs), trim=True)
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


#: The media types of a sheet.
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_TYPES = {"csv": "text/csv; charset=utf-8", "xlsx": XLSX_TYPE}


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
