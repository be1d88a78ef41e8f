"""The `gridmap overlay` commands: a department's own grid units as an overlay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli_accounts import DatabaseOption
from api.console import JsonOption, Output, QuietOption, user_errors
from gis.errors import GridmapError

overlay_app = typer.Typer(help="Department grids 部门网格 (警格, 城管网格, …) as overlays.",
                          no_args_is_help=True)


@overlay_app.command("add")
def overlay_add(
    territory_id: Annotated[int, typer.Argument(help="The territory's id.")],
    path: Annotated[Path, typer.Argument(
        help="One polygon layer: GeoPackage, GeoJSON, Shapefile, or a .zip of one.")],
    department: Annotated[str, typer.Option(help="公安, 城管, 应急, …")],
    database_url: DatabaseOption = None,
    field_map: Annotated[list[str] | None, typer.Option(
        "--field-map", help="Which column holds the unit code and name: 警格编号=code, "
                            "警格名称=name. Repeatable.")] = None,
    crs: Annotated[str | None, typer.Option(
        help="Coordinate system where the file declares none (or wrongly): EPSG:4490, "
             "EPSG:4547, gcj02, …")] = None,
    encoding: Annotated[str | None, typer.Option(
        help="Attribute encoding of a Shapefile without .cpg, e.g. GBK.")] = None,
    name: Annotated[str | None, typer.Option(help="Name of the overlay.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace this department's overlay.")] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import a department's own grid units into a territory as an overlay."""
    from gis.database import make_engine, upgrade
    from gis.io.options import parse_field_map
    from gis.overlays import check_department, read_overlay, store_overlay
    from gis.store import territory_row

    out = Output(quiet=quiet, as_json=as_json)
    with user_errors():
        engine = make_engine(database_url)
        upgrade(engine)
        territory_row(engine, territory_id)
        dept = check_department(department)
        layer = read_overlay(path, field_map=parse_field_map(field_map), crs=crs,
                             encoding=encoding)
        overlay_id = store_overlay(engine, territory_id, dept, layer, name=name,
                                   source=str(path), replace=replace)
        out.result({"overlay_id": overlay_id, "territory_id": territory_id,
                    "department": dept, "units": len(layer.units),
                    "source_crs": str(layer.source_crs), "code_field": layer.field_map["code"]},
                   f"overlay {overlay_id} ({dept}): {len(layer.units):,} units 单元, drawn in "
                   f"{layer.source_crs}; code from {layer.field_map['code']}")


@overlay_app.command("list")
def overlay_list(territory_id: Annotated[int, typer.Argument(help="The territory's id.")],
                 database_url: DatabaseOption = None, quiet: QuietOption = False,
                 as_json: JsonOption = False) -> None:
    """A territory's overlays."""
    from gis.database import make_engine
    from gis.overlays import list_overlays
    from gis.store import territory_row

    with user_errors():
        engine = make_engine(database_url)
        territory_row(engine, territory_id)
        table = Table(title=f"territory {territory_id} overlays 部门图层")
        for column in ("id", "department 部门", "units 单元", "source CRS"):
            table.add_column(column)
        overlays = list_overlays(engine, territory_id)
        for o in overlays:
            table.add_row(str(o["id"]), o["department"], f"{o['units']:,}", o["source_crs"])
        Output(quiet=quiet, as_json=as_json).result(
            {"territory_id": territory_id, "overlays": overlays}, table)


def barrier_lines(options: list[str]) -> Any:
    """The unit boundaries of each DEPARTMENT=FILE of --barrier-overlay, as one layer."""
    import geopandas as gpd
    import pandas as pd

    from gis.overlays import boundary_lines, check_department, read_overlay

    frames = []
    for option in options:
        department, sep, path = option.partition("=")
        if not sep or not path.strip():
            raise GridmapError(f"--barrier-overlay takes DEPARTMENT=FILE (公安=jingge.shp), "
                               f"got {option!r}")
        units = read_overlay(Path(path.strip())).units
        frames.append(boundary_lines(units, check_department(department)))
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                            crs=4326)
