"""Do WGS84 points lie in China: detect swapped axes, projected metres and points outside."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from gis.coords import as_arrays, first_bad, require_finite
from gis.errors import CoordinateError

#: China's bounding box (WGS84 degrees), what check_china accepts.
CHINA_LON = (73.4, 135.1)
CHINA_LAT = (3.8, 53.6)


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
    x, y = as_arrays(lon, lat)
    x, y = x.ravel(), y.ravel()
    n = x.size
    if n == 0:
        return
    require_finite(x, y, what)

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
        i = first_bad(projected)
        raise CoordinateError(
            f"{what}: {int(projected.sum())} of {n} points are not longitude/latitude in degrees, "
            f"e.g. ({x[i]}, {y[i]}) at index {i}; they look like metres in a projected "
            "coordinate system: the coordinate system (crs) of the data must be given so they "
            "can be converted"
        )

    outside = (x < CHINA_LON[0]) | (x > CHINA_LON[1]) | (y < CHINA_LAT[0]) | (y > CHINA_LAT[1])
    n_out = int(outside.sum())
    if n_out > max_outside_share * n:
        i = first_bad(outside)
        raise CoordinateError(
            f"{what}: {n_out} of {n} points lie outside China (lon {CHINA_LON[0]}..{CHINA_LON[1]}, "
            f"lat {CHINA_LAT[0]}..{CHINA_LAT[1]}); the first is ({x[i]}, {y[i]}) at index {i}; "
            "check the coordinate system and the axis order"
        )


def plainly_in_china(lon: float, lat: float) -> bool:
    """Finite and inside China's box: :func:`check_china` has nothing to say about it (a
    longitude in 73.4..135.1 cannot look swapped or projected)."""
    return CHINA_LON[0] <= lon <= CHINA_LON[1] and CHINA_LAT[0] <= lat <= CHINA_LAT[1]
