"""Printable partition posters (网格划分图) of a town or community."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy import Engine

from api.auth import PlansRead, check_plan
from api.deps import Id, get_engine
from gis.errors import NotFound
from gis.exports import content_disposition
from maps.poster import FontMissing, GlyphMissing, PaperSize, PosterFormat, make_poster

router = APIRouter(tags=["posters"])

AreaCode = Annotated[str, PathParam(
    min_length=1, max_length=12, pattern=r"^[0-9A-Za-z_-]+$",
    description="Code of a town/street (街道/镇, 9 digits) or village/community (社区/村, "
                "12 digits) of the plan's territory")]


@router.get(
    "/plans/{plan_id}/posters/{area_code}.{fmt}",
    summary="A printable partition poster (网格划分图) of a town or community",
    description=(
        "The poster of one town/street or village/community that has grids in the plan: "
        "title, plan version and date, the map (grids in soft colours with their codes, "
        "grid, village and town boundaries, named roads and rivers, legend, scale bar, north "
        "arrow) and the grid table (code, name, households, 四至). `pdf`: vector, the CJK "
        "font embedded, the table continued on further pages when it does not fit beside "
        "the map. `png`: the first page, 150 dpi on A3, 100 dpi on A0. Landscape, or "
        "portrait when the area is tall."),
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "image/png": {}},
                     "description": "The poster, as an attachment"},
               404: {"description": "No such plan, or the area is not a town or "
                                    "village/community of the plan's territory with grids"}})
def poster(plan_id: Id, area_code: AreaCode, fmt: PosterFormat, request: Request,
           who: PlansRead,
           size: Annotated[PaperSize, Query(description="Paper size")] = PaperSize.A3,
           engine: Engine = Depends(get_engine)) -> Any:
    check_plan(request, who, plan_id)
    if not who.covers(area_code):
        raise NotFound(f"no area {area_code} with grids in plan {plan_id}")
    try:
        made = make_poster(engine, plan_id, area_code, size, fmt,
                           zone=request.app.state.settings.timezone)
    except FontMissing as exc:
        raise HTTPException(503, exc.message) from exc
    except GlyphMissing as exc:
        raise HTTPException(422, exc.message) from exc
    return Response(made.content, media_type=made.media_type, headers={
        "Content-Disposition": content_disposition(made.filename, made.ascii_filename)})
