"""Stage 3: households of each building (given or estimated) and the block each building lies in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from partitioning.params import RESIDENTIAL_LAND, PartitionParams

#: Why a footprint without a count was estimated, or was not (the report counts these).
RULES = ("tagged residential", "residential land use", "untagged low-rise",
         "tall in non-residential land use", "tagged not residential",
         "untagged in non-residential land use", "untagged high-rise or large", "estimate off",
         "untagged (all)")


@dataclass(frozen=True)
class HouseholdCounts:
    """What the report says about where the household numbers came from."""

    buildings: int
    given: int
    estimated: int
    not_residential: int
    outside_blocks: int
    #: Households that come from estimates, the largest estimate of one building, the
    #: estimates cut down to floor area ÷ the smallest dwelling, and the footprints
    #: without a count by the rule that decided (RULES).
    households_estimated: int = 0
    largest_estimate: int = 0
    capped: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)

    def as_report(self) -> dict[str, Any]:
        return {"buildings": self.buildings, "households_given_buildings": self.given,
                "households_estimated_buildings": self.estimated,
                "households_estimated": self.households_estimated,
                "largest_estimate": self.largest_estimate,
                "estimates_capped_by_floor_area": self.capped,
                "buildings_not_residential_without_count": self.not_residential,
                "estimate_rules": dict(self.by_rule)}


def land_use_at(points: np.ndarray, landuse: gpd.GeoDataFrame | None) -> np.ndarray:
    """The land-use class (``use``) at each point, None where no area holds it; where
    areas overlap, the smallest (the most specific) wins. Same CRS for both."""
    out = np.full(len(points), None, dtype=object)
    if landuse is None or landuse.empty or not len(points):
        return out
    geoms = landuse.geometry.to_numpy()
    pi, li = shapely.STRtree(geoms).query(points, predicate="within")
    if not len(pi):
        return out
    order = np.lexsort((-shapely.area(geoms)[li], pi))   # by point, the smallest last
    pi, li = pi[order], li[order]
    last = np.r_[pi[1:] != pi[:-1], True]
    out[pi[last]] = landuse["use"].to_numpy(dtype=object)[li[last]]
    return out


def building_households(buildings: gpd.GeoDataFrame, params: PartitionParams,
                        landuse: gpd.GeoDataFrame | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, HouseholdCounts]:
    """Households, population and an "estimated" mask per building.

    A given count is kept. A footprint without one is estimated as floor area (area ×
    floors, floors from ``height`` ÷ floor height when not given, at least 1) ÷ dwelling
    size, never more than floor area ÷ the smallest dwelling, when ``params.estimate``
    says so (docs/partitioning.md, "Household estimates"):

    - ``residential``: a footprint residential by its own ``use`` tag, or untagged inside
      residential (or mixed) land use, or untagged outside any land use and low
      (under ``untagged_max_height_m``) and small (under ``untagged_max_footprint_m2``);
      in every case a tall building (``tall_building_m`` / ``tall_building_floors``)
      in non-residential land use holds 0;
    - ``all``: every footprint not tagged otherwise (residential or untagged);
    - ``off``: none.

    Other footprints without a count hold no households. ``landuse`` (``use`` per
    polygon, same CRS) is the optional land-use layer.
    """
    geoms = buildings.geometry.to_numpy()
    n = len(geoms)
    given = buildings["households"].to_numpy(dtype=float, na_value=np.nan)
    floors_given = _column(buildings, "floors")
    height = _column(buildings, "height")
    floors = np.where(np.isnan(floors_given), np.round(height / params.floor_height_m),
                      floors_given)
    floors = np.where(np.isnan(floors) | (floors < 1), 1, floors)
    if "use" in buildings:
        use = buildings["use"].to_numpy(dtype=object)
        tagged = np.array([isinstance(u, str) and u != "" for u in use], dtype=bool)
        residential_tag = np.array([isinstance(u, str) and u == "residential"
                                    for u in use.tolist()], dtype=bool)
    else:
        tagged = residential_tag = np.zeros(n, dtype=bool)
    missing = np.isnan(given)
    area = shapely.area(geoms)
    land = land_use_at(shapely.point_on_surface(geoms), landuse) if missing.any() \
        else np.full(n, None, dtype=object)
    has_land = np.array([u is not None for u in land], dtype=bool)
    res_land = np.isin(land.astype(str), list(RESIDENTIAL_LAND)) & has_land
    # Height as known: given, else from given floors; unknown counts as low.
    known_height = np.where(np.isnan(height), floors_given * params.floor_height_m, height)
    tall = (known_height >= params.tall_building_m) | \
        (floors >= params.tall_building_floors)
    low = np.isnan(known_height) | (known_height < params.untagged_max_height_m)
    small = area < params.untagged_max_footprint_m2
    untagged = ~tagged
    rule = np.full(n, "", dtype=object)
    if params.estimate == "off":
        estimate = np.zeros(n, dtype=bool)
        rule[missing] = "estimate off"
    elif params.estimate == "all":
        estimate = missing & (residential_tag | untagged)
        rule[estimate & residential_tag] = "tagged residential"
        rule[estimate & untagged] = "untagged (all)"
        rule[missing & ~estimate] = "tagged not residential"
    else:
        conditions = [
            tall & has_land & ~res_land & (residential_tag | untagged),
            residential_tag,
            untagged & res_land,
            untagged & ~has_land & low & small,
            tagged,
            untagged & has_land,
        ]
        names = ["tall in non-residential land use", "tagged residential",
                 "residential land use", "untagged low-rise", "tagged not residential",
                 "untagged in non-residential land use"]
        rule[missing] = np.select([c[missing] for c in conditions], names,
                                  default="untagged high-rise or large")
        estimate = missing & np.isin(rule, ["tagged residential", "residential land use",
                                            "untagged low-rise"])
    floor_area = area * floors
    raw = np.round(floor_area / params.dwelling_m2)
    cap = np.floor(floor_area / params.min_dwelling_m2)
    estimated = np.minimum(raw, cap)
    households = np.where(missing, np.where(estimate, estimated, 0), given).astype(np.int64)
    pop = _column(buildings, "population")
    population = np.where(np.isnan(pop), np.round(households * params.persons_per_household),
                          pop).astype(np.int64)
    est_hh = households[estimate]
    rules, counts = np.unique(rule[missing].astype(str), return_counts=True)
    report = HouseholdCounts(
        buildings=n, given=int((~missing).sum()), estimated=int(estimate.sum()),
        not_residential=int((missing & ~estimate).sum()), outside_blocks=0,
        households_estimated=int(est_hh.sum()),
        largest_estimate=int(est_hh.max()) if est_hh.size else 0,
        capped=int((estimate & (raw > cap)).sum()),
        by_rule={str(r): int(c) for r, c in zip(rules, counts, strict=True)})
    return households, population, estimate, report


def _column(frame: gpd.GeoDataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return np.asarray(frame[name].to_numpy(dtype=float, na_value=np.nan), dtype=float)


def assign_to_blocks(buildings: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame,
                     points: np.ndarray | None = None) -> np.ndarray:
    """Block position of each building, by a point on its surface (a building is never split;
    ``points``: those points, when the caller has them already).

    A building whose point lies on no block (on a boundary, or outside the
    territory) goes to the nearest block.
    """
    if points is None:
        points = shapely.point_on_surface(buildings.geometry.to_numpy())
    tree = shapely.STRtree(blocks.geometry.to_numpy())
    bi, blk = tree.query(points, predicate="within")
    owner = np.full(len(points), -1, dtype=np.int64)
    # A point on a shared edge is "within" neither block; one hit at most otherwise.
    owner[bi] = blk
    lost = np.flatnonzero(owner < 0)
    if lost.size:
        li, nb = tree.query_nearest(points[lost], return_distance=False, all_matches=False)
        owner[lost[li]] = nb
    return owner
