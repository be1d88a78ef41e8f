"""What the router is given, checked: grids as valid WGS84 polygons with text codes, and points
converted to WGS84, the rows that are not usable named."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

from events.router_cells import BoolArray, FloatArray
from gis import crs as crsmod
from gis.china import CHINA_LAT, CHINA_LON, check_china
from gis.errors import CoordinateError, CRSError, LayerError


def prepare_grids(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Check the grids and return them in WGS84 with text codes and valid polygons."""
    if not isinstance(grids, gpd.GeoDataFrame):
        raise LayerError(f"grids must be a GeoDataFrame, not {type(grids).__name__}",
                         layer="grids")
    if len(grids) == 0:
        raise LayerError("no grids: the layer is empty", layer="grids")
    if "code" not in grids.columns:
        found = ", ".join(str(c) for c in grids.columns if c != grids.geometry.name)
        raise LayerError(f"grids need a `code` column with each grid's code (found: {found}); "
                         "name the column that holds it", layer="grids")
    if grids.crs is None:
        raise CRSError("the grids have no coordinate system (CRS); set one, e.g. "
                       "grids.set_crs('EPSG:4326')")
    grids = grids.reset_index(drop=True)
    geoms = np.asarray(grids.geometry.to_numpy(), dtype=object)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    _fail_rows(empty, "have no geometry")
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
    _fail_rows(~polygonal & ~empty, "are not polygons")
    codes = grids["code"].astype("string").str.strip().str.replace(r"\.0$", "", regex=True)
    _fail_rows((codes.isna() | (codes == "")).to_numpy(dtype=bool), "have no code")
    try:
        source = crsmod.parse_coord_sys(grids.crs)
    except CRSError as exc:
        raise CRSError(f"the grids' coordinate system is not usable: {exc.message}") from exc
    wgs = crsmod.transform_geometries(shapely.force_2d(geoms), source, crsmod.WGS84)
    bounds = shapely.bounds(wgs)
    check_china(np.concatenate([bounds[:, 0], bounds[:, 2]]),
                np.concatenate([bounds[:, 1], bounds[:, 3]]),
                what=f"grids (read as {source.name})")
    invalid = np.flatnonzero(~shapely.is_valid(wgs))
    if invalid.size:
        fixed = shapely.make_valid(wgs[invalid])
        for j, geom in zip(invalid, fixed, strict=True):
            if shapely.get_type_id(geom) == 7:  # keep the polygons of a collection
                parts = shapely.get_parts(geom)
                geom = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), [3, 6])])
            if geom.is_empty or shapely.get_type_id(geom) not in (3, 6):
                raise LayerError("invalid polygon that collapses to nothing when repaired",
                                 layer="grids", row=int(j))
            wgs[j] = geom
    out = gpd.GeoDataFrame(grids.drop(columns=grids.geometry.name), geometry=wgs,
                           crs=crsmod.WGS84)
    out["code"] = codes.astype(object).to_numpy()
    return out


def points_to_wgs84(x: ArrayLike, y: ArrayLike, coord_sys: crsmod.CoordSysLike, *,
                    row_numbers: Sequence[int] | ArrayLike | None = None
                    ) -> tuple[FloatArray, FloatArray]:
    """Convert points to WGS84 lon/lat, checking them on the way (as :meth:`route_points`).

    Raises :class:`CoordinateError` naming the rows (``row_numbers``, else 0-based positions)
    whose coordinates are missing, NaN or infinite, lie outside China (before conversion for
    lon/lat systems, after it for all), or cannot be converted; :class:`CRSError` for an
    unknown ``coord_sys``.
    """
    cs = crsmod.parse_coord_sys(coord_sys)
    what = f"coordinates in {cs.name}"
    xa, ya = _as_1d(x, y)
    names = _row_names(row_numbers, len(xa))
    _require_finite_rows(xa, ya, what, names)
    if cs.is_geographic:
        _require_china_rows(xa, ya, what, names)
    try:
        lon, lat = crsmod.transform(xa, ya, cs, crsmod.WGS84)
    except CoordinateError:
        lon, lat = _transform_each(xa, ya, cs)  # NaN where it fails, named below
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if bad.any():
        raise CoordinateError(
            f"{what}: {int(bad.sum())} of {bad.size} points cannot be converted to WGS84 "
            f"(rows {_bad_rows(bad, names)}); check that they really are in {cs.name}")
    _require_china_rows(lon, lat, f"{what} (converted to WGS84)", names)
    return lon, lat


def _fail_rows(mask: BoolArray, what: str) -> None:
    if mask.any():
        rows = np.flatnonzero(mask)
        raise LayerError(f"{rows.size} grids {what} (rows {_rows_text(rows)})", layer="grids")


def _rows_text(rows: Sequence[Any] | NDArray[Any], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in list(rows[:limit]))
    return shown + (f", … ({len(rows)} in all)" if len(rows) > limit else "")


def _as_1d(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    try:
        xa = np.atleast_1d(np.asarray(x, dtype=np.float64)).ravel()
        ya = np.atleast_1d(np.asarray(y, dtype=np.float64)).ravel()
    except (TypeError, ValueError) as exc:
        raise CoordinateError(f"coordinates must be numbers: {exc}") from exc
    if xa.shape != ya.shape:
        raise CoordinateError(f"x/longitude and y/latitude have different lengths "
                              f"({xa.size} and {ya.size})")
    return xa, ya


def _row_names(row_numbers: Sequence[int] | ArrayLike | None, n: int) -> NDArray[Any] | None:
    if row_numbers is None:
        return None
    names = np.asarray(row_numbers)
    if names.shape != (n,):
        raise ValueError(f"row_numbers must have one entry per point ({n}), got {names.shape}")
    return names


def _bad_rows(mask: BoolArray, names: NDArray[Any] | None) -> str:
    rows = np.flatnonzero(mask)
    return _rows_text(rows if names is None else names[rows])


def _require_finite_rows(x: FloatArray, y: FloatArray, what: str,
                         names: NDArray[Any] | None) -> None:
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise CoordinateError(
            f"{what}: {int(bad.sum())} of {bad.size} points have no usable coordinates "
            f"(missing, NaN or infinite) in rows {_bad_rows(bad, names)}")


def _require_china_rows(x: FloatArray, y: FloatArray, what: str,
                        names: NDArray[Any] | None) -> None:
    lon0, lon1 = CHINA_LON
    lat0, lat1 = CHINA_LAT
    outside = (x < lon0) | (x > lon1) | (y < lat0) | (y > lat1)
    if not outside.any():
        return
    swapped = (x >= lat0) & (x <= lat1) & (y >= lon0) & (y <= lon1)
    hint = ("; they look like (latitude, longitude): swap the columns"
            if swapped[outside].all() else
            "; check the coordinate system and the axis order (x = longitude, y = latitude)")
    raise CoordinateError(
        f"{what}: {int(outside.sum())} of {outside.size} points lie outside China "
        f"(lon {lon0}..{lon1}, lat {lat0}..{lat1}) in rows {_bad_rows(outside, names)}{hint}")


def checked_lonlat(lon: ArrayLike, lat: ArrayLike, what: str, names: NDArray[Any] | None
                    ) -> tuple[FloatArray, FloatArray]:
    x, y = _as_1d(lon, lat)
    _require_finite_rows(x, y, what, names)
    _require_china_rows(x, y, what, names)
    return x, y


def _transform_each(x: FloatArray, y: FloatArray, cs: crsmod.CoordSys
                    ) -> tuple[FloatArray, FloatArray]:
    """Transform to WGS84 leaving NaN where a point cannot be transformed."""
    assert cs.crs is not None  # the obfuscated systems never fail
    t = pyproj.Transformer.from_crs(cs.crs, crsmod.WGS84, always_xy=True)
    lon, lat = t.transform(x, y, errcheck=False)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
