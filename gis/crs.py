"""Coordinate systems: parsing, GCJ-02/BD-09 de-obfuscation, transforms and China sanity checks."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj.exceptions import CRSError as PyprojCRSError

from gis.errors import CoordinateError, CRSError

if TYPE_CHECKING:
    from geopandas import GeoSeries

__all__ = [
    "CGCS2000",
    "SZ2000",
    "WGS84",
    "WGS84_OUTPUT",
    "CoordSys",
    "CoordSysLike",
    "OutputCrs",
    "bd09_from_gcj02",
    "bd09_from_wgs84",
    "check_china",
    "gauss_kruger_epsg",
    "gcj02_from_bd09",
    "gcj02_from_wgs84",
    "metric_crs_for",
    "output_crs",
    "parse_coord_sys",
    "to_wgs84_checked",
    "transform",
    "transform_geometries",
    "wgs84_from_bd09",
    "wgs84_from_gcj02",
]

WGS84 = "EPSG:4326"
CGCS2000 = "EPSG:4490"
#: Suzhou local "2000SZ": CGCS2000 transverse Mercator, CM 120.78333, FE 350000, FN -2800000.
SZ2000 = (
    "+proj=tmerc +lat_0=0 +lon_0=120.78333 +k=1 +x_0=350000 +y_0=-2800000 "
    "+ellps=GRS80 +units=m +no_defs"
)

FloatArray: TypeAlias = NDArray[np.float64]
Obfuscation: TypeAlias = Literal["gcj02", "bd09"]

# --- GCJ-02 / BD-09 constants ------------------------------------------------------------------
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

# --- China bounding box used by check_china ----------------------------------------------------
CHINA_LON = (73.4, 135.1)
CHINA_LAT = (3.8, 53.6)

# --- Gauss-Kruger 3-degree zones of CGCS2000 by central meridian --------------------------------
_GK_FIRST_EPSG = 4534  # CM 75E
_GK_FIRST_CM = 75
_GK_LAST_CM = 135  # EPSG:4554
_GK_MIN_LON, _GK_MAX_LON = 73.5, 136.5


# ================================================================================================
# Coordinate system parsing
# ================================================================================================


@dataclass(frozen=True)
class CoordSys:
    """A parsed coordinate system.

    Either a real CRS (``crs`` is a :class:`pyproj.CRS`) or one of the obfuscated web systems
    ``"gcj02"`` / ``"bd09"`` (``crs`` is ``None``; their datum is WGS84, lon/lat in degrees).
    """

    name: str
    crs: pyproj.CRS | None
    is_geographic: bool
    obfuscation: Obfuscation | None = None

    def __str__(self) -> str:
        return self.name

    def same_as(self, other: CoordSys) -> bool:
        """True when both describe the same system (obfuscation and CRS)."""
        if self.obfuscation != other.obfuscation:
            return False
        if self.crs is None or other.crs is None:
            return self.crs is None and other.crs is None
        return self.crs.srs == other.crs.srs or bool(self.crs == other.crs)


CoordSysLike: TypeAlias = "str | int | pyproj.CRS | CoordSys"

_ACCEPTED = (
    "accepted coordinate systems: 'wgs84', 'cgcs2000', 'gcj02' (or 'gcj-02', AMap/Tencent), "
    "'bd09' (or 'bd-09', Baidu), '2000sz' (or 'sz2000', Suzhou local), an EPSG code "
    "(4547, '4547' or 'EPSG:4547'), a PROJ string ('+proj=tmerc ...'), WKT, or a pyproj.CRS"
)

_GCJ02 = CoordSys(name="gcj02", crs=None, is_geographic=True, obfuscation="gcj02")
_BD09 = CoordSys(name="bd09", crs=None, is_geographic=True, obfuscation="bd09")

# alias (lower case, spaces/underscores removed) -> (name, CRS input)
_ALIASES: dict[str, tuple[str, str]] = {
    "wgs84": ("wgs84", WGS84),
    "wgs-84": ("wgs84", WGS84),
    "cgcs2000": ("cgcs2000", CGCS2000),
    "2000sz": ("2000sz", SZ2000),
    "sz2000": ("2000sz", SZ2000),
}
_OBFUSCATED: dict[str, CoordSys] = {
    "gcj02": _GCJ02,
    "gcj-02": _GCJ02,
    "bd09": _BD09,
    "bd-09": _BD09,
}


def _unknown(value: object, reason: str = "") -> CRSError:
    detail = f" ({reason})" if reason else ""
    return CRSError(f"unknown coordinate system {value!r}{detail}; {_ACCEPTED}")


def _from_crs(crs: pyproj.CRS, name: str | None = None) -> CoordSys:
    if name is None:
        auth = crs.to_authority(min_confidence=100)
        if auth is not None:
            name = f"{auth[0]}:{auth[1]}"
        elif crs.srs.lstrip().startswith("+"):
            name = crs.srs.strip()
        else:
            name = crs.name or crs.srs
    return CoordSys(name=name, crs=crs, is_geographic=bool(crs.is_geographic), obfuscation=None)


@functools.lru_cache(maxsize=256)
def _parse_text(text: str) -> CoordSys:
    key = re.sub(r"[\s_]+", "", text).lower()
    if " ".join(text.split()) == SZ2000:
        key = "2000sz"
    if key in _OBFUSCATED:
        return _OBFUSCATED[key]
    if key in _ALIASES:
        name, srs = _ALIASES[key]
        return _from_crs(pyproj.CRS.from_user_input(srs), name)
    if key.isdigit():
        return _parse_epsg(int(key), text)
    if not text.strip():
        raise _unknown(text, "empty")
    try:
        crs = pyproj.CRS.from_user_input(text.strip())
    except PyprojCRSError as exc:
        raise _unknown(text) from exc
    return _from_crs(crs)


@functools.lru_cache(maxsize=256)
def _parse_epsg(code: int, original: object = None) -> CoordSys:
    try:
        crs = pyproj.CRS.from_epsg(code)
    except PyprojCRSError as exc:
        raise _unknown(original if original is not None else code, "no such EPSG code") from exc
    return _from_crs(crs, f"EPSG:{code}")


def parse_coord_sys(value: CoordSysLike) -> CoordSys:
    """Parse anything that names a coordinate system into a :class:`CoordSys`.

    Accepts (case-insensitive) ``"wgs84"``, ``"cgcs2000"``, ``"gcj02"``/``"gcj-02"``,
    ``"bd09"``/``"bd-09"``, ``"2000sz"``/``"sz2000"``, an int EPSG code, ``"EPSG:4547"``,
    ``"4547"``, a PROJ string, WKT, a :class:`pyproj.CRS` or a :class:`CoordSys`.
    Anything else raises :class:`CRSError` listing what is accepted.
    """
    if isinstance(value, CoordSys):
        return value
    if isinstance(value, pyproj.CRS):
        return _from_crs(value)
    if isinstance(value, bool):
        raise _unknown(value)
    if isinstance(value, int | np.integer):
        return _parse_epsg(int(value))
    if isinstance(value, str):
        return _parse_text(value)
    raise _unknown(value, f"of type {type(value).__name__}")


# ================================================================================================
# GCJ-02 and BD-09
# ================================================================================================


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Both inputs as float64 arrays (scalars become length-one arrays) of a common shape."""
    x = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    y = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    if x.shape != y.shape:
        try:
            x, y = np.broadcast_arrays(x, y)
        except ValueError as exc:
            raise CoordinateError(
                f"x/longitude and y/latitude have different shapes {x.shape} and {y.shape}"
            ) from exc
    return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)


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
    x, y = _as_arrays(lon, lat)
    return _gcj02_forward(x, y)


def wgs84_from_gcj02(
    lon: ArrayLike, lat: ArrayLike, tol_m: float = 1e-3, max_iter: int = 30
) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 lon/lat to WGS84 by iterating the forward formula (residual below ``tol_m``)."""
    g_lon, g_lat = _as_arrays(lon, lat)
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
    x, y = _as_arrays(lon, lat)
    return _bd09_forward(x, y)


def gcj02_from_bd09(
    lon: ArrayLike, lat: ArrayLike, tol_m: float = 1e-3, max_iter: int = 30
) -> tuple[FloatArray, FloatArray]:
    """BD-09 lon/lat to GCJ-02: the usual closed-form inverse, refined iteratively."""
    b_lon, b_lat = _as_arrays(lon, lat)
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


# ================================================================================================
# Transforms
# ================================================================================================

_WGS84_CRS = pyproj.CRS.from_user_input(WGS84)


@functools.lru_cache(maxsize=128)
def _transformer(src_srs: str, dst_srs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(src_srs, dst_srs, always_xy=True)


def _first_bad(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def _require_finite(x: FloatArray, y: FloatArray, what: str) -> None:
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = _first_bad(bad)
        raise CoordinateError(
            f"{what}: {int(bad.sum())} of {bad.size} points have a non-finite coordinate "
            f"(NaN or infinite); the first is ({x.ravel()[i]}, {y.ravel()[i]}) at index {i}"
        )


def _pyproj(
    x: FloatArray, y: FloatArray, src: pyproj.CRS, dst: pyproj.CRS
) -> tuple[FloatArray, FloatArray]:
    if src.srs == dst.srs:
        return x, y
    out_x, out_y = _transformer(src.srs, dst.srs).transform(x, y)
    return np.asarray(out_x, dtype=np.float64), np.asarray(out_y, dtype=np.float64)


def _to_wgs84(x: FloatArray, y: FloatArray, src: CoordSys) -> tuple[FloatArray, FloatArray]:
    if src.obfuscation == "gcj02":
        return wgs84_from_gcj02(x, y)
    if src.obfuscation == "bd09":
        return wgs84_from_bd09(x, y)
    assert src.crs is not None
    return _pyproj(x, y, src.crs, _WGS84_CRS)


def _from_wgs84(lon: FloatArray, lat: FloatArray, dst: CoordSys) -> tuple[FloatArray, FloatArray]:
    if dst.obfuscation == "gcj02":
        return gcj02_from_wgs84(lon, lat)
    if dst.obfuscation == "bd09":
        return bd09_from_wgs84(lon, lat)
    assert dst.crs is not None
    return _pyproj(lon, lat, _WGS84_CRS, dst.crs)


def transform(
    x: ArrayLike, y: ArrayLike, src: CoordSysLike, dst: CoordSysLike
) -> tuple[FloatArray, FloatArray]:
    """Transform coordinates from ``src`` to ``dst`` (x = easting/longitude, y = northing/latitude).

    Goes through WGS84 lon/lat, de-obfuscating GCJ-02/BD-09 on the way; between two real CRSs
    pyproj transforms directly (``always_xy=True``). Non-finite input, or a point the
    projection cannot represent, raises :class:`CoordinateError`.
    """
    s = parse_coord_sys(src)
    d = parse_coord_sys(dst)
    xa, ya = _as_arrays(x, y)
    _require_finite(xa, ya, f"coordinates in {s.name}")
    if s.same_as(d):
        return xa, ya
    if s.crs is not None and d.crs is not None:
        out_x, out_y = _pyproj(xa, ya, s.crs, d.crs)
    elif s.obfuscation is not None and d.obfuscation is not None:
        if s.obfuscation == "gcj02":  # gcj02 -> bd09 without the WGS84 detour
            out_x, out_y = bd09_from_gcj02(xa, ya)
        else:
            out_x, out_y = gcj02_from_bd09(xa, ya)
    else:
        lon, lat = _to_wgs84(xa, ya, s)
        out_x, out_y = _from_wgs84(lon, lat, d)
    bad = ~(np.isfinite(out_x) & np.isfinite(out_y))
    if bad.any():
        i = _first_bad(bad)
        raise CoordinateError(
            f"{int(bad.sum())} of {bad.size} points cannot be transformed from {s.name} to "
            f"{d.name}; the first is ({xa.ravel()[i]}, {ya.ravel()[i]}) at index {i}: check "
            f"that the coordinates really are in {s.name}"
        )
    return out_x, out_y


def transform_geometries(
    geoms: NDArray[np.object_] | GeoSeries | Any, src: CoordSysLike, dst: CoordSysLike
) -> NDArray[np.object_]:
    """Transform shapely geometries (array, list or GeoSeries) from ``src`` to ``dst``.

    Vectorised with :func:`shapely.transform`; works for GCJ-02/BD-09 too. Z values, where
    present, are kept unchanged. Returns an object array of geometries.
    """
    s = parse_coord_sys(src)
    d = parse_coord_sys(dst)
    arr = np.asarray(geoms, dtype=object)

    def _apply(coords: FloatArray) -> FloatArray:
        out = np.array(coords, dtype=np.float64, copy=True)
        if len(out):
            out[:, 0], out[:, 1] = transform(out[:, 0], out[:, 1], s, d)
        return out

    result = np.array(arr, dtype=object, copy=True)
    has_z = np.asarray(shapely.has_z(arr), dtype=bool)
    for with_z in (False, True):  # what shapely's include_z=None does, spelled out for typing
        mask = has_z == with_z
        if mask.any():
            result[mask] = shapely.transform(arr[mask], _apply, include_z=with_z)
    return result


# ================================================================================================
# Metric projections
# ================================================================================================


def gauss_kruger_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Kruger zone (CM 75E..135E) containing ``lon``.

    CM = 3 * round(lon / 3) with halves rounded east, so EPSG:4534 (75E) ... EPSG:4554 (135E).
    ``lon`` outside 73.5..136.5 raises :class:`CoordinateError`.
    """
    value = float(lon)
    if not math.isfinite(value) or not _GK_MIN_LON <= value <= _GK_MAX_LON:
        raise CoordinateError(
            f"longitude {lon} has no CGCS2000 3-degree Gauss-Kruger zone: it must lie in "
            f"{_GK_MIN_LON}..{_GK_MAX_LON} (China); is it a longitude in degrees?"
        )
    cm = 3 * math.floor(value / 3.0 + 0.5)
    cm = min(max(cm, _GK_FIRST_CM), _GK_LAST_CM)
    return _GK_FIRST_EPSG + (cm - _GK_FIRST_CM) // 3


@functools.lru_cache(maxsize=32)
def _epsg_crs(code: int) -> pyproj.CRS:
    return pyproj.CRS.from_epsg(code)


def metric_crs_for(bounds: tuple[float, float, float, float]) -> pyproj.CRS:
    """The Gauss-Kruger CRS (metres) for data with WGS84 ``bounds`` (minx, miny, maxx, maxy)."""
    if len(bounds) != 4:
        raise CoordinateError(f"bounds must be (minx, miny, maxx, maxy), got {bounds!r}")
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise CoordinateError(f"bounds {bounds!r} are not finite (empty data?)")
    if minx > maxx or miny > maxy:
        raise CoordinateError(f"bounds {bounds!r} are not (minx, miny, maxx, maxy)")
    return _epsg_crs(gauss_kruger_epsg((minx + maxx) / 2.0))


# ================================================================================================
# Sanity checks
# ================================================================================================


def check_china(
    lon: ArrayLike,
    lat: ArrayLike,
    *,
    what: str = "coordinates",
    max_outside_share: float = 0.0,
) -> None:
    """Raise :class:`CoordinateError` unless WGS84 ``lon``/``lat`` plausibly lie in China.

    Reports, in this order: non-finite values; latitude/longitude swapped; values that look
    like projected metres; more than ``max_outside_share`` of the points outside China's
    bounding box (lon 73.4..135.1, lat 3.8..53.6). ``what`` names the data in the message.
    """
    x, y = _as_arrays(lon, lat)
    x, y = x.ravel(), y.ravel()
    n = x.size
    if n == 0:
        return
    _require_finite(x, y, what)

    x_like_lat = (x >= 0.8) & (x <= 56.0)
    y_like_lon = (y >= 72.0) & (y <= 138.0)
    if np.all(x_like_lat & y_like_lon):
        raise CoordinateError(
            f"{what}: latitude and longitude look swapped: the first value of each pair lies in "
            f"0.8..56 and the second in 72..138, e.g. ({x[0]}, {y[0]}) is (lat, lon) rather than "
            "(lon, lat); swap the columns / axis order (x = longitude, y = latitude)"
        )

    projected = (np.abs(x) > 180.0) | (np.abs(y) > 90.0)
    if projected.any():
        i = _first_bad(projected)
        raise CoordinateError(
            f"{what}: {int(projected.sum())} of {n} points are not longitude/latitude in degrees, "
            f"e.g. ({x[i]}, {y[i]}) at index {i}; they look like metres in a projected "
            "coordinate system: the coordinate system (crs) of the data must be given so they "
            "can be converted"
        )

    outside = (x < CHINA_LON[0]) | (x > CHINA_LON[1]) | (y < CHINA_LAT[0]) | (y > CHINA_LAT[1])
    n_out = int(outside.sum())
    if n_out > max_outside_share * n:
        i = _first_bad(outside)
        raise CoordinateError(
            f"{what}: {n_out} of {n} points lie outside China (lon {CHINA_LON[0]}..{CHINA_LON[1]}, "
            f"lat {CHINA_LAT[0]}..{CHINA_LAT[1]}); the first is ({x[i]}, {y[i]}) at index {i}; "
            "check the coordinate system and the axis order"
        )


def _plainly_in_china(lon: float, lat: float) -> bool:
    """Finite and inside China's box: :func:`check_china` has nothing to say about it (a
    longitude in 73.4..135.1 cannot look swapped or projected)."""
    return CHINA_LON[0] <= lon <= CHINA_LON[1] and CHINA_LAT[0] <= lat <= CHINA_LAT[1]


def to_wgs84_checked(
    x: ArrayLike, y: ArrayLike, src: CoordSysLike
) -> tuple[FloatArray, FloatArray]:
    """Transform to WGS84 lon/lat and check the result lies in China (message names ``src``)."""
    s = parse_coord_sys(src)
    if s.obfuscation is None and s.crs is not None and s.crs.srs == _WGS84_CRS.srs:
        xa, ya = _as_arrays(x, y)
        if xa.size == 1 and _plainly_in_china(float(xa.flat[0]), float(ya.flat[0])):
            return xa, ya  # one WGS84 point (a request) that every check below would pass
    what = f"coordinates in {s.name}"
    if s.is_geographic:
        # Catch swapped axes / metres on the raw values, before a transform can mangle them.
        check_china(x, y, what=what)
    lon, lat = transform(x, y, s, WGS84)
    check_china(lon, lat, what=f"{what} (converted to WGS84)")
    return lon, lat


# ================================================================================================
# The coordinate system of an output (exports, the OGC API)
# ================================================================================================

#: Every 3-degree Gauss–Krüger zone of CGCS2000: 4513–4533 (zone number in the false easting,
#: zones 25–45) and 4534–4554 (central meridian only, 75E–135E).
GK_ZONE_EPSG = range(4513, 4555)
_OUTPUT_ACCEPTED = (
    "use wgs84 (the default), cgcs2000 (EPSG:4490), auto (the territory's 3° Gauss–Krüger "
    "zone), a Gauss–Krüger zone EPSG:4513–4554, 2000sz, or another EPSG code of a "
    "geographic or projected system whose area of use covers the territory "
    "可用 wgs84、cgcs2000、auto（所在3度带）、EPSG:4513–4554 或覆盖本区域的其他 EPSG 坐标系"
)
#: Spellings of WGS84 longitude/latitude an output accepts (files and OGC API alike).
_WGS84_NAMES = {"", "wgs84", "wgs-84", "4326", "epsg:4326", "crs84", "ogc:crs84",
                "http://www.opengis.net/def/crs/ogc/1.3/crs84",
                "http://www.opengis.net/def/crs/epsg/0/4326"}
_EPSG_URI = re.compile(r"^(?:https?://www\.opengis\.net/def/crs/epsg/0/|urn:ogc:def:crs:epsg:"
                       r"[0-9.]*:)([0-9]{4,6})$")


@dataclass(frozen=True)
class OutputCrs:
    """The coordinate system an output is written in.

    ``label``: how people and files name it (``EPSG:4549``, ``2000sz``); ``epsg``: its EPSG
    code, or None for a local frame defined by parameters (2000SZ); ``tag``: the file-name
    part (empty for WGS84, the default, so that default names do not change).
    """

    crs: pyproj.CRS
    label: str
    epsg: int | None

    @property
    def is_wgs84(self) -> bool:
        return self.epsg == 4326

    @property
    def is_geographic(self) -> bool:
        return bool(self.crs.is_geographic)

    @property
    def tag(self) -> str:
        return "" if self.is_wgs84 else re.sub(r"[^0-9A-Za-z]+", "", self.label)[:24]

    @property
    def uri(self) -> str:
        """The OGC URI (``CRS84`` for WGS84, ``…/EPSG/0/<code>``; a local frame: its PROJ
        string, which no OGC client can name)."""
        if self.is_wgs84:
            return "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
        if self.epsg is not None:
            return f"http://www.opengis.net/def/crs/EPSG/0/{self.epsg}"
        return self.crs.srs

    def esri_wkt(self) -> str:
        """The WKT1 dialect ArcGIS 10.x reads in a ``.prj`` (GDAL's WKT1 when there is none)."""
        try:
            return str(self.crs.to_wkt("WKT1_ESRI"))
        except PyprojCRSError:
            return str(self.crs.to_wkt("WKT1_GDAL"))


WGS84_OUTPUT = OutputCrs(pyproj.CRS.from_epsg(4326), "EPSG:4326", 4326)


def _overlaps(area: tuple[float, float, float, float],
              bounds: tuple[float, float, float, float]) -> bool:
    west, south, east, north = area
    minx, miny, maxx, maxy = bounds
    if west > east:  # crosses the antimeridian: never China, but say it right
        return miny <= north and maxy >= south
    return minx <= east and maxx >= west and miny <= north and maxy >= south


def output_crs(value: str | int | None, *, bounds: tuple[float, float, float, float] | None,
               zone_epsg: int | None) -> OutputCrs:
    """The coordinate system an output is asked for in ``value`` (see :data:`_OUTPUT_ACCEPTED`).

    ``bounds``: the data's WGS84 extent (None when there is none), which the system's area
    of use must meet; ``zone_epsg``: the territory's Gauss–Krüger zone, what ``auto`` means.
    GCJ-02/BD-09 are not systems a file can declare, and geocentric, vertical or compound
    systems do not fit a map: :class:`CRSError` (422) says what to use.
    """
    text = "" if value is None else str(value).strip()
    key = text.lower()
    if key in _WGS84_NAMES:
        return WGS84_OUTPUT
    if key == "auto":
        if zone_epsg is None:
            raise CRSError("crs=auto needs a territory to take the zone from")
        return OutputCrs(_epsg_crs(zone_epsg), f"EPSG:{zone_epsg}", zone_epsg)
    if (uri := _EPSG_URI.match(key)) is not None:
        key = text = uri.group(1)
    try:
        parsed = parse_coord_sys(text)
    except CRSError as exc:
        raise CRSError(f"crs={text!r} is not a coordinate system: {_OUTPUT_ACCEPTED}") from exc
    if parsed.crs is None:
        raise CRSError(f"crs={text!r} ({parsed.name}) is an obfuscated web-map system that no "
                       f"file can declare; the exports are surveyed coordinates: "
                       f"{_OUTPUT_ACCEPTED}")
    crs = parsed.crs
    two_d = crs.type_name in ("Geographic 2D CRS", "Projected CRS")
    if not two_d:
        raise CRSError(f"crs={text!r} is a {crs.type_name} ({crs.name}), not a geographic or "
                       f"projected system for a map: {_OUTPUT_ACCEPTED}")
    epsg = crs.to_epsg(min_confidence=100)
    label = f"EPSG:{epsg}" if epsg is not None else parsed.name
    area = crs.area_of_use
    if bounds is not None and area is not None and not _overlaps(area.bounds, bounds):
        west, south, east, north = area.bounds
        raise CRSError(
            f"crs={text!r} ({crs.name}) is meant for lon {west}..{east}, lat {south}..{north}; "
            f"the territory lies at lon {bounds[0]:.3f}..{bounds[2]:.3f}, lat {bounds[1]:.3f}.."
            f"{bounds[3]:.3f} 该坐标系的适用范围不含本区域"
            + (f"; its own 3° zone is crs=auto (EPSG:{zone_epsg})" if zone_epsg else ""))
    return OutputCrs(crs, label, epsg)
