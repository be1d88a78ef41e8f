"""Grid flags in one place: the forced set, the band class, and the check that the data bears
every forced flag out (engine, stable redraw, rebalance and edits all end with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.band import classify, in_band
from partitioning.params import PartitionParams

#: A grid with more strong barrier than this inside it (m) crosses it.
CROSSING_M = 5.0
#: Flags that mark a grid as out of the band (or kept whole) because of its data, not the
#: engine: such a grid is not counted in the in-range share and is never regrown. Each is
#: checked against the data by :func:`check_flags` (docs/partitioning.md, "Flags").
FORCED = frozenset({"single_building", "block_over_max", "village_below_min", "rural_village",
                    "radius_split", "infeasible_band", "infeasible_split", "part_below_min"})
#: Flags of a regular grid out of the band (counted against the in-range share).
BAND_FLAGS = frozenset({"below_min", "above_max"})
#: Shared boundaries shorter than this (m) do not make two grids neighbours here.
TOUCH_M = 1.0


def is_forced(flags: Any) -> bool:
    return bool(set(flags or ()) & FORCED)


def band_flag(kind: str, households: float, band: tuple[int, int]) -> str | None:
    """``below_min`` / ``above_max`` for a comprehensive grid out of the band (the band
    rule, :func:`gis.band.classify`), else None."""
    return {"below": "below_min", "above": "above_max"}.get(classify(kind, households, band))


def misses_band(kind: str, households: float, grid_flags: Any, band: tuple[int, int]
                ) -> bool:
    """Whether a grid is out of the band for no reason in its data: comprehensive, no
    forced flag, and not within the band."""
    return band_flag(kind, households, band) is not None and not is_forced(grid_flags)


def regular_in_band(kinds: Any, households: Any, grid_flags: Any, band: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per grid: whether it is regular (comprehensive, no forced flag: the grids the
    in-range share counts) and whether its households lie within the band. The plan
    report and the stable redraw's report both count from these."""
    comp = np.asarray(kinds, dtype=object) == "comprehensive"
    forced = np.array([is_forced(f) for f in grid_flags], dtype=bool)
    within = np.asarray(in_band(np.asarray(households, dtype=float), band), dtype=bool)
    return comp & ~forced, within


def feasible(total: float, band: tuple[int, int]) -> bool:
    """Whether ``total`` households can be some number of grids within the band (k·lo ≤
    total ≤ k·hi for some k ≥ 1); 0 households need no grid."""
    lo, hi = band
    if total <= 0:
        return True
    k = int(total // hi)
    return any(c >= 1 and c * lo <= total <= c * hi for c in (k, k + 1))


@dataclass(frozen=True)
class Violation:
    """A forced flag its grid's data does not bear out."""

    code: str
    flag: str
    why: str


def check_flags(grids: gpd.GeoDataFrame, blocks: pd.DataFrame, params: PartitionParams
                ) -> list[Violation]:
    """Every forced flag of ``grids`` (``code``, ``village_code``, ``kind``, ``households``,
    ``flags``, geometry in a metric CRS) that the data does not bear out. ``blocks`` holds
    ``grid_code`` and ``households`` (and ``buildings``, the buildings with households per
    block, when known) of every block of the grids' villages.

    - ``village_below_min``: the village's comprehensive households are under the minimum
      (or the grid is a piece of a rural village cut to the service radius, under it);
    - ``rural_village``: the grid holds all of its village's comprehensive households and
      they are at most the maximum; ``radius_split``: the village's are at most the maximum;
    - ``single_building`` / ``block_over_max``: the grid's households are one block's, over
      the maximum (one building in it, or several, when the block's buildings are known);
    - ``infeasible_band``: no count of grids fits the total of the connected run of
      grids so flagged (k·min ≤ total ≤ k·max holds for no k);
    - ``part_below_min``: under the minimum, and every adjacent comprehensive grid of its
      village would go over the maximum by taking it;
    - ``infeasible_split``: out of the band (the proof is an exhaustive search).
    """
    band = params.band
    lo, hi = band
    if not len(grids):
        return []
    codes = grids["code"].astype(str).to_numpy()
    hh = grids["households"].to_numpy(dtype=float)
    kinds = grids["kind"].astype(str).to_numpy()
    villages = grids["village_code"].astype(str).to_numpy()
    flags = [list(f) if not isinstance(f, str) else [x for x in f.split(",") if x]
             for f in grids["flags"]]
    comp = kinds == "comprehensive"
    village_total = pd.Series(hh[comp]).groupby(villages[comp]).sum().to_dict()
    block_grid = blocks["grid_code"].astype(str).to_numpy()
    block_hh = blocks["households"].to_numpy(dtype=float)
    block_bld = blocks["buildings"].to_numpy() if "buildings" in blocks else None
    by_grid = pd.Series(np.arange(len(blocks))).groupby(block_grid).indices
    geoms = grids.geometry.to_numpy()
    out: list[Violation] = []

    def fail(i: int, flag: str, why: str) -> None:
        out.append(Violation(str(codes[i]), flag, why))

    infeasible_seen: set[int] = set()
    for i in (int(x) for x in np.flatnonzero([is_forced(f) for f in flags])):
        h, v, fl = hh[i], villages[i], flags[i]
        vt = village_total.get(v, 0.0)
        for flag in sorted(set(fl) & FORCED):
            if flag == "village_below_min":
                if not (h < lo and (vt < lo or "radius_split" in fl)):
                    fail(i, flag, f"{h:.0f} households in a village of {vt:.0f}")
            elif flag == "rural_village":
                if not (abs(h - vt) < 0.5 and vt <= hi):
                    fail(i, flag, f"{h:.0f} of the village's {vt:.0f} households")
            elif flag == "radius_split":
                if vt > hi:
                    fail(i, flag, f"the village has {vt:.0f} households, over {hi}")
            elif flag in ("single_building", "block_over_max"):
                idx = np.asarray(by_grid.get(codes[i], np.array([], dtype=int)))
                heavy = idx[block_hh[idx] > hi] if idx.size else idx
                ok = h > hi and heavy.size == 1 and abs(block_hh[heavy[0]] - h) < 0.5
                if ok and block_bld is not None:
                    n = int(block_bld[heavy[0]])
                    ok = n == 1 if flag == "single_building" else n > 1
                if not ok:
                    fail(i, flag, f"{h:.0f} households in {idx.size} blocks")
            elif flag == "infeasible_band":
                if i in infeasible_seen:
                    continue
                run = _connected_run(i, geoms, villages,
                                     [("infeasible_band" in f) for f in flags])
                infeasible_seen |= set(run)
                total = float(hh[run].sum())
                if feasible(total, band):
                    for j in run:
                        fail(int(j), flag, f"{total:.0f} households fit "
                             f"{max(1, round(total / params.target_households))} grids")
            elif flag == "part_below_min":
                nbrs = _touching(i, geoms, villages, comp)
                if not (h < lo and all(hh[j] + h > hi for j in nbrs)):
                    fail(i, flag, f"{h:.0f} households; a neighbour could take them")
            elif flag == "infeasible_split" and lo <= h <= hi:
                fail(i, flag, f"{h:.0f} households, in the band")
    return out


def _touching(i: int, geoms: np.ndarray, villages: np.ndarray, comp: np.ndarray
              ) -> list[int]:
    """Comprehensive grids of grid ``i``'s village sharing a boundary with it."""
    tree = shapely.STRtree(geoms)
    hits = tree.query(geoms[i], predicate="intersects")
    out = []
    for j in hits.tolist():
        if j == i or villages[j] != villages[i] or not comp[j]:
            continue
        shared = shapely.length(shapely.intersection(shapely.boundary(geoms[i]),
                                                     shapely.boundary(geoms[j])))
        if shared >= TOUCH_M:
            out.append(j)
    return out


def _connected_run(i: int, geoms: np.ndarray, villages: np.ndarray, member: list[bool]
                   ) -> np.ndarray:
    """Grid ``i`` and the grids of its village with the same flag connected to it."""
    mask = np.array(member, dtype=bool) & (villages == villages[i])
    seen, stack = {i}, [i]
    while stack:
        x = stack.pop()
        for j in _touching(x, geoms, villages, mask):
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return np.array(sorted(seen), dtype=np.int64)


def reconcile(grids: gpd.GeoDataFrame, blocks: pd.DataFrame, params: PartitionParams
              ) -> gpd.GeoDataFrame:
    """``grids`` with every forced flag the data does not bear out taken off (its reason
    noted), and the band flag (``below_min``/``above_max``) of a comprehensive grid out of
    the band put on where no forced flag remains to explain it."""
    bad = check_flags(grids, blocks, params)
    if not bad and all(
            is_forced(f) or bool(set(f) & BAND_FLAGS) == (band_flag(k, h, params.band)
                                                          is not None)
            for f, k, h in zip(grids["flags"], grids["kind"], grids["households"],
                               strict=True)):
        return grids
    drop: dict[str, dict[str, str]] = {}
    for v in bad:
        drop.setdefault(v.code, {})[v.flag] = v.why
    grids = grids.copy()
    new_flags, new_reasons = [], []
    reasons = grids["flag_reason"].fillna("").astype(str).to_numpy() \
        if "flag_reason" in grids else np.full(len(grids), "", dtype=object)
    for code, flags, kind, h, reason in zip(grids["code"].astype(str), grids["flags"],
                                            grids["kind"], grids["households"], reasons,
                                            strict=True):
        fl = [f for f in (flags or []) if f not in drop.get(code, {})]
        fl = [f for f in fl if f not in BAND_FLAGS]
        why = str(reason)
        if code in drop:
            why = "; ".join(f"{f} not borne out by the data ({w})"
                            for f, w in sorted(drop[code].items()))
        flag = band_flag(str(kind), float(h), params.band)
        if flag and not is_forced(fl):
            fl.insert(0, flag)
            lo, hi = params.band
            if code in drop or not why:
                why = f"{int(h)} households, outside {lo}–{hi}" + (f"; {why}" if why else "")
        elif not flag and not is_forced(fl) and (code in drop or set(flags or ()) & BAND_FLAGS):
            why = ""
        # A crossing of a river, ridge or railway keeps its explanation whatever the band.
        crossing = [p for p in str(reason).split("; ") if p.startswith("crosses ")]
        if "crosses_barrier" in fl and crossing and crossing[0] not in why:
            why = "; ".join([why, *crossing]) if why else "; ".join(crossing)
        new_flags.append(fl)
        new_reasons.append(why)
    grids["flags"] = new_flags
    if "flag_reason" in grids or any(new_reasons):
        grids["flag_reason"] = new_reasons
    return grids
