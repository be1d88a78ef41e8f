"""Stage 3: households of each building (given or estimated) and the block each building lies in."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from partitioning.params import PartitionParams


@dataclass(frozen=True)
class HouseholdCounts:
    """What the report says about where the household numbers came from."""

    buildings: int
    given: int
    estimated: int
    not_residential: int
    outside_blocks: int


def building_households(buildings: gpd.GeoDataFrame, params: PartitionParams
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, HouseholdCounts]:
    """Households, population and an "estimated" mask per building.

    A missing count is estimated for residential (or unknown-use) footprints:
    area × floors (or height ÷ floor height, at least 1) ÷ dwelling size.
    Other buildings without a count hold no households.
    """
    geoms = buildings.geometry.to_numpy()
    given = buildings["households"].to_numpy(dtype=float, na_value=np.nan)
    floors = buildings["floors"].to_numpy(dtype=float, na_value=np.nan) \
        if "floors" in buildings else np.full(len(geoms), np.nan)
    height = buildings["height"].to_numpy(dtype=float, na_value=np.nan) \
        if "height" in buildings else np.full(len(geoms), np.nan)
    floors = np.where(np.isnan(floors), np.round(height / params.floor_height_m), floors)
    floors = np.where(np.isnan(floors) | (floors < 1), 1, floors)
    if "use" in buildings:
        use = buildings["use"]
        residential = (use.isna() | (use == "residential")).to_numpy(dtype=bool)
    else:
        residential = np.ones(len(geoms), dtype=bool)
    missing = np.isnan(given)
    estimate = missing & residential
    area = shapely.area(geoms)
    estimated = np.round(area * floors / params.dwelling_m2)
    households = np.where(missing, np.where(estimate, estimated, 0), given).astype(np.int64)
    if "population" in buildings:
        pop = buildings["population"].to_numpy(dtype=float, na_value=np.nan)
    else:
        pop = np.full(len(geoms), np.nan)
    population = np.where(np.isnan(pop), np.round(households * params.persons_per_household),
                          pop).astype(np.int64)
    counts = HouseholdCounts(
        buildings=len(geoms), given=int((~missing).sum()), estimated=int(estimate.sum()),
        not_residential=int((missing & ~residential).sum()), outside_blocks=0)
    return households, population, estimate, counts


def assign_to_blocks(buildings: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame) -> np.ndarray:
    """Block position of each building, by a point on its surface (a building is never split).

    A building whose point lies on no block (on a boundary, or outside the
    territory) goes to the nearest block.
    """
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
