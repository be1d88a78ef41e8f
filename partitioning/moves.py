"""Blocks moving between a village's grids: which blocks touch (and what cutting between
them costs), each grid's blocks and households, and whether a grid stays in one piece."""

from __future__ import annotations

import numpy as np

from partitioning.regions import Graph
from partitioning.sides import land_edges


def stray(h: float, lo: float, hi: float) -> float:
    """How far ``h`` households lie outside [lo, hi] (0 inside)."""
    return max(0.0, lo - h, h - hi)


class Moves:
    """The state the repair and the smoothing change one block at a time: ``label`` (block
    → grid, changed in place), each grid's ``members`` and household ``sums``."""

    def __init__(self, graph: Graph, label: np.ndarray, n_grids: int) -> None:
        self.label = label
        self.w: list[float] = graph.households.astype(float).tolist()
        cost = (graph.length * (1.05 - graph.strength)).tolist()
        #: Every neighbour of a block with the cost of cutting between them.
        self.nbrs: list[list[tuple[int, float]]] = [[] for _ in range(graph.n)]
        #: The neighbours a block may move beside: not across a river, ridge or railway.
        self.soft: list[set[int]] = [set() for _ in range(graph.n)]
        for x, y, c, ok in zip(graph.a.tolist(), graph.b.tolist(), cost,
                               land_edges(graph).tolist(), strict=True):
            self.nbrs[x].append((y, c))
            self.nbrs[y].append((x, c))
            if ok:
                self.soft[x].add(y)
                self.soft[y].add(x)
        self.members: list[set[int]] = [set() for _ in range(n_grids)]
        self.sums = [0.0] * n_grids
        for v, g in enumerate(label.tolist()):
            if g >= 0:                  # (a block of no grid takes no part)
                self.members[g].add(v)
                self.sums[g] += self.w[v]

    def connected(self, nodes: set[int]) -> bool:
        """Whether ``nodes`` (not empty) are one piece."""
        if not nodes:
            return False
        start = min(nodes)
        seen = {start}
        stack = [start]
        while stack:
            x = stack.pop()
            for y, _ in self.nbrs[x]:
                if y in nodes and y not in seen:
                    seen.add(y)
                    stack.append(y)
        return len(seen) == len(nodes)

    def cut_change(self, v: int, src: int, dst: int) -> float:
        """How much longer (weighted) the grids' boundary gets when ``v`` moves to ``dst``."""
        out = 0.0
        for u, c in self.nbrs[v]:
            lu = self.label[u]
            if lu == src:
                out += c
            elif lu == dst:
                out -= c
        return out

    def grids_beside(self, v: int) -> list[int]:
        """The other grids ``v`` could move to (touching it by a land edge), in order."""
        own = self.label[v]
        return sorted({int(self.label[u]) for u in self.soft[v]} - {int(own), -1})

    def apply(self, v: int, src: int, dst: int) -> None:
        self.label[v] = dst
        self.members[src].discard(v)
        self.members[dst].add(v)
        self.sums[src] -= self.w[v]
        self.sums[dst] += self.w[v]
