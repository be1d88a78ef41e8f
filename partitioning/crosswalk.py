"""The cross-walk of a plan's basic grids with a department's units, and an aligned proposal."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

#: A piece of a grid inside a unit smaller than this share of the grid's area (and of its
#: households) is a sliver: boundary noise between two drawings, not a real split.
SLIVER_SHARE = 0.05
#: A piece below this share of its grid's area and households is rounding where two
#: drawings of one line meet (reprojection, coordinate precision), not an overlap.
NOISE_SHARE = 1e-6
#: Two grids are neighbours when their boundaries share at least this much (metres).
MIN_SHARED_M = 0.5
#: The longest chain of units passing a grid on so that an empty unit gets one (see propose).
MAX_CHAIN = 8
Strategy = Literal["households", "area", "centroid"]
STRATEGIES: tuple[Strategy, ...] = ("households", "area", "centroid")


@dataclass
class Crosswalk:
    """Which grids each unit holds, and how much of each.

    ``pieces``: one row per (grid, unit) that overlap: area (m²), the share of the grid's
    area, households (the grid's blocks' households by the share of each block's area
    inside the unit), the share of the grid's households, and whether it is a sliver.
    ``grids``: per grid, its households and area, the unit holding most of it, how many
    units hold a real (non-sliver) part of it, split or not, and what no unit covers.
    ``units``: per unit, its grids whole and partial, households, whether it is made of
    whole grids. ``summary``: the figures of the whole.
    """

    pieces: pd.DataFrame
    grids: pd.DataFrame
    units: pd.DataFrame
    summary: dict[str, Any]
    tolerance: float


@dataclass
class Proposal:
    """Each grid to one unit: the units redrawn as unions of whole grids."""

    assignment: dict[str, str]
    units: pd.DataFrame
    summary: dict[str, Any]
    geometry: gpd.GeoDataFrame = field(repr=False)


def _metric(frame: gpd.GeoDataFrame, epsg: int) -> np.ndarray:
    return np.asarray(frame.to_crs(epsg).geometry.to_numpy(), dtype=object)


def crosswalk(grids: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame, units: gpd.GeoDataFrame,
              metric_epsg: int, *, tolerance: float = SLIVER_SHARE) -> Crosswalk:
    """Cross-walk ``grids`` (code, geometry) with ``units`` (code, name, geometry); the
    households come from ``blocks`` (households, grid_code, geometry). Areas are measured
    in ``metric_epsg``. ``tolerance``: the sliver share (and how far from whole a grid may
    be and still count as whole)."""
    if not 0 <= tolerance < 0.5:
        raise ValueError("tolerance must lie in [0, 0.5)")
    g_geom = shapely.make_valid(_metric(grids, metric_epsg))
    u_geom = shapely.make_valid(_metric(units, metric_epsg))
    b_geom = shapely.make_valid(_metric(blocks, metric_epsg))
    g_codes = grids["code"].astype(str).to_numpy()
    u_codes = units["code"].astype(str).to_numpy()
    g_area = shapely.area(g_geom)
    tree = shapely.STRtree(u_geom)

    # Grid x unit areas.
    gi, ui = tree.query(g_geom, predicate="intersects")
    inter_area = shapely.area(shapely.intersection(g_geom[gi], u_geom[ui])) if gi.size \
        else np.zeros(0)
    # Block x unit households, by area share of the block.
    grid_index = {c: i for i, c in enumerate(g_codes)}
    b_grid = np.array([grid_index.get(str(c), -1) if c is not None else -1
                       for c in blocks["grid_code"]], dtype=np.int64)
    b_hh = pd.to_numeric(blocks["households"], errors="coerce").fillna(0).to_numpy(float)
    b_area = shapely.area(b_geom)
    bi, bu = tree.query(b_geom, predicate="intersects")
    keep = b_grid[bi] >= 0
    bi, bu = bi[keep], bu[keep]
    b_inter = shapely.area(shapely.intersection(b_geom[bi], u_geom[bu])) if bi.size \
        else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_share = np.where(b_area[bi] > 0, b_inter / b_area[bi], 0.0)
    grid_hh = np.bincount(b_grid[b_grid >= 0], weights=b_hh[b_grid >= 0],
                          minlength=len(g_codes))

    pieces = pd.DataFrame({"g": gi, "u": ui, "area_m2": inter_area})
    hh = pd.DataFrame({"g": b_grid[bi], "u": bu, "households": b_hh[bi] * b_share})
    hh = hh.groupby(["g", "u"], as_index=False)["households"].sum()
    pieces = pieces.merge(hh, on=["g", "u"], how="outer").fillna(0.0)
    pieces = pieces[(pieces["area_m2"] > 1e-6) | (pieces["households"] > 1e-9)]
    pieces["g"] = pieces["g"].astype(np.int64)
    pieces["u"] = pieces["u"].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pieces["area_share"] = np.where(g_area[pieces["g"]] > 0,
                                        pieces["area_m2"] / g_area[pieces["g"]], 0.0)
        pieces["household_share"] = np.where(grid_hh[pieces["g"]] > 0,
                                             pieces["households"] / grid_hh[pieces["g"]], 0.0)
    # Touching along an edge, as two drawings of the same line reprojected: not a piece.
    pieces = pieces[(pieces["area_share"] >= NOISE_SHARE)
                    | (pieces["household_share"] >= NOISE_SHARE)]
    pieces["sliver"] = (pieces["area_share"] < tolerance) & \
        (pieces["household_share"] < tolerance)
    pieces = pieces.sort_values(["g", "area_share"], ascending=[True, False]).reset_index(
        drop=True)
    pieces.insert(0, "grid_code", g_codes[pieces["g"]])
    pieces.insert(1, "unit_code", u_codes[pieces["u"]])

    n_g, n_u = len(g_codes), len(u_codes)
    covered_area = np.bincount(pieces["g"], weights=pieces["area_m2"], minlength=n_g)
    covered_hh = np.bincount(pieces["g"], weights=pieces["households"], minlength=n_g)
    real = pieces[~pieces["sliver"]]
    n_real = np.bincount(real["g"], minlength=n_g)
    main = pieces.sort_values(["g", "households", "area_m2"], ascending=[True, False, False]
                              ).drop_duplicates("g")
    main_unit = np.full(n_g, None, dtype=object)
    main_unit[main["g"].to_numpy()] = main["unit_code"].to_numpy()
    main_share = np.zeros(n_g)
    main_share[main["g"].to_numpy()] = np.maximum(main["area_share"].to_numpy(),
                                                  main["household_share"].to_numpy())
    grids_out = pd.DataFrame({
        "code": g_codes, "households": grid_hh, "area_m2": g_area,
        "main_unit": main_unit, "main_share": main_share, "units": n_real,
        "split": n_real >= 2,
        "uncovered_area_share": np.where(g_area > 0, np.clip(1 - covered_area / np.where(
            g_area > 0, g_area, 1), 0, 1), 0.0),
        "uncovered_households": np.clip(grid_hh - covered_hh, 0, None),
    })

    whole_piece = (real["area_share"] >= 1 - tolerance) | (
        (real["household_share"] >= 1 - tolerance) & (grid_hh[real["g"]] > 0)
        & (real["area_share"] >= 0.5))
    whole_count = np.bincount(real["u"][whole_piece.to_numpy()], minlength=n_u)
    partial_count = np.bincount(real["u"][~whole_piece.to_numpy()], minlength=n_u)
    unit_area = shapely.area(u_geom)
    unit_in = np.bincount(pieces["u"], weights=pieces["area_m2"], minlength=n_u)
    unit_hh = np.bincount(pieces["u"], weights=pieces["households"], minlength=n_u)
    slivers = np.bincount(pieces["u"][pieces["sliver"].to_numpy()], minlength=n_u)
    units_out = pd.DataFrame({
        "code": u_codes, "name": units["name"].to_numpy() if "name" in units else None,
        "area_m2": unit_area, "households": unit_hh, "whole_grids": whole_count,
        "partial_grids": partial_count, "slivers": slivers,
        "whole": (partial_count == 0) & (whole_count > 0),
        "outside_area_share": np.where(unit_area > 0, np.clip(
            1 - unit_in / np.where(unit_area > 0, unit_area, 1), 0, 1), 0.0),
    })
    split = grids_out["split"].to_numpy()
    total_hh = float(grid_hh.sum())
    summary = {
        "grids": n_g, "units": n_u,
        "units_whole": int(units_out["whole"].sum()),
        "share_units_whole": round(float(units_out["whole"].mean()), 4) if n_u else 0.0,
        "grids_split": int(split.sum()),
        "households": round(total_hh, 3),
        "households_in_split_grids": round(float(grid_hh[split].sum()), 3),
        "share_households_in_split_grids": round(float(grid_hh[split].sum() / total_hh), 4)
        if total_hh else 0.0,
        "slivers": int(pieces["sliver"].sum()),
        "sliver_area_m2": round(float(pieces.loc[pieces["sliver"], "area_m2"].sum()), 1),
        "households_uncovered": round(float(grids_out["uncovered_households"].sum()), 3),
        "area_uncovered_m2": round(float(np.clip(g_area - covered_area, 0, None).sum()), 1),
        "units_without_grids": int(((whole_count + partial_count) == 0).sum()),
        "tolerance": tolerance,
    }
    return Crosswalk(pieces, grids_out, units_out, summary, tolerance)


# --- the aligned proposal -------------------------------------------------------------------


def grid_adjacency(geoms: np.ndarray, min_shared_m: float = MIN_SHARED_M
                   ) -> list[dict[int, float]]:
    """For each grid (metric geometries), its neighbours and the boundary length shared."""
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    neighbours: list[dict[int, float]] = [{} for _ in range(len(geoms))]
    if a.size:
        shared = shapely.length(shapely.intersection(shapely.boundary(geoms[a]),
                                                     shapely.boundary(geoms[b])))
        for i, j, length in zip(a.tolist(), b.tolist(), shared.tolist(), strict=True):
            if length >= min_shared_m:
                neighbours[i][j] = length
                neighbours[j][i] = length
    return neighbours


def _components(members: list[int], neighbours: list[dict[int, float]]) -> list[list[int]]:
    inside = set(members)
    seen: set[int] = set()
    parts: list[list[int]] = []
    for start in members:
        if start in seen:
            continue
        part, stack = [], [start]
        seen.add(start)
        while stack:
            i = stack.pop()
            part.append(i)
            for j in neighbours[i]:
                if j in inside and j not in seen:
                    seen.add(j)
                    stack.append(j)
        parts.append(part)
    return parts


def _initial(cw: Crosswalk, g_geom: np.ndarray, u_geom: np.ndarray, by: Strategy
             ) -> np.ndarray:
    n_g = len(cw.grids)
    assigned = np.full(n_g, -1, dtype=np.int64)
    pieces = cw.pieces
    if by == "centroid":
        points = shapely.point_on_surface(g_geom)
        tree = shapely.STRtree(u_geom)
        pi, ui = tree.query(points, predicate="within")
        assigned[pi] = ui  # a point within two overlapping units: the later wins
        rest = assigned < 0
        by_area = pieces.sort_values(["g", "area_m2"], ascending=[True, False]
                                     ).drop_duplicates("g")
        fill = by_area[rest[by_area["g"].to_numpy()]]
        assigned[fill["g"].to_numpy()] = fill["u"].to_numpy()
        return assigned
    # households: area where the grid has none
    order = ["g", "area_m2", "households"] if by == "area" else ["g", "households", "area_m2"]
    best = pieces.sort_values(order, ascending=[True, False, False]).drop_duplicates("g")
    assigned[best["g"].to_numpy()] = best["u"].to_numpy()
    return assigned


def propose(cw: Crosswalk, grids: gpd.GeoDataFrame, units: gpd.GeoDataFrame,
            metric_epsg: int, *, by: Strategy = "households") -> Proposal:
    """Redraw each unit as a union of whole grids: each grid to the unit holding most of
    its households (``by="households"``, area where it has none; ``"area"``: most of its
    area; ``"centroid"``: the unit its inner point falls in), then contiguity repaired
    (a unit's cut-off grids go to the neighbouring unit holding most of their households)
    and no unit left without a grid whenever there are at least as many grids as units
    (a unit holding no part of any grid takes the nearest grid some unit can spare)."""
    if by not in STRATEGIES:
        raise ValueError(f"unknown strategy {by!r}; use one of {', '.join(STRATEGIES)}")
    g_geom = shapely.make_valid(_metric(grids, metric_epsg))
    u_geom = shapely.make_valid(_metric(units, metric_epsg))
    g_codes = grids["code"].astype(str).to_numpy()
    u_codes = units["code"].astype(str).to_numpy()
    n_g, n_u = len(g_codes), len(u_codes)
    neighbours = grid_adjacency(g_geom)
    held: list[dict[int, float]] = [defaultdict(float) for _ in range(n_g)]  # g -> u -> hh
    held_area: list[dict[int, float]] = [defaultdict(float) for _ in range(n_g)]
    for g, u, h, a in zip(cw.pieces["g"].to_numpy(), cw.pieces["u"].to_numpy(),
                          cw.pieces["households"].to_numpy(), cw.pieces["area_m2"].to_numpy(),
                          strict=True):
        held[g][u] += h
        held_area[g][u] += a

    def assign(strategy: Strategy) -> np.ndarray:
        """Each grid's unit (position) by ``strategy``, contiguity repaired, no unit
        empty."""
        assigned = _initial(cw, g_geom, u_geom, strategy)

        # Grids no unit touches take the unit their longest shared boundary leads to.
        for _ in range(n_g):
            empty = np.flatnonzero(assigned < 0)
            if not empty.size:
                break
            changed = False
            for g in empty:
                votes: dict[int, float] = defaultdict(float)
                for j, length in neighbours[g].items():
                    if assigned[j] >= 0:
                        votes[int(assigned[j])] += length
                if votes:
                    assigned[g] = max(votes, key=lambda u: (votes[u], -u))
                    changed = True
            if not changed:
                break
        lonely = np.flatnonzero(assigned < 0)
        if lonely.size and n_u:  # islands touching nothing assigned: the nearest unit
            tree = shapely.STRtree(u_geom)
            assigned[lonely] = tree.nearest(g_geom[lonely])

        def score(members: list[int], u: int) -> tuple[float, float]:
            return (sum(held[g].get(u, 0.0) for g in members),
                    sum(held_area[g].get(u, 0.0) for g in members))

        def repair() -> None:
            """Keep each unit's main part; its cut-off parts go to a neighbouring unit (never
            empties a unit: the main part stays)."""
            for _ in range(4 * n_u + 10):
                moved = False
                for u in range(n_u):
                    members = [int(g) for g in np.flatnonzero(assigned == u)]
                    if len(members) < 2:
                        continue
                    parts = _components(members, neighbours)
                    if len(parts) < 2:
                        continue
                    parts.sort(key=lambda p: (*score(p, u), len(p)), reverse=True)
                    for part in parts[1:]:
                        around = {int(assigned[j]) for g in part for j in neighbours[g]} - {u, -1}
                        if not around:
                            continue  # an island: no neighbour to join
                        target = max(around, key=lambda v: (*score(part, v), sum(
                            length for g in part for j, length in neighbours[g].items()
                            if assigned[j] == v), -v))
                        assigned[part] = target
                        moved = True
                if not moved:
                    break

        repair()
        # No unit vanishes (whenever there are at least as many grids as units): each unit left
        # without a grid takes one, by the first of these that works —
        #  1. a grid it holds part of, from a unit that stays non-empty and connected without it
        #     (the cheapest: the fewest households leaving that unit);
        #  2. a chain: it takes a grid it holds part of from a unit with no other grid, which in
        #     turn takes a grid it holds part of (or a neighbour of the one it lost) from a unit
        #     that can spare it, and so on (breadth first, so the shortest chain);
        #  3. a grid it holds part of from a unit that keeps another grid but falls apart without
        #     it (the repair then gives the cut-off part to a neighbour);
        #  4. the grid nearest to it that some unit can spare (a unit with two grids or more can:
        #     the leaf of a spanning tree; one exists whenever there are more grids than non-empty
        #     units). A unit with one grid is contiguous; the repair never empties a unit.
        members_of = [set(np.flatnonzero(assigned == u).tolist()) for u in range(n_u)]

        def move(g: int, to: int) -> None:
            members_of[int(assigned[g])].discard(g)
            assigned[g] = to
            members_of[to].add(g)

        def spares(g: int, connected: bool) -> bool:
            rest = [i for i in members_of[int(assigned[g])] if i != g]
            return bool(rest) and (not connected or len(_components(rest, neighbours)) == 1)

        def own(v: int) -> list[int]:
            """The grids ``v`` holds part of, cheapest first."""
            return sorted((g for g in range(n_g) if held[g].get(v, 0) > 0
                           or held_area[g].get(v, 0) > 0),
                          key=lambda g: (held[g].get(int(assigned[g]), 0.0) - held[g].get(v, 0.0),
                                         -held_area[g].get(v, 0.0), g))

        def chain(u: int) -> list[tuple[int, int]] | None:
            queue: deque[tuple[int, list[tuple[int, int]], int]] = deque([(u, [], -1)])
            seen = {u}
            while queue:
                v, moves, lost = queue.popleft()
                taken = {g for g, _ in moves}
                around = sorted(neighbours[lost], key=lambda j: -neighbours[lost][j]) \
                    if lost >= 0 else []
                for g in dict.fromkeys(own(v) + around):
                    if g in taken or assigned[g] < 0:
                        continue
                    if spares(g, connected=True):
                        return [*moves, (g, v)]
                    donor = int(assigned[g])
                    if len(members_of[donor]) == 1 and donor not in seen \
                            and len(moves) < MAX_CHAIN:
                        seen.add(donor)
                        queue.append((donor, [*moves, (g, v)], g))
            return None

        def take(u: int) -> bool:
            found = chain(u)
            if found is None:
                found = next(([(g, u)] for g in own(u) if spares(g, connected=False)), None)
            if found is None:
                near = np.argsort(shapely.distance(g_geom, u_geom[u]), kind="stable")
                pick = next((int(g) for g in near if spares(int(g), connected=True)), None)
                if pick is None:
                    pick = next((int(g) for g in near if spares(int(g), connected=False)), None)
                found = None if pick is None else [(pick, u)]
            if found is None:
                return False
            for g, to in found:
                move(g, to)
            return True

        # The units holding the most first: they have the strongest claim on the grids around.
        lacking = sorted((v for v in range(n_u) if not members_of[v]),
                         key=lambda v: (-sum(held[g].get(v, 0.0) for g in range(n_g)), v))
        for v in lacking:
            if not members_of[v]:
                take(v)
        repair()
        return assigned

    def moved_by(assigned: np.ndarray) -> float:
        return float(sum(sum(held[g].values()) - held[g].get(int(assigned[g]), 0.0)
                         for g in range(n_g)))

    def kept_by(assigned: np.ndarray) -> int:
        return len(set(assigned[assigned >= 0].tolist()))

    if by == "households":
        # Ours: a local search for the fewest households moved, started from each simple
        # assignment (ours, area, centroid): the most units kept, then the fewest moved.
        tries = [_improve(assign(s), held, held_area, neighbours) for s in STRATEGIES]
        assigned = min(tries, key=lambda a: (-kept_by(a), moved_by(a)))
    else:
        assigned = assign(by)

    assignment = {str(g_codes[g]): str(u_codes[assigned[g]]) for g in range(n_g)
                  if assigned[g] >= 0}
    grid_hh = cw.grids["households"].to_numpy(float)
    kept = np.array([held[g].get(int(assigned[g]), 0.0) if assigned[g] >= 0 else 0.0
                     for g in range(n_g)])
    covered = np.array([sum(held[g].values()) for g in range(n_g)])
    moved_out = covered - kept  # households that leave the unit they were in
    gained = np.clip(grid_hh - covered, 0, None)  # in no unit before, in one now
    rows = []
    geoms = []
    for u in range(n_u):
        members = np.flatnonzero(assigned == u)
        before = sum(held[g].get(u, 0.0) for g in range(n_g))
        after = float(grid_hh[members].sum())
        stay = float(sum(held[g].get(u, 0.0) for g in members))
        parts = len(_components([int(g) for g in members], neighbours)) if members.size else 0
        rows.append({"code": str(u_codes[u]),
                     "name": units["name"].iloc[u] if "name" in units else None,
                     "grids": int(members.size), "households": round(after, 3),
                     "households_before": round(before, 3),
                     "households_in": round(after - stay, 3),
                     "households_out": round(before - stay, 3), "parts": parts})
        geoms.append(shapely.union_all(grids.geometry.to_numpy()[members]) if members.size
                     else None)
    units_out = pd.DataFrame(rows)
    layer = gpd.GeoDataFrame(units_out.copy(), geometry=geoms, crs=grids.crs)
    layer = layer[layer["grids"] > 0].reset_index(drop=True)
    total = float(grid_hh.sum())
    touched = {u for g in range(n_g) for u in (*held[g], *held_area[g])}
    summary = {
        "strategy": by, "grids": n_g, "units": n_u,
        "grids_assigned": len(assignment),
        "units_kept": int((units_out["grids"] > 0).sum()) if n_u else 0,
        "units_vanished": [str(c) for c in units_out.loc[units_out["grids"] == 0, "code"]]
        if n_u else [],
        "units_outside_plan": [str(u_codes[u]) for u in range(n_u) if u not in touched],
        "units_not_contiguous": [str(c) for c in units_out.loc[units_out["parts"] > 1,
                                                               "code"]] if n_u else [],
        "households": round(total, 3),
        "households_moved": round(float(moved_out.sum()), 3),
        "share_households_moved": round(float(moved_out.sum() / total), 4) if total else 0.0,
        "households_gained": round(float(gained.sum()), 3),
        "grids_changed_unit": int(sum(1 for g in range(n_g) if assigned[g] >= 0
                                      and cw.grids["main_unit"].iloc[g] is not None
                                      and str(u_codes[assigned[g]])
                                      != cw.grids["main_unit"].iloc[g])),
    }
    return Proposal(assignment, units_out, summary, layer)


def _improve(assigned: np.ndarray, held: list[dict[int, float]],
             held_area: list[dict[int, float]], neighbours: list[dict[int, float]]
             ) -> np.ndarray:
    """``assigned`` with grids moved, one at a time, to a neighbouring unit that holds more
    of their households (then of their area) than the unit they are in, while that unit
    keeps another grid and stays connected: never fewer units, never more households
    moved, never a unit in pieces that was whole."""
    assigned = assigned.copy()
    members: dict[int, set[int]] = defaultdict(set)
    for g, u in enumerate(assigned.tolist()):
        if u >= 0:
            members[u].add(g)
    for _ in range(20):
        moved = False
        for g in range(len(assigned)):
            here = int(assigned[g])
            if here < 0 or len(members[here]) < 2:
                continue
            now = (held[g].get(here, 0.0), held_area[g].get(here, 0.0))
            better = [v for v in {int(assigned[j]) for j in neighbours[g]} - {here, -1}
                      if (held[g].get(v, 0.0), held_area[g].get(v, 0.0)) > now
                      and held[g].get(v, 0.0) >= now[0]]
            if not better:
                continue
            rest = [i for i in members[here] if i != g]
            if len(_components(rest, neighbours)) != 1:
                continue
            v = max(better, key=lambda u: (held[g].get(u, 0.0), held_area[g].get(u, 0.0), -u))
            members[here].discard(g)
            members[v].add(g)
            assigned[g] = v
            moved = True
        if not moved:
            break
    return assigned
