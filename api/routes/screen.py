"""The command-centre big screen (一屏观全局) and the live counts it shows."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine

from api.auth import EventsRead, Principal, check_code, check_territory
from api.deps import AreaCodeQuery, IdQuery, get_engine
from events.dashboard import MAX_POINTS, first_published_territory, screen_data
from gis.errors import NotFound
from gis.overlays import list_overlays
from gis.plans import published_plan_id
from gis.settings import Settings
from gis.store import territory_row
from gis.times import page_zone
from maps.screen import POLL_SECONDS, grids_url, no_plan_page, overlay_specs, screen_page

router = APIRouter(tags=["screen"])


def _territory(engine: Engine, territory: int | None) -> int:
    if territory is not None:
        return territory
    found = first_published_territory(engine)
    if found is None:
        raise NotFound("no territory has a published plan yet: publish one "
                       "(POST /plans/{id}/publish) 尚无已发布的网格方案")
    return found


def _scoped_area(who: Principal, area: str | None) -> str | None:
    """The area the screen shows: the one asked for when it lies within the account's areas
    (else 404); by default the whole territory, or the account's first area."""
    if area is None:
        return None if who.everywhere else who.areas[0]
    check_code(who, area, f"area {area}")
    return area


@router.get("/screen/data", summary="The command-centre screen's figures for one area",
            responses={200: {"description": "Counts for the area and each child area, worst "
                                            "light per grid, the open events' points"},
                       304: {"description": "Unchanged since the ETag in If-None-Match"},
                       404: {"description": "No such territory or area"}})
def data(
    request: Request,
    who: EventsRead,
    territory: Annotated[IdQuery, Query(description=(
        "Territory id; default: the first with a published plan"))] = None,
    area: AreaCodeQuery = None,
    engine: Engine = Depends(get_engine),
) -> Response:
    """Counts for the area (open, green/yellow/red, resolved, on-time rate, reported today in
    the server's zone, GRIDMAP_TIMEZONE), the same for each child area, the worst light and
    open count of each grid with open events, and up to 5,000 open events as points, most
    urgent first.

    Answers carry an ETag; a request with ``If-None-Match`` set to it gets 304 and no body
    while nothing changed (the screen polls every few seconds).
    """
    settings: Settings = request.app.state.settings
    tid = _territory(engine, territory)
    check_territory(request, who, tid)
    area = _scoped_area(who, area)
    body = screen_data(engine, request.app.state.rules, request.app.state.clock(),
                       tid, area, max_points=MAX_POINTS,
                       basemap_crs=settings.basemap_crs, zone=settings.timezone,
                       departments=settings.event_departments)
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    etag = f'"{hashlib.blake2b(raw, digest_size=12).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    asked = request.headers.get("if-none-match", "")
    if etag in [t.strip().removeprefix("W/") for t in asked.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


@router.get("/screen", include_in_schema=False, response_class=HTMLResponse)
def page(request: Request, who: EventsRead, territory: IdQuery = None,
         area: AreaCodeQuery = None,
         engine: Engine = Depends(get_engine)) -> HTMLResponse:
    tid = territory if territory is not None else first_published_territory(engine)
    if tid is None:
        return HTMLResponse(no_plan_page(None))
    name = str(territory_row(engine, tid).name)   # NotFound for an unknown territory
    check_territory(request, who, tid)
    area = _scoped_area(who, area)
    plan_id = published_plan_id(engine, tid)
    if plan_id is None:
        return HTMLResponse(no_plan_page(name))
    settings: Settings = request.app.state.settings
    config: dict[str, Any] = {
        "territory": tid, "territory_name": name, "plan": plan_id, "area": area,
        "data_url": "/screen/data", "grids_url": grids_url(plan_id, settings.basemap_crs),
        "poll_seconds": POLL_SECONDS, "basemap_url": settings.basemap_url,
        "basemap_attribution": settings.basemap_attribution,
        "basemap_labels_url": settings.basemap_labels_url,
        "basemap_subdomains": settings.basemap_subdomains,
        "basemap_crs": settings.basemap_crs, "timezone": page_zone(settings.timezone),
        "overlays": overlay_specs(tid, [o["department"] for o in list_overlays(engine, tid)],
                                  settings.basemap_crs)}
    return HTMLResponse(screen_page(name, config))
