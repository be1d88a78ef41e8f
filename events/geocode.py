"""Geocode Chinese addresses against a territory's own address points, roads and areas."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
import shapely.ops
from rapidfuzz import fuzz, process

from gis import crs as crsmod

#: How precisely an address was placed, best first: a door plate (门牌; with its building
#: when one is named), a building found by compound and number, a compound (小区), a point
#: interpolated along the named road, a road intersection, a community/village, nothing.
LEVELS = ("door", "building", "compound", "road", "intersection", "community", "none")
RANK = {level: i for i, level in enumerate(LEVELS)}

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
_CN_NUM = re.compile(r"[零〇一二两三四五六七八九十百千]+")
#: Written variants mapped to one spelling (after NFKC, which makes full-width digits,
#: letters and punctuation half-width): 號→号, 幢/座/棟/号楼/#楼 → 栋, 衖/弄堂 → 巷, ….
_REPLACE = (
    ("號", "号"), ("棟", "栋"), ("幢", "栋"), ("號樓", "栋"), ("号楼", "栋"), ("#楼", "栋"),
    ("座", "栋"), ("衖", "巷"), ("弄堂", "巷"), ("衚衕", "胡同"), ("胡衕", "胡同"),
    ("街道办事处", "街道"), ("街道办", "街道"), ("居委会", "社区"), ("居民委员会", "社区"),
    ("村委会", "村"), ("村民委员会", "村"), ("交汇处", "交叉口"), ("交界处", "交叉口"),
    ("交界", "交叉口"), ("交汇", "交叉口"), ("十字路口", "交叉口"), ("路口", "路交叉口"),
    ("門", "门"), ("門牌", "门牌"), ("區", "区"), ("鎮", "镇"), ("華", "华"), ("園", "园"),
)
_DROP = re.compile(r"[\s,，。.、;；:：()（）\[\]【】\"“”'‘’<>《》]+")
_PROVINCE = re.compile(r"^(?:[^省市区]{2,7}?(?:省|自治区|特别行政区))")
_CITY = re.compile(r"^(?:[^省市区县]{2,6}?(?:市|自治州|地区|盟))")
_NUMBER = re.compile(r"(\d+)(?:[-之](\d+))?号(?:院)?(?:(?:之|附|-)(\d+)(?![\d栋单号]))?")
_BUILDING = re.compile(r"(\d+)栋")
_UNIT = re.compile(r"(\d+)单元")
_ROAD_END = ("大道", "大街", "横路", "直街", "横街", "胡同", "公路", "路", "街", "巷", "里", "道",
             "弄", "坊", "围", "约")
#: "A路与B路交叉口", "A路和B路路口", "A路B路交界": two roads (the first ends at a road word).
_CROSS = re.compile(r"^(.+?(?:路|街|巷|道|里|弄|胡同))(.+?)交叉口")  # 路口/交界 normalised
_JOIN = ("与", "和", "及", "同", "跟", "/", "&", "+", "、", "交")
_ADMIN_SUFFIX = ("特别行政区", "自治区", "街道", "社区", "示范区", "新区", "省", "市", "区", "县",
                 "镇", "乡", "村")


def cn_to_int(text: str) -> int:
    """A Chinese numeral (八十八, 一百零五, 二〇八, 十二) as an integer."""
    if all(ch in _CN_DIGIT for ch in text):  # digit by digit: 二〇八 -> 208
        return int("".join(str(_CN_DIGIT[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGIT:
            current = _CN_DIGIT[ch]
        else:
            total += (current or 1) * _CN_UNIT[ch]
            current = 0
    return total + current


def normalise(text: str) -> str:
    """One spelling of an address: NFKC (full-width digits and letters half-width), no spaces
    or punctuation, traditional variants of the address words, 栋/幢/座/号楼 as 栋, Chinese
    numerals as digits (in names too, so 鹤龙二横路 and 鹤龙2横路 meet)."""
    text = unicodedata.normalize("NFKC", str(text or ""))
    for old, new in _REPLACE:
        text = text.replace(old, new)
    text = _DROP.sub("", text)
    text = text.replace("－", "-").replace("—", "-").replace("–", "-")
    return _CN_NUM.sub(lambda m: str(cn_to_int(m.group(0))), text)


def _short(name: str) -> str:
    """An admin name without its level word (白云区 -> 白云, 鹤龙社区 -> 鹤龙)."""
    for suffix in _ADMIN_SUFFIX:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


@dataclass
class Parsed:
    """The parts of one address (normalised)."""

    text: str
    areas: list[str] = field(default_factory=list)  # admin codes named, outermost first
    road: str | None = None
    number: int | None = None
    sub_number: int | None = None
    compound: str | None = None
    building: int | None = None
    unit: int | None = None
    cross: tuple[str, str] | None = None
    rest: str = ""
    #: A short admin name before a road word was kept in the road (see AddressIndex.parse).
    ambiguous: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"areas": self.areas, "road": self.road, "house_number": self.number,
                "sub_number": self.sub_number, "compound": self.compound,
                "building_no": self.building, "unit": self.unit,
                "intersection": list(self.cross) if self.cross else None}


def _split_road(text: str) -> tuple[str | None, str]:
    """The road at the end of ``text`` (everything up to its last road word), else None."""
    best = -1
    for end in _ROAD_END:
        k = text.rfind(end)
        if k >= 0 and k + len(end) > best and k > 0:
            best = k + len(end)
    if best <= 0:
        return None, text
    return text[:best], text[best:]


@dataclass
class _Door:
    points: list[int]  # address point rows
    by_building: dict[int, int]


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


class AddressIndex:
    """A territory's addresses, roads and admin areas, ready to geocode against (in the
    territory's metric coordinate system; answers in any gis.crs system)."""

    def __init__(self, layers: Mapping[str, gpd.GeoDataFrame], metric_crs: Any) -> None:
        self.metric = metric_crs
        admin = layers["admin_areas"].to_crs(metric_crs)
        self.area_name = dict(zip(admin["code"], admin["name"], strict=True))
        self.area_level = dict(zip(admin["code"], admin["level"], strict=True))
        self.area_point = {c: shapely.point_on_surface(g)
                           for c, g in zip(admin["code"], admin.geometry, strict=True)}
        self.area_geom = dict(zip(admin["code"], admin.geometry, strict=True))
        # Admin names (full, normalised, and without the level word) -> codes.
        self.admin_names: dict[str, list[str]] = {}
        for code, name in self.area_name.items():
            for key in {normalise(name), normalise(_short(name))}:
                if len(key) >= 2:
                    self.admin_names.setdefault(key, []).append(code)
        self.admin_keys = sorted(self.admin_names, key=len, reverse=True)
        self._full_admin = {normalise(n) for n in self.area_name.values()}
        self._admin_first: dict[str, list[str]] = {}
        for key in self.admin_keys:
            self._admin_first.setdefault(key[0], []).append(key)
        # Roads: merged lines per normalised name.
        roads = layers.get("roads")
        self.road_geom: dict[str, Any] = {}
        if roads is not None and len(roads):
            named = roads[roads["name"].notna()].to_crs(metric_crs)
            keys = [normalise(n) for n in named["name"]]
            for key, geoms in pd.Series(named.geometry.to_numpy(), index=keys).groupby(
                    level=0):
                self.road_geom[key] = shapely.line_merge(shapely.union_all(list(geoms)))
        # Address points: their parts (the parts given, else parsed from the address).
        bld = layers["buildings"]
        pts = bld.to_crs(metric_crs).geometry
        pts = shapely.point_on_surface(pts.to_numpy())
        self.px = shapely.get_x(pts)
        self.py = shapely.get_y(pts)
        self.village = self._villages(admin, pts)
        self.doors: dict[tuple[str, int, int | None], _Door] = {}
        self.compounds: dict[str, list[int]] = {}
        self.compound_building: dict[tuple[str, int], int] = {}
        self.numbers: dict[tuple[str, int], list[tuple[int, int]]] = {}  # (road, parity)
        cols = {c: (bld[c].to_numpy(dtype=object) if c in bld.columns else
                    np.full(len(bld), None, dtype=object))
                for c in ("address", "road", "house_number", "compound", "building_no")}
        for i in range(len(bld)):
            road, number, sub, comp, bno = self._parts(
                cols["road"][i], cols["house_number"][i], cols["compound"][i],
                cols["building_no"][i], cols["address"][i])
            if comp:
                self.compounds.setdefault(comp, []).append(i)
                if bno is not None:
                    self.compound_building.setdefault((comp, bno), i)
            if number is None:
                continue
            # A number on a road, or (rural) within its village.
            scope = road or f"@{self.village[i]}"
            door = self.doors.setdefault((scope, number, sub), _Door([], {}))
            door.points.append(i)
            if bno is not None:
                door.by_building.setdefault(bno, i)
            if road:
                self.numbers.setdefault((road, number % 2), []).append((number, i))
        for side, items in self.numbers.items():
            self.numbers[side] = sorted(set(items))
        self.road_keys = sorted(set(self.road_geom) | {k[0] for k in self.numbers})
        self.compound_keys = sorted(self.compounds)
        self._road_first = _by_first(self.road_keys)
        self._compound_first = _by_first(self.compound_keys)
        self._cache: dict[str, Answer] = {}

    @property
    def size(self) -> int:
        return sum(len(d.points) for d in self.doors.values())

    def _villages(self, admin: gpd.GeoDataFrame, pts: Any) -> list[str]:
        villages = admin[admin["level"] == "village"]
        out = [""] * len(pts)
        if len(villages):
            tree = shapely.STRtree(villages.geometry.to_numpy())
            hit = tree.query(pts, predicate="intersects")
            codes = villages["code"].to_numpy()
            for p, v in zip(hit[0].tolist(), hit[1].tolist(), strict=True):
                out[p] = str(codes[v])
        return out

    def _parts(self, road: Any, number: Any, comp: Any, bno: Any, address: Any
               ) -> tuple[str | None, int | None, int | None, str | None, int | None]:
        road, number, comp, bno, address = (None if _missing(v) else v
                                            for v in (road, number, comp, bno, address))
        if road is None and number is None and comp is None and address:
            p = self.parse(str(address))
            return p.road, p.number, p.sub_number, p.compound, p.building
        n = sub = None
        if number is not None:
            m = re.match(r"^(\d+)(?:[-之](\d+))?", normalise(str(number)))
            if m:
                n = int(m.group(1))
                sub = int(m.group(2)) if m.group(2) else None
        b = None
        if bno is not None:
            m = re.match(r"^(\d+)", normalise(str(bno)))
            b = int(m.group(1)) if m else None
        return (normalise(str(road)) if road else None, n, sub,
                normalise(str(comp)) if comp else None, b)

    # -- parsing ---------------------------------------------------------

    def parse(self, address: str, *, split_short: bool = False) -> Parsed:
        """The parts of an address: admin areas (by the territory's own names), road, house
        number, compound, building; or an intersection of two roads. A short admin name
        before a road word (安塘巷, 永泰街) is kept in the road unless ``split_short`` (the
        parse marks itself ``ambiguous``: the caller may try the other reading)."""
        text = normalise(address)
        p = Parsed(text)
        rest = text
        rest = _PROVINCE.sub("", rest, count=1) if not self._admin_at(rest) else rest
        rest = _CITY.sub("", rest, count=1) if not self._admin_at(rest) else rest
        while rest:
            key = self._admin_at(rest)
            if key is None or self._named_at(rest, len(key)):
                break
            if rest[len(key):].startswith(_ROAD_END) and key not in self._full_admin \
                    and not split_short:
                p.ambiguous = True
                break  # 安塘巷: a road named after the village 安塘村, not 安塘 + 巷
            code = self._pick_area(self.admin_names[key], p.areas)
            if code in p.areas:
                break  # 湾滘村湾滘巷: the second 湾滘 belongs to the road
            p.areas.append(code)
            rest = rest[len(key):]
            # The level word left after a short name (白云 + 区; 永泰 + 街, 街道 cut short).
            cut_short = ("街",) if split_short and self.area_level.get(code) == "town" else ()
            for suffix in (*_ADMIN_SUFFIX, *cut_short):
                if rest.startswith(suffix):
                    rest = rest[len(suffix):]
                    break
        m = _CROSS.match(rest)
        if m and not _NUMBER.search(rest):
            a, b = m.group(1), m.group(2)
            if b.startswith(_JOIN) and not self._road_prefix(b):
                b = b[1:]  # the joining word (but 同和路 is a road)
            a = a if a.endswith(_ROAD_END) else self._road_prefix(a) or a
            b = re.sub(r"(路|街|巷|道)\1$", r"\1", b)  # 同和路路口 -> 同和路
            p.cross = (a, b)
            return p
        num = _NUMBER.search(rest)
        bld = _BUILDING.search(rest)
        unit = _UNIT.search(rest)
        if unit:
            p.unit = int(unit.group(1))
        if num:
            p.number = int(num.group(1))
            sub = num.group(2) or num.group(3)
            p.sub_number = int(sub) if sub else None
            head, tail = rest[: num.start()], rest[num.end():]
            p.rest = head
            road, extra = _split_road(head)
            p.road = road
            if extra and not road:
                p.compound = extra or None
            if bld and bld.start() >= num.end():
                comp = rest[num.end(): bld.start()]
                p.building = int(bld.group(1))
                if comp:
                    p.compound = comp
            elif tail:
                tail = re.split(r"\d", tail, maxsplit=1)[0]
                p.compound = tail or p.compound
        elif bld:
            p.building = int(bld.group(1))
            head = rest[: bld.start()]
            road, extra = _split_road(head)
            if road and road in self.road_geom and extra:
                p.road, p.compound = road, extra
            else:
                p.compound = head or None
        else:
            road, extra = _split_road(rest)
            if road:
                p.road, p.compound = road, extra or None
            else:
                p.compound = rest or None
        if p.number is None:
            p.rest = rest
        return p

    def _road_prefix(self, text: str) -> str | None:
        for key in self._road_first.get(text[:1], ()):
            if text.startswith(key):
                return key
        return None

    def _named_at(self, text: str, admin_len: int) -> bool:
        """Whether a road or compound longer than the admin name there starts the text (松尾一巷
        is a road, not 松尾村 + 一巷)."""
        for table in (self._road_first, self._compound_first):
            for key in table.get(text[:1], ()):
                if len(key) > admin_len and text.startswith(key):
                    return True
        return False

    def _admin_at(self, text: str) -> str | None:
        for key in self._admin_first.get(text[:1], ()):
            if text.startswith(key):
                return key
        return None

    def _pick_area(self, codes: list[str], named: list[str]) -> str:
        """Of several areas of one name, the one under the areas named before it."""
        if len(codes) > 1 and named:
            for code in codes:
                if code.startswith(named[-1]):
                    return code
        return codes[0]

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


def _by_first(keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys by their first character, longest first (prefix look-ups)."""
    out: dict[str, list[str]] = {}
    for key in sorted(keys, key=len, reverse=True):
        out.setdefault(key[:1], []).append(key)
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not np.isfinite(value)) or \
        (isinstance(value, str) and not value.strip())


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


