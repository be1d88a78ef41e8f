"""The export formats by name, and writing the grid table in one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd

from gis.errors import GridmapError
from gis.exports.cad import write_dxf, write_kml
from gis.exports.options import Format, Options
from gis.exports.shapefile import write_shapefile_zip
from gis.exports.sheets import XLSX_TYPE, write_csv, write_xlsx
from gis.exports.vector import write_geojson, write_gpkg

FORMATS: dict[str, Format] = {
    "gpkg": Format(".gpkg", "application/geopackage+sqlite3", write_gpkg),
    "shp.zip": Format(".shp.zip", "application/zip", write_shapefile_zip),
    "geojson": Format(".geojson", "application/geo+json", write_geojson),
    "csv": Format(".csv", "text/csv; charset=utf-8", write_csv),
    "xlsx": Format(".xlsx", XLSX_TYPE, write_xlsx),
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
