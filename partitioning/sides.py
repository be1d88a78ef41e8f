"""The sides of a village's strong barriers (rivers, ridges, railways): which blocks lie on the
same side of all of them, which sides are grouped to be cut into grids together, and which
grids cross a strong barrier (only those that must, and then they say so)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from partitioning.regions import Graph


@dataclass
class Sides:
    """``side[v]``: the side of land block v (-1 for water blocks and blocks not asked
    about); ``households[s]``: the households on side s; ``groups``: the blocks cut into
    grids together (each holds whole sides, and the water blocks joining them)."""

    side: np.ndarray
    households: np.ndarray
    groups: list[np.ndarray]


def land_edges(graph: Graph) -> np.ndarray:
    """The edges that cross no strong barrier: between two land blocks, along no river,
    ridge or railway."""
    return ~graph.strong & ~graph.water[graph.a] & ~graph.water[graph.b]


def find_sides(graph: Graph, nodes: np.ndarray, lo: float, hi: float | None = None
               ) -> Sides:
    """The sides of ``nodes`` (land blocks) and how they are grouped. A side that cannot
    be grids of its own — fewer than ``lo`` households, or (with ``hi``) a total no whole
    number of grids in [lo, hi] can hold, such as 591 (1×500 < 591 < 2×300) — joins a
    neighbouring side (across a strong barrier or a stretch of water): one with which it
    makes such a total first, then one that can be grids of its own, then the one it
    shares most boundary with. Sides that can be grids of their own are never grouped
    with each other."""
    side = np.full(graph.n, -1, dtype=np.int64)
    comps = graph.components(nodes, land_edges(graph)) if len(nodes) else []
    for s, comp in enumerate(comps):
        side[comp] = s
    n_sides = len(comps)
    hh = np.array([float(graph.households[c].sum()) for c in comps])
    if n_sides <= 1:
        return Sides(side, hh, [np.asarray(c) for c in comps])
    contact, bridges = _contacts(graph, side, n_sides)
    parent = list(range(n_sides))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def alone(t: float) -> bool:
        """Whether a total can be grids of its own."""
        if hi is None:
            return t >= lo
        return t >= lo and math.ceil(t / hi) <= math.floor(t / lo)

    total = hh.copy()
    while True:
        roots = sorted({find(s) for s in range(n_sides)}, key=lambda r: (total[r], r))
        small = [r for r in roots if not alone(total[r])]
        merged = False
        for r in small:
            if find(r) != r:
                continue
            weight: dict[int, float] = {}
            for (x, y), w in contact.items():
                rx, ry = find(x), find(y)
                if rx == r and ry != r:
                    weight[ry] = weight.get(ry, 0.0) + w
                elif ry == r and rx != r:
                    weight[rx] = weight.get(rx, 0.0) + w
            if not weight:
                continue
            best = max(weight, key=lambda o: (alone(float(total[o] + total[r])),
                                              alone(float(total[o])), weight[o], -o))
            parent[r] = best
            total[best] += total[r]
            merged = True
            break
        if not merged:
            break
    groups: dict[int, list[int]] = {}
    for s in range(n_sides):
        groups.setdefault(find(s), []).append(s)
    out: list[np.ndarray] = []
    for members in groups.values():
        mine = set(members)
        nodes_g = [comps[s] for s in members]
        # The water that joins two sides of the group joins the group (it keeps it whole).
        for water_nodes, touched in bridges:
            if len(mine & touched) >= 2:
                nodes_g.append(water_nodes)
        out.append(np.unique(np.concatenate(nodes_g)))
    return Sides(side, hh, out)


def _contacts(graph: Graph, side: np.ndarray, n_sides: int
              ) -> tuple[dict[tuple[int, int], float], list[tuple[np.ndarray, set[int]]]]:
    """Boundary shared by two sides across a strong barrier (directly, or across water:
    the shorter of the two shores), and each stretch of water with the sides it touches."""
    contact: dict[tuple[int, int], float] = {}
    sa, sb = side[graph.a], side[graph.b]
    direct = graph.strong & (sa >= 0) & (sb >= 0) & (sa != sb)
    for x, y, w in zip(sa[direct].tolist(), sb[direct].tolist(),
                       graph.length[direct].tolist(), strict=True):
        key = (min(x, y), max(x, y))
        contact[key] = contact.get(key, 0.0) + w
    bridges: list[tuple[np.ndarray, set[int]]] = []
    water = np.flatnonzero(graph.water)
    if len(water):
        both_water = graph.water[graph.a] & graph.water[graph.b]
        for comp in graph.components(water, both_water):
            in_comp = np.zeros(graph.n, dtype=bool)
            in_comp[comp] = True
            shore: dict[int, float] = {}
            for x, y, w in ((graph.a[e], graph.b[e], graph.length[e])
                            for e in np.flatnonzero(in_comp[graph.a] != in_comp[graph.b])):
                land = y if in_comp[x] else x
                s = int(side[land])
                if s >= 0:
                    shore[s] = shore.get(s, 0.0) + float(w)
            touched = sorted(shore)
            for i, x in enumerate(touched):
                for y in touched[i + 1:]:
                    contact[(x, y)] = contact.get((x, y), 0.0) + min(shore[x], shore[y])
            bridges.append((comp, set(touched)))
    return contact, bridges


def crossings(graph: Graph, label: np.ndarray, sides: Sides, grids: np.ndarray,
              min_inside: float = 5.0) -> dict[int, tuple[list[str], list[float], float]]:
    """For each of ``grids`` (labels) that crosses a strong barrier — its land lies on more
    than one side, or more than ``min_inside`` m of the barrier runs between two of its
    blocks (a barrier that ends inside the village, so that its sides meet around its
    end) — the names of the barriers, the households of the sides it holds land on, and
    the length of barrier between its own blocks."""
    out: dict[int, tuple[list[str], list[float], float]] = {}
    side = sides.side
    ea, eb = graph.a, graph.b
    land = ~graph.water[ea] & ~graph.water[eb]
    for g in grids.tolist():
        mine = (label == g) & (side >= 0)
        on = np.unique(side[mine])
        inner = graph.strong & land & (label[ea] == g) & (label[eb] == g)
        inside = float(graph.length[inner].sum())
        if len(on) < 2 and inside <= min_inside:
            continue
        touching = (label[ea] == g) | (label[eb] == g)
        across = graph.strong & touching & ((side[ea] != side[eb]) | ~land | inner)
        names = sorted({str(n) for n in graph.barrier_name[across] if n})
        out[g] = (names, [float(sides.households[s]) for s in on], inside)
    return out
