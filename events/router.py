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

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from gis import crs as crsmod
from gis.china import CHINA_LAT, CHINA_LON, check_china
from gis.errors import CoordinateError, CRSError, LayerError
from gis.zones import metric_crs_for

__all__ = ["NEAR_BOUNDARY", "ON_EDGE", "OUTSIDE", "FlagList", "GridRouter", "Routed",
           "points_to_wgs84"]

OUTSIDE = "outside"
NEAR_BOUNDARY = "near_boundary"
ON_EDGE = "on_edge"

IntArray: TypeAlias = NDArray[np.int64]
FloatArray: TypeAlias = NDArray[np.float64]
BoolArray: TypeAlias = NDArray[np.bool_]

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

_SHIFT = 3  # a coarse cell is 2**3 x 2**3 fine cells
_BLOCK = 1 << _SHIFT
_SUB = _BLOCK * _BLOCK
_MASK = _BLOCK - 1
# A fine cell's value: state | near bit, state 0 = test exactly, 1 = outside, owner + 2. Two
# bytes a cell while the grids number fewer than 2**14 - 2, else four.
_NEAR_BIT16, _NEAR_BIT32 = 1 << 14, 1 << 30
_EPS = 1e-6  # cells: margin around segments absorbing rounding in cell arithmetic
_SLACK = 1.02  # on metres-to-cells conversions (cell sizes vary over the raster)
_TIE_M = 1e-6  # distances closer than this are a tie, broken by the edge rule
_DEFAULT_CELL_M = 4.0
_MAX_COARSE_CELLS = 4_000_000
_CHUNK = 1 << 18  # points routed per batch (bounds the memory of the distance step)
_MARK_BATCH = 4_000_000  # cell visits per batch when marking segments


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


@dataclass(frozen=True)
class _Raster:
    """The cell layout in WGS84 degrees: fine cell (col, row) holds lon in
    [x0 + col * dx, x0 + (col + 1) * dx) and lat likewise."""

    x0: float
    y0: float
    dx: float
    dy: float
    ncx: int  # coarse cells across
    ncy: int  # coarse cells down

    @property
    def nfx(self) -> int:
        return self.ncx * _BLOCK

    @property
    def nfy(self) -> int:
        return self.ncy * _BLOCK

    def fine_xy(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Position in fine-cell units (the same arithmetic everywhere)."""
        return (np.asarray((lon - self.x0) * (1.0 / self.dx), dtype=np.float64),
                np.asarray((lat - self.y0) * (1.0 / self.dy), dtype=np.float64))

    def fine_centres(self, col: NDArray[Any], row: NDArray[Any]
                     ) -> tuple[FloatArray, FloatArray]:
        """Centres (lon, lat) of fine cells (col, row); fractional positions work too."""
        return (np.asarray(self.x0 + (col + 0.5) * self.dx, dtype=np.float64),
                np.asarray(self.y0 + (row + 0.5) * self.dy, dtype=np.float64))


class GridRouter:
    """Route WGS84 points to grids (see the module docstring for the rules).

    Build it with :meth:`from_grids`; it is read-only afterwards, so one router can serve
    queries from several threads at once. ``codes`` holds the grid codes (text) by row,
    ``grids`` the grids in WGS84 with their attributes.
    """

    codes: NDArray[np.object_]
    grids: gpd.GeoDataFrame
    metric_crs: pyproj.CRS
    near_m: float
    cell_m: float

    def __init__(self, grids: gpd.GeoDataFrame, near_m: float, cell_m: float | None) -> None:
        """Use :meth:`from_grids`; ``grids`` must already be checked and in WGS84."""
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
        self._build_segments()
        self._raster = self._layout(cell_m)
        self.cell_m = self._cell_m
        self._build_cells()
        self._build_lists()

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
        return cls(_prepare(grids), near_m, cell_m)

    def _build_segments(self) -> None:
        """Every boundary segment of every grid, in lon/lat and in metres, with its grid."""
        parts, part_grid = shapely.get_parts(self._geoms, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
        same = ring_idx[:-1] == ring_idx[1:]
        a, b = coords[:-1][same], coords[1:][same]
        grid = part_grid[ring_part[ring_idx[:-1][same]]]
        keep = np.any(a != b, axis=1)
        a, b, grid = a[keep], b[keep], grid[keep]
        # One orientation per segment, so a shared edge is the same numbers in both grids and
        # distances to it tie exactly.
        flip = (b[:, 0] < a[:, 0]) | ((b[:, 0] == a[:, 0]) & (b[:, 1] < a[:, 1]))
        a, b = np.where(flip[:, None], b, a), np.where(flip[:, None], a, b)
        unique, inverse = np.unique(np.hstack([a, b]), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        ax, ay = self._to_metric.transform(unique[:, 0], unique[:, 1])
        bx, by = self._to_metric.transform(unique[:, 2], unique[:, 3])
        ua = np.column_stack([ax, ay])
        ue = np.column_stack([bx, by]) - ua
        self._seg_lonlat = unique
        # Segment arrays by segment (a shared edge once per grid): start, extent, 1 / length².
        a_m, e_m = ua[inverse], ue[inverse]
        length2 = np.einsum("ij,ij->i", e_m, e_m)
        inv = np.divide(1.0, length2, out=np.zeros_like(length2), where=length2 > 0)
        #: rows: start x, start y, extent x, extent y, 1 / length²
        self._seg_data = np.vstack([a_m.T, e_m.T, inv])
        self._seg_grid = grid.astype(np.int64)
        starts, ends = a_m, a_m + e_m
        self._seg_tree = shapely.STRtree(
            np.asarray(shapely.linestrings(np.stack([starts, ends], axis=1)), dtype=object))
        self._contested = self._contested_segments(unique, inverse, ua, ue)

    def _contested_segments(self, unique: FloatArray, inverse: IntArray, ua: FloatArray,
                            ue: FloatArray) -> BoolArray:
        """Which unique segments have a grid of another code within near_m: only near those
        can a point have a second candidate (the district's outer edge has none)."""
        n = len(unique)
        code = self._code_id[self._seg_grid]
        lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(n, -1, dtype=np.int64)
        np.minimum.at(lo, inverse, code)
        np.maximum.at(hi, inverse, code)
        contested = lo != hi  # an edge shared by two codes
        alone = np.flatnonzero(~contested)
        if alone.size and self.near_m > 0:
            lines = shapely.linestrings(np.stack([ua[alone], ua[alone] + ue[alone]], axis=1))
            si, gi = self._seg_tree.query(lines, predicate="dwithin",
                                          distance=self.near_m * _SLACK)
            other = code[gi] != lo[alone][si]
            contested[alone[np.unique(si[other])]] = True
            # A segment inside a grid of another code (overlapping grids) is contested too.
            alone = np.flatnonzero(~contested)
            mid = shapely.points(ua[alone] + 0.5 * ue[alone])
            pi, gi = self._metric_tree.query(mid, predicate="within")
            inside_other = self._code_id[gi] != lo[alone][pi]
            contested[alone[np.unique(pi[inside_other])]] = True
        return contested

    def _layout(self, cell_m: float | None) -> _Raster:
        minx, miny, maxx, maxy = (float(v) for v in self.grids.total_bounds)
        m_lon = 111_320.0 * math.cos(math.radians((miny + maxy) / 2.0))
        m_lat = 110_574.0
        if cell_m is None:
            area = max((maxx - minx) * m_lon, 1.0) * max((maxy - miny) * m_lat, 1.0)
            cell_m = max(_DEFAULT_CELL_M, math.sqrt(area / _MAX_COARSE_CELLS) / _BLOCK)
        self._cell_m = float(cell_m)
        dx, dy = cell_m / m_lon, cell_m / m_lat
        # Near-radius in fine cells from the smallest cell side (in the metric CRS) anywhere.
        sides = []
        for lon, lat in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy)):
            px, py = self._to_metric.transform([lon, lon + dx, lon], [lat, lat, lat + dy])
            sides += [math.hypot(px[1] - px[0], py[1] - py[0]),
                      math.hypot(px[2] - px[0], py[2] - py[0])]
        self._fine_side_min = min(sides)
        self._fine_side_max = max(sides)
        self._near_cells = self.near_m * _SLACK / self._fine_side_min + _EPS
        pad = (math.ceil(self._near_cells / _BLOCK) + 2) * _BLOCK
        x0, y0 = minx - pad * dx, miny - pad * dy
        ncx = math.ceil(((maxx - x0) / dx + pad) / _BLOCK)
        ncy = math.ceil(((maxy - y0) / dy + pad) / _BLOCK)
        return _Raster(x0, y0, dx, dy, ncx, ncy)

    def _build_cells(self) -> None:
        """Mark the fine cells on and near boundaries, then give every other cell its owner."""
        r = self._raster
        s = self._seg_lonlat
        ax, ay = r.fine_xy(s[:, 0], s[:, 1])
        bx, by = r.fine_xy(s[:, 2], s[:, 3])
        c = self._contested
        # Coarse cells touched by a boundary, or within near_m of a contested one, are split
        # into fine cells ("blocks"); the others are uniform.
        coarse_ids = []
        for sel, radius in ((slice(None), _EPS), (c, self._near_cells)):
            col, row = _cells_touched(ax[sel] / _BLOCK, ay[sel] / _BLOCK, bx[sel] / _BLOCK,
                                      by[sel] / _BLOCK, radius / _BLOCK + _EPS)
            coarse_ids.append(row * r.ncx + col)
        is_block = np.zeros(r.ncx * r.ncy, dtype=bool)
        for ids in coarse_ids:
            is_block[ids] = True
        blocks = np.flatnonzero(is_block)
        self._blocks = blocks
        coarse_block = np.full(r.ncx * r.ncy, -1, dtype=np.int64)
        coarse_block[blocks] = np.arange(len(blocks))
        nb = len(blocks)
        near = np.zeros(nb * _SUB, dtype=bool)
        mixed = np.zeros(nb * _SUB, dtype=bool)
        for target, sel, radius in ((near, c, self._near_cells), (mixed, slice(None), _EPS)):
            for col, row in _cells_touched_batches(ax[sel], ay[sel], bx[sel], by[sel], radius):
                blk = coarse_block[(row >> _SHIFT) * r.ncx + (col >> _SHIFT)]
                if np.any(blk < 0):  # pragma: no cover - guarded by the construction
                    raise AssertionError("a boundary cell outside every block")
                target[blk * _SUB + ((row & _MASK) << _SHIFT) + (col & _MASK)] = True

        # Regions free of boundaries: 4-connected uniform coarse cells, and 4-connected
        # untouched fine cells, joined across block sides. Each lies in one grid (or outside
        # all), found by one exact test.
        uniform = (coarse_block < 0).reshape(r.ncy, r.ncx)
        labels, n1 = ndimage.label(uniform)
        labels = labels.ravel()
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
        labels3, n3 = ndimage.label(~mixed.reshape(nb, _BLOCK, _BLOCK), structure=structure)
        comp, n_comp = _join_regions(labels, n1, labels3, n3, blocks, coarse_block, r.ncx)
        # One cell of each region: its centre in fine-cell units.
        node_col = np.zeros(n1 + n3, dtype=np.int64)
        node_row = np.zeros(n1 + n3, dtype=np.int64)
        first = _first_index(labels, n1)
        node_col[:n1] = (first % r.ncx) * _BLOCK + _BLOCK // 2
        node_row[:n1] = (first // r.ncx) * _BLOCK + _BLOCK // 2
        flat3 = labels3.ravel()
        first3 = _first_index(flat3, n3)
        blk, sub = first3 // _SUB, first3 % _SUB
        node_col[n1:] = (blocks[blk] % r.ncx) * _BLOCK + (sub & _MASK)
        node_row[n1:] = (blocks[blk] // r.ncx) * _BLOCK + (sub >> _SHIFT)
        rep = _first_index(comp + 1, n_comp)
        owner_of_comp, _, second = self._exact(*r.fine_centres(node_col[rep], node_row[rep]))
        # Where grids overlap (bad data) a region lies in two grids: its points are tested
        # exactly, so they also learn the other grid. Uniform coarse cells of such a region
        # point at one extra block whose fine cells all say "test exactly".
        owner_of_comp[second >= 0] = -2
        owner = np.full(n1 + 1, -1, dtype=np.int64)  # by label; index 0 unused
        owner[1:] = owner_of_comp[comp[:n1]]
        coarse = np.where(labels > 0, owner[labels], -2 - coarse_block)
        coarse[coarse == -2] = -2 - nb
        self._coarse = coarse.astype(np.int32)
        owner3 = np.full(n3 + 1, -1, dtype=np.int64)
        owner3[1:] = owner_of_comp[comp[n1:]]
        state = np.where(flat3 > 0, owner3[flat3] + 2, 0)
        small = len(self.grids) + 2 < _NEAR_BIT16
        self._near_bit = _NEAR_BIT16 if small else _NEAR_BIT32
        fine = (state | np.where(near, self._near_bit, 0)).astype(np.int16 if small else np.int32)
        if (self._coarse == -2 - nb).any():
            fine = np.concatenate([fine, np.zeros(_SUB, dtype=fine.dtype)])
        self._fine = fine
        self._regions = n_comp

    def _build_lists(self) -> None:
        """Per block and per outside coarse cell: the segments any of its points may need.

        For a cell with centre c and half-diagonal h whose centre is d_c from the nearest
        segment, a point p of the cell has its nearest segment within d_c + 2h of c, and every
        segment within near_m of p lies within near_m + h of c: the list holds the segments
        within max(d_c + h, near_m) + h of c. Lists are found for cells of 16 x 16 coarse cells
        with shapely, then narrowed down for ever smaller cells with numpy (a child's list is
        part of its parent's).
        """
        r = self._raster
        cells = np.concatenate([self._blocks, np.flatnonzero(self._coarse == -1)])
        self._coarse_list = np.full(r.ncx * r.ncy, -1, dtype=np.int32)
        self._coarse_list[cells] = np.arange(len(cells), dtype=np.int32)
        if len(cells) == 0:  # pragma: no cover - every raster has blocks around its grids
            self._list_seg = np.zeros(0, dtype=np.int32)
            self._list_ptr = np.zeros(1, dtype=np.int64)
            return
        h0 = 0.5 * math.sqrt(2.0) * _BLOCK * self._fine_side_max * _SLACK
        ccol, crow = cells % r.ncx, cells // r.ncx
        top = 4
        parent = np.unique((crow >> top) * r.ncx + (ccol >> top))
        centres = self._level_centres(parent % r.ncx, parent // r.ncx, top)
        h = h0 * (1 << top)
        (idx, _), dist = self._seg_tree.query_nearest(shapely.points(*centres),
                                                       return_distance=True, all_matches=False)
        d_c = np.full(len(parent), np.inf)
        d_c[idx] = dist
        radius = np.maximum(d_c + h, self.near_m * _SLACK) + h + 0.01
        pi, seg = self._seg_tree.query(shapely.points(*centres), predicate="dwithin",
                                       distance=radius)
        order = np.lexsort((seg, pi))
        ptr = np.zeros(len(parent) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pi, minlength=len(parent)), out=ptr[1:])
        lists = seg[order].astype(np.int64)
        level, keys = top, parent
        for child_level in (3, 2, 1, 0):
            shift = level - child_level
            if child_level == 0:
                child = cells
            else:
                child = np.unique((crow >> child_level) * r.ncx + (ccol >> child_level))
            kcol, krow = child % r.ncx, child // r.ncx
            parent_key = (krow >> shift) * r.ncx + (kcol >> shift)
            parent_pos = np.searchsorted(keys, parent_key)
            centres = self._level_centres(kcol, krow, child_level)
            ptr, lists = self._narrow(centres, h0 * (1 << child_level), ptr, lists, parent_pos)
            level, keys = child_level, child
        self._list_ptr = ptr
        self._list_seg = lists.astype(np.int32)

    def _level_centres(self, col: IntArray, row: IntArray, level: int
                       ) -> tuple[FloatArray, FloatArray]:
        """Metric centres of cells of 2**level x 2**level coarse cells."""
        size = _BLOCK << level
        lon, lat = self._raster.fine_centres(col * size + size // 2 - 0.5,
                                             row * size + size // 2 - 0.5)
        mx, my = self._to_metric.transform(lon, lat)
        return np.asarray(mx, dtype=np.float64), np.asarray(my, dtype=np.float64)

    def _narrow(self, centres: tuple[FloatArray, FloatArray], h: float, ptr: IntArray,
                lists: IntArray, parent: IntArray) -> tuple[IntArray, IntArray]:
        """Child cells' lists from their parents' (``parent`` = each child's parent)."""
        cx, cy = centres
        counts_all = ptr[parent + 1] - ptr[parent]
        out_counts = np.zeros(len(parent), dtype=np.int64)
        out_lists = []
        for i, j in _batches(counts_all, _MARK_BATCH):
            counts = counts_all[i:j]
            pt = np.repeat(np.arange(j - i), counts)
            seg = lists[np.repeat(ptr[parent[i:j]], counts) + _ragged_arange(counts)]
            d = self._segment_distance(cx[i:j][pt], cy[i:j][pt], seg)
            starts = np.cumsum(counts) - counts
            d_c = np.minimum.reduceat(d, starts)
            radius = np.maximum(d_c + h, self.near_m * _SLACK) + h + 0.01
            keep = d <= radius[pt]
            out_counts[i:j] = np.bincount(pt[keep], minlength=j - i)
            out_lists.append(seg[keep])
        new_ptr = np.zeros(len(parent) + 1, dtype=np.int64)
        np.cumsum(out_counts, out=new_ptr[1:])
        return new_ptr, np.concatenate(out_lists)

    # --------------------------------------------------------------------------------------------
    # Size and codes

    def codes_at(self, rows: ArrayLike) -> NDArray[np.object_]:
        """Grid codes of rows (``None`` where the row is -1), e.g. ``codes_at(routed.index)``."""
        idx = np.asarray(rows, dtype=np.int64)
        out = np.full(idx.shape, None, dtype=object)
        ok = idx >= 0
        out[ok] = self.codes[idx[ok]]
        return out

    def memory_bytes(self) -> int:
        """Bytes held by the cell index and the segment lists (not the polygons)."""
        arrays = (self._coarse, self._fine, self._coarse_list, self._list_seg, self._list_ptr,
                  self._seg_data, self._seg_grid,
                  self._blocks)
        return int(sum(a.nbytes for a in arrays))

    def stats(self) -> dict[str, Any]:
        """Figures about the index (for benchmarks and logs)."""
        r = self._raster
        state = self._fine.astype(np.int64) & ~self._near_bit
        return {
            "grids": len(self.grids), "segments": len(self._seg_grid),
            "cell_m": round(self.cell_m, 3), "coarse_cells": r.ncx * r.ncy,
            "blocks": len(self._blocks), "fine_cells": int(self._fine.size),
            "mixed_fine_cells": int((state == 0).sum()),
            "list_entries": int(self._list_seg.size), "memory_mb": round(
                self.memory_bytes() / 2**20, 1),
        }

    # --------------------------------------------------------------------------------------------
    # Routing

    def route(self, lon: ArrayLike, lat: ArrayLike) -> Routed:
        """Route WGS84 points (degrees); see :class:`Routed` and the module docstring.

        Non-finite or out-of-China coordinates raise :class:`CoordinateError` naming the
        (0-based) rows.
        """
        x, y = _checked_lonlat(lon, lat, "coordinates in wgs84", None)
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
        x, y = _checked_lonlat(lon, lat, "coordinates in wgs84", None)
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
        state = int(self._coarse[(iy >> _SHIFT) * r.ncx + (ix >> _SHIFT)])
        if state >= 0:
            return state
        if state == -1:
            return -1
        fv = int(self._fine[(-2 - state) * _SUB + ((iy & _MASK) << _SHIFT) + (ix & _MASK)])
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
        cid = (iy >> _SHIFT) * r.ncx + (ix >> _SHIFT)
        state = self._coarse[cid].astype(np.int64)
        near = np.zeros(len(x), dtype=bool)
        blk = np.flatnonzero(state <= -2)
        if blk.size:
            fv = self._fine[(-2 - state[blk]) * _SUB + ((iy[blk] & _MASK) << _SHIFT)
                            + (ix[blk] & _MASK)]
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
            seg = self._list_seg[np.repeat(self._list_ptr[lst], count) + _ragged_arange(count)]
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


# ================================================================================================
# Input


def _prepare(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Check the grids and return them in WGS84 with text codes and valid polygons."""
    if not isinstance(grids, gpd.GeoDataFrame):
        raise LayerError(f"grids must be a GeoDataFrame, not {type(grids).__name__}",
                         layer="grids")
    if len(grids) == 0:
        raise LayerError("no grids: the layer is empty", layer="grids")
    if "code" not in grids.columns:
        found = ", ".join(str(c) for c in grids.columns if c != grids.geometry.name)
        raise LayerError(f"grids need a `code` column with each grid's code (found: {found}); "
                         "name the column that holds it", layer="grids")
    if grids.crs is None:
        raise CRSError("the grids have no coordinate system (CRS); set one, e.g. "
                       "grids.set_crs('EPSG:4326')")
    grids = grids.reset_index(drop=True)
    geoms = np.asarray(grids.geometry.to_numpy(), dtype=object)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    _fail_rows(empty, "have no geometry")
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
    _fail_rows(~polygonal & ~empty, "are not polygons")
    codes = grids["code"].astype("string").str.strip().str.replace(r"\.0$", "", regex=True)
    _fail_rows((codes.isna() | (codes == "")).to_numpy(dtype=bool), "have no code")
    try:
        source = crsmod.parse_coord_sys(grids.crs)
    except CRSError as exc:
        raise CRSError(f"the grids' coordinate system is not usable: {exc.message}") from exc
    wgs = crsmod.transform_geometries(shapely.force_2d(geoms), source, crsmod.WGS84)
    bounds = shapely.bounds(wgs)
    check_china(np.concatenate([bounds[:, 0], bounds[:, 2]]),
                np.concatenate([bounds[:, 1], bounds[:, 3]]),
                what=f"grids (read as {source.name})")
    invalid = np.flatnonzero(~shapely.is_valid(wgs))
    if invalid.size:
        fixed = shapely.make_valid(wgs[invalid])
        for j, geom in zip(invalid, fixed, strict=True):
            if shapely.get_type_id(geom) == 7:  # keep the polygons of a collection
                parts = shapely.get_parts(geom)
                geom = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), [3, 6])])
            if geom.is_empty or shapely.get_type_id(geom) not in (3, 6):
                raise LayerError("invalid polygon that collapses to nothing when repaired",
                                 layer="grids", row=int(j))
            wgs[j] = geom
    out = gpd.GeoDataFrame(grids.drop(columns=grids.geometry.name), geometry=wgs,
                           crs=crsmod.WGS84)
    out["code"] = codes.astype(object).to_numpy()
    return out


def points_to_wgs84(x: ArrayLike, y: ArrayLike, coord_sys: crsmod.CoordSysLike, *,
                    row_numbers: Sequence[int] | ArrayLike | None = None
                    ) -> tuple[FloatArray, FloatArray]:
    """Convert points to WGS84 lon/lat, checking them on the way (as :meth:`route_points`).

    Raises :class:`CoordinateError` naming the rows (``row_numbers``, else 0-based positions)
    whose coordinates are missing, NaN or infinite, lie outside China (before conversion for
    lon/lat systems, after it for all), or cannot be converted; :class:`CRSError` for an
    unknown ``coord_sys``.
    """
    cs = crsmod.parse_coord_sys(coord_sys)
    what = f"coordinates in {cs.name}"
    xa, ya = _as_1d(x, y)
    names = _row_names(row_numbers, len(xa))
    _require_finite_rows(xa, ya, what, names)
    if cs.is_geographic:
        _require_china_rows(xa, ya, what, names)
    try:
        lon, lat = crsmod.transform(xa, ya, cs, crsmod.WGS84)
    except CoordinateError:
        lon, lat = _transform_each(xa, ya, cs)  # NaN where it fails, named below
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if bad.any():
        raise CoordinateError(
            f"{what}: {int(bad.sum())} of {bad.size} points cannot be converted to WGS84 "
            f"(rows {_bad_rows(bad, names)}); check that they really are in {cs.name}")
    _require_china_rows(lon, lat, f"{what} (converted to WGS84)", names)
    return lon, lat


def _fail_rows(mask: BoolArray, what: str) -> None:
    if mask.any():
        rows = np.flatnonzero(mask)
        raise LayerError(f"{rows.size} grids {what} (rows {_rows_text(rows)})", layer="grids")


def _rows_text(rows: Sequence[Any] | NDArray[Any], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in list(rows[:limit]))
    return shown + (f", … ({len(rows)} in all)" if len(rows) > limit else "")


def _as_1d(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    try:
        xa = np.atleast_1d(np.asarray(x, dtype=np.float64)).ravel()
        ya = np.atleast_1d(np.asarray(y, dtype=np.float64)).ravel()
    except (TypeError, ValueError) as exc:
        raise CoordinateError(f"coordinates must be numbers: {exc}") from exc
    if xa.shape != ya.shape:
        raise CoordinateError(f"x/longitude and y/latitude have different lengths "
                              f"({xa.size} and {ya.size})")
    return xa, ya


def _row_names(row_numbers: Sequence[int] | ArrayLike | None, n: int) -> NDArray[Any] | None:
    if row_numbers is None:
        return None
    names = np.asarray(row_numbers)
    if names.shape != (n,):
        raise ValueError(f"row_numbers must have one entry per point ({n}), got {names.shape}")
    return names


def _bad_rows(mask: BoolArray, names: NDArray[Any] | None) -> str:
    rows = np.flatnonzero(mask)
    return _rows_text(rows if names is None else names[rows])


def _require_finite_rows(x: FloatArray, y: FloatArray, what: str,
                         names: NDArray[Any] | None) -> None:
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise CoordinateError(
            f"{what}: {int(bad.sum())} of {bad.size} points have no usable coordinates "
            f"(missing, NaN or infinite) in rows {_bad_rows(bad, names)}")


def _require_china_rows(x: FloatArray, y: FloatArray, what: str,
                        names: NDArray[Any] | None) -> None:
    lon0, lon1 = CHINA_LON
    lat0, lat1 = CHINA_LAT
    outside = (x < lon0) | (x > lon1) | (y < lat0) | (y > lat1)
    if not outside.any():
        return
    swapped = (x >= lat0) & (x <= lat1) & (y >= lon0) & (y <= lon1)
    hint = ("; they look like (latitude, longitude): swap the columns"
            if swapped[outside].all() else
            "; check the coordinate system and the axis order (x = longitude, y = latitude)")
    raise CoordinateError(
        f"{what}: {int(outside.sum())} of {outside.size} points lie outside China "
        f"(lon {lon0}..{lon1}, lat {lat0}..{lat1}) in rows {_bad_rows(outside, names)}{hint}")


def _checked_lonlat(lon: ArrayLike, lat: ArrayLike, what: str, names: NDArray[Any] | None
                    ) -> tuple[FloatArray, FloatArray]:
    x, y = _as_1d(lon, lat)
    _require_finite_rows(x, y, what, names)
    _require_china_rows(x, y, what, names)
    return x, y


def _transform_each(x: FloatArray, y: FloatArray, cs: crsmod.CoordSys
                    ) -> tuple[FloatArray, FloatArray]:
    """Transform to WGS84 leaving NaN where a point cannot be transformed."""
    assert cs.crs is not None  # the obfuscated systems never fail
    t = pyproj.Transformer.from_crs(cs.crs, crsmod.WGS84, always_xy=True)
    lon, lat = t.transform(x, y, errcheck=False)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


# ================================================================================================
# Cells and arrays


def _first_index(labels: NDArray[Any], n: int) -> IntArray:
    """For labels 1..n, the first position of each in ``labels`` (0 = no label: ignored)."""
    labels = labels.ravel()
    first = np.full(n + 1, len(labels), dtype=np.int64)
    np.minimum.at(first, labels, np.arange(len(labels), dtype=np.int64))
    return first[1:]


def _ragged_arange(counts: IntArray) -> IntArray:
    """0..c-1 for each c in counts, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def _cells_touched(ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray, r: float
                   ) -> tuple[IntArray, IntArray]:
    """(col, row) of every unit cell [c, c+1) x [k, k+1) that holds a point within L-inf
    distance ``r`` of a segment a-b (coordinates in cell units). Exact: no cell is missed."""
    swap = bx < ax
    x0, x1 = np.where(swap, bx, ax), np.where(swap, ax, bx)
    y0, y1 = np.where(swap, by, ay), np.where(swap, ay, by)
    c_lo = np.floor(x0 - r).astype(np.int64)
    ncol = np.floor(x1 + r).astype(np.int64) - c_lo + 1
    s = np.repeat(np.arange(len(x0)), ncol)
    col = c_lo[s] + _ragged_arange(ncol)
    sx0, sx1, sy0, sy1 = x0[s], x1[s], y0[s], y1[s]
    # The part of the segment whose x lies within r of the column.
    xa = np.maximum(sx0, col - r)
    xb = np.minimum(sx1, col + 1 + r)
    run = sx1 - sx0
    slope = np.divide(sy1 - sy0, run, out=np.zeros_like(run), where=run > 0)
    ya = np.where(run > 0, sy0 + (xa - sx0) * slope, sy0)
    yb = np.where(run > 0, sy0 + (xb - sx0) * slope, sy1)
    lo = np.maximum(np.minimum(ya, yb), np.minimum(sy0, sy1))
    hi = np.minimum(np.maximum(ya, yb), np.maximum(sy0, sy1))
    r_lo = np.floor(lo - r).astype(np.int64)
    nrow = np.floor(hi + r).astype(np.int64) - r_lo + 1
    k = np.repeat(np.arange(len(col)), nrow)
    return col[k], r_lo[k] + _ragged_arange(nrow)


def _cells_touched_batches(ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray,
                           r: float) -> Iterator[tuple[IntArray, IntArray]]:
    """:func:`_cells_touched` over batches of segments, bounding the memory used."""
    est = (np.abs(bx - ax) + 2 * r + 2) * (np.abs(by - ay) / np.maximum(
        np.abs(bx - ax), 1.0) + 2 * r + 2)
    for i, j in _batches(est, _MARK_BATCH):
        yield _cells_touched(ax[i:j], ay[i:j], bx[i:j], by[i:j], r)


def _batches(costs: NDArray[Any], limit: float) -> Iterator[tuple[int, int]]:
    """Consecutive, non-empty index ranges [i, j) whose costs add up to about ``limit``."""
    total = np.cumsum(costs)
    cuts = np.searchsorted(total, np.arange(limit, total[-1] if len(total) else 0, limit))
    edges = np.unique(np.concatenate([[0], cuts, [len(costs)]]).astype(np.int64))
    for i, j in itertools.pairwise(edges.tolist()):
        if j > i:
            yield i, j


def _join_regions(labels: IntArray, n1: int, labels3: NDArray[Any], n3: int, blocks: IntArray,
                  coarse_block: IntArray, ncx: int) -> tuple[IntArray, int]:
    """Connected components over the regions of uniform coarse cells (nodes 0..n1-1, from
    ``labels``) and of untouched fine cells (nodes n1.., from ``labels3``): regions touching
    across a block side are one. Returns each node's component and the number of components."""
    src: list[IntArray] = []
    dst: list[IntArray] = []
    lab3 = labels3.astype(np.int64)
    # (neighbour offset in coarse ids, this block's side, the neighbour block's facing side)
    sides = (
        (1, lab3[:, :, _BLOCK - 1], lab3[:, :, 0]),
        (-1, lab3[:, :, 0], lab3[:, :, _BLOCK - 1]),
        (ncx, lab3[:, _BLOCK - 1, :], lab3[:, 0, :]),
        (-ncx, lab3[:, 0, :], lab3[:, _BLOCK - 1, :]),
    )
    for offset, mine, facing in sides:
        nbr = blocks + offset
        nbr_block = coarse_block[nbr]
        to_block = np.flatnonzero(nbr_block >= 0)
        if offset > 0:  # each pair of blocks once
            a = mine[to_block]
            b = facing[nbr_block[to_block]]
            ok = (a > 0) & (b > 0)
            src.append(n1 + a[ok] - 1)
            dst.append(n1 + b[ok] - 1)
        to_uniform = np.flatnonzero(nbr_block < 0)
        a = mine[to_uniform]
        b = np.broadcast_to(labels[nbr[to_uniform]][:, None], a.shape)
        ok = a > 0
        src.append(n1 + a[ok] - 1)
        dst.append(b[ok] - 1)
    n = n1 + n3
    graph = sparse.coo_matrix((np.ones(sum(len(s) for s in src), dtype=np.int32),
                               (np.concatenate(src), np.concatenate(dst))), shape=(n, n))
    n_comp, comp = csgraph.connected_components(graph, directed=False)
    return comp.astype(np.int64), int(n_comp)


def _flag_lists(bits: NDArray[np.int8]) -> list[list[str]]:
    """One shared, read-only list per combination of flags (no million little lists)."""
    return list(_FLAG_LISTS[bits].tolist())
