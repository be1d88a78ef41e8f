"""The router's raster of cells: their layout in WGS84 degrees and the array steps that mark the
cells a boundary touches and join the regions free of boundaries."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse import csgraph

IntArray: TypeAlias = NDArray[np.int64]
FloatArray: TypeAlias = NDArray[np.float64]
BoolArray: TypeAlias = NDArray[np.bool_]

SHIFT = 3  # a coarse cell is 2**3 x 2**3 fine cells
BLOCK = 1 << SHIFT
SUB = BLOCK * BLOCK
MASK = BLOCK - 1
EPS = 1e-6  # cells: margin around segments absorbing rounding in cell arithmetic
SLACK = 1.02  # on metres-to-cells conversions (cell sizes vary over the raster)
MARK_BATCH = 4_000_000  # cell visits per batch when marking segments


@dataclass(frozen=True)
class Raster:
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
        return self.ncx * BLOCK

    @property
    def nfy(self) -> int:
        return self.ncy * BLOCK

    def fine_xy(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Position in fine-cell units (the same arithmetic everywhere)."""
        return (np.asarray((lon - self.x0) * (1.0 / self.dx), dtype=np.float64),
                np.asarray((lat - self.y0) * (1.0 / self.dy), dtype=np.float64))

    def fine_centres(self, col: NDArray[Any], row: NDArray[Any]
                     ) -> tuple[FloatArray, FloatArray]:
        """Centres (lon, lat) of fine cells (col, row); fractional positions work too."""
        return (np.asarray(self.x0 + (col + 0.5) * self.dx, dtype=np.float64),
                np.asarray(self.y0 + (row + 0.5) * self.dy, dtype=np.float64))



def first_index(labels: NDArray[Any], n: int) -> IntArray:
    """For labels 1..n, the first position of each in ``labels`` (0 = no label: ignored)."""
    labels = labels.ravel()
    first = np.full(n + 1, len(labels), dtype=np.int64)
    np.minimum.at(first, labels, np.arange(len(labels), dtype=np.int64))
    return first[1:]


def ragged_arange(counts: IntArray) -> IntArray:
    """0..c-1 for each c in counts, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def cells_touched(ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray, r: float
                   ) -> tuple[IntArray, IntArray]:
    """(col, row) of every unit cell [c, c+1) x [k, k+1) that holds a point within L-inf
    distance ``r`` of a segment a-b (coordinates in cell units). Exact: no cell is missed."""
    swap = bx < ax
    x0, x1 = np.where(swap, bx, ax), np.where(swap, ax, bx)
    y0, y1 = np.where(swap, by, ay), np.where(swap, ay, by)
    c_lo = np.floor(x0 - r).astype(np.int64)
    ncol = np.floor(x1 + r).astype(np.int64) - c_lo + 1
    s = np.repeat(np.arange(len(x0)), ncol)
    col = c_lo[s] + ragged_arange(ncol)
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
    return col[k], r_lo[k] + ragged_arange(nrow)


def cells_touched_batches(ax: FloatArray, ay: FloatArray, bx: FloatArray, by: FloatArray,
                           r: float) -> Iterator[tuple[IntArray, IntArray]]:
    """:func:`cells_touched` over batches of segments, bounding the memory used."""
    est = (np.abs(bx - ax) + 2 * r + 2) * (np.abs(by - ay) / np.maximum(
        np.abs(bx - ax), 1.0) + 2 * r + 2)
    for i, j in batches(est, MARK_BATCH):
        yield cells_touched(ax[i:j], ay[i:j], bx[i:j], by[i:j], r)


def batches(costs: NDArray[Any], limit: float) -> Iterator[tuple[int, int]]:
    """Consecutive, non-empty index ranges [i, j) whose costs add up to about ``limit``."""
    total = np.cumsum(costs)
    cuts = np.searchsorted(total, np.arange(limit, total[-1] if len(total) else 0, limit))
    edges = np.unique(np.concatenate([[0], cuts, [len(costs)]]).astype(np.int64))
    for i, j in itertools.pairwise(edges.tolist()):
        if j > i:
            yield i, j


def join_regions(labels: IntArray, n1: int, labels3: NDArray[Any], n3: int, blocks: IntArray,
                  coarse_block: IntArray, ncx: int) -> tuple[IntArray, int]:
    """Connected components over the regions of uniform coarse cells (nodes 0..n1-1, from
    ``labels``) and of untouched fine cells (nodes n1.., from ``labels3``): regions touching
    across a block side are one. Returns each node's component and the number of components."""
    src: list[IntArray] = []
    dst: list[IntArray] = []
    lab3 = labels3.astype(np.int64)
    # (neighbour offset in coarse ids, this block's side, the neighbour block's facing side)
    sides = (
        (1, lab3[:, :, BLOCK - 1], lab3[:, :, 0]),
        (-1, lab3[:, :, 0], lab3[:, :, BLOCK - 1]),
        (ncx, lab3[:, BLOCK - 1, :], lab3[:, 0, :]),
        (-ncx, lab3[:, 0, :], lab3[:, BLOCK - 1, :]),
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
