"""Rebalance: re-run the engine's region stage on unlocked grids of a village, keeping the rest."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.band import in_band
from partitioning import flags
from partitioning.params import PartitionParams
from partitioning.plan import EditResult, Neighbourhood, Plan, finish, next_codes, refuse
from partitioning.regions import Graph
from partitioning.villages import Grid, VillageTask, partition_village

#: Flags a region's result may carry that say "a larger region could do better".
#: (A region is part of a village: "the village is under the minimum" is a miss there too;
#: a region that is the whole village ends with it anyway, and then the flag holds.)
MISSES = {"infeasible_band", "infeasible_split", "part_below_min", "below_min", "above_max",
          "block_over_max", "village_below_min"}


def village_index(village: str) -> int:
    """A stable number per village: seeds its random numbers (the same on every run)."""
    return zlib.crc32(village.encode()) & 0x7FFFFFFF


def solve_region(graph: Graph, geoms: np.ndarray, village: str, params: PartitionParams
                 ) -> list[tuple[Grid, np.ndarray]]:
    """The engine's village stage on a graph of blocks (all of one village, metric
    ``geoms``): its grids with their blocks (positions in ``graph``). Blocks over the
    maximum on their own become grids of their own (``single_building``)."""
    task = VillageTask(index=village_index(village), code=village, kind="urban", graph=graph,
                       buildings=np.ones(graph.n, dtype=np.int64), geoms=geoms, final=True)
    res = partition_village(task, params)
    out = []
    for i, grid in enumerate(res.grids):
        members = np.flatnonzero(res.label == i)
        if members.size:
            out.append((grid, members))
    return out


def region_ok(pieces: Sequence[tuple[Grid, np.ndarray]], households: np.ndarray,
              band: tuple[int, int]) -> bool:
    """Whether every grid of a region's result is in the band (or out of it only for a
    reason in its data that a bigger region would not change: one building over the max)."""
    for grid, members in pieces:
        h = float(households[members].sum())
        if set(grid.flags) & MISSES:
            return False
        if not flags.is_forced(grid.flags) and not in_band(h, band):
            return False
    return True


def match_codes(pieces: Sequence[np.ndarray], old: np.ndarray, households: np.ndarray
                ) -> list[str | None]:
    """The old code each new piece keeps: pairs by the most shared households (then blocks),
    greedily, one piece per code; a piece keeps a code when it holds more than half of that
    grid's households (or blocks, for empty grids). ``old``: each block's code before."""
    weight = households.astype(float) + 1e-6
    totals: dict[str, float] = {}
    for code, w in zip(old.tolist(), weight.tolist(), strict=True):
        totals[str(code)] = totals.get(str(code), 0.0) + w
    pairs: list[tuple[float, int, str]] = []
    for i, members in enumerate(pieces):
        shared: dict[str, float] = {}
        for code, w in zip(old[members].tolist(), weight[members].tolist(), strict=True):
            shared[str(code)] = shared.get(str(code), 0.0) + w
        pairs.extend((w, i, code) for code, w in shared.items())
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    out: list[str | None] = [None] * len(pieces)
    taken: set[str] = set()
    for w, i, code in pairs:
        if out[i] is None and code not in taken and 2 * w > totals[code]:
            out[i] = code
            taken.add(code)
    return out


def assign(work: Plan, nodes: np.ndarray, pieces: Sequence[tuple[Grid, np.ndarray]],
           village: str, used: set[str], names: dict[str, str], dedicated_start: int
           ) -> dict[str, tuple[Grid, dict[str, Any]]]:
    """Label ``nodes`` (positions in ``work``) with the pieces: matched pieces keep their
    code, the others get new serials after every code in ``used`` (which grows). Returns
    code → (the engine's grid, the fixed fields of a new grid)."""
    before = work.label[nodes].copy()
    hh = work.blocks["households"].to_numpy()[nodes]
    kept = match_codes([m for _, m in pieces], before, hh)
    fresh = next_codes(village, sum(c is None for c in kept), used, dedicated_start) \
        if any(c is None for c in kept) else []
    used.update(fresh)
    out: dict[str, tuple[Grid, dict[str, Any]]] = {}
    it = iter(fresh)
    for (grid, members), code in zip(pieces, kept, strict=True):
        fields: dict[str, Any] = {}
        if code is None:
            code = next(it)
            fields = {"name": f"{names.get(village, village)}第{int(code[-3:])}网格",
                      "village_code": village, "kind": "comprehensive", "locked": False,
                      "flag_reason": ""}
        work.label[nodes[members]] = code
        out[code] = (grid, fields)
    return out


def engine_flags(result: EditResult, grids: dict[str, Grid]) -> None:
    """Keep the engine's flags and reasons on grids it made out of the band for a reason in
    their data (one building over the maximum, an infeasible total, …)."""
    frame = result.grids
    for i, code in enumerate(frame["code"]):
        grid = grids.get(str(code))
        if grid is None or not flags.is_forced(grid.flags):
            continue
        extra = [f for f in frame["flags"].iloc[i] if f == "noncontiguous"]
        frame.at[frame.index[i], "flags"] = [*grid.flags, *extra]
        frame.at[frame.index[i], "flag_reason"] = grid.reason


def rebalance(hood: Neighbourhood, village: str | None = None,
              grids: Sequence[str] | None = None, seed: int = 0) -> EditResult:
    """Re-partition the unlocked comprehensive grids of a village (or the named grids) with
    the engine's region stage; locked and dedicated grids stay exactly as they are, and no
    grid crosses a village. Pieces that keep most of an old grid keep its code; the others
    get new serials (never a code used before)."""
    work = Plan(hood)
    if (village is None) == (grids is None):
        raise refuse("重新平衡需给出村（社区）编码或网格编码之一",
                          "a rebalance names either a village or grids")
    rows = work.rows
    if grids is not None:
        codes = list(dict.fromkeys(str(g) for g in grids))
        for code in codes:
            if work.row(code)["kind"] != "comprehensive":
                raise refuse(f"专属网格 {code} 不参与重新平衡",
                                  f"dedicated grid {code} is not rebalanced")
        work.unlocked(codes)
    else:
        mine = rows[(rows["village_code"] == village) & (rows["kind"] == "comprehensive")]
        present = set(work.label.tolist())
        codes = [str(c) for c, locked in zip(mine["code"], mine["locked"], strict=True)
                 if not locked and str(c) in present]
        if not codes:
            raise refuse(f"村（社区）{village} 没有未锁定的综合网格",
                              f"village {village} has no unlocked comprehensive grid")
    lo, hi = hood.band
    params = PartitionParams(min_households=lo, max_households=hi,
                             target_households=(lo + hi) // 2, seed=seed,
                             dedicated_serial_start=hood.dedicated_start)
    names = dict(zip(hood.villages["code"], hood.villages["name"], strict=True)) \
        if len(hood.villages) else {}
    used = set(hood.used_codes) | {str(c) for c in rows["code"]}
    metric = work.metric()
    made: dict[str, tuple[Grid, dict[str, Any]]] = {}
    by_village: dict[str, list[str]] = {}
    for code in codes:
        by_village.setdefault(str(work.row(code)["village_code"]), []).append(code)
    for vcode, members in sorted(by_village.items()):
        nodes = np.flatnonzero(np.isin(work.label, members))
        pieces = solve_region(work.graph(nodes), metric[nodes], vcode, params)
        made.update(assign(work, nodes, pieces, vcode, used, names, hood.dedicated_start))
    changed = [c for c in made if not np.array_equal(work.members(c), work.members(c, work.before))]
    removed = sorted(set(codes) - set(made))
    if not changed and not removed:
        raise refuse("重新平衡没有改变任何网格（已是引擎的划分）",
                          "the rebalance changes no grid: the engine's split is the current one")
    sizes = "、".join(f"{c}:{int(work.blocks['households'].to_numpy()[work.members(c)].sum())}"
                     for c in sorted(made))
    what = f"村（社区）{village}" if village else "、".join(codes)
    summary = (f"重新平衡 {what}：{len(codes)} 个网格重划为 {len(made)} 个（{sizes}）; "
               f"rebalanced {village or ', '.join(codes)}: {len(codes)} grids redrawn as "
               f"{len(made)} ({sizes})")
    result = finish(work, "rebalance", {c: made[c][1] for c in changed}, {}, removed,
                          summary)
    engine_flags(result, {c: g for c, (g, _) in made.items()})
    check_touched(result, hood, work.label, params)
    return result


def check_touched(result: EditResult, hood: Neighbourhood, label: np.ndarray,
                  params: PartitionParams) -> None:
    """The forced flags of the grids an edit touched checked against the data, with the
    rest of their villages as context (partitioning/flags.py)."""
    if result.grids.empty:
        return
    rest = hood.grids[~hood.grids["code"].astype(str).isin(
        set(result.touched) | set(result.removed))]
    cols = ["code", "village_code", "kind", "households", "flags", "geometry"]
    both = gpd.GeoDataFrame(pd.concat([rest[cols], result.grids[cols]], ignore_index=True),
                            geometry="geometry", crs=hood.grids.crs).to_crs(hood.metric_crs)
    both["flag_reason"] = ""
    checked = flags.reconcile(both, pd.DataFrame({
        "grid_code": label, "households": hood.blocks["households"].to_numpy()}), params)
    mine = checked.iloc[len(rest):].reset_index(drop=True)
    changed = [list(a) != list(b) for a, b in zip(mine["flags"], result.grids["flags"],
                                                        strict=True)]
    if any(changed):
        frame = result.grids
        for i in np.flatnonzero(changed):
            frame.at[frame.index[i], "flags"] = list(mine["flags"].iloc[i])
            frame.at[frame.index[i], "flag_reason"] = str(mine["flag_reason"].iloc[i])
