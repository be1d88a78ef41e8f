"""Towns as independent pieces of work: a territory cut into towns (a big town into groups of
its villages), each partitioned by the engine on its own, and the join of their grids.

Grids nest in villages and villages in towns, so a town's grids depend only on its own
villages and what lies around them. :func:`split_territory` cuts a territory into
:class:`Piece` s, each a territory of its own: the villages of one town (or of a group of a
big town's villages), the buildings whose point lies in them, and every other feature
within :data:`MARGIN_M` of them (and of their district: a neighbouring district's roads are
not this district's context). :func:`partition_piece` runs the unchanged engine
(:func:`partitioning.engine.partition_territory`) on one piece, in the territory's metric
CRS. :func:`join` puts the pieces back together: the grids and blocks side by side (codes
are per village, so they never collide: checked), the 四至 of a side on a piece's edge
naming the grid across it, and one report.

A piece's result depends only on the piece, never on which pieces were cut beside it or
where it ran: a district gives the same grids alone as inside a province, and one worker
the same as many.
"""

from __future__ import annotations

import contextlib
import gc
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gis.contract import Territory
from gis.divisions import ancestor
from gis.errors import GridmapError
from partitioning import boundaries, quality
from partitioning.engine import PartitionResult, partition_territory
from partitioning.params import PartitionParams

#: Features (roads, water, facilities…) within this distance (m) of a piece are given to
#: it: line ends are joined to lines up to ``gap_strong_m`` away, a grid side follows a
#: barrier within 12 m and an inferred street is named after a place within 60 m.
MARGIN_M = 100.0
#: A town with more households than this is cut into groups of its villages of about this
#: many (consecutive in the file's order), so that no single piece holds a large share of
#: a city's work. A constant: the pieces, hence the grids, never depend on the cluster.
GROUP_HOUSEHOLDS = 60_000
#: Layers every piece takes whole-feature (not clipped) when they come near it.
CONTEXT = ("roads", "water", "ridges", "railways", "facilities", "dedicated_areas", "landuse",
           "overlay_lines")


@dataclass
class PieceTerritory(Territory):
    """A piece's layers (WGS84), partitioned in the metric CRS of the whole territory."""

    fixed_crs: CRS | None = None

    @property
    def metric_crs(self) -> CRS:
        return self.fixed_crs if self.fixed_crs is not None else super().metric_crs


@dataclass
class Piece:
    """One unit of work: a town, or a group of a big town's villages."""

    key: str                   # the town code, "440111001/2" for its second group
    town: str
    district: str | None
    villages: list[str]
    households: int            # given counts (and 1 per building without one): for ordering
    territory: PieceTerritory


@dataclass
class PieceResult:
    """What a piece's task sends back: its grids and blocks (metric CRS), the engine's
    report, and the figures the join needs."""

    key: str
    town: str
    households: int
    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    report: dict[str, Any]
    streets: gpd.GeoDataFrame | None
    cuts: gpd.GeoDataFrame | None
    village_area: float        # m², the piece's villages
    perimeter: float           # m, its grids' boundaries (weighs the barrier shares)
    seconds: float             # wall time of the task
    cpu_seconds: float
    worker: str = ""
    started: float = 0.0       # when the task started (epoch seconds)


class Split:
    """A territory cut into pieces, largest first, and what the cut noticed.

    The pieces are cut on first use (:meth:`piece`), so a caller can hand the first ones to
    the workers while the rest are still being cut; :attr:`pieces` cuts them all. Pickled,
    a split carries its pieces, all cut."""

    def __init__(self, sizes: list[tuple[str, int]], crs: CRS, cut: Callable[[int], Piece],
                 seconds: float, notes: list[str] | None = None) -> None:
        #: (key, households) of each piece, in order (largest first).
        self.sizes = sizes
        self.crs = crs
        self.notes = notes or []
        self._cut: Callable[[int], Piece] | None = cut
        self._pieces: dict[int, Piece] = {}
        self._seconds = seconds

    def __len__(self) -> int:
        return len(self.sizes)

    def piece(self, i: int) -> Piece:
        """The ``i``-th piece (cut now if it was not yet)."""
        got = self._pieces.get(i)
        if got is None:
            if self._cut is None:
                raise IndexError(f"the split has no piece {i}")
            started = time.perf_counter()
            got = self._pieces[i] = self._cut(i)
            self._seconds += time.perf_counter() - started
            if len(self._pieces) == len(self.sizes):
                self._cut = None            # (its layers and trees are not needed any more)
        return got

    @property
    def pieces(self) -> list[Piece]:
        return [self.piece(i) for i in range(len(self.sizes))]

    @property
    def seconds(self) -> float:
        """Time spent cutting so far (s)."""
        return round(self._seconds, 3)

    def __getstate__(self) -> dict[str, Any]:
        pieces = self.pieces
        return {"sizes": self.sizes, "crs": self.crs, "notes": self.notes,
                "pieces": pieces, "seconds": self._seconds}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.sizes, self.crs, self.notes = state["sizes"], state["crs"], state["notes"]
        self._pieces = dict(enumerate(state["pieces"]))
        self._cut, self._seconds = None, state["seconds"]


def _town_of(villages: pd.DataFrame) -> np.ndarray:
    """The town of each village: its parent code, else the first 9 digits of its code,
    else the village itself (a piece of its own)."""
    parents = villages["parent_code"] if "parent_code" in villages else \
        pd.Series([None] * len(villages), index=villages.index)
    out = []
    for code, parent in zip(villages["code"].astype(str), parents, strict=True):
        text = "" if parent is None or pd.isna(parent) else str(parent).strip()
        out.append(text or ancestor(code, "town") or code)
    return np.array(out, dtype=object)


def _district_of(admin: pd.DataFrame, towns: Iterable[str]) -> dict[str, str | None]:
    """The district of each town: its parent code, else the first 6 digits of its code."""
    rows = admin.set_index(admin["code"].astype(str))
    parent = rows["parent_code"] if "parent_code" in rows else pd.Series(dtype=object)
    out: dict[str, str | None] = {}
    for town in towns:
        given = parent.get(town) if town in parent.index else None
        text = "" if given is None or pd.isna(given) else str(given).strip()
        out[town] = text or ancestor(town, "district")
    return out


def split_territory(territory: Territory, group_households: int = GROUP_HOUSEHOLDS, *,
                    lazy: bool = False) -> Split:
    """Cut ``territory`` into pieces (see the module's docstring), largest first.

    ``lazy``: only plan the cut (which villages go to which piece, and each piece's
    households); each piece is cut when :meth:`Split.piece` first asks for it."""
    started = time.perf_counter()
    layers = territory.layers
    admin = layers["admin_areas"]
    level = admin["level"].astype(str)
    villages = admin[level == "village"].reset_index(drop=True)
    if villages.empty:
        raise GridmapError(
            "admin_areas has no village/community areas (level village): grids are cut "
            "inside villages and communities, so add them")
    crs = territory.metric_crs
    town_of = _town_of(villages)
    village_geoms = villages.geometry.to_numpy()
    # Each building to one village (the engine's rule: a point on its surface; one on an
    # edge or outside every village to the nearest), so it is counted in one piece only.
    buildings = layers.get("buildings")
    b_village = np.empty(0, dtype=np.int64)
    b_weight = np.empty(0)
    if buildings is not None and len(buildings):
        points = shapely.point_on_surface(buildings.geometry.to_numpy())
        tree = shapely.STRtree(village_geoms)
        bi, vi = tree.query(points, predicate="within")
        b_village = np.full(len(points), -1, dtype=np.int64)
        b_village[bi] = vi
        lost = np.flatnonzero(b_village < 0)
        if lost.size:
            li, nb = tree.query_nearest(points[lost], all_matches=False)
            b_village[lost[li]] = nb
        given = pd.to_numeric(buildings["households"], errors="coerce") \
            if "households" in buildings else pd.Series(np.nan, index=buildings.index)
        b_weight = given.fillna(1.0).clip(lower=0).to_numpy(dtype=float)
    v_households = np.bincount(b_village, weights=b_weight, minlength=len(villages))

    # Towns in the order they first appear; a big town into groups of villages.
    groups: list[tuple[str, str, np.ndarray]] = []
    order = pd.unique(town_of)
    by_town = pd.Series(np.arange(len(villages))).groupby(town_of).indices
    for town in order:
        members = np.sort(np.asarray(by_town[town]))
        total = float(v_households[members].sum())
        n = max(1, int(np.ceil(total / group_households))) if group_households > 0 else 1
        if n == 1 or len(members) == 1:
            groups.append((str(town), str(town), members))
            continue
        # Consecutive villages, cut where the running total crosses each n-th share.
        running = np.cumsum(v_households[members])
        cuts = np.searchsorted(running, total * np.arange(1, n) / n, side="left") + 1
        cuts = np.unique(np.clip(cuts, 1, len(members) - 1))
        for g, part in enumerate(np.split(members, cuts), start=1):
            groups.append((f"{town}/{g}", str(town), part))

    district_of = _district_of(admin, order)
    districts = {str(c): g for c, g in zip(admin["code"].astype(str), admin.geometry.to_numpy(),
                                           strict=True)}
    # The margin is drawn in metres around each piece, then taken back to WGS84.
    metric_villages = gpd.GeoSeries(village_geoms, crs=villages.crs).to_crs(crs).to_numpy()
    trees = {name: shapely.STRtree(layers[name].geometry.to_numpy())
             for name in CONTEXT if name in layers and len(layers[name])}
    households = [int(v_households[members].sum()) for _, _, members in groups]
    # Largest first (ties in the file's order).
    order_by_size = sorted(range(len(groups)), key=lambda g: -households[g])

    def cut(i: int) -> Piece:
        key, town, members = groups[order_by_size[i]]
        district = district_of.get(town)
        area = shapely.buffer(shapely.union_all(metric_villages[members]), MARGIN_M)
        near = gpd.GeoSeries([area], crs=crs).to_crs(villages.crs).iloc[0]
        if district is not None and district in districts:
            near = shapely.intersection(near, districts[district])
        piece_layers: dict[str, gpd.GeoDataFrame] = {}
        for name, gdf in layers.items():
            if name == "admin_areas":
                piece_layers[name] = villages.iloc[members].reset_index(drop=True)
            elif name == "buildings":
                piece_layers[name] = gdf.iloc[np.flatnonzero(np.isin(b_village, members))] \
                    .reset_index(drop=True)
            elif name in trees:
                hit = np.sort(trees[name].query(near, predicate="intersects"))
                piece_layers[name] = _clipped(gdf.iloc[hit].reset_index(drop=True), near)
            else:
                piece_layers[name] = gdf.iloc[:0]
        return Piece(
            key=key, town=town, district=district,
            villages=[str(c) for c in villages["code"].to_numpy()[members]],
            households=households[order_by_size[i]],
            territory=PieceTerritory(f"{territory.name} {key}", piece_layers,
                                     fixed_crs=crs))

    sizes = [(groups[g][0], households[g]) for g in order_by_size]
    split = Split(sizes, crs, cut, time.perf_counter() - started)
    if not lazy:
        split.pieces  # noqa: B018  (every piece cut now)
    return split


def _clipped(gdf: gpd.GeoDataFrame, area: shapely.Geometry) -> gpd.GeoDataFrame:
    """Features reaching out of ``area`` cut to it (a river or a long road is not worked on
    whole by every piece it passes); points and features inside it stay as they are."""
    geoms = gdf.geometry.to_numpy()
    if not len(geoms):
        return gdf
    shapely.prepare(area)
    out_of = ~shapely.contains_properly(area, geoms) & \
        (shapely.get_type_id(geoms) != 0)
    if not out_of.any():
        return gdf
    geoms = geoms.copy()
    geoms[out_of] = shapely.intersection(geoms[out_of], area)
    # A polygon cut by a line of the area may leave slivers of lower dimension: keep its
    # own kind of geometry only.
    dim = shapely.get_dimensions(gdf.geometry.to_numpy())
    geoms[out_of] = [_of_dimension(g, d) for g, d in zip(geoms[out_of], dim[out_of],
                                                           strict=True)]
    keep = ~shapely.is_empty(geoms)
    return gdf.set_geometry(geoms)[keep].reset_index(drop=True)


def _of_dimension(geom: shapely.Geometry, dim: int) -> shapely.Geometry:
    if shapely.get_dimensions(geom) == dim and shapely.get_type_id(geom) != 7:
        return geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_dimensions(p) == dim]
    if not parts:
        return shapely.from_wkt("GEOMETRYCOLLECTION EMPTY")
    return parts[0] if len(parts) == 1 else (
        shapely.multipolygons(parts) if dim == 2 else shapely.multilinestrings(parts))


def partition_piece(piece: Piece, params: PartitionParams,
                    check: Callable[[], None] | None = None) -> PieceResult:
    """The engine on one piece, in one process (the cluster runs pieces side by side);
    ``check()`` is called at each stage of the engine (it raises to stop the piece)."""
    started, cpu, epoch = time.perf_counter(), time.process_time(), time.time()
    run = PartitionParams(**{**params.__dict__, "workers": 1})
    with _rare_collections():
        result = partition_territory(piece.territory, run,
                                     None if check is None else lambda _stage, _done: check())
    villages = piece.territory.layers["admin_areas"].to_crs(piece.territory.metric_crs)
    return PieceResult(
        key=piece.key, town=piece.town, households=piece.households, grids=result.grids,
        blocks=result.blocks, report=result.report, streets=result.streets, cuts=result.cuts,
        village_area=float(shapely.area(villages.geometry.to_numpy()).sum()),
        perimeter=float(shapely.length(result.grids.geometry.to_numpy()).sum()),
        seconds=round(time.perf_counter() - started, 3),
        cpu_seconds=round(time.process_time() - cpu, 3), started=epoch)


#: Garbage-collector thresholds while the engine runs a piece (Python's: 700, 10, 10).
ENGINE_GC = (10_000, 50, 100)


@contextlib.contextmanager
def _rare_collections() -> Iterator[None]:
    """Collect cycles rarely while the engine runs: it makes many short-lived containers
    and few cycles, and in a worker process (Dask's own objects are long-lived) the full
    collections the default thresholds trigger took ~5% of a piece's time (measured: 1.1 s
    of 21 s over the 53 pieces of the 1.4 M district; 0.1 s with these). The thresholds are
    the process's: put back when the last piece running in it ends."""
    with _gc_lock:
        if not _gc_users:
            _gc_before[:] = gc.get_threshold()
            gc.set_threshold(*ENGINE_GC)
        _gc_users.append(1)
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users.pop()
            if not _gc_users:
                gc.set_threshold(*_gc_before)


_gc_lock = threading.Lock()
_gc_users: list[int] = []
_gc_before: list[int] = []


def partition_pieces(territory: Territory, params: PartitionParams | None = None
                     ) -> PartitionResult:
    """Every piece one after the other in this process, joined: what the cluster computes,
    without one (tests and small territories)."""
    params = params or PartitionParams()
    started = time.perf_counter()
    split = split_territory(territory)
    results = [partition_piece(p, params) for p in split.pieces]
    return join(results, split.crs, params, started=started, split_s=split.seconds)


# --- the join ------------------------------------------------------------------------------

#: Report figures that are a share of the grids' boundary length: weighted by perimeter.
_WEIGHTED = ("barrier_boundary_share",)
_WEIGHTED_DICTS = ("barrier_share_by_kind",)
#: Report figures whose largest value over the pieces is the territory's.
_LARGEST = ("largest_estimate",)
_SIDES = re.compile(r"^东至(.*)，南至(.*)，西至(.*)，北至(.*)$")
EDGE = "辖区边界"


def join(results: Sequence[PieceResult], crs: CRS, params: PartitionParams, *,
         started: float | None = None, split_s: float = 0.0) -> PartitionResult:
    """One partition from the pieces' results (any order)."""
    t0 = time.perf_counter()
    results = sorted(results, key=lambda r: r.key)
    if not results:
        raise GridmapError("the territory has no village to partition")
    grids = gpd.GeoDataFrame(pd.concat([r.grids for r in results], ignore_index=True),
                             geometry="geometry", crs=crs)
    dup = grids["code"][grids["code"].duplicated()]
    if len(dup):   # cannot happen: codes are per village, villages per piece
        raise RuntimeError(f"grid codes {sorted(set(dup))[:5]} made by two pieces")
    blocks = gpd.GeoDataFrame(pd.concat([r.blocks for r in results], ignore_index=True),
                              geometry="geometry", crs=crs)
    blocks["block_id"] = np.arange(len(blocks))
    grids = _sides_across(grids)
    grids = grids.sort_values("code", kind="stable").reset_index(drop=True)

    village_area = sum(r.village_area for r in results)
    sum_area = float(grids["area_m2"].sum())
    overlap = sum(float(r.report.get("overlap_m2", 0.0)) for r in results)
    report = _combine([r.report for r in results], [r.perimeter for r in results])
    report.update(quality.plan_report(grids, village_area, sum_area - overlap,
                                      params.min_households, params.max_households))
    report["barrier_inside"] = sorted(report.get("barrier_inside", []),
                                      key=lambda row: row["code"])
    streets = _concat([r.streets for r in results], crs)
    cuts = _concat([r.cuts for r in results], crs)
    if streets is not None:
        report["inferred_streets"] = len(streets)
        report["inferred_streets_km"] = round(float(shapely.length(
            streets.geometry.to_numpy()).sum()) / 1000, 2)
    report["metric_crs"] = f"EPSG:{crs.to_epsg()}"
    first = min(r.started for r in results)
    report["pieces"] = [{"key": r.key, "town": r.town, "households": r.households,
                         "grids": len(r.grids), "seconds": r.seconds,
                         "cpu_seconds": r.cpu_seconds, "worker": r.worker,
                         "started_s": round(r.started - first, 3)}
                        for r in sorted(results, key=lambda r: -r.seconds)]
    report["pieces_seconds"] = round(sum(r.seconds for r in results), 3)
    report["timings_s"] = {**report.get("timings_s", {}), "split": round(split_s, 3),
                           "join": round(time.perf_counter() - t0, 3)}
    if started is not None:
        report["runtime_s"] = round(time.perf_counter() - started, 3)
    return PartitionResult(grids, blocks, report, params, streets, cuts)


def _concat(frames: Iterable[gpd.GeoDataFrame | None], crs: CRS) -> gpd.GeoDataFrame | None:
    kept = [f for f in frames if f is not None]
    if not kept:
        return None
    return gpd.GeoDataFrame(pd.concat(kept, ignore_index=True), geometry="geometry", crs=crs)


def _combine(reports: Sequence[dict[str, Any]], weights: Sequence[float]) -> dict[str, Any]:
    """The pieces' reports as one: counts and times added, boundary shares weighted by the
    grids' perimeter, the largest of maxima, lists joined; anything else from the first
    piece (the parameters, the estimate rule)."""
    out: dict[str, Any] = {}
    total_w = float(sum(weights)) or 1.0
    keys = list(dict.fromkeys(k for r in reports for k in r))
    for key in keys:
        values = [r[key] for r in reports if key in r]
        first = values[0]
        if key in _WEIGHTED:
            out[key] = round(sum(float(r.get(key, 0.0)) * w for r, w in
                                 zip(reports, weights, strict=True)) / total_w, 4)
        elif key in _WEIGHTED_DICTS:
            kinds = sorted({k for v in values for k in v})
            out[key] = {k: round(sum(float(r.get(key, {}).get(k, 0.0)) * w for r, w in
                                     zip(reports, weights, strict=True)) / total_w, 4)
                        for k in kinds}
        elif key in _LARGEST:
            out[key] = max(values)
        elif isinstance(first, bool | str):
            out[key] = first
        elif isinstance(first, int | float):
            total = sum(values)
            out[key] = round(total, 3) if isinstance(total, float) else total
        elif isinstance(first, dict) and all(isinstance(v, int | float) and
                                             not isinstance(v, bool)
                                             for d in values for v in d.values()):
            merged: dict[str, Any] = {}
            for d in values:
                for k, v in d.items():
                    merged[k] = merged.get(k, 0) + v
            out[key] = {k: round(v, 3) if isinstance(v, float) else v
                        for k, v in merged.items()}
        elif isinstance(first, list):
            out[key] = [x for v in values for x in v]
        else:
            out[key] = first
    return out


def _sides_across(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A side of a grid on its piece's edge that names nothing (辖区边界) names the grid
    across it, as the engine names a neighbour inside a piece; the territory's own edge
    stays 辖区边界."""
    texts = grids["boundary_text"].to_numpy(dtype=object)
    todo = np.array([EDGE in str(t) for t in texts])
    if not todo.any():
        return grids
    geoms = grids.geometry.to_numpy()
    pick = np.flatnonzero(todo)
    segments = boundaries.boundary_segments(geoms[pick])
    segments["grid"] = pick[segments["grid"].to_numpy()]
    neighbour = boundaries.neighbours(segments, geoms)
    local = segments.assign(grid=np.searchsorted(pick, segments["grid"].to_numpy()))
    across = boundaries.boundary_texts(
        local, np.full(len(local), -1, dtype=np.int64), gpd.GeoDataFrame(geometry=[]),
        neighbour, grids["code"].to_numpy(dtype=object), len(pick))
    out = texts.copy()
    for row, text in zip(pick, across, strict=True):
        old, new = _SIDES.match(str(texts[row])), _SIDES.match(str(text))
        if old is None or new is None:
            continue
        sides = [o if o != EDGE else n for o, n in zip(old.groups(), new.groups(),
                                                        strict=True)]
        out[row] = "，".join(f"{d}至{s}" for d, s in zip(boundaries.DIRECTIONS, sides,
                                                         strict=True))
    return grids.assign(boundary_text=out)
