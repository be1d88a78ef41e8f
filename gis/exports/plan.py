"""Exporting a stored plan: its CRS, its file's name and metadata, and the download's header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import geopandas as gpd
from sqlalchemy import Engine

from gis.errors import GridmapError
from gis.exports.formats import FORMATS, write_export
from gis.exports.options import Options
from gis.exports.table import export_table
from gis.plans import PlanInfo, get_plan, read_grids
from gis.store import territory_row
from gis.zones import OutputCrs, output_crs


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
    within these codes) in coordinate system ``crs`` (see :func:`gis.zones.output_crs`;
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
