"""GeoPackage and GeoJSON exports of the grid table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio

from gis.exports.options import Options, decimals, projected
from gis.geometry import feature_collection


def write_gpkg(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
               options: Options) -> None:
    pyogrio.write_dataframe(projected(table, options.crs), path, layer="grids",
                            driver="GPKG",
                            layer_options={"DESCRIPTION": meta.get("description", "")})


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
        precision = decimals(options.crs)
    path.write_bytes(feature_collection(projected(table, options.crs), id_column="code",
                                        precision=precision,
                                        extra={**extra, **meta.get("geojson", {})}))
