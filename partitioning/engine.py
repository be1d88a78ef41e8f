"""The partitioning pipeline: territory in; grids with codes, 四至 and a quality report out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.contract import Territory
from gis.errors import GridmapError
from partitioning import describe, flags, quality
from partitioning.blocks import (
    adjacency,
    barrier_lines,
    close_gaps,
    drop_duplicates,
    make_blocks,
)
from partitioning.corridors import Footprints
from partitioning.households import assign_to_blocks, building_households
from partitioning.oversize import MIN_STREET_M, split_oversized, street_frame_union
from partitioning.params import PartitionParams
from partitioning.regions import Graph
from partitioning.villages import (
    Assigner,
    Grid,
    VillageTask,
    default_workers,
    run_villages,
)
from partitioning.water import share_water, water_blocks, water_polygons

Progress = Callable[[str, float], None]
#: Villages run in worker processes only when they hold this many blocks in all
#: (below it, starting the workers costs more than it saves).
PARALLEL_MIN_BLOCKS = 3000
#: Times a village whose grids miss the band has its blocks cut finer between
#: buildings (blocks over min/2, then min/4, ... households) and is redone.
REFINE_LEVELS = 5
#: The first refinement cuts blocks over this share of the minimum (into halves, mostly).
FIRST_REFINE = 0.8


def refine_levels(params: PartitionParams) -> list[float]:
    """Households over which a block is cut finer at each refinement: 0.8 × the minimum
    first (a block is halved, most lines stay on the streets), then min/2, min/4, …"""
    return [FIRST_REFINE * params.min_households] + \
        [params.min_households / 2 ** (i + 1) for i in range(REFINE_LEVELS)]


@dataclass
class PartitionResult:
    """Grids and blocks in the territory's metric CRS, and the quality report."""

    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    report: dict[str, Any]
    params: PartitionParams = field(default_factory=PartitionParams)
    #: The inferred streets: open corridors between buildings that cuts ran down.
    streets: gpd.GeoDataFrame | None = None
    #: Every straight cut between buildings (width, likeness), streets or not.
    cuts: gpd.GeoDataFrame | None = None


class _Clock:
    """Wall time per stage, for the report (where the time goes)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(self.laps.get(stage, 0.0) + now - self.last, 3)
        self.last = now


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
    barriers = close_gaps(drop_duplicates(barrier_lines(layers, params)), villages, params)
    clock.lap("reproject_barriers")
    report_progress("blocks 街区", 0.05)
    blocks = make_blocks(villages, barriers, params)
    water = water_polygons(layers)
    clock.lap("blocks")

    report_progress("households 户数", 0.30)
    buildings = layers["buildings"]
    hh, pop, estimated, hh_counts = building_households(buildings, params,
                                                         layers.get("landuse"))
    points = shapely.point_on_surface(buildings.geometry.to_numpy())
    owner = assign_to_blocks(buildings, blocks, points)
    footprints = Footprints.of(buildings.geometry.to_numpy())
    clock.lap("households")
    cut = split_oversized(blocks, points, owner, hh, params, footprints=footprints)
    blocks, owner, moved = cut
    places = layers.get("facilities")
    barriers = _with_streets(barriers, cut.streets, params, places)
    street_frames = [cut.streets]
    n_cut = int((moved < 0).sum())
    clock.lap("oversize")

    # Villages are partitioned independently. Where a village's grids miss the
    # band, its coarse blocks are cut finer between buildings and it is redone;
    # a village is final when its blocks cannot be cut finer (single buildings,
    # or under the next threshold), or at the last level.
    levels = refine_levels(params)
    done: dict[str, list[tuple[Grid, np.ndarray]]] = {}
    todo = set(villages["code"])
    fallbacks = repair_moves = 0
    adj: pd.DataFrame | None = None
    for level in range(len(levels) + 1):
        n = len(blocks)
        block_hh = np.bincount(owner, weights=hh, minlength=n).astype(np.int64)
        block_buildings = np.bincount(owner, minlength=n)
        if level < len(levels):
            cuttable = (block_hh > levels[level]) & (block_buildings > 1)
            final = todo - set(blocks["village_code"].to_numpy()[cuttable])
        else:
            final = todo
        report_progress("regions 网格", min(0.75, 0.40 + 0.1 * level))
        if adj is None:
            adj = adjacency(blocks, barriers)
        is_water = water_blocks(blocks, water, block_buildings)
        result, relaxed, moved_blocks, missed, hot = _regions(
            blocks, adj, villages, layers, block_hh, block_buildings, params, todo, final,
            is_water, barriers["name"].to_numpy(dtype=object))
        done.update(result)
        fallbacks += relaxed
        repair_moves += moved_blocks
        clock.lap(f"regions_level{level}")
        if not missed or level == len(levels):   # (at the last level all are final)
            break
        cut = split_oversized(
            blocks, points, owner, hh, params, threshold=levels[level],
            piece=levels[level] / 1.5, villages=missed, footprints=footprints, only=hot)
        blocks, owner, moved = cut
        barriers = _with_streets(barriers, cut.streets, params, places)
        street_frames.append(cut.streets)
        clock.lap("oversize")
        adj = _update_adjacency(adj, moved, blocks, barriers, cut.touched)
        n_cut += int((moved < 0).sum())
        done = {code: [(g, moved[members]) for g, members in grids]
                for code, grids in done.items() if code not in missed}
        todo = missed
    assigner = Assigner(len(blocks), (params.min_households, params.max_households))
    for code in villages["code"]:
        for grid, members in done.get(code, []):
            assigner.add(members, grid.village, grid.kind, grid.flags, grid.name_hint,
                         grid.reason)
    # Rivers and lakes: shared between the grids of their banks, or grids of their own.
    report_progress("water 水域", 0.78)
    shared = share_water(blocks, assigner.label, water_blocks(blocks, water, block_buildings),
                         [g.kind for g in assigner.grids], water, params)
    if len(shared.blocks) != len(blocks) or shared.water_grids:
        blocks, owner = shared.blocks, shared.moved[owner]
        assigner.label = shared.label
        for village_code, name, members in shared.water_grids:
            assigner.add(members, village_code, "dedicated", [], f"{name}水域" if name
                         else "水域")
        assigner.compact()
        barriers = _with_centres(barriers, shared.centres)
        n = len(blocks)
        block_hh = np.bincount(owner, weights=hh, minlength=n).astype(np.int64)
    clock.lap("water")
    block_pop = np.bincount(owner, weights=pop, minlength=len(blocks)).astype(np.int64)
    block_est = np.bincount(owner, weights=np.where(estimated, hh, 0),
                            minlength=len(blocks)).astype(np.int64)

    report_progress("grids 合并", 0.80)
    grids = describe.dissolve_grids(blocks, assigner, block_hh, block_pop, villages)
    grids["households_estimated"] = np.bincount(
        assigner.label, weights=block_est, minlength=len(grids)).astype(np.int64)
    clock.lap("dissolve")
    report_progress("codes 编码 四至", 0.88)
    grids = describe.describe(grids, barriers, villages, params, water)
    # Every forced flag checked against the data (partitioning/flags.py).
    grids = flags.reconcile(grids, pd.DataFrame({
        "grid_code": grids["code"].to_numpy()[assigner.label], "households": block_hh,
        "buildings": np.bincount(owner, minlength=len(blocks))}), params)
    clock.lap("codes_sides_quality")
    barrier_share = grids.attrs.pop("barrier_boundary_share")
    barrier_by_kind = grids.attrs.pop("barrier_share_by_kind")
    inside_by_kind = grids.attrs.pop("barrier_inside_by_kind")
    blocks = blocks.assign(households=block_hh, population=block_pop,
                           households_estimated=block_est,
                           grid_code=grids["code"].to_numpy()[assigner.label])
    grids = grids.sort_values("code", kind="stable").reset_index(drop=True)

    territory_area = float(shapely.area(villages.geometry.to_numpy()).sum())
    union_area = float(shapely.area(shapely.union_all(grids.geometry.to_numpy())))
    splits = describe.split_buildings(buildings, grids, barriers, villages)
    describe.flag_split(grids, splits["buildings_split_by_admin"])
    report = quality.plan_report(grids, territory_area, union_area,
                                 params.min_households, params.max_households)
    clock.lap("report")
    report.update({
        "runtime_s": round(time.perf_counter() - started, 3),
        "timings_s": clock.laps,
        "barrier_boundary_share": barrier_share,
        "barrier_share_by_kind": barrier_by_kind,
        **describe.inside_report(grids, inside_by_kind),
        "n_blocks": int(n),
        "blocks_cut_between_buildings": n_cut,
        "n_villages": len(villages),
        "households_given": hh_counts.given,
        **hh_counts.as_report(),
        "estimate": params.estimate,
        **splits,
        "relaxed_cuts": fallbacks,
        "repair_moves": repair_moves,
        "metric_crs": f"EPSG:{territory.metric_crs.to_epsg()}",
        "params": {k: v for k, v in asdict(params).items() if k != "strengths"},
    })
    report_progress("done 完成", 1.0)
    cuts = street_frame_union(street_frames, blocks.crs)
    streets = cuts[_is_street(cuts, params)].reset_index(drop=True)
    # (Named as the 四至 names them, for the plan's stored lines and blocks.gpkg.)
    streets["name"] = street_names(streets, places)
    report["inferred_streets"] = len(streets)
    report["inferred_streets_km"] = round(float(shapely.length(
        streets.geometry.to_numpy()).sum()) / 1000, 2)
    return PartitionResult(grids, blocks, report, params, streets, cuts)


def _regions(blocks: gpd.GeoDataFrame, adj: pd.DataFrame, villages: gpd.GeoDataFrame,
             layers: dict[str, gpd.GeoDataFrame], block_hh: np.ndarray,
             block_buildings: np.ndarray, params: PartitionParams, todo: set[str],
             final: set[str], is_water: np.ndarray, barrier_names: np.ndarray
             ) -> tuple[dict[str, list[tuple[Grid, np.ndarray]]], int, int, set[str],
                        np.ndarray]:
    """Grids of the villages in ``todo`` (each: its grids with their blocks), the number
    of relaxed cuts and of blocks moved by repairs, and the villages where the engine
    missed the band (to redo with finer blocks). ``adj`` is the blocks' adjacency."""
    n = len(blocks)
    block_geoms = blocks.geometry.to_numpy()
    block_area = shapely.area(block_geoms)
    dedicated = _dedicated_of(blocks, layers.get("dedicated_areas"))
    ded_names = layers["dedicated_areas"]["name"].to_numpy() \
        if "dedicated_areas" in layers else np.array([])
    block_village = blocks["village_code"].to_numpy()
    adj = adj[np.isin(block_village[adj["a"].to_numpy()], list(todo))].reset_index(drop=True)
    by_village = pd.Series(np.arange(n)).groupby(block_village).indices
    edge_village = block_village[adj["a"].to_numpy()] if len(adj) else np.array([])
    edges_by_village = pd.Series(np.arange(len(adj))).groupby(edge_village).indices
    band = (params.min_households, params.max_households)
    adj_a, adj_b = adj["a"].to_numpy(), adj["b"].to_numpy()
    adj_len = adj["length"].to_numpy()
    out: dict[str, list[tuple[Grid, np.ndarray]]] = {}
    tasks: list[VillageTask] = []
    parts: list[tuple[np.ndarray, list[np.ndarray]]] = []
    for vi, row in enumerate(villages.itertuples(index=False)):
        code = str(row.code)
        nodes = np.asarray(by_village.get(code, np.array([], dtype=int)))
        if code not in todo or nodes.size == 0:
            continue
        own = dedicated[nodes].copy()
        # A dedicated area reaching into the village by a scrap (under the sliver area)
        # makes no grid of its own there: the scrap joins the village's grids.
        for d in np.unique(own[own >= 0]):
            if block_area[nodes[own == d]].sum() < params.sliver_area_m2:
                own[own == d] = -1
        ded_ids = np.unique(own[own >= 0])
        ded_grids = [Grid(code, "dedicated", [], str(ded_names[d]) if len(ded_names) else None)
                     for d in ded_ids]
        ded_members = [nodes[own == d] for d in ded_ids]
        rest = nodes[own < 0]
        if not rest.size:
            out[code] = list(zip(ded_grids, ded_members, strict=True))
            continue
        eidx = np.asarray(edges_by_village.get(code, np.array([], dtype=int)))
        # Edges from the rest to the dedicated grids (for parts with no other neighbour).
        ea, eb, el = adj_a[eidx], adj_b[eidx], adj_len[eidx]
        da, db = dedicated[ea], dedicated[eb]
        one = (da >= 0) != (db >= 0)
        inner = np.where(da[one] >= 0, eb[one], ea[one])
        ded = np.searchsorted(ded_ids, np.maximum(da[one], db[one]))
        tasks.append(VillageTask(
            index=vi, code=code, kind=str(row.kind or "urban"),
            graph=_local_graph(rest, eidx, adj, block_hh, block_area, is_water,
                               barrier_names),
            buildings=block_buildings[rest], geoms=block_geoms[rest], final=code in final,
            dedicated=ded_grids,
            dedicated_edges=(np.searchsorted(rest, inner), ded, el[one])))
        parts.append((rest, ded_members))
    workers = params.workers or default_workers()
    if sum(t.graph.n for t in tasks) < PARALLEL_MIN_BLOCKS:
        workers = 1
    fallbacks = moves = 0
    missed: set[str] = set()
    hot = np.zeros(n, dtype=bool)
    for task, (rest, ded_members), res in zip(tasks, parts, run_villages(tasks, params, workers),
                                              strict=True):
        if res.coarse:
            missed.add(task.code)
            hot[rest] = True
            continue
        fallbacks += res.fallbacks
        moves += res.moves
        order = np.argsort(res.label, kind="stable")
        members = np.split(rest[order], np.searchsorted(res.label[order],
                                                        np.arange(1, len(res.grids))))
        for i, extra in enumerate(ded_members):
            members[i] = np.sort(np.concatenate([extra, members[i]]))
        sums = np.bincount(res.label, weights=task.graph.households,
                           minlength=len(res.grids))
        if not task.final and _misses(res.grids, sums, band):
            missed.add(task.code)
            hot[rest[_around_misses(task.graph, res.grids, res.label, sums, band)]] = True
            continue
        out[task.code] = list(zip(res.grids, members, strict=True))
    return out, fallbacks, moves, missed, hot


def _around_misses(graph: Graph, grids: list[Grid], label: np.ndarray, sums: np.ndarray,
                   band: tuple[int, int]) -> np.ndarray:
    """The blocks (of a village's graph) of its grids out of the band and of the grids next
    to them: only those are cut finer, so that the rest keeps its lines along streets."""
    bad = np.array([flags.misses_band(g.kind, h, g.flags, band)
                    for g, h in zip(grids, sums, strict=True)])
    near = bad.copy()
    ga, gb = label[graph.a], label[graph.b]
    near[gb[bad[ga]]] = True
    near[ga[bad[gb]]] = True
    return near[label]


#: An inferred street is named after a named place (a school, a market…) this close (m).
STREET_NAME_M = 60.0


def _with_streets(barriers: gpd.GeoDataFrame, streets: gpd.GeoDataFrame,
                  params: PartitionParams, places: gpd.GeoDataFrame | None = None
                  ) -> gpd.GeoDataFrame:
    """The barriers and the inferred streets (weaker than any given road class but
    footways, stronger than no line at all), each named for the 四至: "{place}旁巷道"
    after the nearest named place within STREET_NAME_M, else "无名巷道"."""
    if streets.empty:
        return barriers
    names = street_names(streets, places)
    like = streets["likeness"].to_numpy(dtype=float)
    names[~_is_street(streets, params)] = None
    extra = gpd.GeoDataFrame({
        "kind": "inferred", "class": "inferred_street", "name": names,
        "strength": params.inferred_street_strength * like},
        geometry=streets.geometry.to_numpy(), crs=barriers.crs, index=np.arange(len(streets)))
    return gpd.GeoDataFrame(pd.concat([barriers, extra], ignore_index=True),
                            geometry="geometry", crs=barriers.crs)


def street_names(streets: gpd.GeoDataFrame, places: gpd.GeoDataFrame | None = None
                 ) -> np.ndarray:
    """The name of each inferred street as the 四至 says it: "{place}旁巷道" after the
    nearest named place within STREET_NAME_M, else "无名巷道"."""
    names = np.full(len(streets), "无名巷道", dtype=object)
    if len(streets) and places is not None and len(places) and "name" in places:
        named = places[places["name"].notna() & (places["name"].astype(str) != "")]
        if len(named):
            mids = shapely.line_interpolate_point(streets.geometry.to_numpy(), 0.5,
                                                  normalized=True)
            si, pi = shapely.STRtree(named.geometry.to_numpy()).query_nearest(
                mids, max_distance=STREET_NAME_M, all_matches=False)
            names[si] = [f"{n}旁巷道" for n in named["name"].astype(str).to_numpy()[pi]]
    return names


def _is_street(cuts: gpd.GeoDataFrame, params: PartitionParams) -> np.ndarray:
    """Which cuts ran down a street on the ground (the inferred streets): wide enough, long
    enough, and looking like one (the buildings on its two sides laid out differently)."""
    return ((cuts["likeness"].to_numpy(dtype=float) >= 0.5)
            & (cuts["width_m"].to_numpy(dtype=float) >= params.street_min_width_m)
            & (shapely.length(cuts.geometry.to_numpy()) >= MIN_STREET_M))


def _with_centres(barriers: gpd.GeoDataFrame,
                  centres: list[tuple[shapely.Geometry, str | None]]
                  ) -> gpd.GeoDataFrame:
    """The barriers and the centre lines water was shared along (grid edges in the water
    follow them, and the 四至 names the water)."""
    if not centres:
        return barriers
    extra = gpd.GeoDataFrame({
        "kind": "water", "class": "centreline", "name": [n for _, n in centres],
        "strength": 0.95}, geometry=[g for g, _ in centres], crs=barriers.crs,
        index=np.arange(len(centres)))
    extra = extra[shapely.get_type_id(extra.geometry.to_numpy()) == 1]
    return gpd.GeoDataFrame(pd.concat([barriers, extra], ignore_index=True),
                            geometry="geometry", crs=barriers.crs)


def _update_adjacency(adj: pd.DataFrame, moved: np.ndarray, blocks: gpd.GeoDataFrame,
                      barriers: gpd.GeoDataFrame, touched: np.ndarray | None = None
                      ) -> pd.DataFrame:
    """The adjacency after some blocks were cut: pairs of kept blocks carry over
    (renumbered), pairs with a new piece or a ``touched`` block (a kept block whose outline
    took a piece's vertex) are measured again."""
    a, b = moved[adj["a"].to_numpy()], moved[adj["b"].to_numpy()]
    keep = (a >= 0) & (b >= 0)
    changed = touched if touched is not None and len(touched) == len(blocks) \
        else np.zeros(len(blocks), dtype=bool)
    keep[keep] &= ~changed[a[keep]] & ~changed[b[keep]]
    if keep.all() and len(blocks) == len(moved):
        return adj
    kept = adj[keep].assign(a=a[keep], b=b[keep])
    new = np.union1d(np.setdiff1d(np.arange(len(blocks)), moved[moved >= 0]),
                     np.flatnonzero(changed))
    fresh = adjacency(blocks, barriers, among=new)
    both = pd.concat([kept, fresh], ignore_index=True)
    return both.sort_values(["a", "b"], kind="stable").reset_index(drop=True)


def _misses(grids: list[Grid], sums: np.ndarray, band: tuple[int, int]) -> bool:
    """Whether a comprehensive grid is out of the band for no reason in its data."""
    return any(flags.misses_band(grid.kind, h, grid.flags, band)
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
                 households: np.ndarray, area: np.ndarray, is_water: np.ndarray,
                 barrier_names: np.ndarray) -> Graph:
    """The graph of ``nodes`` (sorted block positions), renumbered 0..len(nodes)-1."""
    a_glob = adj["a"].to_numpy()[eidx]
    b_glob = adj["b"].to_numpy()[eidx]
    a = np.searchsorted(nodes, a_glob)
    b = np.searchsorted(nodes, b_glob)
    keep = (nodes[np.minimum(a, len(nodes) - 1)] == a_glob) & \
        (nodes[np.minimum(b, len(nodes) - 1)] == b_glob)
    strong = adj["strong"].to_numpy()[eidx][keep]
    names = np.where(strong >= 0, barrier_names[np.maximum(strong, 0)], "")
    names = np.array([n if isinstance(n, str) else "" for n in names], dtype=object)
    return Graph(households=households[nodes], area=area[nodes], a=a[keep], b=b[keep],
                 length=adj["length"].to_numpy()[eidx][keep],
                 strength=adj["strength"].to_numpy()[eidx][keep], strong=strong >= 0,
                 barrier_name=names, water=is_water[nodes])
