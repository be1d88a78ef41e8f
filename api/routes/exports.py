"""Plan exports as files: GeoPackage, zipped Shapefile, GeoJSON, CSV and XLSX downloads."""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from sqlalchemy import Engine
from starlette.background import BackgroundTask

from api.auth import PlansRead, check_plan, partial
from api.deps import Id, get_engine
from gis.exports import FORMATS, content_disposition, export_plan

router = APIRouter(tags=["exports"])



class ExportFormat(StrEnum):
    """The formats of :data:`gis.exports.FORMATS`, as the path spells them."""

    gpkg = "gpkg"
    shp_zip = "shp.zip"
    geojson = "geojson"
    csv = "csv"
    xlsx = "xlsx"


assert {f.value for f in ExportFormat} == set(FORMATS), "ExportFormat must list FORMATS"


@router.get(
    "/plans/{plan_id}/export.{fmt}", response_class=FileResponse,
    summary="Download a plan's grids as a file",
    description=(
        "`gpkg`: GeoPackage, layer `grids`. `shp.zip`: zipped Shapefile (`grids.shp` with "
        "`.cpg` = UTF-8 and `.prj`; field names cut to 10 characters, see docs/api.md). "
        "`geojson`: RFC 7946, feature id = grid code. `csv`: UTF-8 with BOM, Chinese + "
        "English headings. `xlsx`: the same table as a formatted sheet. Geometries are "
        "WGS84; flags are comma-separated text."),
    responses={200: {"content": {f.media_type.split(";")[0]: {} for f in FORMATS.values()},
                     "description": "The file, as an attachment"},
               404: {"description": "No such plan"}})
def export(plan_id: Id, fmt: ExportFormat, request: Request, who: PlansRead,
           engine: Engine = Depends(get_engine)) -> Any:
    check_plan(request, who, plan_id)
    folder = Path(tempfile.mkdtemp(prefix="gridmap-export-"))
    try:
        done = export_plan(engine, plan_id, fmt.value, folder, partial(who))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        done.path, media_type=done.media_type,
        headers={"Content-Disposition": content_disposition(done.filename,
                                                            done.ascii_filename)},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
