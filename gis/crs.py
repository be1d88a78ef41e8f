"""Coordinate systems: parsing what names one into a CoordSys, and transforms between them."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj.exceptions import CRSError as PyprojCRSError

from gis import obfuscation
from gis.china import check_china, plainly_in_china
from gis.coords import FloatArray, as_arrays, refuse_bad, require_finite
from gis.errors import CRSError

if TYPE_CHECKING:
    from geopandas import GeoSeries

WGS84 = "EPSG:4326"
CGCS2000 = "EPSG:4490"
#: Suzhou local "2000SZ": CGCS2000 transverse Mercator, CM 120.78333, FE 350000, FN -2800000.
SZ2000 = (
    "+proj=tmerc +lat_0=0 +lon_0=120.78333 +k=1 +x_0=350000 +y_0=-2800000 "
    "+ellps=GRS80 +units=m +no_defs"
)

Obfuscation: TypeAlias = Literal["gcj02", "bd09"]


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


# --- transforms ---------------------------------------------------------------------------------

_WGS84_CRS = pyproj.CRS.from_user_input(WGS84)


@functools.lru_cache(maxsize=128)
def _transformer(src_srs: str, dst_srs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(src_srs, dst_srs, always_xy=True)


def _pyproj(
    x: FloatArray, y: FloatArray, src: pyproj.CRS, dst: pyproj.CRS
) -> tuple[FloatArray, FloatArray]:
    if src.srs == dst.srs:
        return x, y
    out_x, out_y = _transformer(src.srs, dst.srs).transform(x, y)
    return np.asarray(out_x, dtype=np.float64), np.asarray(out_y, dtype=np.float64)


#: The obfuscated systems, each way: (to WGS84, from WGS84).
_WAYS = {"gcj02": (obfuscation.wgs84_from_gcj02, obfuscation.gcj02_from_wgs84),
               "bd09": (obfuscation.wgs84_from_bd09, obfuscation.bd09_from_wgs84)}


def _to_wgs84(x: FloatArray, y: FloatArray, src: CoordSys) -> tuple[FloatArray, FloatArray]:
    if src.obfuscation is not None:
        return _WAYS[src.obfuscation][0](x, y)
    assert src.crs is not None
    return _pyproj(x, y, src.crs, _WGS84_CRS)


def _from_wgs84(lon: FloatArray, lat: FloatArray, dst: CoordSys) -> tuple[FloatArray, FloatArray]:
    if dst.obfuscation is not None:
        return _WAYS[dst.obfuscation][1](lon, lat)
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
    xa, ya = as_arrays(x, y)
    require_finite(xa, ya, f"coordinates in {s.name}")
    if s.same_as(d):
        return xa, ya
    if s.crs is not None and d.crs is not None:
        out_x, out_y = _pyproj(xa, ya, s.crs, d.crs)
    elif s.obfuscation is not None and d.obfuscation is not None:
        if s.obfuscation == "gcj02":  # gcj02 -> bd09 without the WGS84 detour
            out_x, out_y = obfuscation.bd09_from_gcj02(xa, ya)
        else:
            out_x, out_y = obfuscation.gcj02_from_bd09(xa, ya)
    else:
        lon, lat = _to_wgs84(xa, ya, s)
        out_x, out_y = _from_wgs84(lon, lat, d)
    refuse_bad(~(np.isfinite(out_x) & np.isfinite(out_y)), xa, ya,
               says=f"cannot be transformed from {s.name} to {d.name}",
               hint=f": check that the coordinates really are in {s.name}")
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
    if s.same_as(d):
        # Nothing to move (a layer already in WGS84): the vertices are only checked, not
        # copied one by one (0.2 s for the buildings of a 1.4 M-household district).
        xy = shapely.get_coordinates(arr)
        require_finite(xy[:, 0], xy[:, 1], f"coordinates in {s.name}")
        return np.array(arr, dtype=object, copy=True)

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


def to_wgs84_checked(
    x: ArrayLike, y: ArrayLike, src: CoordSysLike
) -> tuple[FloatArray, FloatArray]:
    """Transform to WGS84 lon/lat and check the result lies in China (message names ``src``)."""
    s = parse_coord_sys(src)
    if s.obfuscation is None and s.crs is not None and s.crs.srs == _WGS84_CRS.srs:
        xa, ya = as_arrays(x, y)
        if xa.size == 1 and plainly_in_china(float(xa.flat[0]), float(ya.flat[0])):
            return xa, ya  # one WGS84 point (a request) that every check below would pass
    what = f"coordinates in {s.name}"
    if s.is_geographic:
        # Catch swapped axes / metres on the raw values, before a transform can mangle them.
        check_china(x, y, what=what)
    lon, lat = transform(x, y, s, WGS84)
    check_china(lon, lat, what=f"{what} (converted to WGS84)")
    return lon, lat
