"""Geocode Chinese addresses against a territory's own address points, roads and areas."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
import shapely.ops
from rapidfuzz import fuzz, process

from events.address_index import AddressTables
from events.address_text import Parsed
from gis import crs as crsmod

#: How precisely an address was placed, best first: a door plate (门牌; with its building
#: when one is named), a building found by compound and number, a compound (小区), a point
#: interpolated along the named road, a road intersection, a community/village, nothing.
LEVELS = ("door", "building", "compound", "road", "intersection", "community", "none")
RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass
class Answer:
    """One geocoded address."""

    query: str
    level: str
    confidence: float
    x: float | None = None  # metric
    y: float | None = None
    parsed: Parsed | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    match: str = ""
    area_code: str | None = None


class AddressIndex(AddressTables):
    """A territory's addresses, roads and admin areas, ready to geocode against (in the
    territory's metric coordinate system; answers in any gis.crs system)."""

    def __init__(self, layers: Mapping[str, gpd.GeoDataFrame], metric_crs: Any) -> None:
        super().__init__(layers, metric_crs)
        self._cache: dict[str, Answer] = {}

    # -- matching --------------------------------------------------------

    def _road(self, name: str | None, number: int | None = None) -> tuple[str | None, float]:
        """The territory's road of that name: exact, else the closest spelling; among roads
        spelt as close, the one with a door of that ``number`` (湾滘巷8号: 湾滘一巷 has an 8,
        湾滘二巷 not). Two roads as close and both (or neither) with the number cost 20%."""
        if not name:
            return None, 0.0
        if name in self.road_geom or any(k[0] == name for k in self.numbers):
            return name, 1.0
        found = process.extract(name, self.road_keys, scorer=fuzz.ratio, score_cutoff=66,
                                limit=8)
        if not found:
            return None, 0.0
        best = float(found[0][1])
        tied = [str(f[0]) for f in found if float(f[1]) >= best - 1e-9]
        score = best / 100.0
        if len(tied) > 1:
            having = [r for r in tied if number is not None
                      and (r, number, None) in self.doors] if number is not None else []
            if len(having) == 1:
                return having[0], score * 0.95
            return (having or tied)[0], score * 0.8
        return tied[0], score

    def _compound(self, name: str | None) -> tuple[str | None, float]:
        if not name:
            return None, 0.0
        if name in self.compounds:
            return name, 1.0
        found = process.extractOne(name, self.compound_keys, scorer=fuzz.ratio,
                                   score_cutoff=70)
        if found is None:
            # The compound's name written inside a longer text (…鹤田小区北门).
            found = process.extractOne(name, self.compound_keys, scorer=fuzz.partial_ratio,
                                       score_cutoff=90)
            if found is None or len(str(found[0])) < 3:
                return None, 0.0
        return str(found[0]), float(found[1]) / 100.0

    def _centroid(self, rows: Sequence[int]) -> tuple[float, float]:
        idx = np.asarray(rows)
        return float(self.px[idx].mean()), float(self.py[idx].mean())

    def _consistent(self, rows: Sequence[int], areas: list[str]) -> bool:
        """Whether the areas the address names contain the point found."""
        if not areas:
            return True
        v = self.village[rows[0]]
        return all(v.startswith(a) for a in areas) if v else True

    def geocode(self, address: str) -> Answer:
        """The best place for one address (in metric coordinates; see :meth:`to`)."""
        cached = self._cache.get(address)
        if cached is not None:
            return cached
        answer = self._geocode(address)
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[address] = answer
        return answer

    def _answer(self, q: str, p: Parsed, level: str, conf: float, xy: tuple[float, float],
                match: str, cands: list[dict[str, Any]] | None = None,
                rows: Sequence[int] | None = None) -> Answer:
        if rows is not None and len(rows) and not self._consistent(rows, p.areas):
            conf *= 0.6  # the named community does not hold the point found
        area = None
        if rows is not None and len(rows):
            area = self.village[rows[0]] or None
        elif p.areas:
            area = p.areas[-1]
        return Answer(q, level, round(min(conf, 1.0), 3), xy[0], xy[1], p,
                      cands or [], match, area)

    def _geocode(self, q: str) -> Answer:
        p = self.parse(q)
        answer = self._match(q, p)
        if p.ambiguous and answer.confidence < 0.9:
            # 永泰街同和路5号: 永泰街(道) + 同和路 rather than a road 永泰街同和路.
            other = self._match(q, self.parse(q, split_short=True))
            if other.confidence > answer.confidence:
                return other
        return answer

    def _match(self, q: str, p: Parsed) -> Answer:
        cands: list[dict[str, Any]] = []
        if p.cross:
            hit = self._intersection(p.cross)
            if hit is not None:
                xy, score = hit
                return self._answer(q, p, "intersection", 0.8 * score, xy, "intersection")
        road, road_score = self._road(p.road, p.number)
        if road is None and p.road and p.compound is None and p.number is not None:
            # A "road" that is not one: a compound or place named before the number.
            comp, _ = self._compound(p.road)
            if comp:
                p.compound, road = p.road, None
        if road is None and p.number is not None and not p.road and p.compound \
                and p.compound not in self.compounds and p.rest == p.compound:
            # A road whose road word is mistyped (同和露5号): the text before the number.
            guess, gscore = self._road(p.compound, p.number)
            if guess is not None:
                road, road_score, p.road, p.compound = guess, gscore, p.compound, None
        if p.number is not None:
            scope = road
            if scope is None and not p.rest and p.areas:
                scope = f"@{p.areas[-1]}"
            if scope is not None:
                door = self.doors.get((scope, p.number, p.sub_number)) or (
                    self.doors.get((scope, p.number, None)) if p.sub_number else None)
                if door is not None:
                    if p.building is not None and p.building in door.by_building:
                        row = door.by_building[p.building]
                        return self._answer(q, p, "door", 0.98 * road_score_or(road_score),
                                            (float(self.px[row]), float(self.py[row])),
                                            "door+building", rows=[row])
                    rows = door.points
                    conf = 0.97 if len(rows) == 1 else 0.92
                    if p.building is not None:
                        conf = 0.8  # the building number is not one of the door's
                    return self._answer(q, p, "door", conf * road_score_or(road_score),
                                        self._centroid(rows), "door", rows=rows)
        if p.compound:
            comp, cscore = self._compound(p.compound)
            if comp is not None:
                if p.building is not None and (comp, p.building) in self.compound_building:
                    row = self.compound_building[(comp, p.building)]
                    return self._answer(q, p, "building", 0.93 * cscore,
                                        (float(self.px[row]), float(self.py[row])),
                                        "compound+building", rows=[row])
                rows = self.compounds[comp]
                return self._answer(q, p, "compound", 0.75 * cscore, self._centroid(rows),
                                    "compound", rows=rows)
        if road is not None and p.number is not None:
            hit2 = self._interpolate(road, p.number)
            if hit2 is not None:
                xy, conf, near = hit2
                cands = [{"house_number": n, "x": float(self.px[r]), "y": float(self.py[r])}
                         for n, r in near]
                return self._answer(q, p, "road", conf * road_score, xy, "interpolated",
                                    cands, rows=[r for _, r in near])
        if road is not None and road in self.road_geom:
            geom = self.road_geom[road]
            if p.areas and p.areas[-1] in self.area_geom:
                inside = shapely.intersection(geom, self.area_geom[p.areas[-1]])
                geom = inside if not inside.is_empty else geom
            pt = shapely.line_interpolate_point(geom, 0.5, normalized=True) \
                if geom.geom_type == "LineString" else shapely.point_on_surface(geom)
            return self._answer(q, p, "road", 0.35 * road_score, (pt.x, pt.y), "road")
        if p.areas:
            code = p.areas[-1]
            pt = self.area_point[code]
            conf = 0.3 if self.area_level.get(code) == "village" else 0.1
            return self._answer(q, p, "community", conf, (pt.x, pt.y), "area")
        return Answer(q, "none", 0.0, None, None, p, [], "none")

    def _interpolate(self, road: str, number: int
                     ) -> tuple[tuple[float, float], float, list[tuple[int, int]]] | None:
        """A point for a house number not in the data: between the nearest numbers of the
        same parity (the same side of the road) around it."""
        items = self.numbers.get((road, number % 2)) or self.numbers.get((road, 1 - number % 2))
        if not items:
            return None
        nums = np.array([n for n, _ in items])
        k = int(np.searchsorted(nums, number))
        lo = items[k - 1] if k > 0 else None
        hi = items[k] if k < len(items) else None
        if lo is not None and hi is not None and hi[0] != lo[0]:
            t = (number - lo[0]) / (hi[0] - lo[0])
            x = self.px[lo[1]] + t * (self.px[hi[1]] - self.px[lo[1]])
            y = self.py[lo[1]] + t * (self.py[hi[1]] - self.py[lo[1]])
            gap = hi[0] - lo[0]
            conf = 0.8 if gap <= 12 else 0.65 if gap <= 40 else 0.5
            return (float(x), float(y)), conf, [lo, hi]
        one = lo or hi
        assert one is not None
        off = abs(one[0] - number)
        conf = 0.7 if off <= 6 else 0.5 if off <= 20 else 0.3
        return (float(self.px[one[1]]), float(self.py[one[1]])), conf, [one]

    def _intersection(self, cross: tuple[str, str]) -> tuple[tuple[float, float], float] | None:
        a, sa = self._road(cross[0])
        b, sb = self._road(cross[1])
        if a is None or b is None or a == b or a not in self.road_geom \
                or b not in self.road_geom:
            return None
        ga, gb = self.road_geom[a], self.road_geom[b]
        meet = shapely.intersection(ga, gb)
        if not meet.is_empty:
            pts = shapely.get_coordinates(meet)
            return (float(pts[0][0]), float(pts[0][1])), min(sa, sb)
        pa, pb = shapely.ops.nearest_points(ga, gb)
        if pa.distance(pb) > 60.0:
            return None
        return ((pa.x + pb.x) / 2, (pa.y + pb.y) / 2), 0.8 * min(sa, sb)

    # -- answers ---------------------------------------------------------

    def to(self, answers: Sequence[Answer], coord_sys: str) -> list[dict[str, Any]]:
        """Answers as JSON-ready dicts with the point in ``coord_sys`` (any gis.crs system)."""
        has = [i for i, a in enumerate(answers) if a.x is not None]
        xs = np.array([answers[i].x for i in has], dtype=float)
        ys = np.array([answers[i].y for i in has], dtype=float)
        out_x = out_y = np.empty(0)
        lon = lat = np.empty(0)
        if has:
            lon, lat = crsmod.transform(xs, ys, f"EPSG:{self.metric.to_epsg()}", "wgs84")
            out_x, out_y = crsmod.transform(lon, lat, "wgs84", coord_sys)
        where = {i: k for k, i in enumerate(has)}
        cand_pts = [(i, j, c) for i, a in enumerate(answers)
                    for j, c in enumerate(a.candidates)]
        cx = cy = np.empty(0)
        if cand_pts:
            cx, cy = crsmod.transform(np.array([c["x"] for _, _, c in cand_pts]),
                                      np.array([c["y"] for _, _, c in cand_pts]),
                                      f"EPSG:{self.metric.to_epsg()}", coord_sys)
        placed: dict[int, list[dict[str, Any]]] = {}
        for n, (i, _, c) in enumerate(cand_pts):
            placed.setdefault(i, []).append({**c, "x": float(cx[n]), "y": float(cy[n])})
        out: list[dict[str, Any]] = []
        for i, a in enumerate(answers):
            k = where.get(i)
            out.append({
                "query": a.query,
                "level": a.level,
                "confidence": a.confidence,
                "x": None if k is None else float(out_x[k]),
                "y": None if k is None else float(out_y[k]),
                "coord_sys": coord_sys,
                "lon": None if k is None else float(lon[k]),
                "lat": None if k is None else float(lat[k]),
                "area_code": a.area_code,
                "area_name": self.area_name.get(a.area_code or ""),
                "match": a.match,
                "parsed": a.parsed.as_dict() if a.parsed else None,
                "candidates": placed.get(i, []),
            })
        return out

    def geocode_many(self, addresses: Iterable[str]) -> list[Answer]:
        return [self.geocode(str(a)) for a in addresses]


def road_score_or(score: float) -> float:
    """A door found on a fuzzily matched road is as sure as the road's spelling."""
    return 1.0 if score == 0.0 else score


class IndexCache:
    """Address indexes of stored territories, built on first use (a stored territory's layers
    never change: a new upload is a new territory with a new id)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._cache: dict[int, AddressIndex] = {}
        self._lock = threading.Lock()
        self._building: dict[int, threading.Lock] = {}

    def fresh(self, territory_id: int) -> AddressIndex | None:
        return self._cache.get(territory_id)

    def get(self, territory_id: int) -> AddressIndex:
        found = self._cache.get(territory_id)
        if found is not None:
            return found
        with self._lock:
            lock = self._building.setdefault(territory_id, threading.Lock())
        with lock:  # one build per territory at a time; the others wait for it
            found = self._cache.get(territory_id)
            if found is None:
                found = self._build(territory_id)
                self._cache[territory_id] = found
        return found

    def _build(self, territory_id: int) -> AddressIndex:
        from gis.store import read_layer, territory_row

        row = territory_row(self.engine, territory_id)  # NotFound for no such territory
        layers = {name: read_layer(self.engine, territory_id, name)
                  for name in ("admin_areas", "roads", "buildings")}
        return AddressIndex(layers, pyproj.CRS.from_epsg(int(row.metric_epsg)))


def at_least(level: str, minimum: str) -> bool:
    """Whether ``level`` is as precise as ``minimum`` or more."""
    return RANK[level] <= RANK[minimum]
