"""The cross-walk of a stored plan with a stored overlay: read from the store, kept in a
per-process cache, and drawn as a map layer."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine

from gis.overlays import get_overlay, read_units
from gis.plans import get_plan, read_blocks, read_grids
from gis.store import territory_row
from partitioning.crosswalk import SLIVER_SHARE, Crosswalk, Proposal, Strategy, crosswalk, propose

# --- from the store -----------------------------------------------------------------------------


@dataclass
class PlanOverlay:
    """A stored plan and a stored overlay of its territory, read for a cross-walk."""

    plan_id: int
    overlay: dict[str, Any]
    metric_epsg: int
    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    units: gpd.GeoDataFrame


def load(engine: Engine, plan_id: int, department: str) -> PlanOverlay:
    """The plan's grids and blocks and the territory's ``department`` overlay (NotFound
    when the plan or the overlay is not there)."""
    plan = get_plan(engine, plan_id)
    overlay = get_overlay(engine, plan.territory_id, department)
    epsg = int(territory_row(engine, plan.territory_id).metric_epsg)
    return PlanOverlay(plan_id, overlay, epsg, read_grids(engine, plan_id),
                       read_blocks(engine, plan_id), read_units(engine, int(overlay["id"])))


def of_store(found: PlanOverlay, tolerance: float = SLIVER_SHARE) -> Crosswalk:
    """The cross-walk of what :func:`load` read."""
    return crosswalk(found.grids, found.blocks, found.units, found.metric_epsg,
                     tolerance=tolerance)


def proposal_of_store(found: PlanOverlay, cw: Crosswalk, by: Strategy = "households"
                      ) -> Proposal:
    """The aligned proposal of what :func:`load` read."""
    return propose(cw, found.grids, found.units, found.metric_epsg, by=by)


#: Cross-walks (with what they were read from) and proposals kept by a CrosswalkCache.
CACHE_ENTRIES = 16


class CrosswalkCache:
    """What :func:`load`, :func:`of_store` and :func:`proposal_of_store` give, kept in memory
    (least recently used dropped first, :data:`CACHE_ENTRIES` at most). Keyed by the plan (id,
    created, edit version: an edit of a draft is a new key), the overlay (id, created: a
    replaced overlay is a new key) and the tolerance or strategy; :meth:`forget` drops an
    overlay's entries when it is deleted. At 1.4 M households a cross-walk is 2–4 s and a
    proposal (ours) about three times more: the map, the sheets and the compare page ask for
    the same ones again."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = max(0, entries)
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, engine: Engine, plan_id: int, department: str) -> tuple[Any, ...]:
        plan = get_plan(engine, plan_id)
        overlay = get_overlay(engine, plan.territory_id, department)
        return (plan_id, str(plan.created_at), plan.edit_version, int(overlay["id"]),
                str(overlay["created_at"]))

    def _get(self, key: tuple[Any, ...], make: Any) -> tuple[Any, bool]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key], True
        value = make()   # outside the lock: a slow cross-walk does not hold the others up
        with self._lock:
            if self.entries:
                self._items[key] = value
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
        return value, False

    def crosswalk(self, engine: Engine, plan_id: int, department: str,
                  tolerance: float = SLIVER_SHARE) -> tuple[PlanOverlay, Crosswalk, bool]:
        """The plan and overlay read, their cross-walk, and whether it was kept."""
        key = self._key(engine, plan_id, department)
        found, _ = self._get((*key, "found"), lambda: load(engine, plan_id, department))
        cw, kept = self._get((*key, "crosswalk", float(tolerance)),
                             lambda: of_store(found, tolerance))
        return found, cw, kept

    def proposal(self, engine: Engine, plan_id: int, department: str,
                 by: Strategy = "households") -> tuple[PlanOverlay, Proposal, bool]:
        """The plan and overlay read, the aligned proposal, and whether it was kept."""
        found, cw, _ = self.crosswalk(engine, plan_id, department)
        key = self._key(engine, plan_id, department)
        proposal, kept = self._get((*key, "proposal", by),
                                   lambda: proposal_of_store(found, cw, by))
        return found, proposal, kept

    def forget(self, overlay_id: int) -> None:
        """Drop every entry of the overlay (deleted or replaced)."""
        with self._lock:
            for key in [k for k in self._items if k[3] == overlay_id]:
                del self._items[key]


def map_layer(found: PlanOverlay, cw: Crosswalk) -> gpd.GeoDataFrame:
    """For the planner map (WGS84): each unit's outline (``kind`` unit, with whole/partial
    grids and slivers) and each sliver's shape (``kind`` sliver: grid, unit, area)."""
    units = found.units.reset_index(drop=True)
    facts = cw.units.set_index("code")
    rows: list[dict[str, Any]] = [
        {"kind": "unit", "code": str(c), "name": n, "whole": bool(facts.loc[c, "whole"]),
         "whole_grids": int(facts.loc[c, "whole_grids"]),
         "partial_grids": int(facts.loc[c, "partial_grids"]),
         "slivers": int(facts.loc[c, "slivers"])}
        for c, n in zip(units["code"], units["name"], strict=True)]
    geoms = list(units.geometry.to_numpy())
    slivers = cw.pieces[cw.pieces["sliver"]]
    if len(slivers):
        g = found.grids.geometry.to_numpy()[slivers["g"].to_numpy()]
        u = units.geometry.to_numpy()[slivers["u"].to_numpy()]
        shapes = shapely.intersection(shapely.make_valid(g), shapely.make_valid(u))
        for piece, shape in zip(slivers.itertuples(), shapes, strict=True):
            rows.append({"kind": "sliver", "code": f"{piece.grid_code}/{piece.unit_code}",
                         "grid_code": piece.grid_code, "unit_code": piece.unit_code,
                         "area_m2": round(float(piece.area_m2), 1),
                         "area_share": round(float(piece.area_share), 4)})
            geoms.append(shape)
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs="EPSG:4326")
