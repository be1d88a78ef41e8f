"""Smoothing of a village's grids: boundary blocks moved, or swapped in pairs, between
neighbouring grids where that shortens the weighted line between them, never taking a
grid out of the household band nor splitting it.

The bisection cuts along cheap edges (streets cost little to cut), so a long thin block
between two near-parallel streets can end in the grid at one of its ends and reach
deep into its neighbour: a spike whose two long sides are both grid boundary. Moving
the block (or, when the band forbids, swapping it for a block of about the same
households the other way) turns those sides into the inside of one grid.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from partitioning.moves import Moves, stray
from partitioning.regions import Graph

#: A move is made only when it shortens the grids' boundary by this much, in metres of
#: boundary weighted as the bisection weighs a cut (``length × (1.05 − strength)``): a
#: street side counts a fifth to a half of an open one.
MIN_GAIN = 40.0
#: At most this many moves (a swap counts two) per village.
MAX_MOVES = 60
#: Swap partners are looked for behind the best this many band-blocked moves.
SWAP_CANDIDATES = 8


def smooth(graph: Graph, label: np.ndarray, movable: np.ndarray, lo: float, hi: float
           ) -> int:
    """Improve ``label`` (block → grid, changed in place) by single moves and pair swaps
    of boundary blocks between ``movable`` grids across land edges (never across a river,
    ridge or railway), best gain first, while a move gains :data:`MIN_GAIN`. A grid's
    distance from [lo, hi] never grows and every grid stays connected. Returns the
    blocks moved."""
    n_grids = len(movable)
    if n_grids < 2 or graph.n < 3 or int(movable.sum()) < 2:
        return 0
    m = Moves(graph, label, n_grids)
    w, members, sums = m.w, m.members, m.sums
    mov = movable.tolist()

    def band_ok(g: int, delta: float) -> bool:
        return stray(sums[g] + delta, lo, hi) <= stray(sums[g], lo, hi)

    def candidates() -> Iterator[tuple[int, int, int]]:
        """(block, its grid, a neighbouring grid) over the movable grids' boundaries."""
        for v in range(graph.n):
            src = int(label[v])
            if src >= 0 and mov[src]:
                for dst in m.grids_beside(v):
                    if mov[dst]:
                        yield v, src, dst

    moved = 0
    while moved < MAX_MOVES:
        best: tuple[float, list[tuple[int, int, int]]] | None = None
        blocked: list[tuple[float, int, int, int]] = []
        for v, src, dst in candidates():
            g = -m.cut_change(v, src, dst)
            if g < MIN_GAIN or (best is not None and g <= best[0]):
                continue
            if band_ok(src, -w[v]) and band_ok(dst, w[v]):
                if m.connected(members[src] - {v}):
                    best = (g, [(v, src, dst)])
            else:
                blocked.append((g, v, src, dst))
        blocked.sort(key=lambda t: (-t[0], t[1], t[3]))
        for g, v, src, dst in blocked[:SWAP_CANDIDATES]:
            m.apply(v, src, dst)
            try:
                for u in sorted(members[dst] - {v}):
                    if not any(label[x] == src for x in m.soft[u]):
                        continue
                    if not (stray(sums[src] + w[u], lo, hi)
                            <= stray(sums[src] + w[v], lo, hi)
                            and stray(sums[dst] - w[u], lo, hi)
                            <= stray(sums[dst] - w[v], lo, hi)):
                        continue
                    total = g - m.cut_change(u, dst, src)
                    if total < MIN_GAIN or (best is not None and total <= best[0]):
                        continue
                    if m.connected(members[src] | {u}) and m.connected(members[dst] - {u}):
                        best = (total, [(v, src, dst), (u, dst, src)])
            finally:
                m.apply(v, dst, src)
        if best is None:
            break
        for v, src, dst in best[1]:
            m.apply(v, src, dst)
            moved += 1
    return moved
