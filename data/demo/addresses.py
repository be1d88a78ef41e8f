"""Addresses of the demo district's buildings (road, house number, compound, building)."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from data import names as nm
from data.demo.common import GArr, Geom, IArr
from data.demo.geometry import _lines_of
from data.demo.rural_fabric import RuralFabric


class Addresses(RuralFabric):
    """Every building's address, given after all stages."""

    # -- addresses (after all stages; an RNG of their own keeps the territory unchanged) --

    def _addresses(self, bld: GArr, village_of: IArr, villages: list[str], hh: IArr
                   ) -> dict[str, Any]:
        """Addresses of the buildings: the nearest named road within reach, house numbers
        along it (odd on the left, even on the right, growing with the distance from the
        road's start, roughly one per 10 m as door plates go); the residential buildings of
        one urban block share a compound (小区) with one door number and building numbers
        (栋); rural houses away from named roads are numbered within their village."""
        rng = np.random.default_rng(self.households * 7919 + len(villages))
        bank = nm.NameBank(rng)
        n = len(bld)
        cen: GArr = shapely.centroid(bld)
        road: list[str | None] = [None] * n
        number: list[int | None] = [None] * n
        named = [(g, nm_) for g, nm_ in zip(self.road_geoms, self.road_names, strict=True)
                 if nm_]
        parts: list[Geom] = []
        part_name: list[str] = []
        part_offset: list[float] = []
        by_name: dict[str, list[Geom]] = {}
        for g, nm_ in named:
            by_name.setdefault(nm_, []).append(g)
        for nm_, geoms in by_name.items():
            merged = shapely.line_merge(shapely.union_all(geoms))
            pieces = _lines_of(merged)
            # One reference along the whole road: its pieces in order along its main
            # direction, each starting where the previous ends.
            xy = np.concatenate([shapely.get_coordinates(p) for p in pieces])
            axis = xy[-1] - xy[0] if len(xy) > 1 else np.array([1.0, 0.0])
            norm = float(np.hypot(*axis)) or 1.0
            axis = axis / norm
            order = sorted(range(len(pieces)),
                           key=lambda k: float(shapely.get_coordinates(pieces[k])[0] @ axis))
            offset = 0.0
            for k in order:
                piece = pieces[k]
                a, b = shapely.get_coordinates(piece)[[0, -1]]
                if float((b - a) @ axis) < 0:
                    piece = shapely.reverse(piece)
                parts.append(piece)
                part_name.append(nm_)
                part_offset.append(offset)
                offset += float(piece.length) + 50.0
        urban_n = len(self.urban_bld_block)
        if parts:
            tree = shapely.STRtree(np.array(parts, dtype=object))
            reach = np.where(np.arange(n) < urban_n, 90.0, 70.0)
            idx = tree.query_nearest(cen, max_distance=float(reach.max()), all_matches=False)
            pt_i, part_i = idx
            dist = shapely.distance(cen[pt_i], np.array(parts, dtype=object)[part_i])
            ok = dist <= reach[pt_i]
            pt_i, part_i = pt_i[ok], part_i[ok]
            s_along = np.empty(len(pt_i))
            side = np.empty(len(pt_i), dtype=np.int64)
            for j, (b, p) in enumerate(zip(pt_i.tolist(), part_i.tolist(), strict=True)):
                line = parts[p]
                d = float(line.project(cen[b]))
                a = line.interpolate(max(d - 1.0, 0.0))
                c = line.interpolate(min(d + 1.0, line.length))
                cross = (c.x - a.x) * (cen[b].y - a.y) - (c.y - a.y) * (cen[b].x - a.x)
                s_along[j] = d + part_offset[p]
                side[j] = 1 if cross > 0 else 2  # left odd, right even
            names_arr = np.array(part_name, dtype=object)[part_i]
            for nm_ in np.unique(names_arr).tolist():
                for sd in (1, 2):
                    m = np.flatnonzero((names_arr == nm_) & (side == sd))
                    m = m[np.argsort(s_along[m], kind="stable")]
                    last = -1
                    for j in m.tolist():
                        base = 2 * int(s_along[j] // 20.0) + sd
                        num = max(base, last + 2)
                        last = num
                        road[int(pt_i[j])] = nm_
                        number[int(pt_i[j])] = num
        compound: list[str | None] = [None] * n
        building_no: list[str | None] = [None] * n
        # Compounds: urban blocks with at least two residential buildings.
        block = np.asarray(self.urban_bld_block)
        res = np.asarray(hh[:urban_n]) > 0
        for b in np.unique(block[res]).tolist():
            members = np.flatnonzero((block == b) & res)
            if len(members) < 2:
                continue
            name = bank.stem() + str(rng.choice(nm.COMPOUND_SUFFIXES))
            with_door = [int(i) for i in members if road[int(i)] is not None]
            if with_door:
                # The door: the member nearest the road it faces; the others share it.
                gate = min(with_door, key=lambda i: int(number[i] or 0))
                for i in members.tolist():
                    if road[i] is None or road[i] == road[gate]:
                        road[i], number[i] = road[gate], number[gate]
            seq = sorted(members.tolist(), key=lambda i: (-cen[i].y, cen[i].x))
            for k, i in enumerate(seq, start=1):
                compound[i] = name
                building_no[i] = str(k)
        # Rural houses away from named roads: numbered within their village.
        count: dict[int, int] = {}
        house_number: list[str | None] = [None] * n
        for i in range(n):
            if number[i] is not None:
                house_number[i] = str(number[i])
            elif i >= urban_n and village_of[i] >= 0:
                v = int(village_of[i])
                count[v] = count.get(v, 0) + 1
                house_number[i] = str(count[v])
        address: list[str | None] = []
        for i in range(n):
            head = villages[int(village_of[i])] if village_of[i] >= 0 else ""
            if house_number[i] is None:
                address.append(None)
                continue
            text = head + (road[i] or "") + f"{house_number[i]}号"
            if compound[i]:
                text += f"{compound[i]}{building_no[i]}栋"
            address.append(text)
        return {"address": address, "road": road, "house_number": house_number,
                "compound": compound, "building_no": building_no}
