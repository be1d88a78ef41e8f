"""Checks of a Bund partition: the largest estimated households per building, grids that
are one building, grids over half water."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shanghai_layers import RESIDENTIAL_RULES

from partitioning.households import building_households


def estimates_and_water(result: Any, metric_layers: dict[str, gpd.GeoDataFrame],
                        buildings: gpd.GeoDataFrame) -> dict[str, Any]:
    """The largest estimated households per building (top 10 with floor area, height
    and floors), grids that are one non-residential building, and grids over 50 % water
    (by area, the water layer's polygons)."""
    params = result.params
    layer = metric_layers["buildings"]
    hh, _, estimated, _ = building_households(layer, params)
    geoms = layer.geometry.to_numpy()
    area = shapely.area(geoms)
    floors = layer["floors"].to_numpy(dtype=float, na_value=np.nan)
    height = layer["height"].to_numpy(dtype=float, na_value=np.nan)
    floors_used = np.where(np.isnan(floors), np.round(height / params.floor_height_m), floors)
    floors_used = np.where(np.isnan(floors_used) | (floors_used < 1), 1, floors_used)
    order = np.argsort(-np.where(estimated, hh, -1), kind="stable")[:10]
    top = [{
        "households": int(hh[i]), "footprint_m2": round(float(area[i])),
        "floor_area_m2": round(float(area[i] * floors_used[i])),
        "height_m": None if np.isnan(height[i]) else round(float(height[i]), 1),
        "floors": int(floors_used[i]), "floor_area_per_household_m2":
            round(float(area[i] * floors_used[i] / hh[i]), 1) if hh[i] else None,
        "name": None if pd.isna(buildings["osm_name"].iloc[i]) else
            str(buildings["osm_name"].iloc[i]),
        "tag": None if pd.isna(buildings["tag"].iloc[i]) else str(buildings["tag"].iloc[i]),
        "landuse": None if pd.isna(buildings["landuse"].iloc[i]) else
            str(buildings["landuse"].iloc[i]),
        "rule": str(buildings["rule"].iloc[i]),
    } for i in order if estimated[i]]
    # Buildings to grids, as the engine assigns them (a point on the surface).
    grids = result.grids
    ggeoms = grids.geometry.to_numpy()
    pts = shapely.point_on_surface(geoms)
    owner = np.full(len(pts), -1)
    bi, gi = shapely.STRtree(ggeoms).query(pts, predicate="within")
    owner[bi] = gi
    lost = np.flatnonzero(owner < 0)
    if lost.size:
        owner[lost] = shapely.STRtree(ggeoms).nearest(pts[lost])
    with_hh = hh > 0
    n_res = np.bincount(owner[with_hh], minlength=len(grids))
    rule = buildings["rule"].to_numpy()
    single: dict[str, int] = {}
    single_list: list[dict[str, Any]] = []
    for g in np.flatnonzero(n_res == 1):
        b = int(np.flatnonzero(with_hh & (owner == g))[0])
        kind = "residential" if rule[b] in RESIDENTIAL_RULES else str(rule[b])
        single[kind] = single.get(kind, 0) + 1
        if kind != "residential":
            single_list.append({"grid": str(grids["code"].iloc[g]),
                                "households": int(grids["households"].iloc[g]),
                                "building_households": int(hh[b]), "rule": kind,
                                "tag": top_str(buildings["tag"].iloc[b]),
                                "name": top_str(buildings["osm_name"].iloc[b])})
    water = metric_layers.get("water")
    polys = water[np.isin(shapely.get_type_id(water.geometry.to_numpy()), [3, 6])] \
        if water is not None else None
    share = np.zeros(len(grids))
    if polys is not None and len(polys):
        wet = shapely.union_all(shapely.make_valid(polys.geometry.to_numpy()))
        share = shapely.area(shapely.intersection(ggeoms, wet)) / shapely.area(ggeoms)
    wet_grids = [{"grid": str(grids["code"].iloc[g]), "kind": str(grids["kind"].iloc[g]),
                  "area_km2": round(float(shapely.area(ggeoms[g])) / 1e6, 3),
                  "water_share": round(float(share[g]), 3),
                  "households": int(grids["households"].iloc[g])}
                 for g in np.argsort(-share) if share[g] > 0.5]
    return {
        "buildings_estimated": int(estimated.sum()),
        "households_estimated": int(hh[estimated].sum()),
        "largest_estimated_households": int(hh[estimated].max()) if estimated.any() else 0,
        "estimated_over_500": int((hh[estimated] > 500).sum()),
        "top10_estimated": top,
        "grids": len(grids),
        "single_building_grids": int((n_res == 1).sum()),
        "single_building_grids_by_rule": dict(sorted(single.items())),
        "single_nonresidential_building_grids": int(sum(v for k, v in single.items()
                                                        if k != "residential")),
        "single_nonresidential_list": single_list,
        "grids_over_50pct_water": len(wet_grids),
        "comprehensive_grids_over_50pct_water": sum(g["kind"] == "comprehensive"
                                                    for g in wet_grids),
        "max_water_share": round(float(share.max()), 3) if len(share) else 0.0,
        "grids_over_50pct_water_list": wet_grids,
    }


def top_str(value: Any) -> str | None:
    return None if pd.isna(value) else str(value)
