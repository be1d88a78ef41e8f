"""Geometry for display: simplify a coverage keeping shared edges, write GeoJSON."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely


def simplify_coverage(gdf: gpd.GeoDataFrame, tolerance_m: float, metric_epsg: int
                      ) -> gpd.GeoDataFrame:
    """Simplify polygons that tile the plane together (grids) by ``tolerance_m`` metres.

    ``shapely.coverage_simplify`` moves each shared edge once, so neighbours stay
    gap- and overlap-free. Done in the metric CRS, returned in the input's CRS.
    """
    if tolerance_m <= 0 or gdf.empty:
        return gdf
    metric = gdf.geometry.to_crs(metric_epsg).to_numpy()
    simplified = shapely.coverage_simplify(metric, tolerance_m)
    out = gdf.copy()
    out.geometry = gpd.GeoSeries(simplified, crs=metric_epsg).to_crs(gdf.crs).to_numpy()
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if value is pd.NaT:
        return None
    return value


def feature_collection(gdf: gpd.GeoDataFrame, *, id_column: str | None = None,
                       precision: int = 7, extra: dict[str, Any] | None = None) -> bytes:
    """A GeoJSON FeatureCollection (RFC 7946, WGS84) as UTF-8 bytes."""
    geoms = shapely.to_geojson(shapely.set_precision(gdf.geometry.to_numpy(), 10**-precision,
                                                     mode="pointwise"))
    props = gdf.drop(columns=gdf.geometry.name).to_dict("records")
    features = []
    for p, g in zip(props, geoms, strict=True):
        feature: dict[str, Any] = {"type": "Feature"}
        if id_column is not None:
            feature["id"] = _jsonable(p[id_column])
        feature["properties"] = {k: _jsonable(v) for k, v in p.items()}
        feature["geometry"] = "@@GEOM@@"
        features.append(json.dumps(feature, ensure_ascii=False).replace('"@@GEOM@@"', g))
    head = {"type": "FeatureCollection", **(extra or {})}
    body = json.dumps(head, ensure_ascii=False)[:-1]
    return (body + ', "features": [' + ",".join(features) + "]}").encode("utf-8")


def for_basemap(gdf: gpd.GeoDataFrame, basemap_crs: str) -> gpd.GeoDataFrame:
    """WGS84 features shifted into the basemap's system (``wgs84``, ``gcj02`` for AMap/Tencent,
    ``bd09`` for Baidu), so that overlays line up with the streets drawn on its tiles; the
    frame keeps EPSG:4326 as its label since Leaflet reads every layer as lon/lat."""
    from gis.obfuscation import bd09_from_wgs84, gcj02_from_wgs84

    shift = {"wgs84": None, "gcj02": gcj02_from_wgs84, "bd09": bd09_from_wgs84}
    if basemap_crs not in shift:
        raise ValueError(f"unknown basemap system {basemap_crs!r}: use wgs84, gcj02 or bd09")
    forward = shift[basemap_crs]
    if forward is None or gdf.empty:
        return gdf

    def move(xy: np.ndarray) -> np.ndarray:
        lon, lat = forward(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    out = gdf.copy()
    out.geometry = shapely.transform(np.asarray(gdf.geometry.values), move)
    return out
