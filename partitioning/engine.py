"""The partitioning pipeline: territory in; grids with codes, 四至 and a quality report out."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.errors import GridmapError
from gis.layers import Territory
from partitioning import boundaries, codes, quality
from partitioning.blocks import adjacency, barrier_lines, make_blocks
from partitioning.households import assign_to_blocks, building_households
from partitioning.oversize import split_oversized
from partitioning.params import PartitionParams
from partitioning.regions import Graph, Partitioner, choose_k

Progress = Callable[[str, float], None]
#: Flags that already explain why a grid is out of the band.
FORCED = {*quality.FORCED_FLAGS, "block_over_max", "radius_split"}


@dataclass
class PartitionResult:
    """Grids and blocks in the territory's metric CRS, and the quality report."""

    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    report: dict[str, Any]
    params: PartitionParams = field(default_factory=PartitionParams)


@dataclass
class _Grid:
    village: str
    kind: str
    flags: list[str]
    name_hint: str | None = None


class _Clock:
    """Wall time per stage, for the report (where the time goes)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(self.laps.get(stage, 0.0) + now - self.last, 3)
        self.last = now


class _Coarse(Exception):
    """A village's blocks are too coarse for an in-band split at this level: cut them
    finer and redo it (raised before the relaxed fallback, which would be thrown away)."""


class _Assigner:
    """Collects block → grid labels and each grid's village, kind and flags."""

    def __init__(self, n_blocks: int, band: tuple[int, int]) -> None:
        self.band = band
        self.label = np.full(n_blocks, -1, dtype=np.int64)
        self.grids: list[_Grid] = []

    def add(self, blocks: np.ndarray, village: str, kind: str = "comprehensive",
            flags: list[str] | None = None, name_hint: str | None = None) -> int:
        self.label[blocks] = len(self.grids)
        self.grids.append(_Grid(village, kind, list(flags or []), name_hint))
        return len(self.grids) - 1


def partition_territory(territory: Territory, params: PartitionParams | None = None,
                        progress: Progress | None = None) -> PartitionResult:
    """Partition every village/community of ``territory`` into grids."""
    params = params or PartitionParams()
    started = time.perf_counter()
    report_progress = progress or (lambda _stage, _done: None)
    clock = _Clock()
    layers = territory.to_metric()
    admin = layers["admin_areas"]
    villages = admin[admin["level"] == "village"].reset_index(drop=True)
    if villages.empty:
        raise GridmapError(
            "admin_areas has no village/community areas (level village): grids are cut "
            "inside villages and communities, so add them")

    report_progress("barriers 障碍线", 0.02)
    barriers = barrier_lines(layers, params)
    clock.lap("reproject_barriers")
    report_progress("blocks 街区", 0.05)
    blocks = make_blocks(villages, barriers, params)
    clock.lap("blocks")

    report_progress("households 户数", 0.30)
    buildings = layers["buildings"]
    hh, pop, _estimated, hh_counts = building_households(buildings, params)
    points = shapely.point_on_surface(buildings.geometry.to_numpy())
    owner = assign_to_blocks(buildings, blocks)
    clock.lap("households")
    blocks, owner, moved = split_oversized(blocks, points, owner, hh, params)
    n_cut = int((moved < 0).sum())
    clock.lap("oversize")

    # Villages are partitioned independently. Where a village's grids miss the
    # band, its coarse blocks are cut finer between buildings and it is redone.
    levels = (params.min_households / 2, params.min_households / 4)
    done: dict[str, list[tuple[_Grid, np.ndarray]]] = {}
    todo = set(villages["code"])
    fallbacks = 0
    for level in range(len(levels) + 1):
        n = len(blocks)
        block_hh = np.bincount(owner, weights=hh, minlength=n).astype(np.int64)
        block_buildings = np.bincount(owner, minlength=n)
        report_progress("regions 网格", 0.40 + 0.15 * level)
        result, relaxed, missed = _regions(blocks, barriers, villages, layers, block_hh,
                                           block_buildings, params, todo,
                                           final=level == len(levels))
        done.update(result)
        fallbacks += relaxed
        clock.lap(f"regions_level{level}")
        if not missed or level == len(levels):
            break
        blocks, owner, moved = split_oversized(
            blocks, points, owner, hh, params, threshold=levels[level],
            piece=levels[level] / 1.5, villages=missed)
        clock.lap("oversize")
        n_cut += int((moved < 0).sum())
        done = {code: [(g, moved[members]) for g, members in grids]
                for code, grids in done.items() if code not in missed}
        todo = missed
    block_pop = np.bincount(owner, weights=pop, minlength=len(blocks)).astype(np.int64)
    assigner = _Assigner(len(blocks), (params.min_households, params.max_households))
    for code in villages["code"]:
        for grid, members in done.get(code, []):
            assigner.add(members, grid.village, grid.kind, grid.flags, grid.name_hint)

    report_progress("grids 合并", 0.80)
    grids = _dissolve(blocks, assigner, block_hh, block_pop, villages)
    clock.lap("dissolve")
    report_progress("codes 编码 四至", 0.88)
    grids = _describe(grids, barriers, villages, params)
    clock.lap("codes_sides_quality")
    barrier_share = grids.attrs.pop("barrier_boundary_share")
    barrier_by_kind = grids.attrs.pop("barrier_share_by_kind")
    blocks = blocks.assign(households=block_hh, population=block_pop,
                           grid_code=grids["code"].to_numpy()[assigner.label])
    grids = grids.sort_values("code", kind="stable").reset_index(drop=True)

    territory_area = float(shapely.area(villages.geometry.to_numpy()).sum())
    union_area = float(shapely.area(shapely.union_all(grids.geometry.to_numpy())))
    report = quality.plan_report(grids, territory_area, union_area,
                                 params.min_households, params.max_households)
    clock.lap("report")
    report.update({
        "runtime_s": round(time.perf_counter() - started, 3),
        "timings_s": clock.laps,
        "barrier_boundary_share": barrier_share,
        "barrier_share_by_kind": barrier_by_kind,
        "n_blocks": int(n),
        "blocks_cut_between_buildings": n_cut,
        "n_villages": len(villages),
        "households_given": hh_counts.given,
        "households_estimated_buildings": hh_counts.estimated,
        "buildings": hh_counts.buildings,
        "buildings_not_residential_without_count": hh_counts.not_residential,
        "relaxed_cuts": fallbacks,
        "metric_crs": f"EPSG:{territory.metric_crs.to_epsg()}",
        "params": {k: v for k, v in asdict(params).items() if k != "strengths"},
    })
    report_progress("done 完成", 1.0)
    return PartitionResult(grids, blocks, report, params)


def _regions(blocks: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
             layers: dict[str, gpd.GeoDataFrame], block_hh: np.ndarray,
             block_buildings: np.ndarray, params: PartitionParams, todo: set[str],
             final: bool) -> tuple[dict[str, list[tuple[_Grid, np.ndarray]]], int, set[str]]:
    """Grids of the villages in ``todo`` (each: its grids with their blocks), the number
    of relaxed cuts, and the villages where the engine missed the band."""
    n = len(blocks)
    block_geoms = blocks.geometry.to_numpy()
    block_area = shapely.area(block_geoms)
    dedicated = _dedicated_of(blocks, layers.get("dedicated_areas"))
    ded_names = layers["dedicated_areas"]["name"].to_numpy() \
        if "dedicated_areas" in layers else np.array([])
    block_village = blocks["village_code"].to_numpy()
    in_todo = np.isin(block_village, list(todo))
    adj = adjacency(blocks[in_todo], barriers)
    todo_idx = np.flatnonzero(in_todo)
    adj["a"] = todo_idx[adj["a"].to_numpy()]
    adj["b"] = todo_idx[adj["b"].to_numpy()]
    by_village = pd.Series(np.arange(n)).groupby(block_village).indices
    edge_village = block_village[adj["a"].to_numpy()] if len(adj) else np.array([])
    edges_by_village = pd.Series(np.arange(len(adj))).groupby(edge_village).indices
    fallbacks = 0
    missed: set[str] = set()
    out: dict[str, list[tuple[_Grid, np.ndarray]]] = {}
    for vi, row in enumerate(villages.itertuples(index=False)):
        code = str(row.code)
        nodes = np.asarray(by_village.get(code, np.array([], dtype=int)))
        if code not in todo or nodes.size == 0:
            continue
        assigner = _Assigner(n, (params.min_households, params.max_households))
        for d in np.unique(dedicated[nodes][dedicated[nodes] >= 0]):
            assigner.add(nodes[dedicated[nodes] == d], code, "dedicated",
                         name_hint=str(ded_names[d]) if len(ded_names) else None)
        rest = nodes[dedicated[nodes] < 0]
        if rest.size:
            eidx = np.asarray(edges_by_village.get(code, np.array([], dtype=int)))
            graph = _local_graph(rest, eidx, adj, block_hh, block_area)
            rng = np.random.default_rng([params.seed, vi])
            try:
                fallbacks += _partition_village(
                    graph, rest, code, str(row.kind or "urban"), block_buildings[rest],
                    assigner, params, rng, block_geoms, final)
            except _Coarse:
                missed.add(code)
                continue
        labels = assigner.label[nodes]
        order = np.argsort(labels, kind="stable")
        members = np.split(nodes[order], np.searchsorted(labels[order],
                                                         np.arange(1, len(assigner.grids))))
        sums = np.bincount(labels, weights=block_hh[nodes], minlength=len(assigner.grids))
        if _misses(assigner.grids, sums, params):
            missed.add(code)
        out[code] = list(zip(assigner.grids, members, strict=True))
    return out, fallbacks, missed


def _misses(grids: list[_Grid], sums: np.ndarray, params: PartitionParams) -> bool:
    """Whether a comprehensive grid is out of the band for no reason in its data."""
    return any(
        grid.kind == "comprehensive" and not set(grid.flags) & FORCED
        and not params.min_households <= h <= params.max_households
        for grid, h in zip(grids, sums, strict=True))


def _dedicated_of(blocks: gpd.GeoDataFrame, dedicated: gpd.GeoDataFrame | None) -> np.ndarray:
    """Index of the dedicated area holding each block (by a point on its surface), or -1."""
    out = np.full(len(blocks), -1, dtype=np.int64)
    if dedicated is None or dedicated.empty:
        return out
    pts = shapely.point_on_surface(blocks.geometry.to_numpy())
    bi, di = shapely.STRtree(dedicated.geometry.to_numpy()).query(pts, predicate="within")
    out[bi] = di
    return out


def _local_graph(nodes: np.ndarray, eidx: np.ndarray, adj: pd.DataFrame,
                 households: np.ndarray, area: np.ndarray) -> Graph:
    """The graph of ``nodes`` (sorted block positions), renumbered 0..len(nodes)-1."""
    a_glob = adj["a"].to_numpy()[eidx]
    b_glob = adj["b"].to_numpy()[eidx]
    a = np.searchsorted(nodes, a_glob)
    b = np.searchsorted(nodes, b_glob)
    keep = (nodes[np.minimum(a, len(nodes) - 1)] == a_glob) & \
        (nodes[np.minimum(b, len(nodes) - 1)] == b_glob)
    return Graph(households=households[nodes], area=area[nodes], a=a[keep], b=b[keep],
                 length=adj["length"].to_numpy()[eidx][keep],
                 strength=adj["strength"].to_numpy()[eidx][keep])


def _partition_village(graph: Graph, nodes: np.ndarray, code: str, kind: str,
                       n_buildings: np.ndarray, assigner: _Assigner, params: PartitionParams,
                       rng: np.random.Generator, geoms: np.ndarray, final: bool = True
                       ) -> int:
    """Grids of one village's non-dedicated blocks (``nodes``, global numbering)."""
    lo, hi = params.min_households, params.max_households
    total = int(graph.households.sum())
    local = np.arange(graph.n)

    if kind == "rural" and total <= hi:
        return _rural_village(graph, nodes, code, assigner, params, rng, geoms)

    if total < lo:
        assigner.add(nodes, code, flags=["village_below_min"])
        return 0

    # Blocks over the maximum on their own (one tall building) are grids of their own.
    heavy = np.flatnonzero(graph.households > hi)
    forced: list[tuple[int, np.ndarray]] = []
    for h in heavy:
        flag = "single_building" if n_buildings[h] == 1 else "block_over_max"
        forced.append((assigner.add(nodes[[h]], code, flags=[flag]), np.array([h])))
    free = np.setdiff1d(local, heavy)
    # Where the blocks can still be cut finer, fail fast (a smaller search budget).
    part = Partitioner(graph, params, rng, budget=None if final else params.probe_budget)
    small: list[np.ndarray] = []
    for comp in graph.components(free) if free.size else []:
        t = float(graph.households[comp].sum())
        if t < lo:
            small.append(comp)
            continue
        k, feasible = choose_k(t, params)
        pieces = part.split_exact(comp, k) if feasible else None
        if pieces is None:
            if feasible and not final:
                raise _Coarse(code)
            pieces = part.split_relaxed(comp, k)
        for piece in pieces:
            assigner.add(nodes[piece], code, flags=[] if feasible else ["infeasible_band"])
    for comp in small:
        _attach(comp, nodes, graph, assigner, code, geoms, hi)
    return part.fallbacks


def _attach(comp: np.ndarray, nodes: np.ndarray, graph: Graph, assigner: _Assigner,
            code: str, geoms: np.ndarray, hi: float = math.inf) -> None:
    """A piece too small for a grid joins an adjacent grid of its village: one it fits
    in (households within ``hi``) if any, the longest-shared-edge one otherwise; a
    piece with no neighbour joins the nearest grid."""
    in_comp = np.zeros(graph.n, dtype=bool)
    in_comp[comp] = True
    cross = in_comp[graph.a] != in_comp[graph.b]
    outside = np.where(in_comp[graph.a[cross]], graph.b[cross], graph.a[cross])
    labels = assigner.label[nodes[outside]]
    lengths = graph.length[cross]
    ok = labels >= 0
    if ok.any():
        shared = pd.Series(lengths[ok]).groupby(labels[ok]).sum()
        village_labels = assigner.label[nodes]
        sums = pd.Series(graph.households).groupby(village_labels).sum()
        extra = float(graph.households[comp].sum())
        fits = [g for g in shared.index if sums.get(g, 0) + extra <= hi]
        target = int(shared[fits].idxmax()) if fits else int(shared.idxmax())
    else:
        mine = [i for i, g in enumerate(assigner.grids) if g.village == code]
        if not mine:
            assigner.add(nodes[comp], code, flags=["village_below_min"])
            return
        piece = shapely.union_all(geoms[nodes[comp]])
        dists = [shapely.distance(piece, shapely.union_all(geoms[assigner.label == g]))
                 for g in mine]
        target = mine[int(np.argmin(dists))]
    assigner.label[nodes[comp]] = target


def _rural_village(graph: Graph, nodes: np.ndarray, code: str, assigner: _Assigner,
                   params: PartitionParams, rng: np.random.Generator, geoms: np.ndarray
                   ) -> int:
    """One grid, unless wider than the service radius: then cut by area along strong
    barriers into pieces about the service radius wide."""
    total = int(graph.households.sum())
    below = ["village_below_min"] if total < params.min_households else []
    whole = shapely.union_all(geoms[nodes])
    across = float(quality.width(np.array([whole]))[0])
    if across <= params.service_radius_m or graph.n < 2:
        assigner.add(nodes, code, flags=["rural_village", *below])
        return 0
    comps = graph.components(np.arange(graph.n))
    main = max(comps, key=len)
    area = graph.area.astype(float)
    fallbacks = 0
    # Halve (by area, preferring strong barriers such as ridges and rivers) until
    # every piece is within the service width.
    pending, pieces = [main], []
    while pending:
        piece = pending.pop()
        across = float(quality.width(np.array([shapely.union_all(geoms[nodes[piece]])]))[0])
        if across <= params.service_radius_m or len(piece) < 2:
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
        h = int(graph.households[piece].sum())
        flags = ["radius_split"] + (["village_below_min"] if h < params.min_households else [])
        assigner.add(nodes[piece], code, flags=flags)
    for comp in comps:
        if comp is not main:
            _attach(comp, nodes, graph, assigner, code, geoms)
    return fallbacks


def _dissolve(blocks: gpd.GeoDataFrame, assigner: _Assigner, block_hh: np.ndarray,
              block_pop: np.ndarray, villages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    label = assigner.label
    if (label < 0).any():  # cannot happen: every block belongs to a village
        raise RuntimeError(f"{int((label < 0).sum())} blocks left without a grid")
    n_grids = len(assigner.grids)
    order = np.argsort(label, kind="stable")
    starts = np.searchsorted(label[order], np.arange(n_grids + 1))
    geoms = blocks.geometry.to_numpy()[order]
    merged = np.empty(n_grids, dtype=object)
    for g in range(n_grids):
        merged[g] = shapely.union_all(geoms[starts[g]:starts[g + 1]])
    merged = shapely.make_valid(merged)
    vname = dict(zip(villages["code"], villages["name"], strict=True))
    frame = pd.DataFrame({
        "village_code": [g.village for g in assigner.grids],
        "kind": [g.kind for g in assigner.grids],
        "households": np.bincount(label, weights=block_hh, minlength=n_grids).astype(int),
        "population": np.bincount(label, weights=block_pop, minlength=n_grids).astype(int),
        "flags": [g.flags for g in assigner.grids],
        "name_hint": [g.name_hint for g in assigner.grids],
    })
    frame["village_name"] = frame["village_code"].map(vname)
    # Out of the band and not explained by the data: say so (never silently out of range).
    lo, hi = assigner.band
    for flags, kind, h in zip(frame["flags"], frame["kind"], frame["households"], strict=True):
        if kind == "comprehensive" and not lo <= h <= hi and not set(flags) & FORCED:
            flags.append("below_min" if h < lo else "above_max")
    return gpd.GeoDataFrame(frame, geometry=merged, crs=blocks.crs)


def _describe(grids: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
              params: PartitionParams) -> gpd.GeoDataFrame:
    """Codes, names, 四至 and the per-grid quality figures."""
    geoms = grids.geometry.to_numpy()
    parts = shapely.get_num_geometries(geoms)
    for flags, p in zip(grids["flags"], parts, strict=True):
        if p > 1 and "noncontiguous" not in flags:
            flags.append("noncontiguous")
    centre = shapely.point_on_surface(geoms)
    area = shapely.area(geoms)
    grid_codes = codes.assign_codes(
        grids["village_code"].to_numpy(), grids["kind"].to_numpy(),
        shapely.get_x(centre), shapely.get_y(centre), np.sqrt(area),
        params.dedicated_serial_start)
    serial = np.array([int(c[-3:]) for c in grid_codes])
    names = [
        f"{hint}专属网格" if kind == "dedicated" and hint else
        f"{vn}第{s - params.dedicated_serial_start + 1}专属网格" if kind == "dedicated" else
        f"{vn}第{s}网格"
        for vn, kind, hint, s in zip(grids["village_name"], grids["kind"], grids["name_hint"],
                                     serial, strict=True)
    ]
    segments = boundaries.boundary_segments(geoms)
    named = barriers[barriers["name"].notna() & (barriers["name"].astype(str) != "")]
    named = named.reset_index(drop=True)
    followed_named = boundaries.follow(segments, named)
    neighbour = boundaries.neighbours(segments, geoms)
    texts = boundaries.boundary_texts(segments, followed_named, named, neighbour, grid_codes,
                                      len(grids))
    village_lines = shapely.boundary(villages.geometry.to_numpy())
    admin_lines = gpd.GeoDataFrame({"kind": np.full(len(village_lines), "admin")},
                                   geometry=village_lines, crs=villages.crs)
    follow_set = pd.concat([barriers[["kind", "geometry"]], admin_lines], ignore_index=True)
    followed_any = boundaries.follow(segments, follow_set)
    kinds = np.where(followed_any >= 0,
                     follow_set["kind"].to_numpy(dtype=object)[np.maximum(followed_any, 0)], "")
    share, by_kind = quality.barrier_shares(segments, kinds.astype(str), len(grids))
    total_len = float(segments["length"].sum()) or 1.0
    on_len = float(segments["length"].to_numpy()[kinds != ""].sum())
    out = gpd.GeoDataFrame({
        "code": grid_codes,
        "name": names,
        "village_code": grids["village_code"].to_numpy(),
        "village_name": grids["village_name"].to_numpy(),
        "kind": grids["kind"].to_numpy(),
        "households": grids["households"].to_numpy(),
        "population": grids["population"].to_numpy(),
        "area_m2": np.round(area, 1),
        "compactness": np.round(quality.polsby_popper(geoms), 4),
        "barrier_share": np.round(share, 4),
        "radius_m": np.round(quality.service_radius(geoms), 1),
        "boundary_text": texts,
        "flags": grids["flags"].to_numpy(),
    }, geometry=geoms, crs=grids.crs)
    out.attrs["barrier_boundary_share"] = round(on_len / total_len, 4)
    out.attrs["barrier_share_by_kind"] = by_kind
    return out
