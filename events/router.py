"""Route points to the grid that owns them (exact STRtree version; a faster one is coming)."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from gis.crs import metric_crs_for


@dataclass
class Routed:
    """One entry per point: owning grid row (-1 outside), distance, nearest, other, flags."""

    index: np.ndarray
    distance_m: np.ndarray
    nearest: np.ndarray
    other: np.ndarray
    flags: list[list[str]]


class GridRouter:
    """Point-in-grid lookup. A point on an edge shared by two grids belongs to the grid
    with the smaller code (flagged ``on_edge``)."""

    def __init__(self, grids: gpd.GeoDataFrame, near_m: float) -> None:
        self.grids = grids.to_crs(4326).reset_index(drop=True)
        self.codes = self.grids["code"].astype(str).to_numpy()
        self.near_m = near_m
        self.metric = metric_crs_for(tuple(self.grids.total_bounds))
        self._geoms = self.grids.geometry.to_crs(self.metric).to_numpy()
        self._tree = shapely.STRtree(self._geoms)
        self._to_metric = gpd.GeoSeries([], crs=4326)

    @classmethod
    def from_grids(cls, grids: gpd.GeoDataFrame, near_m: float = 10.0) -> GridRouter:
        return cls(grids, near_m)

    def route(self, lon: np.ndarray, lat: np.ndarray) -> Routed:
        pts = gpd.GeoSeries(shapely.points(lon, lat), crs=4326).to_crs(self.metric).to_numpy()
        n = len(pts)
        index = np.full(n, -1, dtype=np.int64)
        other = np.full(n, -1, dtype=np.int64)
        flags: list[list[str]] = [[] for _ in range(n)]
        pi, gi = self._tree.query(pts, predicate="intersects")
        order = np.lexsort((self.codes[gi], pi))
        pi, gi = pi[order], gi[order]
        first = np.ones(len(pi), dtype=bool)
        first[1:] = pi[1:] != pi[:-1]
        index[pi[first]] = gi[first]
        for p in pi[~first]:
            if "on_edge" not in flags[p]:
                flags[p].append("on_edge")
        nearest = index.copy()
        distance = np.zeros(n)
        out = np.flatnonzero(index < 0)
        if out.size:
            near_p, near_g = self._tree.query_nearest(pts[out], all_matches=False)
            nearest[out[near_p]] = near_g
            distance[out[near_p]] = shapely.distance(pts[out[near_p]], self._geoms[near_g])
            for p in out:
                flags[p].append("outside")
        inside = np.flatnonzero(index >= 0)
        if inside.size:
            qp, qg = self._tree.query(pts[inside], predicate="dwithin", distance=self.near_m)
            mask = qg != index[inside[qp]]
            for p, g in zip(inside[qp[mask]], qg[mask], strict=True):
                if other[p] < 0 or shapely.distance(pts[p], self._geoms[g]) < shapely.distance(
                        pts[p], self._geoms[other[p]]):
                    other[p] = g
            for p in np.flatnonzero(other >= 0):
                flags[p].append("near_boundary")
        return Routed(index, distance, nearest, other, flags)
