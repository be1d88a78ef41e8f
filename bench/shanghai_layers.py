"""The Bund's Tilezen extract to the contract's layers: the z16 tiles it covers, features cut
at tile edges merged by OSM id, roads, water, and buildings with the rule that made each
residential or not (bench/real_shanghai.py's docstring gives the rules)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from real_common import read_geojson

ZOOM = 16
RESIDENTIAL_TAGS = {"apartments", "residential", "house", "dormitory", "terrace", "detached",
                    "semidetached_house"}
COMMERCIAL_TAGS = {"commercial", "hotel", "retail", "office", "bank", "mall", "shop",
                   "restaurant", "company", "supermarket"}
RESIDENTIAL_RULES = ("tagged residential", "untagged in residential land use",
                     "untagged low-rise outside land use")
#: Water areas larger than this (m²) are rivers, not part of any community.
RIVER_M2 = 50_000.0
HIGH_RISE_M = 24.0
LARGE_FOOTPRINT_M2 = 3_000.0
FLOORS_ESTATE, FLOORS_OTHER = 6, 3


def read(path: Path, name: str) -> gpd.GeoDataFrame:
    return read_geojson(path / f"{name}.geojson")


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
