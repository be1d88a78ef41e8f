"""Stage 5, one village at a time: its block graph into grids, each out-of-band grid with
the reason why.

A village's work depends only on its own blocks and on a random generator seeded
by (seed, village position), so villages can run in any order, in worker
processes, with the same result (:func:`run_villages`).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np
import shapely

from gis.band import in_band
from partitioning import quality
from partitioning.flags import band_flag, is_forced
from partitioning.moves import Moves
from partitioning.moves import stray as _stray
from partitioning.params import PartitionParams
from partitioning.regions import (
    Graph,
    Partitioner,
    SearchLimit,
    choose_k,
    exhaustive_partition,
    feasible_counts,
)
from partitioning.sides import Sides, crossings, find_sides
from partitioning.smooth import smooth

#: A part of a village cut off by oversize buildings with fewer households than this
#: share of the minimum joins a neighbouring grid; a bigger one is a grid of its own.
CUT_OFF_JOIN_SHARE = 0.25
#: Ejection chains of the repair: longest chain, and partial chains kept per step.
CHAIN_DEPTH = 4
CHAIN_BEAM = 8
#: A side of a rural village's rivers, ridges and railways under this share of its area
#: joins a neighbouring side when the village is cut to the service radius.
RURAL_SIDE_SHARE = 0.1
#: Sets tried by the last-resort exhaustive search of a village (about 0.3 s).
EXHAUSTIVE_STEPS = 100_000


@dataclass
class Grid:
    """One grid of a village: kind, flags and the reason for them (empty when regular)."""

    village: str
    kind: str
    flags: list[str]
    name_hint: str | None = None
    reason: str = ""


class Coarse(Exception):
    """A village's blocks are too coarse for an in-band split at this level: cut them
    finer and redo it (raised before the relaxed fallback, which would be thrown away)."""


class Assigner:
    """Collects block → grid labels and each grid's village, kind, flags and reason."""

    def __init__(self, n_blocks: int, band: tuple[int, int]) -> None:
        self.band = band
        self.label = np.full(n_blocks, -1, dtype=np.int64)
        self.grids: list[Grid] = []

    def compact(self) -> None:
        """Drop the grids left without a block (their water went to the grids of its
        banks), renumbering the others."""
        used = np.bincount(self.label[self.label >= 0], minlength=len(self.grids)) > 0
        if used.all():
            return
        new = np.cumsum(used) - 1
        self.label = np.where(self.label >= 0, new[np.maximum(self.label, 0)], -1)
        self.grids = [g for g, u in zip(self.grids, used, strict=True) if u]

    def add(self, blocks: np.ndarray, village: str, kind: str = "comprehensive",
            flags: list[str] | None = None, name_hint: str | None = None,
            reason: str = "") -> int:
        self.label[blocks] = len(self.grids)
        self.grids.append(Grid(village, kind, list(flags or []), name_hint, reason))
        return len(self.grids) - 1


@dataclass
class VillageTask:
    """What a worker needs to partition one village's non-dedicated blocks."""

    index: int                  # the village's position: seeds its random numbers
    code: str
    kind: str                   # urban / rural
    graph: Graph
    buildings: np.ndarray       # buildings per block
    geoms: np.ndarray           # block polygons (metric CRS)
    final: bool                 # the blocks cannot be cut finer any more
    #: The village's dedicated grids (their blocks are not in the graph), and the
    #: edges from graph blocks to them: block, dedicated grid, shared length (m).
    dedicated: list[Grid] = field(default_factory=list)
    dedicated_edges: tuple[np.ndarray, np.ndarray, np.ndarray] = (
        np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0))


@dataclass
class VillageResult:
    grids: list[Grid]           # the task's dedicated grids first, then the new ones
    label: np.ndarray           # grid of each block of the task
    fallbacks: int = 0          # relaxed cuts
    moves: int = 0              # blocks moved by the repair
    coarse: bool = False        # redo the village with finer blocks


def run_villages(tasks: Sequence[VillageTask], params: PartitionParams,
                 workers: int = 1) -> Iterator[VillageResult]:
    """Each task's result, in task order, computed in ``workers`` processes (1: here)."""
    if workers <= 1 or len(tasks) < 2:
        for task in tasks:
            yield partition_village(task, params)
        return
    # Fork shares the loaded modules and costs no start-up; elsewhere, spawn.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    chunk = max(1, min(16, len(tasks) // (workers * 8)))
    done = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for res in pool.map(partition_village, tasks, [params] * len(tasks),
                                chunksize=chunk):
                done += 1
                yield res
    except BrokenProcessPool:
        # A worker died (out of memory, killed): finish here, in this process.
        for task in tasks[done:]:
            yield partition_village(task, params)


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use, at most 2."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def partition_village(task: VillageTask, params: PartitionParams) -> VillageResult:
    """Grids of one village's non-dedicated blocks (numbered 0..n-1 in the task)."""
    assigner = Assigner(task.graph.n, (params.min_households, params.max_households))
    assigner.grids.extend(task.dedicated)
    rng = np.random.default_rng([params.seed, task.index])
    try:
        fallbacks, moves = _partition(task, assigner, params, rng)
    except Coarse:
        return VillageResult([], np.empty(0, dtype=np.int64), coarse=True)
    return VillageResult(assigner.grids, assigner.label, fallbacks, moves)


def _partition(task: VillageTask, assigner: Assigner, params: PartitionParams,
               rng: np.random.Generator) -> tuple[int, int]:
    graph, code = task.graph, task.code
    lo, hi = params.min_households, params.max_households
    total = int(graph.households.sum())
    local = np.arange(graph.n)

    if task.kind == "rural" and total <= hi:
        return _rural_village(task, assigner, params, rng), 0

    if total < lo:
        assigner.add(local, code, flags=["village_below_min"],
                     reason=f"the village has {total} households, under the minimum {lo}")
        return 0, 0

    # Blocks over the maximum on their own (one tall building) are grids of their own.
    heavy = np.flatnonzero((graph.households > hi) & ~graph.water)
    for h in heavy:
        hh = int(graph.households[h])
        if task.buildings[h] == 1:
            assigner.add(local[[h]], code, flags=["single_building"],
                         reason=f"one building of {hh} households, over the maximum {hi}; "
                                "a building is never split")
        else:
            assigner.add(local[[h]], code, flags=["block_over_max"],
                         reason=f"a block of {hh} households in {task.buildings[h]} "
                                "buildings that could not be cut between them")
    free = np.setdiff1d(local[~graph.water], heavy)
    # Where the blocks can still be cut finer, fail fast (a smaller search budget).
    part = Partitioner(graph, params, rng, budget=None if task.final else params.probe_budget)
    small: list[np.ndarray] = []
    # Rivers, ridges and railways are the first cuts: each side is cut into grids on
    # its own, and only a side too small for a grid joins one across (flagged below).
    sides = find_sides(graph, free, lo, hi)
    comps = [c for group in sides.groups for c in graph.components(group)]
    for comp in comps:
        t = int(graph.households[comp].sum())
        if t < lo:
            small.append(comp)
            continue
        k, feasible = choose_k(t, params)
        pieces = None
        if feasible:
            # The count nearest the target first, then the other counts that fit.
            counts = sorted(feasible_counts(t, lo, hi),
                            key=lambda c: (abs(c - t / params.target_households), c))
            for c in counts[: None if task.final else 2]:
                pieces = part.split_exact(comp, c)
                if pieces is not None:
                    break
        whole = len(comps) == 1 and not heavy.size
        reason = "" if feasible else infeasible_reason(t, lo, hi, whole)
        flags = [] if feasible else ["infeasible_band"]
        if pieces is None and feasible:
            if not task.final:
                raise Coarse(code)
            # Last resort: an exhaustive search, which either finds a partition or
            # proves there is none.
            what = "the village" if whole else "this part of the village"
            try:
                pieces = exhaustive_partition(graph, comp, lo, hi, EXHAUSTIVE_STEPS)
                if pieces is None:
                    flags = ["infeasible_split"]
                    reason = (f"no partition of {what}'s {t} households in {len(comp)} blocks "
                              f"into connected grids of {lo}–{hi} exists: every combination "
                              "was tried, and its blocks are single buildings or cut as fine "
                              "as the engine cuts; the nearest split is used")
            except SearchLimit:
                reason = (f"no split of {what}'s {t} households in {len(comp)} blocks into "
                          f"connected grids of {lo}–{hi} was found (tree search, then an "
                          f"exhaustive search stopped after {EXHAUSTIVE_STEPS:,} sets), nor "
                          "a move of boundary blocks that brings this grid into the band")
        if pieces is None and not feasible:
            # No count fits the band: widen it just enough for k grids (±10% around
            # the share), so that the split is balanced and follows barriers.
            share = t / k
            wide = Partitioner(graph, params, rng, lo=min(lo, math.floor(0.9 * share)),
                               hi=max(hi, math.ceil(1.1 * share)),
                               budget=None if task.final else params.probe_budget)
            pieces = wide.split_exact(comp, k)
            if pieces is None:
                if not task.final:
                    raise Coarse(code)      # cut finer: a balanced split may exist
                pieces = wide.split_relaxed(comp, k)
        if pieces is None:
            pieces = part.split_relaxed(comp, k)
        for piece in pieces:
            assigner.add(piece, code, flags=flags, reason=reason)
    for comp in small:
        _attach(comp, task, assigner, lo, hi)
    _label_water(graph, assigner)
    moves = 0
    if task.final:
        moves = repair(graph, assigner, lo, hi)
        _explain_misses(graph, assigner, lo, hi)
    moves += smooth(graph, assigner.label, _movable(assigner), lo, hi)
    _flag_crossings(graph, assigner, sides, lo, hi)
    return part.fallbacks, moves


def _label_water(graph: Graph, assigner: Assigner) -> None:
    """Blocks left without a grid (water no side needed to stay whole) take the grid of a
    neighbour; the engine later shares water out between the grids of its banks."""
    label = assigner.label
    for _ in range(graph.n):
        left = np.flatnonzero(label < 0)
        if not len(left):
            return
        ea, eb = graph.a, graph.b
        fill = (label[ea] < 0) & (label[eb] >= 0)
        label[ea[fill]] = label[eb[fill]]
        fill = (label[eb] < 0) & (label[ea] >= 0)
        label[eb[fill]] = label[ea[fill]]
        if np.array_equal(left, np.flatnonzero(label < 0)):
            break
    rest = np.flatnonzero(label < 0)
    if len(rest):
        mine = [i for i, g in enumerate(assigner.grids) if (label == i).any()]
        label[rest] = mine[0] if mine else assigner.add(rest, assigner.grids[0].village
                                                        if assigner.grids else "")


def _odd_sides(totals: list[float], lo: int, hi: int) -> list[float]:
    """The totals of the sides a crossing grid holds that cannot be grids of their own
    (the reason it crosses); all but the largest when every side could."""
    odd = [t for t in totals if t < lo or math.ceil(t / hi) > math.floor(t / lo)]
    return odd or sorted(totals)[:-1]


def _flag_crossings(graph: Graph, assigner: Assigner, sides: Sides, lo: int,
                    hi: int, rural: bool = False) -> None:
    """Grids whose land lies on both sides of a river, ridge or railway: flagged, with
    the barrier's name and why (the other side is too small for a grid of its own)."""
    grids = np.array([i for i, g in enumerate(assigner.grids) if g.kind == "comprehensive"],
                     dtype=np.int64)
    for g, (names, totals, inside) in crossings(graph, assigner.label, sides, grids).items():
        grid = assigner.grids[g]
        what = "、".join(names) if names else "a river, ridge or railway"
        minor = sorted(totals)[:-1]
        why = "; ".join(
            "empty land (no households) on the other side" if t == 0 else
            f"{t:.0f} households on the other side, too few for a grid of their own "
            f"(minimum {lo})" if t < lo else
            f"the {t:.0f} households on one side make no whole number of grids of "
            f"{lo}–{hi} ({int(t // hi)}×{hi} < {t:.0f} < {int(t // hi) + 1}×{lo})"
            for t in _odd_sides(totals, lo, hi))
        if rural and minor:
            why = ("a piece of the village under a tenth of its area on the other side "
                   "joins the piece next to it")
        if not minor:
            why = (f"{inside:.0f} m of it inside the grid: it ends inside the village, "
                   "so the land on its two sides is one piece")
        if "crosses_barrier" not in grid.flags:
            grid.flags.append("crosses_barrier")
        grid.reason = (grid.reason + "; " if grid.reason else "") + f"crosses {what}: {why}"


def infeasible_reason(total: int, lo: int, hi: int, whole: bool) -> str:
    """Why ``total`` households cannot be grids within [lo, hi]: the proof in numbers."""
    k = total // hi
    what = "the village" if whole else "this part of the village (cut off by buildings " \
        "over the maximum)"
    return (f"{what} has {total} households: {k} grid{'s' if k > 1 else ''} would hold "
            f"{total / k:.0f} each (over {hi}), {k + 1} grids {total / (k + 1):.0f} each "
            f"(under {lo}); no count fits, since {k}×{hi} < {total} < {k + 1}×{lo}")


def _attach(comp: np.ndarray, task: VillageTask, assigner: Assigner, lo: int, hi: int) -> None:
    """A part of the village too small for a grid (cut off by oversize buildings, or a
    rural village's detached piece). It joins an adjacent grid it fits in (households
    within ``hi``), the one sharing the longest edge; failing that, a part holding at
    least a quarter of the minimum is a grid of its own (``part_below_min``) rather
    than push a grid further over the maximum; a smaller one joins the adjacent grid
    it strays least from. A part with no neighbour in the graph joins the dedicated
    grid it borders most, else the nearest grid it fits in (or is a grid of its own,
    by the same rule)."""
    graph, code, geoms = task.graph, task.code, task.geoms
    in_comp = np.zeros(graph.n, dtype=bool)
    in_comp[comp] = True
    cross = in_comp[graph.a] != in_comp[graph.b]
    outside = np.where(in_comp[graph.a[cross]], graph.b[cross], graph.a[cross])
    labels = assigner.label[outside]
    lengths = graph.length[cross]
    ok = labels >= 0
    extra = int(graph.households[comp].sum())
    if ok.any():
        grid_ids = np.unique(labels[ok])
        shared = np.array([lengths[ok][labels[ok] == g].sum() for g in grid_ids])
        assigned = assigner.label >= 0
        sums = np.bincount(assigner.label[assigned], weights=graph.households[assigned],
                           minlength=len(assigner.grids))
        fits = sums[grid_ids] + extra <= hi
        if fits.any():
            target = int(grid_ids[fits][np.argmax(shared[fits])])
        elif extra >= CUT_OFF_JOIN_SHARE * lo:
            names = "; ".join(assigner.grids[g].reason or assigner.grids[g].kind
                              for g in grid_ids)
            assigner.add(comp, code, flags=["part_below_min"],
                         reason=f"{extra} households cut off from the rest of the village by "
                                f"grids that cannot take them ({names})")
            return
        else:
            worse = np.array([_stray(sums[g] + extra, lo, hi) - _stray(sums[g], lo, hi)
                              for g in grid_ids])
            best = np.lexsort((-shared, worse))[0]
            target = int(grid_ids[best])
            grid = assigner.grids[target]
            grid.reason = (grid.reason + "; " if grid.reason else "") + \
                f"with {extra} households of a small part cut off by it"
    else:
        ded_block, ded_grid, ded_length = task.dedicated_edges
        touching = in_comp[ded_block] if len(ded_block) else np.zeros(0, dtype=bool)
        if touching.any():
            shared_ded = np.bincount(ded_grid[touching], weights=ded_length[touching])
            assigner.label[comp] = int(np.argmax(shared_ded))
            return
        mine = [i for i, g in enumerate(assigner.grids)
                if g.village == code and (assigner.label == i).any()]
        if not mine:
            assigner.add(comp, code, flags=["village_below_min"],
                         reason=f"{extra} households, under the minimum {lo}")
            return
        piece = shapely.union_all(geoms[comp])
        dists = np.array([shapely.distance(piece, shapely.union_all(geoms[assigner.label == g]))
                          for g in mine])
        assigned = assigner.label >= 0
        sums = np.bincount(assigner.label[assigned], weights=graph.households[assigned],
                           minlength=len(assigner.grids))
        fits = np.array([sums[g] + extra <= hi for g in mine])
        if not fits.any() and extra >= CUT_OFF_JOIN_SHARE * lo:
            assigner.add(comp, code, flags=["part_below_min"],
                         reason=f"{extra} households in a part of the village that shares no "
                                "boundary with its other blocks, and that no grid can take")
            return
        # The nearest grid it fits in (the grid will be in two parts, and flagged so).
        target = mine[int(np.argmin(np.where(fits, dists, np.inf) if fits.any() else dists))]
    assigner.label[comp] = target


def _rural_village(task: VillageTask, assigner: Assigner, params: PartitionParams,
                   rng: np.random.Generator) -> int:
    """One grid, unless wider than the service radius: then cut along its rivers, ridges
    and railways first, and the pieces still too wide by area along other barriers,
    into pieces about the service radius wide."""
    graph, code, geoms = task.graph, task.code, task.geoms
    lo, hi = params.min_households, params.max_households
    total = int(graph.households.sum())
    below = ["village_below_min"] if total < lo else []
    whole = shapely.union_all(geoms)
    across = float(quality.width(np.array([whole]))[0])
    if across <= params.service_radius_m or graph.n < 2:
        reason = f"rural village of {total} households kept whole"
        if below:
            reason += f", under the minimum {lo}"
        assigner.add(np.arange(graph.n), code, flags=["rural_village", *below], reason=reason)
        return 0
    comps = graph.components(np.arange(graph.n))
    main = max(comps, key=len)
    area = graph.area.astype(float)
    fallbacks = 0
    # Sides of the strong barriers first (a side under a tenth of the village's area
    # joins its neighbour across), then halve by area, preferring strong barriers,
    # until every piece is within the service width.
    land = main[~graph.water[main]]
    by_area = Graph(households=np.where(graph.water, 0.0, area), area=area, a=graph.a,
                    b=graph.b, length=graph.length, strength=graph.strength,
                    strong=graph.strong, barrier_name=graph.barrier_name, water=graph.water)
    sides = find_sides(by_area, land, RURAL_SIDE_SHARE * float(area[main].sum()))
    pending = [c for group in sides.groups for c in graph.components(group)]
    pieces: list[np.ndarray] = []
    while pending:
        piece = pending.pop()
        wide = float(quality.width(np.array([shapely.union_all(geoms[piece])]))[0])
        if wide <= params.service_radius_m or len(piece) < 2:
            pieces.append(piece)
            continue
        total_area = float(area[piece].sum())
        part = Partitioner(graph, params, rng, weights=area, lo=0.3 * total_area,
                           hi=0.7 * total_area)
        halves = part.split(piece, 2)
        fallbacks += part.fallbacks
        if len(halves) < 2:
            pieces.append(piece)
            continue
        pending.extend(halves)
    for piece in pieces:
        if graph.water[piece].all():
            continue        # water alone: it joins the grids of its banks
        h = int(graph.households[piece].sum())
        flags = ["radius_split"] + (["village_below_min"] if h < lo else [])
        reason = (f"a piece of a rural village {across:.0f} m across, cut to the service "
                  f"width {params.service_radius_m:.0f} m; {h} households")
        assigner.add(piece, code, flags=flags, reason=reason)
    for comp in comps:
        if comp is not main:
            _attach(comp, task, assigner, lo, hi)
    _label_water(graph, assigner)
    land_sides = Sides(sides.side, np.array([float(graph.households[sides.side == s].sum())
                                             for s in range(len(sides.households))]),
                       sides.groups)
    _flag_crossings(graph, assigner, land_sides, lo, hi, rural=True)
    return fallbacks


def _movable(assigner: Assigner) -> np.ndarray:
    return np.array([g.kind == "comprehensive" and not is_forced(g.flags)
                     and "part_below_min" not in g.flags for g in assigner.grids], dtype=bool)


def repair(graph: Graph, assigner: Assigner, lo: int, hi: int, max_moves: int = 200) -> int:
    """Bring out-of-band grids into the band by moving boundary blocks between adjacent
    grids of the village, keeping every grid connected; returns the blocks moved.

    A move (one block to a neighbouring grid), or a chain of moves where the first
    pushes a neighbour out of the band and the next ones pass the excess or the
    deficit on (an ejection chain, up to CHAIN_DEPTH moves), is made when it lowers
    the total distance of the grids from the band; among those, the biggest drop
    wins, then the one cutting the weakest barriers.
    Only regular comprehensive grids take part (not forced or dedicated ones).
    """
    n_grids = len(assigner.grids)
    if n_grids < 2:
        return 0
    label = assigner.label
    movable = _movable(assigner)
    sums = np.bincount(label, weights=graph.households.astype(float), minlength=n_grids)
    if not any(movable[g] and _stray(sums[g], lo, hi) > 0 for g in range(n_grids)):
        return 0
    m = Moves(graph, label, n_grids)
    w, members, sums_l, apply = m.w, m.members, m.sums, m.apply

    def stray(g: int, h: float) -> float:
        return _stray(h, lo, hi)

    def connected_without(g: int, v: int) -> bool:
        return m.connected(members[g] - {v})

    def moves_touching(grids: set[int] | None) -> Iterator[tuple[int, int, int]]:
        """(block, from, to) for boundary blocks of movable grids (touching ``grids``)."""
        for v in range(graph.n):
            src = int(label[v])
            if not movable[src] or w[v] == 0:
                continue
            for dst in m.grids_beside(v):
                if movable[dst] and (grids is None or src in grids or dst in grids):
                    yield v, src, dst

    def gain(v: int, src: int, dst: int) -> float:
        before = stray(src, sums_l[src]) + stray(dst, sums_l[dst])
        after = stray(src, sums_l[src] - w[v]) + stray(dst, sums_l[dst] + w[v])
        return before - after

    cut_change = m.cut_change

    Move = tuple[int, int, int]

    def chain(bad: set[int]) -> tuple[float, float, list[Move]] | None:
        """An ejection chain: moves out of (or into) the bad grids that push a neighbour
        out of the band, then moves that pass the excess (or the deficit) on, until the
        total stray drops. Beam search, up to CHAIN_DEPTH moves."""
        beams: list[tuple[float, float, list[Move]]] = [(0.0, 0.0, [])]
        for depth in range(CHAIN_DEPTH):
            grown: list[tuple[float, float, list[Move]]] = []
            for total, _, moves in beams:
                for m in moves:
                    apply(*m)
                used = {m[0] for m in moves}
                hurt = {g for m in moves for g in m[1:] if g not in bad
                        and stray(g, sums_l[g]) > 0} if moves else bad
                for v, src, dst in moves_touching(hurt) if hurt else ():
                    if v in used:
                        continue
                    g = total + gain(v, src, dst)
                    if (depth == 0 or g > total) and connected_without(src, v):
                        grown.append((g, -cut_change(v, src, dst), [*moves, (v, src, dst)]))
                for v, src, dst in reversed(moves):
                    apply(v, dst, src)
            done = [b for b in grown if b[0] > 0]
            if done:
                return max(done, key=lambda b: (b[0], b[1], [-x for m in b[2] for x in m]))
            grown.sort(key=lambda b: (-b[0], -b[1], b[2]))
            beams = grown[:CHAIN_BEAM]
            if not beams:
                break
        return None

    moved = 0
    while moved < max_moves:
        bad = {g for g in range(n_grids) if movable[g] and stray(g, sums_l[g]) > 0}
        if not bad:
            break
        best: tuple[float, float, list[tuple[int, int, int]]] | None = None
        for v, src, dst in moves_touching(bad):
            g1 = gain(v, src, dst)
            if g1 > 0 and connected_without(src, v):
                key = (g1, -cut_change(v, src, dst))
                if best is None or key > best[:2]:
                    best = (key[0], key[1], [(v, src, dst)])
        if best is None:
            best = chain(bad)
        if best is None:
            break
        for v, src, dst in best[2]:
            apply(v, src, dst)
            moved += 1
    return moved


def _explain_misses(graph: Graph, assigner: Assigner, lo: int, hi: int) -> None:
    """Flag the regular grids still out of the band, with what is known about why (the
    reason noted when the village was split, else the search's limits); regular grids
    in the band carry no reason."""
    n_grids = len(assigner.grids)
    sums = np.bincount(assigner.label, weights=graph.households, minlength=n_grids)
    movable = _movable(assigner)
    for g, grid in enumerate(assigner.grids):
        h = int(sums[g])
        if "infeasible_split" in grid.flags and in_band(h, (lo, hi)):
            grid.flags.remove("infeasible_split")     # the proof is about the others
            grid.reason = ""
        if not movable[g]:
            continue
        flag = band_flag(grid.kind, h, (lo, hi))
        if flag is None:
            grid.reason = ""
            continue
        blocks = np.flatnonzero(assigner.label == g)
        largest = int(graph.households[blocks].max()) if blocks.size else 0
        grid.flags.append(flag)
        grid.reason = f"{h} households: " + (grid.reason or (
            f"no split of the village's {int(sums[movable].sum())} households into "
            f"connected grids of {lo}–{hi} was found, nor a move of boundary blocks that "
            "brings this grid into the band")) + \
            f" (this grid: {blocks.size} blocks, the largest of {largest} households)"
