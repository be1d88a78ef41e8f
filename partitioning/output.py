"""Write a partition to files: grids.gpkg, blocks.gpkg and report.json (WGS84 geometries)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd

from partitioning.engine import PartitionResult

GRID_COLUMNS = ["code", "name", "village_code", "village_name", "kind", "households",
                "households_estimated", "population", "area_m2", "compactness",
                "barrier_share", "radius_m", "boundary_text", "flags", "flag_reason",
                "barrier_inside_m"]


def grid_table(result: PartitionResult) -> gpd.GeoDataFrame:
    """The grids in WGS84, flags as comma-separated text (empty when regular)."""
    grids = result.grids[[*GRID_COLUMNS, "geometry"]].copy()
    grids["flags"] = [",".join(f) for f in grids["flags"]]
    return grids.to_crs("EPSG:4326")


def write_partition(result: PartitionResult, out: Path) -> dict[str, Path]:
    """Write the three files into ``out`` (created if missing); return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"grids": out / "grids.gpkg", "blocks": out / "blocks.gpkg",
             "report": out / "report.json"}
    for key in ("grids", "blocks"):
        paths[key].unlink(missing_ok=True)
    grid_table(result).to_file(paths["grids"], layer="grids", driver="GPKG", engine="pyogrio")
    blocks = result.blocks[["block_id", "village_code", "households", "households_estimated",
                            "population", "grid_code", "geometry"]].to_crs("EPSG:4326")
    blocks.to_file(paths["blocks"], layer="blocks", driver="GPKG", engine="pyogrio")
    if result.streets is not None and len(result.streets):
        result.streets.to_crs("EPSG:4326").to_file(paths["blocks"], layer="inferred_streets",
                                                   driver="GPKG", engine="pyogrio")
    paths["report"].write_text(json.dumps(result.report, ensure_ascii=False, indent=2),
                               encoding="utf-8")
    return paths
