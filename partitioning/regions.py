"""Stage 5: cut each village's block graph into contiguous grids of min–max households.

Recursive bisection on random spanning trees (as GerryChain does), with three
changes that make it reliable for grid partitioning: a cut is accepted when
both sides can still be divided into parts *within the band* (not only
±ε around an exact share), the tree is drawn so that it avoids crossing
strong barriers, and among the feasible cuts of several trees the one with
the best score (balance, cut length weighted by barrier weakness) wins.

Small graphs (up to EXHAUSTIVE_NODES blocks, most of the calls deep in the
recursion) are cut by scoring every split into two connected sides instead, and
a subset-sum test rules out a split before any tree is drawn. When the bounded
search fails, :func:`exhaustive_partition` either finds a partition or proves
that none exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from partitioning.params import PartitionParams


@dataclass
class Graph:
    """The blocks of one village: weights, areas, and adjacency with cut costs."""

    households: np.ndarray      # (n,) int
    area: np.ndarray            # (n,) m²
    a: np.ndarray               # (m,) edge ends, a < b
    b: np.ndarray
    length: np.ndarray          # (m,) shared boundary, m
    strength: np.ndarray        # (m,) 0..1 barrier strength along it
    #: (m,) a strong barrier (river, ridge, railway) runs along the edge, and its name.
    strong: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    barrier_name: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    #: (n,) the block is water (it holds no households; it joins the grids of its banks).
    water: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        if len(self.strong) != len(self.a):
            self.strong = np.zeros(len(self.a), dtype=bool)
        if len(self.barrier_name) != len(self.a):
            self.barrier_name = np.full(len(self.a), "", dtype=object)
        if len(self.water) != len(self.households):
            self.water = np.zeros(len(self.households), dtype=bool)

    @property
    def n(self) -> int:
        return len(self.households)

    def components(self, nodes: np.ndarray, edges: np.ndarray | None = None
                   ) -> list[np.ndarray]:
        """Connected components of the subgraph induced by ``nodes`` (using only the
        edges where the mask ``edges`` is true, when given)."""
        sub_a, sub_b, eidx = self.induced(nodes)
        if edges is not None:
            sub_a, sub_b = sub_a[edges[eidx]], sub_b[edges[eidx]]
        k = len(nodes)
        mat = coo_matrix((np.ones(len(sub_a)), (sub_a, sub_b)), shape=(k, k))
        count, labels = connected_components(mat, directed=False)
        return [nodes[labels == c] for c in range(count)]

    def induced(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Edges among ``nodes`` in local numbering, and their global edge indexes."""
        local = np.full(self.n, -1)
        local[nodes] = np.arange(len(nodes))
        keep = np.flatnonzero((local[self.a] >= 0) & (local[self.b] >= 0))
        return local[self.a[keep]], local[self.b[keep]], keep


def feasible_counts(total: float, lo: int, hi: int) -> range:
    """How many grids in [lo, hi] each a sum of ``total`` can be split into."""
    return range(max(1, math.ceil(total / hi)), math.floor(total / lo) + 1)


def choose_k(total: float, params: PartitionParams) -> tuple[int, bool]:
    """Number of grids for a component and whether the band can be met at all."""
    ks = feasible_counts(total, params.min_households, params.max_households)
    if len(ks):
        k = round(total / params.target_households)
        return min(max(k, ks.start), ks.stop - 1), True
    # Infeasible (e.g. 520 households: one grid is over, two are under):
    # take the count that strays least from the band.
    lo, hi = params.min_households, params.max_households

    def stray(k: int) -> float:
        share = total / k
        return k * max(0.0, share - hi, lo - share)

    candidates = [c for c in (math.floor(total / hi), math.ceil(total / hi)) if c >= 1] or [1]
    return min(candidates, key=stray), False


#: Weight of balance (how far the two sides are from equal shares) against the cut's
#: length on weak barriers in the score of a cut: any split whose sides can make grids
#: in the band is valid, so the cut follows streets before it balances.
BALANCE = 0.25
#: Graphs up to this many blocks are cut by trying every split (2^(n-1) of them), not
#: by sampling spanning trees.
EXHAUSTIVE_NODES = 13


def sums_can_split(w: np.ndarray, k: int, lo: float, hi: float) -> bool:
    """Whether some subset of the whole-number weights ``w`` can be the first part of a
    split into 2 sides that hold ka and k − ka parts within [lo, hi] each, contiguity
    aside (a necessary condition for any cut: when False, no spanning tree has one)."""
    total = round(float(w.sum()))
    window = 0
    for ka in range(1, k):
        a = max(math.ceil(ka * lo), math.ceil(total - (k - ka) * hi))
        b = min(math.floor(ka * hi), math.floor(total - (k - ka) * lo))
        if a <= b:
            window |= ((1 << (b - a + 1)) - 1) << a
    if not window:
        return False
    reach = 1
    for x in np.round(w).astype(np.int64).tolist():
        reach |= reach << x
        if reach & window:
            return True
    return False


class Partitioner:
    """Recursive, feasibility-aware bisection of one village graph (exhaustive cuts on
    small graphs, random spanning trees on larger ones) with bounded backtracking."""

    def __init__(self, graph: Graph, params: PartitionParams, rng: np.random.Generator,
                 weights: np.ndarray | None = None, lo: float | None = None,
                 hi: float | None = None, budget: int | None = None) -> None:
        self.g = graph
        self.p = params
        self.rng = rng
        self.w = graph.households.astype(float) if weights is None else weights
        self.lo = float(params.min_households if lo is None else lo)
        self.hi = float(params.max_households if hi is None else hi)
        #: Cuts tried per grid (backtracking) before the band is relaxed.
        self.budget_per_grid = params.backtrack_budget if budget is None else budget
        self.fallbacks = 0
        self.budget = 0
        self._memo: dict[tuple[bytes, int], tuple[list[tuple[np.ndarray, int]],
                                                  tuple[np.ndarray, int] | None]] = {}
        # Household counts are whole numbers: subset sums can rule out a split early.
        self.integral = bool(np.all(self.w == np.round(self.w))) and self.w.sum() < 1e7 \
            and self.lo == math.floor(self.lo) and self.hi == math.floor(self.hi)

    def split(self, nodes: np.ndarray, k: int) -> list[np.ndarray]:
        """``nodes`` (connected) into ``k`` connected parts, sums within the band if possible.

        Tries the best cuts with bounded backtracking; when no combination
        keeps every part in the band, falls back to the least-bad cuts.
        """
        parts = self.split_exact(nodes, k)
        return parts if parts is not None else self.split_relaxed(nodes, k)

    def split_exact(self, nodes: np.ndarray, k: int) -> list[np.ndarray] | None:
        """``nodes`` into ``k`` connected parts all within the band, or None when the
        bounded search finds none."""
        self.budget = self.budget_per_grid * max(k, 1)
        return self._split_exact(nodes, k)

    def split_relaxed(self, nodes: np.ndarray, k: int) -> list[np.ndarray]:
        """``nodes`` into ``k`` connected parts by the best cut at each step, falling back
        to the least-bad cut where none keeps both sides feasible."""
        return self._split_relaxed(nodes, k)

    def _split_exact(self, nodes: np.ndarray, k: int) -> list[np.ndarray] | None:
        if k <= 1 or len(nodes) <= 1:
            total = float(self.w[nodes].sum())
            return [nodes] if k == 1 and self.lo <= total <= self.hi else None
        if self.integral and not sums_can_split(self.w[nodes], k, self.lo, self.hi):
            return None
        feasible, _ = self._cuts(nodes, k)
        for side, ka in feasible[: self.p.backtrack_branch]:
            if self.budget <= 0:
                return None
            self.budget -= 1
            left = self._split_exact(nodes[side], ka)
            if left is None:
                continue
            right = self._split_exact(nodes[~side], k - ka)
            if right is not None:
                return left + right
        return None

    def _split_relaxed(self, nodes: np.ndarray, k: int) -> list[np.ndarray]:
        if k <= 1 or len(nodes) <= 1:
            return [nodes]
        feasible, fallback = self._cuts(nodes, k)
        if feasible:
            side, ka = feasible[0]
        elif fallback is not None:
            self.fallbacks += 1
            side, ka = fallback
        else:
            return [nodes]
        return self._split_relaxed(nodes[side], ka) + self._split_relaxed(nodes[~side], k - ka)

    def _cuts(self, nodes: np.ndarray, k: int
              ) -> tuple[list[tuple[np.ndarray, int]], tuple[np.ndarray, int] | None]:
        """Feasible cuts (best first, one per tree, distinct) and the least-bad cut."""
        sub_a, sub_b, eidx = self.g.induced(nodes)
        w = self.w[nodes]
        total = float(w.sum())
        n = len(nodes)
        if len(sub_a) == 0:
            return [], None
        # Cost of cutting each edge: weak barriers cost more than strong ones.
        cut_cost = self.g.length[eidx] * (1.05 - self.g.strength[eidx])
        scale = math.sqrt(max(float(self.g.area[nodes].sum()), 1.0))
        if n <= EXHAUSTIVE_NODES:
            # Deterministic (no random trees): the same subproblem, met again while
            # backtracking, has the same answer.
            key = (nodes.tobytes(), k)
            if key not in self._memo:
                self._memo[key] = self._cuts_exhaustive(n, sub_a, sub_b, w, k, cut_cost,
                                                        scale)
            return self._memo[key]
        found: dict[bytes, tuple[float, np.ndarray, int]] = {}
        fallback: tuple[float, np.ndarray, int] | None = None
        ka = np.arange(1, k)
        target = total / k
        ends = (sub_a.tolist(), sub_b.tolist())
        strength = self.g.strength[eidx]
        for attempt in range(self.p.tree_attempts):
            if len(found) >= self.p.backtrack_branch or (found and attempt >= 8):
                break
            order, sub, tin, tout = self._random_tree(n, ends, strength, w)
            cand = order[1:]
            s = sub[cand]
            rest = total - s
            ok, dev = self._fit(s, rest, ka, k, target)
            if ok.any():
                dev_ok = np.where(ok, dev, np.inf)
                best_ka = np.argmin(dev_ok, axis=1)
                bal = dev_ok[np.arange(len(cand)), best_ka] / target
                feasible = np.flatnonzero(np.isfinite(bal))
                # Price the cuts of the most balanced few; keep this tree's best.
                pick = feasible[np.argsort(bal[feasible], kind="stable")[:48]]
                # All picked cuts at once: row j is the subtree below cand[pick[j]].
                v = cand[pick]
                inside = (tin >= tin[v][:, None]) & (tin < tout[v][:, None])
                crossing = inside[:, sub_a] != inside[:, sub_b]
                scores = BALANCE * bal[pick] + 2.0 * (crossing @ cut_cost) / scale
                top = int(np.argmin(scores))
                best = (float(scores[top]), inside[top], int(ka[best_ka[pick[top]]]))
                key = best[1].tobytes() if best[1][0] else (~best[1]).tobytes()
                if key not in found or best[0] < found[key][0]:
                    found[key] = best
            elif not found:
                # Remember the least-bad cut in case no tree offers a feasible one.
                score_all = self._stray(s, rest, ka, k, dev)
                i, j = np.unravel_index(int(np.argmin(score_all)), score_all.shape)
                if fallback is None or score_all[i, j] < fallback[0]:
                    v = cand[i]
                    inside = (tin >= tin[v]) & (tin < tout[v])
                    fallback = (float(score_all[i, j]), inside, int(ka[j]))
        ranked = sorted(found.values(), key=lambda t: t[0])
        return ([(inside, kk) for _, inside, kk in ranked],
                (fallback[1], fallback[2]) if fallback is not None else None)

    def _fit(self, s: np.ndarray, rest: np.ndarray, ka: np.ndarray, k: int, target: float
             ) -> tuple[np.ndarray, np.ndarray]:
        """For splits into a side of ``s`` households and the rest (a row each), cut into
        ``ka`` and ``k - ka`` grids (a column each): whether every grid can be in the band,
        and how far the sides' mean grid is from ``target``."""
        ok = (s[:, None] >= ka * self.lo) & (s[:, None] <= ka * self.hi) & \
            (rest[:, None] >= (k - ka) * self.lo) & (rest[:, None] <= (k - ka) * self.hi)
        dev = np.abs(s[:, None] / ka - target) + np.abs(rest[:, None] / (k - ka) - target)
        return ok, dev

    def _stray(self, s: np.ndarray, rest: np.ndarray, ka: np.ndarray, k: int,
               dev: np.ndarray) -> np.ndarray:
        """The score of the least-bad cut, as :meth:`_fit`'s rows and columns: how far the
        sides fall outside the band (``dev`` breaking ties)."""
        stray = np.maximum(0, ka * self.lo - s[:, None]) + \
            np.maximum(0, s[:, None] - ka * self.hi) + \
            np.maximum(0, (k - ka) * self.lo - rest[:, None]) + \
            np.maximum(0, rest[:, None] - (k - ka) * self.hi)
        out: np.ndarray = stray + 1e-3 * dev
        return out

    def _cuts_exhaustive(self, n: int, sub_a: np.ndarray, sub_b: np.ndarray, w: np.ndarray,
                         k: int, cut_cost: np.ndarray, scale: float
                         ) -> tuple[list[tuple[np.ndarray, int]], tuple[np.ndarray, int] | None]:
        """``_cuts`` for a small graph: every split into two connected sides is scored
        (subsets as bit masks), so the best cuts are the best there are, and an empty
        list proves that no cut keeps both sides feasible."""
        full = (1 << n) - 1
        bit = np.left_shift(1, np.arange(n, dtype=np.int64))
        nbr = np.zeros(n, dtype=np.int64)
        np.bitwise_or.at(nbr, sub_a, bit[sub_b])
        np.bitwise_or.at(nbr, sub_b, bit[sub_a])
        # Sum of w and union of neighbours of every subset, by doubling over the nodes.
        sums = np.zeros(1)
        near = np.zeros(1, dtype=np.int64)
        for j in range(n):
            sums = np.concatenate([sums, sums + w[j]])
            near = np.concatenate([near, near | nbr[j]])
        masks = np.arange(full + 1, dtype=np.int64)
        # Connected subsets: flooding from the lowest node within the subset reaches all.
        reach = masks & -masks
        for _ in range(n - 1):
            grown = masks & (reach | near[reach])
            if np.array_equal(grown, reach):
                break
            reach = grown
        connected = reach == masks
        side = masks[1:full:2]                      # node 0's side; the other is full ^ side
        side = side[connected[side] & connected[full ^ side]]
        if len(side) == 0:
            return [], None
        total = float(w.sum())
        s = sums[side]
        rest = total - s
        ka = np.arange(1, k)
        target = total / k
        ok, dev = self._fit(s, rest, ka, k, target)

        def inside(masks_: np.ndarray) -> np.ndarray:
            return (masks_[:, None] & bit) != 0

        if not ok.any():
            score_all = self._stray(s, rest, ka, k, dev)
            row, col = np.unravel_index(int(np.argmin(score_all)), score_all.shape)
            return [], (inside(side[[row]])[0], int(ka[col]))
        dev_ok = np.where(ok, dev, np.inf)
        best_ka = np.argmin(dev_ok, axis=1)
        bal = dev_ok[np.arange(len(side)), best_ka] / target
        feasible = np.flatnonzero(np.isfinite(bal))
        sides = inside(side[feasible])
        crossing = sides[:, sub_a] != sides[:, sub_b]
        scores = BALANCE * bal[feasible] + 2.0 * (crossing @ cut_cost) / scale
        best = np.argsort(scores, kind="stable")[: self.p.backtrack_branch]
        return [(sides[i], int(ka[best_ka[feasible[i]]])) for i in best], None

    def _random_tree(self, n: int, ends: tuple[list[int], list[int]], strength: np.ndarray,
                     w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A random spanning tree that prefers edges across weak barriers (Kruskal on
        strength + noise), walked depth-first from a random root.

        Returns the pre-order, each node's subtree sum of ``w``, and entry/exit
        numbers: v's subtree is {u: tin[v] <= tin[u] < tout[v]}. The graphs are
        one village's blocks (tens to hundreds), where plain Python lists beat
        sparse-matrix (and numpy scalar) overhead.
        """
        weight = strength + self.rng.random(len(strength))
        ea, eb = ends
        union = list(range(n))
        adjacent: list[list[int]] = [[] for _ in range(n)]
        joined = 0
        for e in np.argsort(weight, kind="stable").tolist():
            x, y = ea[e], eb[e]
            rx = x
            while union[rx] != rx:          # find, with path halving
                union[rx] = union[union[rx]]
                rx = union[rx]
            ry = y
            while union[ry] != ry:
                union[ry] = union[union[ry]]
                ry = union[ry]
            if rx != ry:
                union[rx] = ry
                adjacent[x].append(y)
                adjacent[y].append(x)
                joined += 1
                if joined == n - 1:
                    break
        root = int(self.rng.integers(n))
        order: list[int] = []
        parent = [-1] * n
        seen = [False] * n
        seen[root] = True
        stack = [root]
        while stack:
            v = stack.pop()
            order.append(v)
            for u in adjacent[v]:
                if not seen[u]:
                    seen[u] = True
                    parent[u] = v
                    stack.append(u)
        sub = w.tolist()
        size = [1] * n
        for v in reversed(order[1:]):       # leaves first, the root last
            p = parent[v]
            sub[p] += sub[v]
            size[p] += size[v]
        pre = np.asarray(order)
        tin = np.empty(n, dtype=np.int64)
        tin[pre] = np.arange(n)
        return pre, np.asarray(sub), tin, tin + np.asarray(size)


class SearchLimit(Exception):
    """The exhaustive search ran out of steps before it could answer."""


def exhaustive_partition(graph: Graph, nodes: np.ndarray, lo: float, hi: float,
                         max_steps: int = 100_000) -> list[np.ndarray] | None:
    """Connected parts of ``nodes``, each with households within [lo, hi], found by
    exhaustive search (any number of parts); None when no such partition exists.

    Depth first: the heaviest remaining block, with each connected set around it
    that fits the band (the most balanced first), then the rest, piece by piece
    once it falls apart (each piece must make whole grids on its own); a
    remainder that failed once is remembered. Raises :class:`SearchLimit` after
    ``max_steps`` sets tried, so a None is a proof.
    """
    n = len(nodes)
    local = np.full(graph.n, -1)
    local[nodes] = np.arange(n)
    keep = (local[graph.a] >= 0) & (local[graph.b] >= 0)
    ea, eb = local[graph.a[keep]].tolist(), local[graph.b[keep]].tolist()
    w = [round(float(x)) for x in graph.households[nodes]]
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for x, y in zip(ea, eb, strict=True):
        nbrs[x].append(y)
        nbrs[y].append(x)
    target = (lo + hi) / 2
    steps = 0
    failed: set[int] = set()

    def around(v: int, remaining: int) -> list[int]:
        """Connected sets within ``remaining`` holding v, with sums within the band."""
        nonlocal steps
        found: list[tuple[float, int]] = []

        def grow(members: int, total: int, cand: list[int], banned: int) -> None:
            nonlocal steps
            steps += 1
            if steps > max_steps:
                raise SearchLimit
            if lo <= total:
                found.append((abs(total - target), members))
            for i, u in enumerate(cand):
                if total + w[u] > hi:
                    continue
                ban = banned
                for x in cand[:i]:
                    ban |= 1 << x
                grown = members | 1 << u
                extra = [y for y in nbrs[u] if remaining >> y & 1 and not grown >> y & 1
                         and not ban >> y & 1 and y not in cand]
                grow(grown, total + w[u], cand[i + 1:] + list(dict.fromkeys(extra)), ban)

        start = [y for y in nbrs[v] if remaining >> y & 1]
        grow(1 << v, w[v], list(dict.fromkeys(start)), 1 << v)
        found.sort()
        return [m for _, m in found]

    def pieces(remaining: int) -> list[int]:
        """The connected components of ``remaining`` (bit masks)."""
        out = []
        left = remaining
        while left:
            start = (left & -left).bit_length() - 1
            comp, stack = 1 << start, [start]
            while stack:
                x = stack.pop()
                for y in nbrs[x]:
                    if left >> y & 1 and not comp >> y & 1:
                        comp |= 1 << y
                        stack.append(y)
            out.append(comp)
            left &= ~comp
        return out

    def solve(remaining: int) -> list[int] | None:
        """Parts covering ``remaining`` (connected), or None."""
        if remaining == 0:
            return []
        if remaining in failed:
            return None
        comps = pieces(remaining)
        for comp in comps:      # each piece must make whole grids on its own
            total = sum(w[x] for x in range(n) if comp >> x & 1)
            if math.ceil(total / hi) > math.floor(total / lo):
                failed.add(remaining)
                return None
        if len(comps) > 1:
            found: list[int] = []
            for comp in comps:
                sub = solve(comp)
                if sub is None:
                    failed.add(remaining)
                    return None
                found.extend(sub)
            return found
        # The heaviest block first: it has the fewest parts around it.
        v = max((x for x in range(n) if remaining >> x & 1), key=lambda x: (w[x], -x))
        for part in around(v, remaining):
            rest = solve(remaining & ~part)
            if rest is not None:
                return [part, *rest]
        failed.add(remaining)
        return None

    try:
        parts = solve((1 << n) - 1)
    except RecursionError as exc:   # a part of very many blocks (e.g. empty fields)
        raise SearchLimit from exc
    if parts is None:
        return None
    return [nodes[[x for x in range(n) if m >> x & 1]] for m in parts]
