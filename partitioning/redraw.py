"""Stable redraw: a plan's grids after new household data, changing only what the change breaks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.band import in_band
from gis.contract import Territory
from gis.errors import GridmapError, msg
from partitioning import flags
from partitioning.blocks import PRECISION_M, barrier_lines
from partitioning.corridors import Footprints
from partitioning.households import assign_to_blocks, building_households
from partitioning.oversize import split_oversized
from partitioning.params import PartitionParams
from partitioning.plan import ROW_FIELDS, Neighbourhood, Plan, band_flags, finish
from partitioning.rebalance import assign, engine_flags, region_ok, solve_region
from partitioning.villages import Grid

Progress = Callable[[str, float], None]
#: Neighbours tried, one at a time, when a broken grid cannot be redone alone.
REGION_TRIES = 4
#: Columns of the blocks a redraw reads and writes.
BLOCK_COLUMNS = ["block_no", "village_code", "households", "households_estimated", "population",
                 "grid_code"]


@dataclass
class RedrawResult:
    """The redrawn plan: every grid (:data:`partitioning.plan.ROW_FIELDS`, ``flag_reason``,
    in the CRS of the blocks given), every block (by ``block_no``: the old blocks keep
    their number and geometry, blocks cut apart give their number to their first piece,
    the other pieces come last) and the ``redraw`` report."""

    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    report: dict[str, Any]


@dataclass
class _Buildings:
    """The new buildings: households, population, a point on each, its block, and the
    households of each that are an estimate (0 where the count is given)."""

    hh: np.ndarray
    pop: np.ndarray
    points: np.ndarray
    owner: np.ndarray
    est: np.ndarray
    footprints: Footprints | None = None


def _recount(blocks: gpd.GeoDataFrame, territory: Territory, params: PartitionParams
             ) -> tuple[gpd.GeoDataFrame, _Buildings, dict[str, Any]]:
    """The plan's blocks with the new buildings' households, blocks now over the maximum
    cut between their buildings as the engine cuts them (pieces keep the block's grid)."""
    layers = territory.to_metric()
    villages = layers["admin_areas"]
    known = set(villages.loc[villages["level"] == "village", "code"].astype(str))
    missing = sorted(set(blocks["village_code"].astype(str)) - known)
    if missing:
        raise GridmapError(msg(
            f"新数据缺少方案中的村（社区）{'、'.join(missing[:10])}",
            f"the new data has no village/community {', '.join(missing[:10])} of the plan: a "
            "redraw needs the same villages; partition the new data from scratch instead"))
    buildings = layers["buildings"]
    hh, pop, estimated, counts = building_households(buildings, params, layers.get("landuse"))
    points = shapely.point_on_surface(buildings.geometry.to_numpy())
    owner = assign_to_blocks(buildings, blocks.to_crs(territory.metric_crs))
    found = _Buildings(hh, pop, points, owner, np.where(estimated, hh, 0),
                       Footprints.of(buildings.geometry.to_numpy()))
    out, n_cut = _cut(blocks, found, territory.metric_crs, params)
    return out, found, {"buildings": counts.buildings, "blocks_cut": n_cut}


def _cut(blocks: gpd.GeoDataFrame, found: _Buildings, metric: Any, params: PartitionParams,
         threshold: float | None = None, piece: float | None = None,
         only: np.ndarray | None = None) -> tuple[gpd.GeoDataFrame, int]:
    """Blocks over ``threshold`` households with several buildings (only among ``only``, a
    mask) cut between their buildings (:func:`partitioning.oversize.split_oversized`). Old
    blocks keep their position and number, the first piece of a cut block takes its place,
    the other pieces come last with new numbers; pieces keep the block's grid. Updates
    ``found.owner``; returns the blocks (households and population counted) and the number
    of blocks cut."""
    blocks_m = blocks.to_crs(metric).reset_index(drop=True)
    blocks_m = blocks_m.set_geometry(shapely.set_precision(blocks_m.geometry.to_numpy(),
                                                           PRECISION_M))
    marks = blocks_m[["geometry"]].assign(village_code=np.where(
        np.ones(len(blocks_m), dtype=bool) if only is None else only, "x", ""))
    cut_blocks, owner, moved = split_oversized(
        marks, found.points, found.owner, found.hh, params, threshold=threshold, piece=piece,
        villages={"x"}, footprints=found.footprints)
    n_old = len(blocks)
    cut = np.flatnonzero(moved < 0)
    out = blocks.reset_index(drop=True).copy()
    if cut.size:
        pieces = np.setdiff1d(np.arange(len(cut_blocks)), moved[moved >= 0])
        piece_geoms = cut_blocks.geometry.to_numpy()[pieces]
        # Each piece's parent: the cut block holding a point of it.
        tree = shapely.STRtree(blocks_m.geometry.to_numpy()[cut])
        inside = shapely.point_on_surface(piece_geoms)
        pi, ci = tree.query(inside, predicate="within")
        parent = np.full(len(pieces), -1)
        parent[pi] = cut[ci]
        lost = parent < 0
        if lost.any():
            parent[lost] = cut[tree.query_nearest(inside[lost], all_matches=False)[1]]
        position = np.full(len(cut_blocks), -1)
        position[moved[moved >= 0]] = np.flatnonzero(moved >= 0)
        first = pd.Series(np.arange(len(pieces))).groupby(parent).first()
        position[pieces[first.to_numpy()]] = first.index.to_numpy()
        rest = np.setdiff1d(pieces, pieces[first.to_numpy()])
        position[rest] = n_old + np.arange(len(rest))
        frame = out.iloc[np.concatenate([np.arange(n_old), parent[np.isin(
            pieces, rest)]])].reset_index(drop=True)
        geoms = frame.geometry.to_numpy().copy()
        geoms[position[pieces]] = gpd.GeoSeries(piece_geoms, crs=metric).to_crs(
            blocks.crs).to_numpy()
        out = gpd.GeoDataFrame(frame.drop(columns="geometry"), geometry=geoms, crs=blocks.crs)
        nos = out["block_no"].to_numpy().copy()
        nos[n_old:] = int(blocks["block_no"].max()) + 1 + np.arange(len(rest))
        out["block_no"] = nos
        owner = position[owner]
    found.owner = owner
    n = len(out)
    out["households"] = np.bincount(owner, weights=found.hh, minlength=n).astype(np.int64)
    out["population"] = np.bincount(owner, weights=found.pop, minlength=n).astype(np.int64)
    out["households_estimated"] = np.bincount(owner, weights=found.est,
                                              minlength=n).astype(np.int64)
    return out, int(cut.size)


def _flags_after(row: pd.Series, h: int, band: tuple[int, int]) -> tuple[list[str], str]:
    """Flags of a kept grid whose households changed: the engine's data reasons stay, the
    band flags are redone."""
    forced = [f for f in row["flags"] if f in flags.FORCED]
    if forced:
        return forced, str(row.get("flag_reason") or "")
    parts = 2 if "noncontiguous" in row["flags"] else 1
    return band_flags(str(row["kind"]), h, parts, band)


def redraw_plan(blocks: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, territory: Territory,
                params: PartitionParams | None = None, used_codes: frozenset[str] = frozenset(),
                progress: Progress | None = None) -> RedrawResult:
    """The plan of ``blocks`` and ``grids`` redrawn for the buildings of ``territory``.

    A grid is kept (same blocks, hence the same outline and code; its counts updated) when
    its blocks are whole and it is still in the band, or its household count did not
    change, or it is locked or dedicated. Each other grid is repartitioned by the engine's
    region stage together with as few neighbouring grids of its village as it takes (one
    at a time, the longest shared boundary first) for every grid to land in the band, up
    to the whole village. Pieces holding most of an old grid keep its code; the others get
    new serials after every code in ``used_codes`` and the plan.
    """
    params = params or PartitionParams()
    started = time.perf_counter()
    say = progress or (lambda _s, _d: None)
    band = (params.min_households, params.max_households)
    say("households 户数", 0.1)
    blocks = blocks.sort_values("block_no").reset_index(drop=True)
    if "households_estimated" not in blocks:   # a plan made before estimates were counted
        blocks = blocks.assign(households_estimated=0)
    if "households_estimated" not in grids:
        grids = grids.assign(households_estimated=0)
    old_hh = blocks["households"].to_numpy().copy()
    # Everything is done in the metric CRS on the engine's 1 mm grid (outlines of new
    # grids are unions of blocks there); what is kept keeps its given geometry.
    metric_crs = territory.metric_crs
    given = blocks
    blocks = blocks[[*BLOCK_COLUMNS, "geometry"]].to_crs(metric_crs)
    blocks = blocks.set_geometry(shapely.set_precision(blocks.geometry.to_numpy(),
                                                       PRECISION_M))
    new_blocks, found, info = _recount(blocks, territory, params)
    rows = grids.to_crs(metric_crs)
    if "locked" not in rows:
        rows["locked"] = False
    rows["flags"] = [list(f) if not isinstance(f, str) else [x for x in f.split(",") if x]
                     for f in rows["flags"]]
    layers = territory.to_metric()
    admin = layers["admin_areas"]
    villages = admin[admin["level"] == "village"][["code", "name", "geometry"]] \
        .reset_index(drop=True).to_crs(blocks.crs)
    barriers = barrier_lines(layers, params)
    lo, hi = band
    row_of = rows.set_index(rows["code"].astype(str))
    old_counts = pd.Series(old_hh).groupby(blocks["grid_code"].to_numpy()).sum() \
        .reindex(row_of.index).fillna(-1).astype(int)
    movable = {str(c) for c, row in row_of.iterrows()
               if row["kind"] == "comprehensive" and not bool(row["locked"])}

    def unborne(label: np.ndarray, households: np.ndarray) -> set[str]:
        """Grids whose forced flags the new counts do not bear out (partitioning/flags.py):
        they are redone like any grid out of the band."""
        sums = pd.Series(households).groupby(label).sum()
        now = rows.assign(households=rows["code"].astype(str).map(sums).fillna(0).to_numpy())
        bad = flags.check_flags(now, pd.DataFrame({"grid_code": label,
                                                   "households": households}), params)
        return {v.code for v in bad}

    def broken_grids(label: np.ndarray, households: np.ndarray) -> list[str]:
        """Movable grids out of the band whose households changed, or whose forced flag
        the data no longer bears out (a grid of one block over the maximum is a grid of its
        own whatever its count; a whole small or rural village stays whole while its
        flag holds)."""
        sums = pd.Series(households).groupby(label).sum()
        sizes = pd.Series(label).value_counts()
        bad = unborne(label, households)
        forced = {str(c) for c, f in zip(row_of.index, row_of["flags"], strict=True)
                  if flags.is_forced(f)} - bad
        return [c for c in sorted(movable & set(sums.index))
                if c in bad or (not in_band(sums[c], band) and sums[c] != old_counts.get(c, -1)
                                and not (sizes[c] == 1 and sums[c] > hi)
                                and c not in forced)]

    def neighbourhood(frame: gpd.GeoDataFrame) -> Neighbourhood:
        return Neighbourhood(frame, rows[[*ROW_FIELDS, "geometry"]], barriers,
                                  villages, territory.metric_crs, band,
                                  params.dedicated_serial_start, used_codes)

    say("regions 网格", 0.3)
    work = Plan(neighbourhood(new_blocks))
    # The blocks of the grids that break, and of their neighbours, are cut finer between
    # buildings (as the engine does where a village misses the band), so that a few
    # buildings' worth of households can move; the outlines of the grids stay the same.
    broken = broken_grids(work.label, work.blocks["households"].to_numpy())
    info["grids_broken"] = len(broken)
    if broken:
        a, b, _length, _strength = work.adjacency()
        hit = np.isin(work.label, broken)
        near = set(broken) | {str(c) for c in work.label[b[hit[a]]]} | \
            {str(c) for c in work.label[a[hit[b]]]}
        only = np.isin(work.label, sorted(near & movable))
        new_blocks, n_fine = _cut(new_blocks, found, territory.metric_crs, params,
                                  threshold=lo / 4, piece=lo / 6, only=only)
        info["blocks_cut_finer"] = n_fine
        if n_fine:
            work = Plan(neighbourhood(new_blocks))
    info["blocks_added"] = int(len(new_blocks) - len(blocks))
    old_label = work.label.copy()

    names = dict(zip(villages["code"], villages["name"], strict=True))
    used = set(used_codes) | {str(c) for c in rows["code"]}
    metric = work.metric()
    a, b, length, _strength = work.adjacency()
    made: dict[str, tuple[Grid, dict[str, Any]]] = {}
    regions: list[dict[str, Any]] = []
    broken = broken_grids(work.label, work.blocks["households"].to_numpy())
    done: set[str] = set()
    for i, start in enumerate(broken):
        say("regions 网格", 0.3 + 0.5 * i / max(len(broken), 1))
        if start in done or start not in set(work.label.tolist()):
            continue
        village = str(row_of.loc[start, "village_code"])
        region = {start}

        def attempt(codes: set[str], village: str = village) -> tuple[np.ndarray, Any, bool]:
            nodes_ = np.flatnonzero(np.isin(work.label, list(codes)))
            pieces_ = solve_region(work.graph(nodes_), metric[nodes_], village, params)
            hh_ = work.blocks["households"].to_numpy()[nodes_]
            return nodes_, pieces_, region_ok(pieces_, hh_, band)

        nodes, pieces, ok = attempt(region)
        hh_now_all = work.blocks["households"].to_numpy()
        while not ok:
            inside = np.isin(work.label, list(region))
            cross = inside[a] != inside[b]
            outer = np.where(inside[a[cross]], b[cross], a[cross])
            # (The adjacency is within villages: these are grids of the same village.)
            shared = pd.Series(length[cross]).groupby(work.label[outer]).sum()
            shared = shared[[c in movable and c not in region for c in shared.index]]
            if shared.empty:
                break
            order = [str(c) for c in shared.sort_values(ascending=False, kind="stable").index]
            # The fewest grids redone: the first neighbour with which the region can be
            # redone within the band (those whose households make a total some count of
            # grids can hold first, then by shared boundary); else the longest, and on.
            total = float(hh_now_all[np.isin(work.label, list(region))].sum())
            order.sort(key=lambda c: not flags.feasible(
                total + float(hh_now_all[work.label == c].sum()), band))
            for cand in order[:REGION_TRIES]:
                tried = attempt(region | {cand})
                if tried[2]:
                    region.add(cand)
                    nodes, pieces, ok = tried
                    break
            else:
                region.add(order[0])
                nodes, pieces, ok = attempt(region)
        before = set(region)
        for code, (grid, fields) in assign(work, nodes, pieces, village, used, names,
                                           params.dedicated_serial_start).items():
            # (A new grid redone by a later region keeps the fields it was made with.)
            made[code] = (grid, fields or made.get(code, (grid, {}))[1])
        done |= before
        movable |= {c for c in made}
        regions.append({"village": village, "grids_before": sorted(before),
                        "grids_after": sorted({str(c) for c in work.label[nodes]})})
    say("grids 网格", 0.85)
    final = set(work.label.tolist())
    reshaped = {c: made[c][1] if c in made else {} for c in final
                if not np.array_equal(work.members(c), work.members(c, old_label))}
    removed = sorted(set(row_of.index) - final)
    updated: dict[str, dict[str, Any]] = {}
    reasons: dict[str, str] = {}
    hh_now = pd.Series(work.blocks["households"].to_numpy()).groupby(work.label).sum()
    pop_now = pd.Series(work.blocks["population"].to_numpy()).groupby(work.label).sum()
    est_now = pd.Series(work.blocks["households_estimated"].to_numpy()).groupby(
        work.label).sum()
    for code in sorted(final - set(reshaped)):
        row = row_of.loc[code]
        h, p, e = int(hh_now[code]), int(pop_now[code]), int(est_now[code])
        if h != int(row["households"]) or p != int(row["population"]) or \
                e != int(row["households_estimated"] or 0):
            kept_flags, reason = _flags_after(row, h, band)
            updated[code] = {"households": h, "population": p, "flags": kept_flags,
                             "households_estimated": e}
            reasons[code] = reason
    result = finish(work, "redraw", reshaped, updated, removed, "")
    engine_flags(result, {c: g for c, (g, _) in made.items()})
    out = result.grids.set_index("code", drop=False)
    for code, reason in reasons.items():
        out.at[code, "flag_reason"] = reason
    # The whole plan: rows not touched as they were.
    keep = rows[~rows["code"].astype(str).isin(set(out.index) | set(removed))].copy()
    keep["flag_reason"] = keep.get("flag_reason", pd.Series("", index=keep.index)).fillna("")
    cols = [*ROW_FIELDS, "flag_reason"]
    plan = gpd.GeoDataFrame(pd.concat([keep[[*cols, "geometry"]],
                                       out.reset_index(drop=True)[[*cols, "geometry"]]],
                                      ignore_index=True), geometry="geometry", crs=blocks.crs)
    plan = plan.to_crs(given.crs)
    geoms = plan.geometry.to_numpy().copy()
    original = dict(zip(grids["code"].astype(str), grids.geometry.to_numpy(), strict=True))
    for i, code in enumerate(plan["code"]):
        if code not in reshaped:
            geoms[i] = original[code]
    plan = plan.set_geometry(geoms).sort_values("code", kind="stable").reset_index(drop=True)
    # Strong barrier inside: recomputed for the grids redone, as it was for those kept.
    inside_before = dict(zip(rows["code"].astype(str), rows["barrier_inside_m"], strict=True)) \
        if "barrier_inside_m" in rows else {}
    redone = dict(zip(out.index, out["barrier_inside_m"], strict=True))
    plan["barrier_inside_m"] = [redone.get(c) if c in reshaped else inside_before.get(c)
                                for c in plan["code"]]
    # Every forced flag checked against the new data; out of the band without one: say so.
    checked = flags.reconcile(plan.to_crs(metric_crs), pd.DataFrame({
        "grid_code": work.label, "households": work.blocks["households"].to_numpy()}), params)
    plan["flags"] = checked["flags"].to_numpy()
    plan["flag_reason"] = checked["flag_reason"].to_numpy()
    final_blocks = work.blocks.assign(grid_code=work.label).to_crs(given.crs)
    block_geoms = final_blocks.geometry.to_numpy().copy()
    uncut = np.flatnonzero(np.arange(len(given)) < len(final_blocks))
    uncut = uncut[shapely.equals_exact(work.blocks.geometry.to_numpy()[uncut],
                                       blocks.geometry.to_numpy()[uncut], 0.0)]
    block_geoms[uncut] = given.geometry.to_numpy()[uncut]
    final_blocks = final_blocks.set_geometry(block_geoms)
    report = _report(rows, plan, reshaped, removed, old_label, work.label, found.hh, found.owner,
                     regions, info, band)
    report["runtime_s"] = round(time.perf_counter() - started, 3)
    say("done 完成", 1.0)
    return RedrawResult(plan, final_blocks, report)


def _report(old: gpd.GeoDataFrame, plan: gpd.GeoDataFrame, reshaped: dict[str, Any],
            removed: list[str], old_label: np.ndarray, label: np.ndarray, hh: np.ndarray,
            owner: np.ndarray, regions: list[dict[str, Any]], info: dict[str, Any],
            band: tuple[int, int]) -> dict[str, Any]:
    """What the redraw kept, changed, made and retired, and the households that change
    grid (by building: the grid of its block before and after)."""
    old_codes = set(old["code"].astype(str))
    new_codes = sorted(set(plan["code"]) - old_codes)
    changed = sorted(c for c in reshaped if c in old_codes)
    kept = sorted(old_codes - set(changed) - set(removed))
    moves = pd.DataFrame({"from": old_label[owner], "to": label[owner], "hh": hh})
    moves = moves[(moves["from"] != moves["to"]) & (moves["hh"] > 0)]
    pairs = moves.groupby(["from", "to"])["hh"].sum().sort_values(ascending=False)
    regular, within = flags.regular_in_band(plan["kind"], plan["households"], plan["flags"],
                                             band)
    return {"redraw": {
        "grids_before": len(old_codes), "grids_after": len(plan),
        "grids_kept": len(kept), "kept_share": round(len(kept) / max(len(old_codes), 1), 4),
        "grids_changed": changed, "grids_new": new_codes, "grids_retired": removed,
        "households_total": int(hh.sum()),
        "households_moved": int(moves["hh"].sum()),
        "moves": [{"from": f, "to": t, "households": int(v)} for (f, t), v in pairs.items()],
        "regions": regions,
        "in_range_share": round(float(within[regular].mean()) if regular.any() else 1.0, 4),
        "out_of_range": sorted(str(c) for c in plan["code"].to_numpy()[regular & ~within]),
        **info,
    }}
