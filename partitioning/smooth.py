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

from partitioning.regions import Graph
from partitioning.sides import land_edges

#: A move is made only when it shortens the grids' boundary by this much, in metres of
#: boundary weighted as the bisection weighs a cut (``length × (1.05 − strength)``): a
#: street side counts a fifth to a half of an open one.
MIN_GAIN = 40.0
#: At most this many moves (a swap counts two) per village.
MAX_MOVES = 60
#: Swap partners are looked for behind the best this many band-blocked moves.
SWAP_CANDIDATES = 8


def _stray(h: float, lo: float, hi: float) -> float:
    return max(0.0, lo - h, h - hi)


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
    w = graph.households.astype(float).tolist()
    cost = (graph.length * (1.05 - graph.strength)).tolist()
    nbrs: list[list[tuple[int, float]]] = [[] for _ in range(graph.n)]
    soft: list[list[int]] = [[] for _ in range(graph.n)]
    for x, y, c, ok in zip(graph.a.tolist(), graph.b.tolist(), cost,
                           land_edges(graph).tolist(), strict=True):
        nbrs[x].append((y, c))
        nbrs[y].append((x, c))
        if ok:
            soft[x].append(y)
            soft[y].append(x)
    members: list[set[int]] = [set() for _ in range(n_grids)]
    sums = [0.0] * n_grids
    for v, g in enumerate(label.tolist()):
        if g >= 0:                      # (a block of no grid takes no part)
            members[g].add(v)
            sums[g] += w[v]
    mov = movable.tolist()

    def band_ok(g: int, delta: float) -> bool:
        return _stray(sums[g] + delta, lo, hi) <= _stray(sums[g], lo, hi)

    def gain(v: int, src: int, dst: int) -> float:
        """How much shorter the weighted boundary gets when ``v`` moves to ``dst``."""
        out = 0.0
        for u, c in nbrs[v]:
            lu = label[u]
            if lu == dst:
                out += c
            elif lu == src:
                out -= c
        return out

    def connected(nodes: set[int]) -> bool:
        if not nodes:
            return False
        start = min(nodes)
        seen = {start}
        stack = [start]
        while stack:
            x = stack.pop()
            for y, _ in nbrs[x]:
                if y in nodes and y not in seen:
                    seen.add(y)
                    stack.append(y)
        return len(seen) == len(nodes)

    def apply(v: int, src: int, dst: int) -> None:
        label[v] = dst
        members[src].discard(v)
        members[dst].add(v)
        sums[src] -= w[v]
        sums[dst] += w[v]

    def candidates() -> Iterator[tuple[int, int, int]]:
        """(block, its grid, a neighbouring grid) over the movable grids' boundaries."""
        for v in range(graph.n):
            src = int(label[v])
            if src < 0 or not mov[src]:
                continue
            for dst in sorted({int(label[u]) for u in soft[v]} - {src}):
                if dst >= 0 and mov[dst]:
                    yield v, src, dst

    moved = 0
    while moved < MAX_MOVES:
        best: tuple[float, list[tuple[int, int, int]]] | None = None
        blocked: list[tuple[float, int, int, int]] = []
        for v, src, dst in candidates():
            g = gain(v, src, dst)
            if g < MIN_GAIN or (best is not None and g <= best[0]):
                continue
            if band_ok(src, -w[v]) and band_ok(dst, w[v]):
                if connected(members[src] - {v}):
                    best = (g, [(v, src, dst)])
            else:
                blocked.append((g, v, src, dst))
        blocked.sort(key=lambda t: (-t[0], t[1], t[3]))
        for g, v, src, dst in blocked[:SWAP_CANDIDATES]:
            apply(v, src, dst)
            try:
                for u in sorted(members[dst] - {v}):
                    if not any(label[x] == src for x in soft[u]):
                        continue
                    if not (_stray(sums[src] + w[u], lo, hi)
                            <= _stray(sums[src] + w[v], lo, hi)
                            and _stray(sums[dst] - w[u], lo, hi)
                            <= _stray(sums[dst] - w[v], lo, hi)):
                        continue
                    total = g + gain(u, dst, src)
                    if total < MIN_GAIN or (best is not None and total <= best[0]):
                        continue
                    if connected((members[src]) | {u}) and connected(members[dst] - {u}):
                        best = (total, [(v, src, dst), (u, dst, src)])
            finally:
                apply(v, dst, src)
        if best is None:
            break
        for v, src, dst in best[1]:
            apply(v, src, dst)
            moved += 1
    return moved
