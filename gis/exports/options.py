"""How an export is written (its CRS and text encoding) and what every format's writer shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd

from gis.errors import GridmapError
from gis.zones import WGS84_OUTPUT, OutputCrs

#: Text encodings a Shapefile's ``.dbf`` can be written in: name → (Python codec, ``.cpg``).
ENCODINGS = {"utf-8": ("utf-8", "UTF-8"), "gbk": ("gbk", "GBK")}


@dataclass(frozen=True)
class Options:
    """How to write an export: its coordinate system, and the Shapefile's text encoding."""

    crs: OutputCrs = WGS84_OUTPUT
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise GridmapError(f"encoding={self.encoding!r} is not offered; use utf-8 (the "
                               "default) or gbk (ArcGIS 10.x, SuperMap, MapGIS) "
                               "编码只能是 utf-8 或 gbk")


@dataclass(frozen=True)
class Format:
    """One export format: its file suffix, media type and writer."""

    suffix: str
    media_type: str
    write: Callable[[gpd.GeoDataFrame, Path, dict[str, Any], Options], None]
    #: The ``crs`` of a request that names none (DXF: metres, what CAD draws in).
    default_crs: str = "wgs84"


def projected(table: gpd.GeoDataFrame, crs: OutputCrs) -> gpd.GeoDataFrame:
    """The table in ``crs`` (the WGS84 table itself when that is what is asked)."""
    if crs.is_wgs84:
        return table
    return table.to_crs(crs.crs)


def decimals(crs: OutputCrs) -> int:
    """Decimals that keep a coordinate to a millimetre or so: 8 in degrees, 3 in metres
    (7 for WGS84 GeoJSON, as RFC 7946 suggests, about 1 cm)."""
    return 8 if crs.is_geographic else 3
