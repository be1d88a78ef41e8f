"""A territory's address tables for the geocoder: admin names, merged roads, address points by
door, compound and house number; and an address parsed by the territory's own names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from events.address_text import (
    ADMIN_SUFFIX,
    BUILDING,
    CITY,
    CROSS,
    JOIN,
    NUMBER,
    PROVINCE,
    ROAD_END,
    UNIT,
    Parsed,
    by_first,
    first_prefix,
    missing,
    normalise,
    short_name,
    split_road,
)


@dataclass
class _Door:
    points: list[int]  # address point rows
    by_building: dict[int, int]


class AddressTables:
    """A territory's addresses, roads and admin areas as look-up tables (in the territory's
    metric coordinate system), and the parser that reads an address by them."""

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
            for key in {normalise(name), normalise(short_name(name))}:
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
        self._road_first = by_first(self.road_keys)
        self._compound_first = by_first(self.compound_keys)

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
        road, number, comp, bno, address = (None if missing(v) else v
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
        rest = PROVINCE.sub("", rest, count=1) if not self._admin_at(rest) else rest
        rest = CITY.sub("", rest, count=1) if not self._admin_at(rest) else rest
        while rest:
            key = self._admin_at(rest)
            if key is None or self._named_at(rest, len(key)):
                break
            if rest[len(key):].startswith(ROAD_END) and key not in self._full_admin \
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
            for suffix in (*ADMIN_SUFFIX, *cut_short):
                if rest.startswith(suffix):
                    rest = rest[len(suffix):]
                    break
        m = CROSS.match(rest)
        if m and not NUMBER.search(rest):
            a, b = m.group(1), m.group(2)
            if b.startswith(JOIN) and not self._road_prefix(b):
                b = b[1:]  # the joining word (but 同和路 is a road)
            a = a if a.endswith(ROAD_END) else self._road_prefix(a) or a
            b = re.sub(r"(路|街|巷|道)\1$", r"\1", b)  # 同和路路口 -> 同和路
            p.cross = (a, b)
            return p
        num = NUMBER.search(rest)
        bld = BUILDING.search(rest)
        unit = UNIT.search(rest)
        if unit:
            p.unit = int(unit.group(1))
        if num:
            p.number = int(num.group(1))
            sub = num.group(2) or num.group(3)
            p.sub_number = int(sub) if sub else None
            head, tail = rest[: num.start()], rest[num.end():]
            p.rest = head
            road, extra = split_road(head)
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
            road, extra = split_road(head)
            if road and road in self.road_geom and extra:
                p.road, p.compound = road, extra
            else:
                p.compound = head or None
        else:
            road, extra = split_road(rest)
            if road:
                p.road, p.compound = road, extra or None
            else:
                p.compound = rest or None
        if p.number is None:
            p.rest = rest
        return p
    def _road_prefix(self, text: str) -> str | None:
        return first_prefix(self._road_first, text)

    def _named_at(self, text: str, admin_len: int) -> bool:
        """Whether a road or compound longer than the admin name there starts the text (松尾一巷
        is a road, not 松尾村 + 一巷)."""
        for table in (self._road_first, self._compound_first):
            for key in table.get(text[:1], ()):
                if len(key) > admin_len and text.startswith(key):
                    return True
        return False
    def _admin_at(self, text: str) -> str | None:
        return first_prefix(self._admin_first, text)

    def _pick_area(self, codes: list[str], named: list[str]) -> str:
        """Of several areas of one name, the one under the areas named before it."""
        if len(codes) > 1 and named:
            for code in codes:
                if code.startswith(named[-1]):
                    return code
        return codes[0]
