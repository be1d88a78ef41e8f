"""Reading a layer of points from a CSV file with lon/lat columns."""

from __future__ import annotations

import io
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.errors import LayerError
from gis.io.encoding import decode_text

#: Column names taken for longitude and latitude (lower case; the events reader takes them too).
LON_NAMES = ("lon", "lng", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")


def _read_layer_csv(path: str, label: str, layer: str, max_rows: int) -> gpd.GeoDataFrame:
    """A CSV of points with lon/lat columns (``label`` names it in messages); it has no CRS
    of its own."""
    text = decode_text(Path(path).read_bytes(), None, label)
    try:
        df = pd.read_csv(io.StringIO(text), nrows=max_rows)
    except Exception as exc:
        raise LayerError(f"cannot be read as CSV: {exc}", file=label,
                         layer=layer) from exc
    cols = {str(c).strip().lower(): c for c in df.columns}
    lon = next((cols[n] for n in LON_NAMES if n in cols), None)
    lat = next((cols[n] for n in LAT_NAMES if n in cols), None)
    if lon is None or lat is None:
        raise LayerError(
            f"a CSV needs lon and lat columns (found: {', '.join(map(str, df.columns))})",
            file=label, layer=layer,
        )
    x = pd.to_numeric(df[lon], errors="coerce").to_numpy(float)
    y = pd.to_numeric(df[lat], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size:
        raise LayerError(f"lon/lat is missing or not a number ({bad.size} rows)",
                         file=label, layer=layer, row=int(bad[0]))
    geometry = shapely.points(x, y)
    return gpd.GeoDataFrame(df.drop(columns=[lon, lat]), geometry=geometry, crs=None)
