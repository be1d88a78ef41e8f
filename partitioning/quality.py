"""Stage 8: quality of each grid and of the plan (the same functions for engine and editor)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely

from partitioning.flags import regular_in_band


def polsby_popper(geoms: np.ndarray) -> np.ndarray:
    """4πA / P²: 1 for a disc, near 0 for a thin strip."""
    perimeter = shapely.length(geoms)
    return np.where(perimeter > 0, 4 * np.pi * shapely.area(geoms) / perimeter**2, 0.0)


def service_radius(geoms: np.ndarray) -> np.ndarray:
    """Largest distance (m) from the grid's centre to its boundary."""
    centre = shapely.point_on_surface(geoms)
    return shapely.hausdorff_distance(centre, shapely.boundary(geoms))


#: How each stored shape figure is rounded (the engine's grid table, the edits' rows).
SHAPE_DECIMALS = {"area_m2": 1, "compactness": 4, "radius_m": 1}


def shape_figures(geoms: np.ndarray) -> dict[str, np.ndarray]:
    """A grid's figures that depend on its outline alone (``geoms`` in a metric CRS), as
    stored: area (m²), Polsby–Popper compactness and service radius (m). The engine's
    description of its grids and an edit's reshaped grids both take them from here."""
    raw = {"area_m2": shapely.area(geoms), "compactness": polsby_popper(geoms),
           "radius_m": service_radius(geoms)}
    return {k: np.round(v, SHAPE_DECIMALS[k]) for k, v in raw.items()}


def width(geoms: np.ndarray) -> np.ndarray:
    """Extent across (m): the longer side of the minimum rotated rectangle."""
    rect = shapely.oriented_envelope(geoms)
    xy, idx = shapely.get_coordinates(shapely.get_exterior_ring(rect), return_index=True)
    first = np.searchsorted(idx, np.arange(len(geoms)))
    a = np.hypot(*(xy[first + 1] - xy[first]).T)
    b = np.hypot(*(xy[first + 2] - xy[first + 1]).T)
    return np.maximum(a, b)


def barrier_shares(segments: pd.DataFrame, kinds: np.ndarray, n_grids: int
                   ) -> tuple[np.ndarray, dict[str, float]]:
    """Share of each grid's boundary length lying on a barrier, and the plan's share by kind.

    ``kinds`` is the barrier kind followed by each segment ("" for none).
    """
    length = segments["length"].to_numpy()
    grid = segments["grid"].to_numpy()
    on = kinds != ""
    total = np.bincount(grid, weights=length, minlength=n_grids)
    followed = np.bincount(grid[on], weights=length[on], minlength=n_grids)
    share = np.divide(followed, total, out=np.zeros(n_grids), where=total > 0)
    by_kind = pd.Series(length).groupby(kinds).sum()
    all_len = float(length.sum()) or 1.0
    plan = {str(k): round(float(v) / all_len, 4) for k, v in by_kind.items() if k}
    return share, plan


#: A strong barrier this close (m) to a grid's boundary runs along it, not inside it.
INSIDE_TOLERANCE_M = 2.0


def barrier_inside(geoms: np.ndarray, lines: np.ndarray, kinds: np.ndarray
                   ) -> tuple[np.ndarray, dict[str, float]]:
    """Length (m) of strong barrier (``lines``, of ``kinds``) inside each grid and not along
    its boundary, and the plan's total by kind."""
    inside = np.zeros(len(geoms))
    by_kind: dict[str, float] = {}
    if not len(lines) or not len(geoms):
        return inside, by_kind
    core = shapely.buffer(geoms, -INSIDE_TOLERANCE_M)
    gi, li = shapely.STRtree(lines).query(core, predicate="intersects")
    if not len(gi):
        return inside, by_kind
    length = shapely.length(shapely.intersection(lines[li], core[gi]))
    np.add.at(inside, gi, length)
    for kind, total in pd.Series(length).groupby(kinds[li]).sum().items():
        by_kind[str(kind)] = round(float(total), 1)
    return inside, by_kind


def plan_report(grids: pd.DataFrame, territory_area: float, union_area: float,
                lo: int, hi: int) -> dict[str, Any]:
    """Plan-level figures from the grid table (``households``, ``area_m2``, ``flags``…)."""
    hh = grids["households"].to_numpy()
    comp = grids["kind"].to_numpy() == "comprehensive"
    regular, in_range = regular_in_band(grids["kind"], hh, grids["flags"], (lo, hi))
    sum_area = float(grids["area_m2"].sum())
    reasons = grids["flag_reason"] if "flag_reason" in grids else [""] * len(grids)
    flagged = [
        {"code": c, "households": int(h), "flags": list(f), "reason": str(r)}
        for c, h, f, r in zip(grids["code"], hh, grids["flags"], reasons, strict=True) if f
    ]
    return {
        "n_grids": len(grids),
        "n_comprehensive": int(comp.sum()),
        "n_dedicated": int((~comp).sum()),
        "n_forced": int((comp & ~regular).sum()),
        "in_range_share": round(float(in_range[regular].mean()) if regular.any() else 1.0, 4),
        "in_range_share_all": round(float(in_range[comp].mean()) if comp.any() else 1.0, 4),
        "households": int(hh.sum()),
        "households_min": int(hh[comp].min()) if comp.any() else 0,
        "households_max": int(hh[comp].max()) if comp.any() else 0,
        "households_mean": round(float(hh[comp].mean()), 1) if comp.any() else 0.0,
        "compactness_mean": round(float(grids["compactness"].mean()), 4),
        "compactness_median": round(float(grids["compactness"].median()), 4),
        "coverage_share": round(union_area / territory_area, 6) if territory_area else 0.0,
        "overlap_m2": round(max(0.0, sum_area - union_area), 3),
        "gap_m2": round(max(0.0, territory_area - union_area), 3),
        "noncontiguous": int(sum("noncontiguous" in f for f in grids["flags"])),
        "flagged": flagged,
    }
