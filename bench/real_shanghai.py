"""Evaluation: the partitioning engine on real OpenStreetMap geometry of the Bund, Shanghai.

Run: PYTHONPATH=. .venv/bin/python bench/real_shanghai.py [PATH] [--out DIR] [--png FILE]
PATH is the shanghai_bund folder (default ../shared/data/real/shanghai_bund, beside the
repo). Writes the figures (no geometry) to bench/results/real_shanghai.json; ``--out``
writes grids.gpkg for looking at, ``--png`` a picture (needs matplotlib). The data is
read where it lies and never copied into the project (licence: evaluation only).

What is built from the Tilezen layers (the choices are printed and written with the
figures):

- features cut at tile edges (``tile_index``) are merged by OSM id (union, line merge);
  the territory is the union of the z16 tiles present (one tile, Lujiazui's core, is
  missing from the extract and is a hole);
- roads: ``kind_detail`` is the class (``*_link`` → its road); tunnels, ferries, piers
  and the (all underground) rail lines are dropped; water: river/riverbank/water areas
  dissolved, river and canal lines; pools and fountains dropped;
- buildings: footprints of ``kind=building`` (parts only lend their height); the
  engine estimates households. Residential: tagged apartments/residential/house/…;
  untagged inside residential land use; untagged outside any land use when not a
  high-rise (height < 24 m or unknown) and under 3,000 m² (untagged towers and large
  halls in this CBD are offices, hotels and malls). Untagged buildings in other land
  use (parks, commercial) and everything else tagged are not residential. A
  residential footprint without height gets 6 floors in residential land use (新村
  walk-ups) and 3 elsewhere (里弄);
- admin areas: districts are the tiles split by the district boundary lines (side by
  ``name:left``/``name:right``) less the Huangpu and Suzhou Creek water; one street
  (town) per district with its real NBS code; communities are the districts cut by
  trunk/primary/secondary roads and canals, pieces under 1,200 estimated households
  merged, smallest first, into the neighbour with the fewest households. A community
  whose residential land use is named like a real 居委会 of the street gets that NBS
  code and name;
  the others get synthetic codes (serial 101 on) marked synthetic.

Two territories are built and partitioned in one run: **rules** (as above; the figures
at the top level of the results) and **estimate** (``untagged_estimated`` in the
results): every untagged footprint outside non-residential land use is left without a
use, so the engine estimates it, towers and large halls included, and the communities
keep the rivers up to the district lines (as real admin areas do). For each: the
largest estimated households per building (the top 10 with footprint, floors, height
and floor area), the grids whose households are all in one building (by the rule that
made it residential or not) and the grids over 50 % water (area of the water layer's
polygons).
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from real_common import (
    console,
    figures,
    geometry_checks,
    print_table,
    render_png,
    run_engine,
    territory_via_contract,
    timed,
    write_geometry,
    write_results,
)
from rich.table import Table

from gis.zones import metric_crs_for
from partitioning.blocks import barrier_lines
from partitioning.households import building_households
from partitioning.params import PartitionParams

DEFAULT_PATH = Path(__file__).resolve().parents[1] / ".." / "shared/data/real/shanghai_bund"
ZOOM = 16
#: District → (district code, the street holding most of its part of the extract).
DISTRICTS = {
    "黄浦区": ("310101", "310101013", "外滩街道"),
    "浦东新区": ("310115", "310115005", "陆家嘴街道"),
    "虹口区": ("310109", "310109018", "北外滩街道"),
    "杨浦区": ("310110", "310110018", "大桥街道"),
}
RESIDENTIAL_TAGS = {"apartments", "residential", "house", "dormitory", "terrace", "detached",
                    "semidetached_house"}
COMMERCIAL_TAGS = {"commercial", "hotel", "retail", "office", "bank", "mall", "shop",
                   "restaurant", "company", "supermarket"}
RESIDENTIAL_RULES = ("tagged residential", "untagged in residential land use",
                     "untagged low-rise outside land use")
MAJOR = {"trunk", "primary", "secondary"}
#: Water areas larger than this (m²) are rivers, not part of any community.
RIVER_M2 = 50_000.0
COMMUNITY_MIN_HH = 1_200
HIGH_RISE_M = 24.0
LARGE_FOOTPRINT_M2 = 3_000.0
FLOORS_ESTATE, FLOORS_OTHER = 6, 3


def read(path: Path, name: str) -> gpd.GeoDataFrame:
    import warnings
    with warnings.catch_warnings():  # "Several features with id = …" (tile pieces)
        warnings.simplefilter("ignore", RuntimeWarning)
        return gpd.read_file(path / f"{name}.geojson")


# ---------------------------------------------------------------------------
# Tiles


def tile_of(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = 2 ** ZOOM
    x = np.floor((lon + 180.0) / 360.0 * n).astype(int)
    y = np.floor((1 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2 * n).astype(int)
    return x, y


def tile_box(x: int, y: int) -> shapely.Polygon:
    n = 2 ** ZOOM

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return shapely.box(x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y))


def territory_tiles(frames: list[gpd.GeoDataFrame]) -> tuple[shapely.Geometry, int]:
    """The union of the z16 tiles the features come from (each ``tile_index`` is the
    tile holding most of its features' points), and how many tiles of the
    bounding rectangle are missing."""
    rows = []
    for gdf in frames:
        pts = shapely.point_on_surface(gdf.geometry.to_numpy())
        x, y = tile_of(shapely.get_x(pts), shapely.get_y(pts))
        rows.append(pd.DataFrame({"tile_index": gdf["tile_index"].to_numpy(), "x": x, "y": y}))
    tiles = pd.concat(rows).value_counts().reset_index()
    tiles = tiles.drop_duplicates("tile_index")  # the most frequent tile of each index
    xy = set(zip(tiles["x"], tiles["y"], strict=True))
    full = (tiles["x"].max() - tiles["x"].min() + 1) * (tiles["y"].max() - tiles["y"].min() + 1)
    return shapely.union_all([tile_box(x, y) for x, y in xy]), int(full - len(xy))


def merge_pieces(gdf: gpd.GeoDataFrame, lines: bool = False) -> gpd.GeoDataFrame:
    """One feature per OSM ``id``: the pieces cut at tile edges are unioned (and
    line-merged); attributes are the first non-empty value of the pieces."""
    keyed = gdf[gdf["id"].notna()]
    loose = gdf[gdf["id"].isna()]
    groups = keyed.groupby("id", sort=False)
    attrs = groups[[c for c in gdf.columns if c not in ("geometry", "id")]].first()
    geoms = groups.geometry.apply(lambda s: shapely.union_all(s.to_numpy()))
    if lines:
        geoms = geoms.map(shapely.line_merge)
    merged = gpd.GeoDataFrame(attrs, geometry=geoms.reindex(attrs.index).to_numpy(),
                              crs=gdf.crs).reset_index()
    return pd.concat([merged, loose], ignore_index=True)


# ---------------------------------------------------------------------------
# Layers


def roads_layer(raw: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, dict[str, int]]:
    tunnel = raw["is_tunnel"].fillna(0).astype(float) == 1
    dropped = {"tunnel": int(tunnel.sum()), "rail_ferry": int(raw["kind"].isin(
        {"rail", "ferry"}).sum()), "pier": int((raw["kind_detail"] == "pier").sum())}
    keep = ~tunnel & ~raw["kind"].isin({"rail", "ferry"}) & (raw["kind_detail"] != "pier")
    roads = merge_pieces(raw[keep], lines=True)
    by_kind = {"major_road": "secondary", "minor_road": "service", "path": "footway"}
    cls = roads["kind_detail"].astype("string").str.removesuffix("_link")
    roads["class"] = cls.fillna(roads["kind"].map(by_kind)).fillna("unclassified")
    roads["name"] = roads["name"].astype("string")
    return roads[["class", "name", "geometry"]], dropped


def water_layers(raw: gpd.GeoDataFrame, metric: Any) -> tuple[gpd.GeoDataFrame, shapely.Geometry]:
    """Water areas (dissolved, named after the named source covering most of each) and
    river/canal lines; and the rivers (areas over RIVER_M2) that no community holds."""
    raw = raw.to_crs(metric)
    types = shapely.get_type_id(raw.geometry.to_numpy())
    areas = raw[np.isin(types, [3, 6]) & raw["kind"].isin({"water", "riverbank"})]
    parts = shapely.get_parts(shapely.union_all(shapely.make_valid(areas.geometry.to_numpy())))
    parts = parts[shapely.area(parts) > 1.0]
    named = areas[areas["name"].notna()]
    names = []
    for part in parts:
        overlap = shapely.area(shapely.intersection(named.geometry.to_numpy(), part))
        names.append(named["name"].iloc[int(np.argmax(overlap))] if overlap.max() > 0 else None)
    polys = gpd.GeoDataFrame({"name": names}, geometry=parts, crs=metric)
    lines = raw[np.isin(types, [1, 5]) & raw["kind"].isin({"river", "canal"})]
    lines = merge_pieces(lines[["id", "name", "geometry"]], lines=True)
    water = pd.concat([polys, lines[["name", "geometry"]]], ignore_index=True)
    rivers = shapely.union_all(parts[shapely.area(parts) >= RIVER_M2])
    return gpd.GeoDataFrame(water, geometry="geometry", crs=metric), rivers


def buildings_layer(raw: gpd.GeoDataFrame, landuse: gpd.GeoDataFrame, metric: Any,
                    untagged_as: str = "rules") -> tuple[gpd.GeoDataFrame, dict[str, int]]:
    polys = raw[np.isin(shapely.get_type_id(raw.geometry.to_numpy()), [3, 6])]
    parts = polys[polys["kind"] == "building_part"]
    part_height = parts.groupby("root_id")["height"].max()
    b = merge_pieces(polys[polys["kind"] == "building"][
        ["id", "kind_detail", "landuse_kind", "height", "name", "geometry"]])
    b = b.to_crs(metric)
    height = pd.to_numeric(b["height"], errors="coerce")
    height = height.where(height > 0).fillna(b["id"].map(part_height))
    tag = b["kind_detail"].astype("string")
    # The land use a footprint lies in (Tilezen's landuse_kind, else a polygon lookup).
    lu = landuse[np.isin(shapely.get_type_id(landuse.geometry.to_numpy()), [3, 6])].to_crs(metric)
    pts = shapely.point_on_surface(b.geometry.to_numpy())
    bi, li = shapely.STRtree(lu.geometry.to_numpy()).query(pts, predicate="within")
    found = pd.Series(lu["kind"].to_numpy()[li], index=bi).groupby(level=0).first()
    land = b["landuse_kind"].astype("string").fillna(
        pd.Series(found.reindex(range(len(b))).to_numpy(), index=b.index).astype("string"))
    area = shapely.area(b.geometry.to_numpy())
    low = height.isna() | (height < HIGH_RISE_M)
    untagged = tag.isna()
    rule = np.select(
        [tag.isin(RESIDENTIAL_TAGS).fillna(False).to_numpy(bool),
         (untagged & (land == "residential")).fillna(False).to_numpy(bool),
         (untagged & land.isna() & low & (area < LARGE_FOOTPRINT_M2)).to_numpy(bool),
         tag.isin(COMMERCIAL_TAGS).fillna(False).to_numpy(bool),
         untagged.to_numpy(bool) & land.isna().to_numpy(bool)],
        [*RESIDENTIAL_RULES, "tagged commercial",
         "untagged high-rise or large outside land use"],
        default="other (tagged or in non-residential land use)")
    residential = np.isin(rule, list(RESIDENTIAL_RULES))
    use = np.where(residential, "residential",
                   np.where(rule == "tagged commercial", "commercial", "other"))
    floors = np.where(height.isna() & residential,
                      np.where(land.fillna("") == "residential", FLOORS_ESTATE, FLOORS_OTHER),
                      np.nan)
    if untagged_as == "estimate":
        # Untagged footprints outside non-residential land use get no use: the engine
        # estimates them, towers and large halls included.
        nonres_land = (untagged & land.notna() & (land != "residential")).fillna(False)
        use = np.where(untagged.to_numpy(bool) & ~nonres_land.to_numpy(bool), None, use)
    out = gpd.GeoDataFrame({
        "households": pd.array([pd.NA] * len(b), dtype="Int64"),
        "floors": pd.Series(floors).round().astype("Int64").to_numpy(),
        "height": height.to_numpy(), "use": use, "rule": rule,
        "osm_name": b["name"].astype("string").to_numpy(), "tag": tag.to_numpy(),
        "landuse": land.to_numpy(),
    }, geometry=b.geometry.to_numpy(), crs=metric)
    return out, {str(k): int(v) for k, v in pd.Series(rule).value_counts().items()}


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


# ---------------------------------------------------------------------------


def build(path: Path, untagged_as: str = "rules", rivers_in_communities: bool = False
          ) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, Any], gpd.GeoDataFrame]:
    """The contract's layers, what was built, and the buildings with their rule, tag,
    land use and name (same rows as the layer). ``untagged_as``: ``rules`` (the module
    docstring's) or ``estimate`` (every untagged footprint left for the engine to
    estimate)."""
    raw = {name: read(path, name) for name in ("buildings", "roads", "water", "boundaries",
                                               "landuse")}
    tiles, missing = territory_tiles(list(raw.values()))
    metric = metric_crs_for(tuple(shapely.bounds(tiles)))
    tiles_m = gpd.GeoSeries([tiles], crs=4326).to_crs(metric).iloc[0]
    roads, dropped = roads_layer(raw["roads"])
    roads = roads.to_crs(metric)
    water, rivers = water_layers(raw["water"], metric)
    district_geoms = districts(tiles_m, raw["boundaries"].to_crs(metric))
    land: dict[str, shapely.Geometry] = {}
    for name, geom in district_geoms.items():
        parts = shapely.get_parts(geom if rivers_in_communities
                                  else shapely.difference(geom, rivers))
        parts = parts[shapely.area(parts) >= 1_000]  # specks between water polygons
        if len(parts):
            land[name] = shapely.union_all(parts)
    buildings, rules = buildings_layer(raw["buildings"], raw["landuse"], metric, untagged_as)
    all_land = shapely.union_all(list(land.values()))
    inside = shapely.contains(all_land, shapely.point_on_surface(buildings.geometry.to_numpy()))
    outside = int((~inside).sum())
    buildings = buildings[inside].reset_index(drop=True)
    admin, mapping = admin_layer(path, land, roads, water, buildings, raw["landuse"], metric)
    layers = {"admin_areas": admin, "roads": roads, "water": water,
              "buildings": buildings.drop(columns=["rule", "osm_name", "tag", "landuse"])}
    est = building_households(buildings, PartitionParams())[0]
    info = {
        "tiles_missing_from_extract": missing,
        "territory_km2": round(float(shapely.area(tiles_m)) / 1e6, 3),
        "land_km2": round(float(shapely.area(all_land)) / 1e6, 3),
        "districts": sorted(land),
        "roads": len(roads), "roads_dropped_pieces": dropped,
        "road_classes": {str(k): int(v) for k, v in roads["class"].value_counts().items()},
        "water_features": len(water),
        "buildings": len(buildings), "buildings_outside_land_dropped": outside,
        "building_rules": rules,
        "households_by_rule": {str(k): int(v) for k, v in
                               pd.Series(est).groupby(buildings["rule"].to_numpy()).sum()
                               .items()},
        "communities": len(mapping),
        "communities_with_real_code": sum(m["real_code"] for m in mapping),
        "communities_list": mapping,
    }
    return layers, info, buildings


def estimates_and_water(result: Any, metric_layers: dict[str, gpd.GeoDataFrame],
                        buildings: gpd.GeoDataFrame) -> dict[str, Any]:
    """The largest estimated households per building (top 10 with floor area, height
    and floors), grids that are one non-residential building, and grids over 50 % water
    (by area, the water layer's polygons)."""
    params = result.params
    layer = metric_layers["buildings"]
    hh, _, estimated, _ = building_households(layer, params)
    geoms = layer.geometry.to_numpy()
    area = shapely.area(geoms)
    floors = layer["floors"].to_numpy(dtype=float, na_value=np.nan)
    height = layer["height"].to_numpy(dtype=float, na_value=np.nan)
    floors_used = np.where(np.isnan(floors), np.round(height / params.floor_height_m), floors)
    floors_used = np.where(np.isnan(floors_used) | (floors_used < 1), 1, floors_used)
    order = np.argsort(-np.where(estimated, hh, -1), kind="stable")[:10]
    top = [{
        "households": int(hh[i]), "footprint_m2": round(float(area[i])),
        "floor_area_m2": round(float(area[i] * floors_used[i])),
        "height_m": None if np.isnan(height[i]) else round(float(height[i]), 1),
        "floors": int(floors_used[i]), "floor_area_per_household_m2":
            round(float(area[i] * floors_used[i] / hh[i]), 1) if hh[i] else None,
        "name": None if pd.isna(buildings["osm_name"].iloc[i]) else
            str(buildings["osm_name"].iloc[i]),
        "tag": None if pd.isna(buildings["tag"].iloc[i]) else str(buildings["tag"].iloc[i]),
        "landuse": None if pd.isna(buildings["landuse"].iloc[i]) else
            str(buildings["landuse"].iloc[i]),
        "rule": str(buildings["rule"].iloc[i]),
    } for i in order if estimated[i]]
    # Buildings to grids, as the engine assigns them (a point on the surface).
    grids = result.grids
    ggeoms = grids.geometry.to_numpy()
    pts = shapely.point_on_surface(geoms)
    owner = np.full(len(pts), -1)
    bi, gi = shapely.STRtree(ggeoms).query(pts, predicate="within")
    owner[bi] = gi
    lost = np.flatnonzero(owner < 0)
    if lost.size:
        owner[lost] = shapely.STRtree(ggeoms).nearest(pts[lost])
    with_hh = hh > 0
    n_res = np.bincount(owner[with_hh], minlength=len(grids))
    rule = buildings["rule"].to_numpy()
    single: dict[str, int] = {}
    single_list: list[dict[str, Any]] = []
    for g in np.flatnonzero(n_res == 1):
        b = int(np.flatnonzero(with_hh & (owner == g))[0])
        kind = "residential" if rule[b] in RESIDENTIAL_RULES else str(rule[b])
        single[kind] = single.get(kind, 0) + 1
        if kind != "residential":
            single_list.append({"grid": str(grids["code"].iloc[g]),
                                "households": int(grids["households"].iloc[g]),
                                "building_households": int(hh[b]), "rule": kind,
                                "tag": top_str(buildings["tag"].iloc[b]),
                                "name": top_str(buildings["osm_name"].iloc[b])})
    water = metric_layers.get("water")
    polys = water[np.isin(shapely.get_type_id(water.geometry.to_numpy()), [3, 6])] \
        if water is not None else None
    share = np.zeros(len(grids))
    if polys is not None and len(polys):
        wet = shapely.union_all(shapely.make_valid(polys.geometry.to_numpy()))
        share = shapely.area(shapely.intersection(ggeoms, wet)) / shapely.area(ggeoms)
    wet_grids = [{"grid": str(grids["code"].iloc[g]), "kind": str(grids["kind"].iloc[g]),
                  "area_km2": round(float(shapely.area(ggeoms[g])) / 1e6, 3),
                  "water_share": round(float(share[g]), 3),
                  "households": int(grids["households"].iloc[g])}
                 for g in np.argsort(-share) if share[g] > 0.5]
    return {
        "buildings_estimated": int(estimated.sum()),
        "households_estimated": int(hh[estimated].sum()),
        "largest_estimated_households": int(hh[estimated].max()) if estimated.any() else 0,
        "estimated_over_500": int((hh[estimated] > 500).sum()),
        "top10_estimated": top,
        "grids": len(grids),
        "single_building_grids": int((n_res == 1).sum()),
        "single_building_grids_by_rule": dict(sorted(single.items())),
        "single_nonresidential_building_grids": int(sum(v for k, v in single.items()
                                                        if k != "residential")),
        "single_nonresidential_list": single_list,
        "grids_over_50pct_water": len(wet_grids),
        "comprehensive_grids_over_50pct_water": sum(g["kind"] == "comprehensive"
                                                    for g in wet_grids),
        "max_water_share": round(float(share.max()), 3) if len(share) else 0.0,
        "grids_over_50pct_water_list": wet_grids,
    }


def top_str(value: Any) -> str | None:
    return None if pd.isna(value) else str(value)


#: The two territories built: (how untagged footprints are treated, rivers in communities).
VARIANTS = {"rules": ("rules", False), "estimate": ("estimate", True)}
VARIANT_TEXT = {
    "rules": "households estimated for the buildings the module docstring calls "
             "residential; the Huangpu and Suzhou Creek outside the communities",
    "estimate": "every untagged footprint outside non-residential land use estimated "
                "(towers and large halls included), and the communities reaching the "
                "district lines mid-river, as real admin areas do"}


def run_variant(path: Path, variant: str) -> tuple[dict[str, Any], Any, Any]:
    untagged_as, rivers_in = VARIANTS[variant]
    with timed(f"[{variant}] layers from the Tilezen extract") as t_build:
        layers, info, buildings = build(path, untagged_as, rivers_in)
    with timed(f"[{variant}] layer contract (read_territory)") as t_read:
        territory = territory_via_contract("shanghai_bund", layers)
    with timed(f"[{variant}] partition") as t_part:
        result = run_engine(territory)
    metric_layers = territory.to_metric()
    payload = {
        "seconds": {"build_layers": t_build.seconds, "contract": t_read.seconds,
                    "partition": t_part.seconds},
        "contract": {"repairs": len(territory.repairs), "notes": territory.notes},
        "figures": figures(result),
        "geometry_checks": geometry_checks(result, PartitionParams().sliver_area_m2),
        "data_built": info,
        "estimates_and_water": estimates_and_water(result, metric_layers, buildings),
    }
    return payload, result, territory


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--out", type=Path, help="folder for grids.gpkg (not committed)")
    parser.add_argument("--png", type=Path, help="a picture of the grids (needs matplotlib)")
    args = parser.parse_args(argv)
    path = args.path.resolve()
    if not (path / "buildings.geojson").is_file():
        raise SystemExit(f"no Shanghai data at {path}: give the shanghai_bund folder "
                         "(see ../shared/data/real/README.md)")
    runs = {}
    for variant in VARIANTS:
        runs[variant] = run_variant(path, variant)
    payload_rules, result, territory = runs["rules"]
    for variant, (payload, _, _) in runs.items():
        print_table(f"Shanghai Bund (OSM) [{variant}]: engine figures", {
            k: v for k, v in payload["figures"].items() if k not in ("barrier_share_by_kind",)})
        extra = payload["estimates_and_water"]
        print_table(f"[{variant}] estimates and water", {
            k: v for k, v in extra.items()
            if k not in ("top10_estimated", "single_nonresidential_list",
                         "grids_over_50pct_water_list")})
        top = Table(title=f"[{variant}] largest estimated households per building")
        for col in ("households", "footprint_m2", "floors", "height_m", "floor_area_m2",
                    "tag", "landuse", "name"):
            top.add_column(col, justify="right" if col not in ("tag", "landuse", "name")
                           else "left")
        for row in extra["top10_estimated"]:
            top.add_row(*[str(row[c]) for c in ("households", "footprint_m2", "floors",
                                                 "height_m", "floor_area_m2", "tag",
                                                 "landuse", "name")])
        console.print(top)
    print_table("geometry checks", payload_rules["geometry_checks"])
    print_table("data built", {k: v for k, v in payload_rules["data_built"].items()
                               if k != "communities_list"})
    payload = {
        "data": "shanghai_bund (Tilezen/OSM, © OpenStreetMap contributors, ODbL)",
        "params": "PartitionParams() defaults",
        "variant": VARIANT_TEXT["rules"],
        **payload_rules,
        "untagged_estimated": {"variant": VARIANT_TEXT["estimate"], **{
            k: v for k, v in runs["estimate"][0].items() if k != "data_built"},
            "data_built": {k: v for k, v in runs["estimate"][0]["data_built"].items()
                           if k in ("communities", "communities_with_real_code",
                                    "households_by_rule", "buildings")}},
    }
    write_results("real_shanghai", payload)
    metric_admin = territory.to_metric()["admin_areas"]
    villages = metric_admin[metric_admin["level"] == "village"]
    if args.out:
        write_geometry(args.out, {"grids": result.grids, "blocks": result.blocks,
                                  "villages": villages, **territory.to_metric()})
    if args.png:
        barriers = barrier_lines(territory.to_metric(), result.params)
        render_png(args.png, result.grids, villages, barriers,
                   territory.to_metric()["buildings"],
                   title=f"Shanghai Bund: {len(result.grids)} grids")
    return payload


if __name__ == "__main__":
    main()
