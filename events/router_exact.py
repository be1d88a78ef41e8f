"""The router's exact answers: the grids ranked by code, the owner of a point by point-in-polygon
(the edge rule), the nearest grid and the second candidate by distance to boundary segments."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray

from events.router_cells import BoolArray, FloatArray, IntArray
from gis import crs as crsmod
from gis.zones import metric_crs_for

_TIE_M = 1e-6  # distances closer than this are a tie, broken by the edge rule


class ExactTests:
    """The grids with their ranks, trees and metric polygons, and the exact tests on them
    (the rules are in :mod:`events.router`'s docstring)."""

    codes: NDArray[np.object_]
    grids: gpd.GeoDataFrame
    metric_crs: pyproj.CRS
    near_m: float
    #: the boundary segments in metres (set by the cell index): rows start x, start y,
    #: extent x, extent y, 1 / length²
    _seg_data: FloatArray

    def __init__(self, grids: gpd.GeoDataFrame, near_m: float) -> None:
        """``grids`` checked and in WGS84 (:func:`events.route_input.prepare_grids`)."""
        self.grids = grids
        self.near_m = float(near_m)
        self.codes = grids["code"].to_numpy(dtype=object)
        n = len(grids)
        order = np.lexsort((np.arange(n), self.codes.astype(str)))
        self._rank = np.empty(n, dtype=np.int64)
        self._rank[order] = np.arange(n)
        self._by_rank = order.astype(np.int64)
        _, code_id = np.unique(self.codes.astype(str), return_inverse=True)
        self._code_id = code_id.astype(np.int64)
        self._geoms = np.asarray(grids.geometry.to_numpy(), dtype=object)
        shapely.prepare(self._geoms)  # point-in-polygon on indexed edges
        # GEOS builds a prepared polygon's point index on first use: do it now, so that
        # concurrent queries only ever read it.
        probe = shapely.get_coordinates(shapely.point_on_surface(self._geoms))
        shapely.contains_xy(self._geoms, probe[:, 0], probe[:, 1])
        shapely.intersects_xy(self._geoms, probe[:, 0], probe[:, 1])
        self._tree = shapely.STRtree(self._geoms)
        self.metric_crs = metric_crs_for(tuple(grids.total_bounds))
        self._to_metric = pyproj.Transformer.from_crs(crsmod.WGS84, self.metric_crs,
                                                      always_xy=True)
        self._metric_geoms = crsmod.transform_geometries(self._geoms, crsmod.WGS84,
                                                         self.metric_crs)
        self._metric_tree = shapely.STRtree(self._metric_geoms)

    def _segment_distance(self, px: FloatArray, py: FloatArray, seg: NDArray[Any]) -> FloatArray:
        """Distances (metres) from points to segments, pair by pair."""
        ax, ay, ex, ey, inv = np.take(self._seg_data, seg, axis=1)
        ax -= px  # from here on a - p
        ay -= py
        t = ax * ex
        t += ay * ey
        t *= inv
        np.negative(t, out=t)
        np.clip(t, 0.0, 1.0, out=t)  # the foot of the perpendicular, kept on the segment
        ex *= t
        ey *= t
        ax += ex
        ay += ey
        return np.hypot(ax, ay, out=ax)

    def _reduce(self, starts: IntArray, grid: IntArray, d: FloatArray, owner: IntArray,
                inside: IntArray | None = None) -> tuple[IntArray, FloatArray, IntArray]:
        """From (point, grid, distance) pairs grouped by point (groups start at ``starts``,
        none empty): the nearest grid and its distance for points outside (``owner`` -1; the
        owner and 0.0 for the others), and the nearest grid with a code other than that of the
        owner (or the nearest) within near_m, else -1. Ties go to the smaller code. ``inside``
        is, per point, another grid that contains it (overlapping grids: distance 0), or -1."""
        n = len(starts)
        big = np.iinfo(np.int64).max
        counts = np.diff(np.append(starts, len(d)))
        nearest = owner.copy()
        dist = np.zeros(n, dtype=np.float64)
        other = np.full(n, -1, dtype=np.int64)
        out = np.flatnonzero(owner < 0)
        if out.size:
            sel = np.repeat(owner < 0, counts)
            d_out, g_out = d[sel], grid[sel]
            c_out = counts[out]
            st = np.cumsum(c_out) - c_out
            pt = np.repeat(np.arange(out.size), c_out)
            dmin = np.minimum.reduceat(d_out, st)
            best = np.minimum.reduceat(
                np.where(d_out <= dmin[pt] + _TIE_M, self._rank[g_out], big), st)
            nearest[out] = self._by_rank[best]
            dist[out] = dmin
        close = np.flatnonzero(d < self.near_m)  # only these can be a second candidate
        at_zero = np.zeros(n, dtype=bool)  # the second candidate touches the point
        if close.size:
            pt = np.repeat(np.arange(n), counts)[close]
            g = grid[close]
            dc = d[close]
            differ = self._code_id[g] != self._code_id[nearest[pt]]
            pt, g, dc = pt[differ], g[differ], dc[differ]
            if pt.size:
                new = np.empty(pt.size, dtype=bool)
                new[0] = True
                np.not_equal(pt[1:], pt[:-1], out=new[1:])
                st = np.flatnonzero(new)
                group = np.cumsum(new) - 1
                omin = np.minimum.reduceat(dc, st)
                obest = np.minimum.reduceat(
                    np.where(dc <= omin[group] + _TIE_M, self._rank[g], big), st)
                other[pt[st]] = self._by_rank[obest]
                at_zero[pt[st]] = omin <= _TIE_M
        if inside is not None and self.near_m > 0:
            # A grid containing the point is at distance 0: it is the second candidate unless
            # one touching the point has a smaller code.
            rank_other = np.where(other >= 0, self._rank[np.maximum(other, 0)], big)
            rank_inside = self._rank[np.maximum(inside, 0)]
            takes = (inside >= 0) & ~(at_zero & (rank_other < rank_inside))
            other[takes] = inside[takes]
        return nearest, dist, other

    def _exact(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, BoolArray, IntArray]:
        """Exact owner of WGS84 points (edge rule applied), whether each lies on an edge, and
        the best-ranked other grid (another code) that contains it too (overlaps), or -1."""
        n = len(x)
        owner = np.full(n, -1, dtype=np.int64)
        edge = np.zeros(n, dtype=bool)
        if n == 0:
            return owner, edge, owner.copy()
        # Candidates by bounding box, then point-in-polygon on the prepared polygons.
        pi, gi = self._tree.query(np.asarray(shapely.points(x, y), dtype=object))
        inside = shapely.contains_xy(self._geoms[gi], x[pi], y[pi])
        pairs = np.stack([pi[inside], gi[inside]])
        owner = self._best_ranked(pairs, n)
        differ = self._code_id[pairs[1]] != self._code_id[owner[pairs[0]]]
        second = self._best_ranked(pairs[:, differ], n)
        maybe = (owner[pi] < 0)
        if maybe.any():
            pi, gi = pi[maybe], gi[maybe]
            touch = shapely.intersects_xy(self._geoms[gi], x[pi], y[pi])
            on = self._best_ranked(np.stack([pi[touch], gi[touch]]), n)
            edge = on >= 0
            owner[edge] = on[edge]
        return owner, edge, second

    def _best_ranked(self, pairs: IntArray, n: int) -> IntArray:
        """Per point, the candidate grid with the smallest code (first row on equal codes)."""
        best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, pairs[0], self._rank[pairs[1]])
        found = best < len(self._rank)
        return np.where(found, self._by_rank[np.where(found, best, 0)], -1)

    def _exact_distances(self, x: FloatArray, y: FloatArray, owner: IntArray
                         ) -> tuple[IntArray, FloatArray, IntArray]:
        """Nearest grid, distance and second candidate with shapely (points off the raster)."""
        mx, my = self._to_metric.transform(x, y)
        pts = shapely.points(mx, my)
        (pi, gi), _ = self._metric_tree.query_nearest(pts, return_distance=True,
                                                      all_matches=True)
        pi2, gi2 = self._metric_tree.query(pts, predicate="dwithin", distance=self.near_m)
        pi = np.concatenate([pi, pi2, np.flatnonzero(owner >= 0)])
        gi = np.concatenate([gi, gi2, owner[owner >= 0]])
        d = shapely.distance(pts[pi], self._metric_geoms[gi])
        order = np.lexsort((gi, pi))
        pi, gi, d = pi[order], gi[order], d[order]
        starts = np.searchsorted(pi, np.arange(len(x)))
        return self._reduce(starts, gi, d, owner)
