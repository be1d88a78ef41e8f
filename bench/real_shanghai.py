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

from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from real_common import (
    console,
    data_args,
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
from shanghai_admin import admin_layer, districts
from shanghai_checks import estimates_and_water
from shanghai_layers import buildings_layer, read, roads_layer, territory_tiles, water_layers

from gis.zones import metric_crs_for
from partitioning.blocks import barrier_lines
from partitioning.households import building_households
from partitioning.params import PartitionParams

DEFAULT_PATH = Path(__file__).resolve().parents[1] / ".." / "shared/data/real/shanghai_bund"


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
    args, path = data_args(__doc__, DEFAULT_PATH, "buildings.geojson", "Shanghai", argv)
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
