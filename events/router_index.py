"""The router's cell index built: the grids' boundary segments, the raster of coarse and fine
cells with the owner of every cell no boundary touches, and per cell the segments its points
may need for distances."""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage

from events.router_cells import (
    BLOCK,
    EPS,
    MARK_BATCH,
    MASK,
    SHIFT,
    SLACK,
    SUB,
    BoolArray,
    FloatArray,
    IntArray,
    Raster,
    batches,
    cells_touched,
    cells_touched_batches,
    first_index,
    join_regions,
    ragged_arange,
)
from events.router_exact import ExactTests

# A fine cell's value: state | near bit, state 0 = test exactly, 1 = outside, owner + 2. Two
# bytes a cell while the grids number fewer than 2**14 - 2, else four.
_NEAR_BIT16, _NEAR_BIT32 = 1 << 14, 1 << 30
_DEFAULT_CELL_M = 4.0
_MAX_COARSE_CELLS = 4_000_000


class CellIndex(ExactTests):
    """The exact tests plus the cell index that answers most points without them."""

    cell_m: float

    def __init__(self, grids: gpd.GeoDataFrame, near_m: float, cell_m: float | None) -> None:
        """``grids`` checked and in WGS84; ``cell_m`` the fine cell size (None: chosen)."""
        super().__init__(grids, near_m)
        self._build_segments()
        self._raster = self._layout(cell_m)
        self.cell_m = self._cell_m
        self._build_cells()
        self._build_lists()

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
                                          distance=self.near_m * SLACK)
            other = code[gi] != lo[alone][si]
            contested[alone[np.unique(si[other])]] = True
            # A segment inside a grid of another code (overlapping grids) is contested too.
            alone = np.flatnonzero(~contested)
            mid = shapely.points(ua[alone] + 0.5 * ue[alone])
            pi, gi = self._metric_tree.query(mid, predicate="within")
            inside_other = self._code_id[gi] != lo[alone][pi]
            contested[alone[np.unique(pi[inside_other])]] = True
        return contested

    def _layout(self, cell_m: float | None) -> Raster:
        minx, miny, maxx, maxy = (float(v) for v in self.grids.total_bounds)
        m_lon = 111_320.0 * math.cos(math.radians((miny + maxy) / 2.0))
        m_lat = 110_574.0
        if cell_m is None:
            area = max((maxx - minx) * m_lon, 1.0) * max((maxy - miny) * m_lat, 1.0)
            cell_m = max(_DEFAULT_CELL_M, math.sqrt(area / _MAX_COARSE_CELLS) / BLOCK)
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
        self._near_cells = self.near_m * SLACK / self._fine_side_min + EPS
        pad = (math.ceil(self._near_cells / BLOCK) + 2) * BLOCK
        x0, y0 = minx - pad * dx, miny - pad * dy
        ncx = math.ceil(((maxx - x0) / dx + pad) / BLOCK)
        ncy = math.ceil(((maxy - y0) / dy + pad) / BLOCK)
        return Raster(x0, y0, dx, dy, ncx, ncy)

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
        for sel, radius in ((slice(None), EPS), (c, self._near_cells)):
            col, row = cells_touched(ax[sel] / BLOCK, ay[sel] / BLOCK, bx[sel] / BLOCK,
                                      by[sel] / BLOCK, radius / BLOCK + EPS)
            coarse_ids.append(row * r.ncx + col)
        is_block = np.zeros(r.ncx * r.ncy, dtype=bool)
        for ids in coarse_ids:
            is_block[ids] = True
        blocks = np.flatnonzero(is_block)
        self._blocks = blocks
        coarse_block = np.full(r.ncx * r.ncy, -1, dtype=np.int64)
        coarse_block[blocks] = np.arange(len(blocks))
        nb = len(blocks)
        near = np.zeros(nb * SUB, dtype=bool)
        mixed = np.zeros(nb * SUB, dtype=bool)
        for target, sel, radius in ((near, c, self._near_cells), (mixed, slice(None), EPS)):
            for col, row in cells_touched_batches(ax[sel], ay[sel], bx[sel], by[sel], radius):
                blk = coarse_block[(row >> SHIFT) * r.ncx + (col >> SHIFT)]
                if np.any(blk < 0):  # pragma: no cover - guarded by the construction
                    raise AssertionError("a boundary cell outside every block")
                target[blk * SUB + ((row & MASK) << SHIFT) + (col & MASK)] = True

        # Regions free of boundaries: 4-connected uniform coarse cells, and 4-connected
        # untouched fine cells, joined across block sides. Each lies in one grid (or outside
        # all), found by one exact test.
        uniform = (coarse_block < 0).reshape(r.ncy, r.ncx)
        labels, n1 = ndimage.label(uniform)
        labels = labels.ravel()
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
        labels3, n3 = ndimage.label(~mixed.reshape(nb, BLOCK, BLOCK), structure=structure)
        comp, n_comp = join_regions(labels, n1, labels3, n3, blocks, coarse_block, r.ncx)
        # One cell of each region: its centre in fine-cell units.
        node_col = np.zeros(n1 + n3, dtype=np.int64)
        node_row = np.zeros(n1 + n3, dtype=np.int64)
        first = first_index(labels, n1)
        node_col[:n1] = (first % r.ncx) * BLOCK + BLOCK // 2
        node_row[:n1] = (first // r.ncx) * BLOCK + BLOCK // 2
        flat3 = labels3.ravel()
        first3 = first_index(flat3, n3)
        blk, sub = first3 // SUB, first3 % SUB
        node_col[n1:] = (blocks[blk] % r.ncx) * BLOCK + (sub & MASK)
        node_row[n1:] = (blocks[blk] // r.ncx) * BLOCK + (sub >> SHIFT)
        rep = first_index(comp + 1, n_comp)
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
            fine = np.concatenate([fine, np.zeros(SUB, dtype=fine.dtype)])
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
        h0 = 0.5 * math.sqrt(2.0) * BLOCK * self._fine_side_max * SLACK
        ccol, crow = cells % r.ncx, cells // r.ncx
        top = 4
        parent = np.unique((crow >> top) * r.ncx + (ccol >> top))
        centres = self._level_centres(parent % r.ncx, parent // r.ncx, top)
        h = h0 * (1 << top)
        (idx, _), dist = self._seg_tree.query_nearest(shapely.points(*centres),
                                                       return_distance=True, all_matches=False)
        d_c = np.full(len(parent), np.inf)
        d_c[idx] = dist
        radius = np.maximum(d_c + h, self.near_m * SLACK) + h + 0.01
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
        size = BLOCK << level
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
        for i, j in batches(counts_all, MARK_BATCH):
            counts = counts_all[i:j]
            pt = np.repeat(np.arange(j - i), counts)
            seg = lists[np.repeat(ptr[parent[i:j]], counts) + ragged_arange(counts)]
            d = self._segment_distance(cx[i:j][pt], cy[i:j][pt], seg)
            starts = np.cumsum(counts) - counts
            d_c = np.minimum.reduceat(d, starts)
            radius = np.maximum(d_c + h, self.near_m * SLACK) + h + 0.01
            keep = d <= radius[pt]
            out_counts[i:j] = np.bincount(pt[keep], minlength=j - i)
            out_lists.append(seg[keep])
        new_ptr = np.zeros(len(parent) + 1, dtype=np.int64)
        np.cumsum(out_counts, out=new_ptr[1:])
        return new_ptr, np.concatenate(out_lists)

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
