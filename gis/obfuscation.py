"""GCJ-02 (AMap, Tencent) and BD-09 (Baidu) to and from WGS84: arrays in, arrays out."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gis.coords import FloatArray, as_arrays

_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
_BD_DLON = 0.0065
_BD_DLAT = 0.006
# The "out of China" box inside which GCJ-02 is applied (the standard rule).
_GCJ_MIN_LON, _GCJ_MAX_LON = 72.004, 137.8347
_GCJ_MIN_LAT, _GCJ_MAX_LAT = 0.8293, 55.8271
# Metres per degree of latitude (mean); only used for convergence tests.
_M_PER_DEG = 111_320.0


def _out_of_china(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    return (lon < _GCJ_MIN_LON) | (lon > _GCJ_MAX_LON) | (lat < _GCJ_MIN_LAT) | (lat > _GCJ_MAX_LAT)


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 offset (degrees) to add to a WGS84 point inside China."""
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * pi * x) + 20.0 * np.sin(2.0 * pi * x)) * 2.0 / 3.0

    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    d_lat += common
    d_lat += (20.0 * np.sin(pi * y) + 40.0 * np.sin(pi * y / 3.0)) * 2.0 / 3.0
    d_lat += (160.0 * np.sin(pi * y / 12.0) + 320.0 * np.sin(pi * y / 30.0)) * 2.0 / 3.0

    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    d_lon += common
    d_lon += (20.0 * np.sin(pi * x) + 40.0 * np.sin(pi * x / 3.0)) * 2.0 / 3.0
    d_lon += (150.0 * np.sin(pi * x / 12.0) + 300.0 * np.sin(pi * x / 30.0)) * 2.0 / 3.0

    rad_lat = np.radians(lat)
    magic = 1.0 - _KRASOVSKY_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * pi)
    d_lon = (d_lon * 180.0) / (_KRASOVSKY_A / sqrt_magic * np.cos(rad_lat) * pi)
    return d_lon, d_lat


def _gcj02_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    d_lon, d_lat = _gcj_offset(lon, lat)
    outside = _out_of_china(lon, lat)
    return np.where(outside, lon, lon + d_lon), np.where(outside, lat, lat + d_lat)


def _bd09_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _invert(
    forward: Any,
    target_lon: FloatArray,
    target_lat: FloatArray,
    start_lon: FloatArray,
    start_lat: FloatArray,
    tol_m: float,
    max_iter: int,
) -> tuple[FloatArray, FloatArray]:
    """Solve ``forward(p) == target`` by fixed-point iteration from ``start``.

    The obfuscations are a point plus a small, slowly varying offset (its Jacobian is ~1e-3),
    so ``p <- p - (forward(p) - target)`` contracts by about a thousand times per step.
    Stops when every residual, in metres, is below ``tol_m`` (then takes one more step).
    """
    lon, lat = start_lon.copy(), start_lat.copy()
    cos_lat = np.cos(np.radians(target_lat))
    for _ in range(max_iter):
        f_lon, f_lat = forward(lon, lat)
        r_lon = f_lon - target_lon
        r_lat = f_lat - target_lat
        lon -= r_lon
        lat -= r_lat
        err_m = np.hypot(r_lon * cos_lat, r_lat) * _M_PER_DEG
        # NaN residuals (NaN input) count as converged: there is nothing to improve.
        if not np.any(err_m > tol_m):
            break
    return lon, lat


def gcj02_from_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 lon/lat to GCJ-02 (AMap, Tencent); points outside China are returned unchanged."""
    x, y = as_arrays(lon, lat)
    return _gcj02_forward(x, y)


def wgs84_from_gcj02(
    lon: ArrayLike, lat: ArrayLike, tol_m: float = 1e-3, max_iter: int = 30
) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 lon/lat to WGS84 by iterating the forward formula (residual below ``tol_m``)."""
    g_lon, g_lat = as_arrays(lon, lat)
    # First guess: subtract the offset evaluated at the GCJ-02 point (~ metres off).
    d_lon, d_lat = _gcj_offset(g_lon, g_lat)
    w_lon, w_lat = _invert(
        _gcj02_forward, g_lon, g_lat, g_lon - d_lon, g_lat - d_lat, tol_m, max_iter
    )
    # Points whose GCJ-02 value lies outside China were never shifted: pass them through.
    outside = _out_of_china(g_lon, g_lat)
    return np.where(outside, g_lon, w_lon), np.where(outside, g_lat, w_lat)


def bd09_from_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 lon/lat to BD-09 (Baidu)."""
    x, y = as_arrays(lon, lat)
    return _bd09_forward(x, y)


def gcj02_from_bd09(
    lon: ArrayLike, lat: ArrayLike, tol_m: float = 1e-3, max_iter: int = 30
) -> tuple[FloatArray, FloatArray]:
    """BD-09 lon/lat to GCJ-02: the usual closed-form inverse, refined iteratively."""
    b_lon, b_lat = as_arrays(lon, lat)
    x = b_lon - _BD_DLON
    y = b_lat - _BD_DLAT
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    start_lon, start_lat = z * np.cos(theta), z * np.sin(theta)
    return _invert(_bd09_forward, b_lon, b_lat, start_lon, start_lat, tol_m, max_iter)


def bd09_from_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 lon/lat to BD-09 (via GCJ-02)."""
    return bd09_from_gcj02(*gcj02_from_wgs84(lon, lat))


def wgs84_from_bd09(
    lon: ArrayLike, lat: ArrayLike, tol_m: float = 1e-3, max_iter: int = 30
) -> tuple[FloatArray, FloatArray]:
    """BD-09 lon/lat to WGS84 (via GCJ-02)."""
    g_lon, g_lat = gcj02_from_bd09(lon, lat, tol_m=tol_m, max_iter=max_iter)
    return wgs84_from_gcj02(g_lon, g_lat, tol_m=tol_m, max_iter=max_iter)
