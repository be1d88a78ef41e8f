"""CGCS2000 3° Gauss–Krüger zones: a territory's metric CRS, and the CRS an output is written in."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import pyproj
from pyproj.exceptions import CRSError as PyprojCRSError

from gis.crs import parse_coord_sys
from gis.errors import CoordinateError, CRSError

# --- Gauss-Kruger 3-degree zones of CGCS2000 by central meridian --------------------------------
_GK_FIRST_EPSG = 4534  # CM 75E
_GK_FIRST_CM = 75
_GK_LAST_CM = 135  # EPSG:4554
_GK_MIN_LON, _GK_MAX_LON = 73.5, 136.5


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
def epsg_crs(code: int) -> pyproj.CRS:
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
    return epsg_crs(gauss_kruger_epsg((minx + maxx) / 2.0))


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
        return OutputCrs(epsg_crs(zone_epsg), f"EPSG:{zone_epsg}", zone_epsg)
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
