"""The Bund's admin areas: districts split by their boundary lines, one street each, and
communities cut by major roads and canals, named after a real 居委会 where one matches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from partitioning.households import building_households
from partitioning.params import PartitionParams

#: District → (district code, the street holding most of its part of the extract).
DISTRICTS = {
    "黄浦区": ("310101", "310101013", "外滩街道"),
    "浦东新区": ("310115", "310115005", "陆家嘴街道"),
    "虹口区": ("310109", "310109018", "北外滩街道"),
    "杨浦区": ("310110", "310110018", "大桥街道"),
}
MAJOR = {"trunk", "primary", "secondary"}
COMMUNITY_MIN_HH = 1_200


def districts(tiles: shapely.Geometry, lines: gpd.GeoDataFrame) -> dict[str, shapely.Geometry]:
    """The tiles cut by the district boundary lines; each piece takes the name on its
    side of the nearest line (``name:left`` / ``name:right``). The lines are cut out 2 m
    wide, which closes the gaps where their tile pieces meet; here they all run
    mid-river, so the strip goes with the river."""
    geoms = lines.geometry.to_numpy()
    pieces = shapely.get_parts(shapely.difference(tiles, shapely.buffer(
        shapely.union_all(geoms), 1.0, cap_style="flat")))
    tree = shapely.STRtree(geoms)
    out: dict[str, list[shapely.Geometry]] = {}
    for piece in pieces[shapely.area(pieces) > 1.0]:
        p = shapely.point_on_surface(piece)
        i = int(tree.nearest(p))
        line = geoms[i]
        d = shapely.line_locate_point(line, p)
        a = shapely.line_interpolate_point(line, max(d - 1.0, 0.0))
        b = shapely.line_interpolate_point(line, min(d + 1.0, shapely.length(line)))
        cross = ((b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x))
        side = "name:left" if cross > 0 else "name:right"
        out.setdefault(str(lines[side].iloc[i]), []).append(piece)
    return {name: shapely.union_all(parts) for name, parts in out.items()}


def split_communities(land: shapely.Geometry, cuts: np.ndarray, households: np.ndarray,
                      points: np.ndarray) -> list[shapely.Geometry]:
    """``land`` cut by the ``cuts`` lines; pieces under COMMUNITY_MIN_HH households
    join a neighbour, smallest first."""
    edges = shapely.union_all(np.concatenate([cuts, shapely.get_parts(shapely.boundary(land))]))
    found = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    found = found[shapely.contains_properly(land, shapely.point_on_surface(found))]
    faces = list(found[shapely.area(found) >= 1.0])  # needles between near-coincident lines
    hh = [0.0] * len(faces)
    if faces:
        pi, fi = shapely.STRtree(np.asarray(faces)).query(points, predicate="within")
        for p, f in zip(pi, fi, strict=True):
            hh[f] += households[p]
    while len(faces) > 1:
        order = np.argsort(hh, kind="stable")
        merged = False
        for s in order:
            if hh[s] >= COMMUNITY_MIN_HH:
                break
            shared = [shapely.length(shapely.intersection(shapely.boundary(faces[s]),
                                                          shapely.boundary(f)))
                      if j != s else 0.0 for j, f in enumerate(faces)]
            touching = [j for j, length in enumerate(shared) if length >= 1.0]
            if not touching:
                continue
            # The neighbour with the fewest households (then the longest shared edge), so
            # that empty CBD pieces spread over several communities instead of one.
            j = min(touching, key=lambda j: (hh[j], -shared[j]))
            faces[j] = shapely.union_all([faces[j], faces[s]])
            hh[j] += hh[s]
            del faces[s], hh[s]
            merged = True
            break
        if not merged:
            break
    return faces


def admin_layer(data: Path, district_geoms: dict[str, shapely.Geometry],
                roads: gpd.GeoDataFrame, water: gpd.GeoDataFrame,
                buildings: gpd.GeoDataFrame, landuse: gpd.GeoDataFrame, metric: Any
                ) -> tuple[gpd.GeoDataFrame, list[dict[str, Any]]]:
    villages_csv = pd.read_csv(data.parent / "division_codes_villages_subset.csv", dtype=str)
    hh = building_households(buildings, PartitionParams())[0]
    points = shapely.point_on_surface(buildings.geometry.to_numpy())
    major = roads[roads["class"].isin(MAJOR)].geometry.to_numpy()
    wgeoms = water.geometry.to_numpy()
    canals = wgeoms[np.isin(shapely.get_type_id(wgeoms), [1, 5])]
    cuts = np.concatenate([major, canals])
    lu = landuse[(landuse["kind"] == "residential") & landuse["name"].notna()
                 & np.isin(shapely.get_type_id(landuse.geometry.to_numpy()), [3, 6])]
    lu = lu.to_crs(metric)
    rows: list[dict[str, Any]] = []
    mapping: list[dict[str, Any]] = []
    for dname, geom in sorted(district_geoms.items()):
        dcode, tcode, tname = DISTRICTS[dname]
        rows.append({"code": dcode, "name": dname, "level": "district", "geometry": geom})
        rows.append({"code": tcode, "name": tname, "level": "town", "geometry": geom})
        real = villages_csv[villages_csv["streetCode"] == tcode].drop_duplicates("code")
        used = {c[-3:] for c in real["code"]}
        taken: set[str] = set()
        serial = 101
        pieces = split_communities(geom, cuts, hh, points)
        pieces.sort(key=lambda g: (-shapely.get_y(shapely.centroid(g)),
                                   shapely.get_x(shapely.centroid(g))))
        for piece in pieces:
            code, name = _match(piece, lu, real, taken)
            if code is None or name is None:
                while f"{serial:03d}" in used:
                    serial += 1
                code, name = f"{tcode}{serial:03d}", f"{tname}合成{serial}社区"
                serial += 1
            taken.add(code)
            rows.append({"code": code, "name": name, "level": "village", "kind": "urban",
                         "geometry": piece})
            mapping.append({"code": code, "name": name, "real_code": not name.startswith(
                f"{tname}合成"), "area_m2": round(float(shapely.area(piece)))})
    admin = gpd.GeoDataFrame(rows, geometry="geometry", crs=metric)
    return admin, mapping


def _match(piece: shapely.Geometry, lu: gpd.GeoDataFrame, real: pd.DataFrame,
           taken: set[str]) -> tuple[str | None, str | None]:
    """The real 居委会 whose name the largest named residential land use in ``piece``
    starts (上港小区 → 上港第一居委会, 梅园三街坊 → 梅园三村居委会)."""
    overlap = shapely.area(shapely.intersection(lu.geometry.to_numpy(), piece))
    for i in np.argsort(-overlap):
        if overlap[i] < 0.5 * shapely.area(lu.geometry.iloc[i]):
            break
        stem = re.sub(r"(小区|街坊|新村)$", "", str(lu["name"].iloc[i]))
        hits = real[real["name"].str.startswith(stem) & ~real["code"].isin(taken)]
        if len(hits):
            return str(hits["code"].iloc[0]), str(hits["name"].iloc[0])
    return None, None
