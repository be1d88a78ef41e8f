"""Build small OpenStreetMap extracts (.osm.pbf) for the reader's tests with pyosmium."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import osmium
from osmium.osm.mutable import Node, Relation, Way

#: Same origin as the tiny territory of tests/conftest.py (near Guangzhou).
ORIGIN = (113.30, 23.20)
UNIT = 1e-3  # one unit of the drawings below, in degrees

Tags = dict[str, str]


@dataclass
class OsmBuilder:
    """Nodes, ways and relations drawn in units of 1e-3 degree from :data:`ORIGIN`."""

    nodes: list[tuple[int, tuple[float, float], Tags]] = field(default_factory=list)
    ways: list[tuple[int, list[int], Tags]] = field(default_factory=list)
    relations: list[tuple[int, list[tuple[str, int, str]], Tags]] = field(default_factory=list)
    _by_xy: dict[tuple[float, float], int] = field(default_factory=dict)

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        return (round(ORIGIN[0] + x * UNIT, 7), round(ORIGIN[1] + y * UNIT, 7))

    def node(self, x: float, y: float, tags: Tags | None = None) -> int:
        """A node at (x, y); untagged nodes at the same place are shared."""
        if not tags and (x, y) in self._by_xy:
            return self._by_xy[(x, y)]
        nid = len(self.nodes) + 1
        self.nodes.append((nid, self.lonlat(x, y), dict(tags or {})))
        if not tags:
            self._by_xy[(x, y)] = nid
        return nid

    def way(self, pts: list[tuple[float, float]], tags: Tags | None = None) -> int:
        wid = len(self.ways) + 1
        self.ways.append((wid, [self.node(x, y) for x, y in pts], dict(tags or {})))
        return wid

    def box(self, x0: float, y0: float, x1: float, y1: float, tags: Tags | None = None) -> int:
        """A closed way around the box (counter-clockwise)."""
        return self.way([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], tags)

    def relation(self, outer_ways: list[int], tags: Tags) -> int:
        rid = len(self.relations) + 1
        self.relations.append((rid, [("w", w, "outer") for w in outer_ways], dict(tags)))
        return rid

    def write(self, path: Path) -> Path:
        if path.exists():
            path.unlink()
        writer = osmium.SimpleWriter(str(path))
        try:
            common: dict[str, Any] = {"version": 1, "changeset": 1, "uid": 1, "user": "test",
                                      "timestamp": "2024-01-01T00:00:00Z"}
            for nid, loc, tags in self.nodes:
                writer.add_node(Node(None, loc, id=nid, tags=tags, **common))
            for wid, refs, tags in self.ways:
                writer.add_way(Way(None, refs, id=wid, tags=tags, **common))
            for rid, members, tags in self.relations:
                writer.add_relation(Relation(None, members, id=rid, tags=tags, **common))
        finally:
            writer.close()
        return path


def build_territory(*, with_refs: bool = True) -> OsmBuilder:
    """A town (relation, admin_level 8) with two villages (closed ways, levels 9 and 10),
    buildings, roads, a river, a railway, a ridge, a school, an industrial area, residential
    land use and a park.

    Without ``with_refs`` the admin boundaries carry no ``ref`` (no division code).
    """
    b = OsmBuilder()

    def admin(level: str, ref: str, name: str) -> Tags:
        tags = {"boundary": "administrative", "admin_level": level, "name": name}
        if with_refs:
            tags["ref"] = ref
        return tags

    # The town: a boundary relation whose outer ring is made of two open ways.
    south_east = b.way([(0, 0), (20, 0), (20, 10)])
    north_west = b.way([(20, 10), (0, 10), (0, 0)])
    b.relation([south_east, north_west],
               {"type": "boundary", **admin("8", "440111001", "景泰街道")})
    # Villages: closed ways.
    b.box(0, 0, 10, 10, admin("9", "440111001001", "景泰社区"))
    b.box(10, 0, 20, 10, admin("10", "440111001201", "石马村"))

    # Buildings.
    b.box(1, 1, 2, 2, {"building": "residential", "building:levels": "18", "households": "120",
                       "name": "1号楼"})
    b.box(6, 1, 7, 2, {"building": "apartments", "building:levels": "11",
                       "addr:street": "景泰路", "addr:housenumber": "12",
                       "addr:full": "景泰街道景泰路12号"})
    b.box(1, 6, 2, 7, {"building": "yes", "height": "12.5 m"})
    b.box(13, 1, 14, 2, {"building": "residential", "building:levels": "2"})

    # Roads, a river, a railway and a ridge.
    b.way([(0, 5), (20, 5)], {"highway": "primary", "name": "白云大道"})
    b.way([(5, 0), (5, 4)], {"highway": "residential"})
    b.way([(12, 0), (12, 4)], {"highway": "footway"})
    b.way([(15, 0), (15, 10)], {"waterway": "river", "name": "白沙河"})
    b.way([(0, 9), (20, 9)], {"railway": "rail", "name": "京广铁路"})
    b.way([(18, 0), (19, 10)], {"natural": "ridge", "name": "凤凰山脊"})

    # A school (node) and an industrial area (closed way).
    b.node(3, 3, {"amenity": "school", "name": "景泰小学"})
    b.box(11, 6, 14, 8, {"landuse": "industrial", "name": "白云工业园"})
    # Land use around the untagged building, and a park (the household estimate reads it).
    b.box(0.5, 5.5, 4, 8, {"landuse": "residential", "name": "景泰小区"})
    b.box(6, 6, 9, 8, {"leisure": "park", "name": "景泰公园"})
    return b


def write_pbf(path: Path, *, with_refs: bool = True) -> Path:
    return build_territory(with_refs=with_refs).write(path)
