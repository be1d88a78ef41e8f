"""Route events against a territory's published plan, held in memory and refreshed on publish."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from events.router import GridRouter
from gis import divisions
from gis.crs import to_wgs84_checked
from gis.database import make_engine
from gis.errors import Conflict, GridmapError, NotFound
from gis.models.plans import Plan
from gis.models.staff import Staff, StaffGrid
from gis.models.territories import AdminArea, Territory
from gis.plans import published_plan_id, read_grids


@dataclass
class Published:
    """One territory's published grids, ready to route against."""

    territory_id: int
    plan_id: int
    router: GridRouter
    grid_ids: np.ndarray
    codes: np.ndarray
    villages: np.ndarray
    workers: dict[str, str]
    names: dict[str, str]

    def route(self, x: Any, y: Any, coord_sys: str | int) -> list[dict[str, Any]]:
        """Route points given in any coordinate system; one answer per point."""
        lon, lat = to_wgs84_checked(np.atleast_1d(np.asarray(x, dtype=float)),
                                    np.atleast_1d(np.asarray(y, dtype=float)), coord_sys)
        routed = self.router.route_checked(lon, lat)
        out = []
        for i in range(len(lon)):
            inside = int(routed.index[i])
            g = inside if inside >= 0 else int(routed.nearest[i])
            other = int(routed.other[i])
            village = str(self.villages[g]) if g >= 0 else None
            code = str(self.codes[g]) if g >= 0 else None
            out.append({
                "lon": float(lon[i]), "lat": float(lat[i]),
                "territory_id": self.territory_id, "plan_id": self.plan_id,
                "grid_id": int(self.grid_ids[g]) if g >= 0 else None,
                "grid_code": code,
                "village_code": village, "town_code": divisions.ancestor(village, "town"),
                "district_code": divisions.ancestor(village, "district"),
                "village_name": self.names.get(village or ""),
                "town_name": self.names.get(divisions.ancestor(village, "town") or ""),
                "distance_m": round(float(routed.distance_m[i]), 2),
                "other_grid_code": str(self.codes[other]) if other >= 0 else None,
                "grid_worker": self.workers.get(code or ""),
                "flags": list(routed.flags[i]),
            })
        return out

    def route_columns(self, x: Any, y: Any, coord_sys: str | int) -> dict[str, Any]:
        """Route many points at once (bulk import): the fields :meth:`route` answers, less the
        names and the grid worker, as columns — ``lon``/``lat`` float arrays, object arrays
        (text, int, float or None) for the others, ``flags`` a list of shared read-only lists,
        ``territory_id`` and ``plan_id`` single values. The same values as :meth:`route`."""
        lon, lat = to_wgs84_checked(np.atleast_1d(np.asarray(x, dtype=float)),
                                    np.atleast_1d(np.asarray(y, dtype=float)), coord_sys)
        routed = self.router.route_checked(lon, lat)
        g = np.where(routed.index >= 0, routed.index, routed.nearest)
        has = g >= 0
        rows = np.where(has, g, len(self.codes))  # the last entry of each table: None
        tables = self._tables
        distance = routed.distance_m.astype(object)
        moved = np.flatnonzero(routed.distance_m != 0.0)
        distance[moved] = [round(v, 2) for v in routed.distance_m[moved].tolist()]
        other = np.where(routed.other >= 0, routed.other, len(self.codes))
        return {
            "lon": lon, "lat": lat, "territory_id": self.territory_id, "plan_id": self.plan_id,
            **{k: t[rows] for k, t in tables.items()},
            "distance_m": distance,
            "other_grid_code": tables["grid_code"][other],
            "flags": routed.flags,
        }

    @functools.cached_property
    def _tables(self) -> dict[str, np.ndarray]:
        """Per grid row (one more row at the end: None), the values :meth:`route` gives."""
        villages = [str(v) for v in self.villages]

        def table(values: list[Any]) -> np.ndarray:
            out = np.empty(len(values) + 1, dtype=object)
            out[:-1] = values
            out[-1] = None
            return out

        return {"grid_id": table([int(i) for i in self.grid_ids]),
                "grid_code": table([str(c) for c in self.codes]),
                "village_code": table(villages),
                "town_code": table([divisions.ancestor(v, "town") for v in villages]),
                "district_code": table([divisions.ancestor(v, "district")
                                        for v in villages])}


class RouterCache:
    """Routers of published plans by territory. PostGIS stays the record: a router is
    rebuilt when the territory's published plan changes (checked every ``ttl_s``
    seconds, and at once in the process that publishes)."""

    def __init__(self, engine: Engine, near_m: float = 10.0, ttl_s: float = 2.0) -> None:
        self.engine = engine
        self.near_m = near_m
        self.ttl_s = ttl_s
        self._cache: dict[int, tuple[float, Published]] = {}
        #: (when checked, the territory) of :meth:`default_territory`
        self._default: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self._building: dict[int, threading.Lock] = {}

    def invalidate(self, territory_id: int | None = None) -> None:
        with self._lock:
            self._default = None
            if territory_id is None:
                self._cache.clear()
            else:
                self._cache.pop(territory_id, None)

    def fresh(self, territory_id: int | None = None) -> Published | None:
        """The router :meth:`get` would give, when that needs no database work (it was checked
        less than ``ttl_s`` ago); else None."""
        now = time.monotonic()
        if territory_id is None:
            default = self._default
            if default is None or now - default[0] >= self.ttl_s:
                return None
            territory_id = default[1]
        cached = self._cache.get(territory_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        return None

    def default_territory(self) -> int:
        """The only territory with a published plan (when the caller named none); like the
        routers, checked again after ``ttl_s`` seconds."""
        now = time.monotonic()
        default = self._default
        if default is not None and now - default[0] < self.ttl_s:
            return default[1]
        with self.engine.connect() as conn:
            ids = sorted({int(t) for (t,) in conn.execute(
                select(Plan.territory_id).where(Plan.status == "published"))})
        if len(ids) == 1:
            self._default = (now, ids[0])
            return ids[0]
        if not ids:
            raise Conflict("no territory has a published plan yet: publish one "
                           "(POST /plans/{id}/publish) before routing events")
        raise GridmapError("several territories have a published plan "
                           f"({', '.join(map(str, ids))}): say which with territory_id")

    def get(self, territory_id: int | None = None) -> Published:
        tid = self.default_territory() if territory_id is None else territory_id
        cached = self._cache.get(tid)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        with self._lock:
            lock = self._building.setdefault(tid, threading.Lock())
        # One check (and build: seconds of CPU) per territory at a time; the requests that
        # waited find the fresh router. Without it, every request arriving during a build
        # started a build of its own.
        with lock:
            now = time.monotonic()
            cached = self._cache.get(tid)
            if cached is not None and now - cached[0] < self.ttl_s:
                return cached[1]
            return self._check(tid, cached, now)

    def _check(self, tid: int, cached: tuple[float, Published] | None, now: float
               ) -> Published:
        plan_id = published_plan_id(self.engine, tid)
        if plan_id is None:
            with self.engine.connect() as conn:
                exists = conn.execute(select(Territory.id).where(
                    Territory.id == tid)).first()
            if exists is None:
                raise NotFound(f"no territory {tid}")
            raise Conflict(f"territory {tid} has no published plan: publish one before "
                           "routing events to it")
        if cached is not None and cached[1].plan_id == plan_id:
            published = cached[1]
        else:
            published = self._build(tid, plan_id)
        with self._lock:
            self._cache[tid] = (now, published)
        return published

    def _build(self, territory_id: int, plan_id: int) -> Published:
        grids = read_grids(self.engine, plan_id)
        router = GridRouter.from_grids(grids[["code", "geometry"]], near_m=self.near_m)
        staff, links = Staff.__table__, StaffGrid.__table__
        admin = AdminArea.__table__
        with self.engine.connect() as conn:
            workers: dict[str, str] = {}
            for code, name in conn.execute(
                    select(links.c.grid_code, staff.c.name).select_from(
                        links.join(staff, links.c.staff_id == staff.c.id)).where(
                        staff.c.territory_id == territory_id,
                        staff.c.role == "grid_worker").order_by(staff.c.id)):
                workers.setdefault(str(code), str(name))
            names = {str(c): str(n) for c, n in conn.execute(
                select(admin.c.code, admin.c.name).where(admin.c.territory_id == territory_id))}
        return Published(territory_id, plan_id, router, grids["id"].to_numpy(),
                         grids["code"].to_numpy(), grids["village_code"].to_numpy(), workers,
                         names)


# --- bulk routing on a cluster's workers -------------------------------------------------------

_worker_caches: dict[tuple[str, float], RouterCache] = {}
_worker_lock = threading.Lock()


def route_chunk(url: str, near_m: float, territory_id: int, x: np.ndarray, y: np.ndarray,
                coord_sys: str | int) -> dict[str, Any]:
    """A chunk of a bulk import routed on a cluster worker (:meth:`Published.route_columns`):
    each worker process keeps the routers it built (per database), rebuilt when the
    territory's published plan changes, so a plan's router is built once per worker."""
    with _worker_lock:
        cache = _worker_caches.get((url, near_m))
        if cache is None:
            cache = _worker_caches[(url, near_m)] = RouterCache(make_engine(url), near_m)
    return cache.get(territory_id).route_columns(x, y, coord_sys)


def concat_columns(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns of routed chunks (:func:`route_chunk`, in order) as one; the chunks must
    agree on the plan (a publish between two chunks: routed again by the caller)."""
    first = parts[0]
    if any(p["plan_id"] != first["plan_id"] for p in parts):
        raise Conflict("the territory's published plan changed while the import was routed: "
                       "send it again")
    out: dict[str, Any] = {"territory_id": first["territory_id"], "plan_id": first["plan_id"]}
    for key, value in first.items():
        if key in out:
            continue
        if isinstance(value, list):
            out[key] = [v for p in parts for v in p[key]]
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out
