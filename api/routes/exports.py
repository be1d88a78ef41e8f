"""Plan exports as downloads: GeoPackage, Shapefile, GeoJSON, CSV, XLSX, DXF and KML."""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import Engine
from starlette.background import BackgroundTask

from api.auth import PlansRead, check_plan, partial
from api.deps import Id, get_engine
from gis.exports.formats import FORMATS
from gis.exports.options import ENCODINGS
from gis.exports.plan import content_disposition, export_plan

router = APIRouter(tags=["exports"])



class Encoding(StrEnum):
    """The text encodings of :data:`gis.exports.options.ENCODINGS`."""

    utf_8 = "utf-8"
    gbk = "gbk"


assert {e.value for e in Encoding} == set(ENCODINGS), "Encoding must list ENCODINGS"


class ExportFormat(StrEnum):
    """The formats of :data:`gis.exports.formats.FORMATS`, as the path spells them."""

    gpkg = "gpkg"
    shp_zip = "shp.zip"
    geojson = "geojson"
    csv = "csv"
    xlsx = "xlsx"
    dxf = "dxf"
    kml = "kml"


assert {f.value for f in ExportFormat} == set(FORMATS), "ExportFormat must list FORMATS"


@router.get(
    "/plans/{plan_id}/export.{fmt}", response_class=FileResponse,
    summary="Download a plan's grids as a file",
    description=(
        "`gpkg`: GeoPackage, layer `grids`. `shp.zip`: zipped Shapefile (`grids.shp` with "
        "`.cpg` = UTF-8 and `.prj`; field names cut to 10 characters, see docs/api.md). "
        "`geojson`: RFC 7946, feature id = grid code. `csv`: UTF-8 with BOM, Chinese + "
        "English headings, centroid and WKT outline. `xlsx`: the same table as a formatted "
        "sheet. `dxf`: AutoCAD DXF, grids as closed polylines on a layer per village, codes "
        "as text, in the territory's Gauss–Krüger zone unless `crs` says otherwise. `kml`: "
        "KML 2.2 (Google Earth, 奥维), a folder per village, WGS84 only. Geometries are WGS84 "
        "unless `crs` says otherwise; flags are comma-separated text."),
    responses={200: {"content": {f.media_type.split(";")[0]: {} for f in FORMATS.values()},
                     "description": "The file, as an attachment"},
               404: {"description": "No such plan"},
               422: {"description": "An unknown format, or a CRS that is not one or does "
                                    "not cover the plan"}})
def export(plan_id: Id, fmt: ExportFormat, request: Request, who: PlansRead,
           crs: Annotated[str | None, Query(max_length=200, description=(
               "The coordinate system of the file: `wgs84` (default), `cgcs2000` "
               "(EPSG:4490), `auto` (the territory's 3° Gauss–Krüger zone), a zone "
               "`EPSG:4513`–`EPSG:4554`, `2000sz`, or any EPSG code of a geographic or "
               "projected system whose area of use covers the plan; anything else is 422. "
               "The file declares it (`.prj` in ESRI WKT, the GeoPackage's srs, GeoJSON's "
               "`crs` member, the CSV/XLSX 坐标系 column)."))] = None,
           encoding: Annotated[Encoding, Query(description=(
               "Shapefile text encoding: `utf-8`, or `gbk` for ArcGIS 10.x / SuperMap / "
               "MapGIS (Chinese field names cut to 10 bytes, `.cpg` = 936, see the zip's "
               "`grids_fields.txt`); ignored by the other formats"))] = Encoding.utf_8,
           engine: Engine = Depends(get_engine)) -> Any:
    check_plan(request, who, plan_id)
    folder = Path(tempfile.mkdtemp(prefix="gridmap-export-"))
    try:
        done = export_plan(engine, plan_id, fmt.value, folder, partial(who), crs=crs,
                           encoding=encoding.value)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        done.path, media_type=done.media_type,
        headers={"Content-Disposition": content_disposition(done.filename,
                                                            done.ascii_filename)},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
