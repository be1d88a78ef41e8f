"""Scripted household changes of a territory (growth here, demolition there), for redraw tests."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity

#: Share of a changing village's households that change (so ~5% of all takes a few villages).
VILLAGE_SHARE = 0.10
#: Share of the changing villages that grow (the others lose households).
GROWTH_SHARE = 0.6


def scripted_changes(layers: dict[str, gpd.GeoDataFrame], share: float = 0.05, seed: int = 0
                     ) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, Any]]:
    """New layers with about ``share`` of all households changed (the sum of |change|).

    Villages are drawn at random until the share is reached; in each, about
    :data:`VILLAGE_SHARE` of its households change. A growing village gains households in
    some buildings (+20–60%) and one new building in every other case (a smaller footprint
    on the plot of an existing one, 20–80 households); a shrinking one loses households in
    some buildings (−20–50%) and one building in every other case is demolished (removed).
    Returns the layers (buildings replaced) and what changed.
    """
    rng = np.random.default_rng(seed)
    buildings = layers["buildings"].reset_index(drop=True).copy()
    admin = layers["admin_areas"]
    villages = admin[admin["level"] == "village"].reset_index(drop=True)
    hh = buildings["households"].fillna(0).to_numpy(dtype=np.int64).copy()
    pop = buildings["population"].to_numpy(dtype=float) if "population" in buildings \
        else np.full(len(hh), np.nan)
    points = shapely.point_on_surface(buildings.geometry.to_numpy())
    bi, vi = shapely.STRtree(villages.geometry.to_numpy()).query(points, predicate="within")
    village_of = np.full(len(hh), -1)
    village_of[bi] = vi
    target = share * float(hh.sum())
    changed = 0.0
    removed: list[int] = []
    added: list[dict[str, Any]] = []
    grew: list[str] = []
    shrank: list[str] = []
    for n, v in enumerate(rng.permutation(len(villages))):
        if changed >= target:
            break
        mine = np.flatnonzero((village_of == v) & (hh > 0))
        if mine.size == 0:
            continue
        budget = min(VILLAGE_SHARE * float(hh[mine].sum()), target - changed)
        growth = rng.random() < GROWTH_SHARE
        code = str(villages.loc[v, "code"])
        (grew if growth else shrank).append(code)
        if n % 2 == 0 and budget > 20:
            src = int(rng.choice(mine))
            if growth:
                extra = int(min(int(rng.integers(20, 81)), budget))
                geom = shapely.affinity.scale(buildings.geometry.iloc[src], 0.5, 0.5)
                added.append({"households": extra, "population": round(extra * 2.6),
                              "floors": 6, "use": "residential", "geometry": geom})
                changed += extra
            elif hh[src] <= budget:
                removed.append(src)
                changed += float(hh[src])
                hh[src] = 0
        for b in rng.permutation(mine):
            if changed >= target or budget <= 0:
                break
            if b in removed or hh[b] == 0:
                continue
            factor = rng.uniform(0.2, 0.6) if growth else -rng.uniform(0.2, 0.5)
            delta = int(np.clip(round(hh[b] * factor), -hh[b], budget))
            delta = int(np.sign(delta) * min(abs(delta), budget))
            if delta == 0:
                continue
            if hh[b] > 0 and not np.isnan(pop[b]):
                pop[b] = round(pop[b] * (hh[b] + delta) / hh[b])
            hh[b] += delta
            changed += abs(delta)
            budget -= abs(delta)
    buildings["households"] = hh
    if "population" in buildings:
        buildings["population"] = pop
    buildings = buildings.drop(index=removed)
    if added:
        buildings = gpd.GeoDataFrame(pd.concat(
            [buildings, gpd.GeoDataFrame(added, geometry="geometry", crs=buildings.crs)],
            ignore_index=True), geometry="geometry", crs=buildings.crs)
    out = dict(layers)
    out["buildings"] = buildings.reset_index(drop=True)
    return out, {"households_changed": int(changed), "households_before": int(
        layers["buildings"]["households"].fillna(0).sum()),
        "households_after": int(buildings["households"].sum()),
        "buildings_added": len(added), "buildings_removed": len(removed),
        "villages_grown": sorted(grew), "villages_shrunk": sorted(shrank)}
