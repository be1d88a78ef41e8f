"""Coordinate arrays: x and y as float64 arrays of one shape, checked to be finite."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gis.errors import CoordinateError

FloatArray = NDArray[np.float64]


def as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
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


def first_bad(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def refuse_bad(bad: NDArray[np.bool_], x: FloatArray, y: FloatArray, *, says: str,
               what: str = "", hint: str = "") -> None:
    """Raise :class:`CoordinateError` when a point is ``bad``: how many of how many, what is
    wrong with them (``says``), and the first, its ``x``/``y`` and index."""
    if bad.any():
        i = first_bad(bad)
        raise CoordinateError(
            f"{what}{int(bad.sum())} of {bad.size} points {says}; the first is "
            f"({x.ravel()[i]}, {y.ravel()[i]}) at index {i}{hint}"
        )


def require_finite(x: FloatArray, y: FloatArray, what: str) -> None:
    refuse_bad(~(np.isfinite(x) & np.isfinite(y)), x, y, what=f"{what}: ",
               says="have a non-finite coordinate (NaN or infinite)")
