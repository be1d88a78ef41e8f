"""Route points to the grid that owns them: a cell index answers most points, exact tests the rest.

How a point is answered
-----------------------
The grids' bounding box is covered by a raster of *coarse* cells (8 x 8 *fine* cells each, fine
cells ``cell_m`` metres wide, 4 m by default, laid out in WGS84 lon/lat). A coarse cell that no
grid boundary touches, and that lies farther than ``near_m`` from any boundary between two codes,
is uniform: it lies inside one grid (or outside every grid) and answers all of its points with
one array lookup. The other coarse cells are split into fine cells; a fine cell that no boundary
touches answers likewise (and carries a bit: is a boundary between two codes within ``near_m``?).
Only points in fine cells that a boundary crosses are tested exactly (bounding-box candidates,
then point-in-polygon on the prepared WGS84 polygons, then point-on-boundary for those in none),
so the answer is the same as a shapely ``STRtree`` query with ``predicate="within"``, point for
point. Which cells a boundary touches is computed exactly (every cell holding a point within a
margin of a boundary segment, the margin absorbing rounding), and which grid a boundary-free
region lies in is found by one exact test per connected region.

Rules
-----
* **Edge rule.** A point that lies exactly on a grid boundary (inside no grid's interior) belongs
  to the grid, among those whose boundary it lies on, with the **smallest code** (codes compared
  as text; among rows with the same code, the first row). It is flagged ``on_edge``. The same rule
  picks the owner where grids overlap (bad data): the smallest code among those containing it.
* **Near a boundary.** A point within ``near_m`` metres of a grid other than its own (a grid with
  a different code) is flagged ``near_boundary``, and that other grid (the nearest such; ties by
  the same rule) is returned in ``other``. Near the district's outer edge there is no second
  candidate and so no flag. Points on an edge always have the grid across the edge as ``other``.
* **Outside.** A point inside no grid has ``index`` -1, is flagged ``outside``, and gets the
  nearest grid (ties by the rule) and its distance in metres. ``other`` is then the nearest grid
  with another code within ``near_m``, if any (e.g. a point in a gap between two grids).

Distances are measured in the metric projection of the grids (:func:`gis.zones.metric_crs_for`,
the CGCS2000 Gauss-Kruger zone), containment on the WGS84 polygons as stored. Distances come from
per-cell lists of the boundary segments that can matter for any point of the cell, so they are
exact (not a raster approximation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import geopandas as gpd
import numpy as np
from numpy.typing import ArrayLike, NDArray

from events.route_input import checked_lonlat, points_to_wgs84, prepare_grids
from events.router_cells import MASK, SHIFT, SUB, BoolArray, FloatArray, IntArray, ragged_arange
from events.router_index import CellIndex
from gis import crs as crsmod

__all__ = ["NEAR_BOUNDARY", "ON_EDGE", "OUTSIDE", "FlagList", "GridRouter", "Routed"]

OUTSIDE = "outside"
NEAR_BOUNDARY = "near_boundary"
ON_EDGE = "on_edge"

_BIT_OUTSIDE, _BIT_NEAR, _BIT_EDGE = 1, 2, 4


class FlagList(list[str]):
    """The flags of a routed point: a list, shared by every point with the same flags and so
    read-only (mutating it raises TypeError; ``list(flags)`` gives a copy to change)."""

    __slots__ = ()

    def _read_only(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("routed flags are shared between points and read-only; change a copy: "
                        "list(routed.flags[i])")

    append = extend = insert = remove = pop = clear = sort = reverse = _read_only
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only

    def __copy__(self) -> list[str]:
        return list(self)

    def __deepcopy__(self, _memo: object) -> list[str]:
        return list(self)

    def __reduce__(self) -> tuple[type[list[str]], tuple[list[str]]]:
        return list, (list(self),)


_FLAG_LISTS = np.empty(8, dtype=object)
_FLAG_LISTS[:] = [
    FlagList(name for bit, name in ((1, OUTSIDE), (2, NEAR_BOUNDARY), (4, ON_EDGE))
             if bits & bit)
    for bits in range(8)
]

_CHUNK = 1 << 18  # points routed per batch (bounds the memory of the distance step)


@dataclass
class Routed:
    """Where points were routed: arrays with one entry per point, in input order."""

    #: int64, the owning grid's row in ``GridRouter.grids``, -1 when outside every grid
    index: NDArray[np.int64]
    #: 0.0 inside (and on an edge); the distance in metres to the nearest grid when outside
    distance_m: NDArray[np.float64]
    #: int64, the nearest grid's row (== index when inside)
    nearest: NDArray[np.int64]
    #: int64, the second candidate: the nearest grid with another code within near_m, else -1
    other: NDArray[np.int64]
    #: per point, any of "outside", "near_boundary", "on_edge" (in that order); the lists are
    #: shared between points with the same flags and read-only (:class:`FlagList`)
    flags: list[list[str]]

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def concat(cls, parts: Sequence[Routed]) -> Routed:
        """One result from results of consecutive batches of points."""
        return cls(
            index=np.concatenate([p.index for p in parts]).astype(np.int64),
            distance_m=np.concatenate([p.distance_m for p in parts]).astype(np.float64),
            nearest=np.concatenate([p.nearest for p in parts]).astype(np.int64),
            other=np.concatenate([p.other for p in parts]).astype(np.int64),
            flags=[f for p in parts for f in p.flags],
        )


class GridRouter(CellIndex):
    """Route WGS84 points to grids (see the module docstring for the rules).

    Build it with :meth:`from_grids`; it is read-only afterwards, so one router can serve
    queries from several threads at once. ``codes`` holds the grid codes (text) by row,
    ``grids`` the grids in WGS84 with their attributes.
    """

    # --------------------------------------------------------------------------------------------
    # Construction

    @classmethod
    def from_grids(cls, grids: gpd.GeoDataFrame, near_m: float = 10.0, *,
                   cell_m: float | None = None) -> GridRouter:
        """A router over ``grids``: polygons in any CRS, with a ``code`` column.

        ``near_m`` is the distance (metres) within which a second grid is reported
        (``near_boundary``). ``cell_m`` is the fine cell size in metres (default 4 m, larger
        for very large areas so the index stays within a few tens of MB). Invalid polygons are
        repaired (``make_valid``); missing codes, non-polygons, no CRS or coordinates outside
        China raise a :class:`~gis.errors.GridmapError` naming the rows.
        """
        if not (isinstance(near_m, int | float) and math.isfinite(near_m) and near_m >= 0):
            raise ValueError(f"near_m must be a non-negative number of metres, got {near_m!r}")
        if cell_m is not None and not (math.isfinite(cell_m) and cell_m > 0):
            raise ValueError(f"cell_m must be a positive number of metres, got {cell_m!r}")
        return cls(prepare_grids(grids), near_m, cell_m)

    # --------------------------------------------------------------------------------------------
    # Codes

    def codes_at(self, rows: ArrayLike) -> NDArray[np.object_]:
        """Grid codes of rows (``None`` where the row is -1), e.g. ``codes_at(routed.index)``."""
        idx = np.asarray(rows, dtype=np.int64)
        out = np.full(idx.shape, None, dtype=object)
        ok = idx >= 0
        out[ok] = self.codes[idx[ok]]
        return out

    # --------------------------------------------------------------------------------------------
    # Routing

    def route(self, lon: ArrayLike, lat: ArrayLike) -> Routed:
        """Route WGS84 points (degrees); see :class:`Routed` and the module docstring.

        Non-finite or out-of-China coordinates raise :class:`CoordinateError` naming the
        (0-based) rows.
        """
        x, y = checked_lonlat(lon, lat, "coordinates in wgs84", None)
        return self._route_checked(x, y)

    def route_points(self, x: ArrayLike, y: ArrayLike, coord_sys: crsmod.CoordSysLike, *,
                     row_numbers: Sequence[int] | ArrayLike | None = None) -> Routed:
        """Route points given in any coordinate system :mod:`gis.crs` knows.

        ``coord_sys`` is e.g. ``"wgs84"``, ``"cgcs2000"``, ``"gcj02"``, ``"bd09"``, ``4547``,
        ``"EPSG:4547"`` or ``"2000sz"``; GCJ-02/BD-09 are de-obfuscated first. NaN, infinite
        or out-of-China coordinates (before or after conversion) raise
        :class:`CoordinateError` naming the rows: by ``row_numbers`` when given (e.g. the line
        numbers of a CSV), else by 0-based position. An unknown system raises ``CRSError``.
        See :func:`points_to_wgs84`.
        """
        lon, lat = points_to_wgs84(x, y, coord_sys, row_numbers=row_numbers)
        return self._route_checked(lon, lat)

    def locate(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.int64]:
        """Only the owning grid's row of each WGS84 point (-1 outside), by the same rules as
        :meth:`route` but without distances or flags: the fastest path."""
        x, y = checked_lonlat(lon, lat, "coordinates in wgs84", None)
        out = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), _CHUNK):
            sl = slice(start, start + _CHUNK)
            state, _near, _cid = self._lookup(x[sl], y[sl])
            mixed = np.flatnonzero(state == -2)
            if mixed.size:
                state[mixed] = self._exact(x[sl][mixed], y[sl][mixed])[0]
            out[sl] = np.maximum(state, -1)
        return out

    def route_checked(self, lon: FloatArray, lat: FloatArray) -> Routed:
        """:meth:`route` for 1-d float64 WGS84 arrays already checked (finite, in China), e.g.
        by :func:`gis.crs.to_wgs84_checked` or :func:`points_to_wgs84`."""
        return self._route_checked(lon, lat)

    def _route_checked(self, x: FloatArray, y: FloatArray) -> Routed:
        n = len(x)
        if n == 1:  # one point (a request): its cell often answers it alone
            owner = self._cell_owner(float(x[0]), float(y[0]))
            if owner >= 0:
                at = np.array([owner], dtype=np.int64)
                return Routed(index=at, distance_m=np.zeros(1), nearest=at.copy(),
                              other=np.array([-1], dtype=np.int64), flags=[_FLAG_LISTS[0]])
        index = np.empty(n, dtype=np.int64)
        nearest = np.empty(n, dtype=np.int64)
        other = np.empty(n, dtype=np.int64)
        dist = np.empty(n, dtype=np.float64)
        bits = np.empty(n, dtype=np.int8)
        for start in range(0, n, _CHUNK):
            sl = slice(start, start + _CHUNK)
            index[sl], nearest[sl], other[sl], dist[sl], bits[sl] = self._route_chunk(
                x[sl], y[sl])
        return Routed(index=index, distance_m=dist, nearest=nearest, other=other,
                      flags=_flag_lists(bits))

    def _cell_owner(self, lon: float, lat: float) -> int:
        """The owner of one point when its cell alone answers it: inside a grid, no exact test
        needed and no boundary of another code within near_m (so no flags); else -1. The
        same arithmetic as :meth:`_lookup`, on Python floats (IEEE doubles, as numpy's)."""
        r = self._raster
        fx = (lon - r.x0) * (1.0 / r.dx)
        fy = (lat - r.y0) * (1.0 / r.dy)
        if not (0.0 <= fx < r.nfx and 0.0 <= fy < r.nfy):
            return -1
        ix, iy = int(fx), int(fy)
        state = int(self._coarse[(iy >> SHIFT) * r.ncx + (ix >> SHIFT)])
        if state >= 0:
            return state
        if state == -1:
            return -1
        fv = int(self._fine[(-2 - state) * SUB + ((iy & MASK) << SHIFT) + (ix & MASK)])
        if fv & self._near_bit:
            return -1
        return (fv & ~self._near_bit) - 2  # -2 (test exactly) and -1 (outside) fall through

    def _lookup(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, BoolArray, IntArray]:
        """Per point: owner (>= 0), -1 outside, -2 to test exactly, -3 off the raster; whether
        it is near a boundary; its coarse cell (-1 off the raster)."""
        r = self._raster
        fx, fy = r.fine_xy(x, y)
        on = (fx >= 0) & (fx < r.nfx) & (fy >= 0) & (fy < r.nfy)
        ix = np.where(on, fx, 0).astype(np.int64)
        iy = np.where(on, fy, 0).astype(np.int64)
        cid = (iy >> SHIFT) * r.ncx + (ix >> SHIFT)
        state = self._coarse[cid].astype(np.int64)
        near = np.zeros(len(x), dtype=bool)
        blk = np.flatnonzero(state <= -2)
        if blk.size:
            fv = self._fine[(-2 - state[blk]) * SUB + ((iy[blk] & MASK) << SHIFT)
                            + (ix[blk] & MASK)]
            near[blk] = (fv & self._near_bit) != 0
            state[blk] = (fv & ~self._near_bit).astype(np.int64) - 2
        if not on.all():
            off = ~on
            state[off] = -3
            cid[off] = -1
        return state, near, cid

    def _route_chunk(self, x: FloatArray, y: FloatArray
                     ) -> tuple[IntArray, IntArray, IntArray, FloatArray, NDArray[np.int8]]:
        n = len(x)
        state, near, cid = self._lookup(x, y)
        bits = np.zeros(n, dtype=np.int8)
        mixed = np.flatnonzero(state == -2)
        second = np.full(n, -1, dtype=np.int64)  # another grid containing the point (overlap)
        if mixed.size:
            owner, edge, second[mixed] = self._exact(x[mixed], y[mixed])
            state[mixed] = owner
            bits[mixed[edge]] |= _BIT_EDGE
        index = np.maximum(state, -1)
        nearest = index.copy()
        other = np.full(n, -1, dtype=np.int64)
        dist = np.zeros(n, dtype=np.float64)

        off = np.flatnonzero(state == -3)
        work = np.flatnonzero(near | (state == -1))
        if work.size:
            lst = self._coarse_list[cid[work]].astype(np.int64)
            count = self._list_ptr[lst + 1] - self._list_ptr[lst]
            empty = count == 0
            if empty.any():  # pragma: no cover - lists are never empty by construction
                off = np.union1d(off, work[empty])
                work, lst, count = work[~empty], lst[~empty], count[~empty]
        if work.size:
            px, py = self._to_metric.transform(x[work], y[work])
            pt = np.repeat(np.arange(work.size), count)
            seg = self._list_seg[np.repeat(self._list_ptr[lst], count) + ragged_arange(count)]
            d = self._segment_distance(np.asarray(px)[pt], np.asarray(py)[pt], seg)
            starts = np.concatenate([[0], np.cumsum(count)[:-1]])
            near_i, dist_i, other_i = self._reduce(starts, self._seg_grid[seg], d,
                                                   index[work], second[work])
            nearest[work], dist[work], other[work] = near_i, dist_i, other_i
            second[work] = -1
        lone = np.flatnonzero(second >= 0)
        if self.near_m > 0:
            other[lone] = second[lone]
        if off.size:
            near_i, dist_i, other_i = self._exact_distances(x[off], y[off], index[off])
            nearest[off], dist[off], other[off] = near_i, dist_i, other_i
        bits[index < 0] |= _BIT_OUTSIDE
        bits[other >= 0] |= _BIT_NEAR
        return index, nearest, other, dist, bits


def _flag_lists(bits: NDArray[np.int8]) -> list[list[str]]:
    """One shared, read-only list per combination of flags (no million little lists)."""
    return list(_FLAG_LISTS[bits].tolist())
