"""Events waiting for a location over HTTP: the list, and placing one (routed and stored
as an event)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import EventsAct, EventsRead, outside
from api.deps import PAGE_HEADERS, Id, IdQuery, Limit, Offset, get_engine, paged
from api.routes.events import now_of, routers_of, rules_of, with_light
from events.intake import create_event
from events.unlocated import claim, get_unlocated, placed, unlocated_page
from gis.errors import NotFound
from gis.paging import Page

router = APIRouter(tags=["events"])
#: operationIds stay ``events_<function>`` (api.app.operation_id): these routes were split out
#: of api/routes/events.py, and generated clients keep the names they had.
OPERATION_PREFIX = "events"


class PlaceIn(BaseModel):
    x: float = Field(description="Longitude, or easting in a projected system")
    y: float = Field(description="Latitude, or northing in a projected system")
    coord_sys: str = Field(min_length=1, max_length=200)


@router.get("/events/unlocated", summary="Events waiting for a location (needs_location): "
                                         "reported by an address the geocoder could not place",
            responses=PAGE_HEADERS)
def unlocated_events(request: Request, response: Response, who: EventsRead,
                     territory: IdQuery = None, limit: Limit = 500, offset: Offset = 0,
                     engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    page = Page(limit, offset)
    found = unlocated_page(engine, page, territory,
                           areas=None if who.everywhere else who.areas)
    rows = paged(request, response, page, found)
    if not who.can("personal"):
        rows = [{**r, "reporter": None if r["reporter"] is None else "***"} for r in rows]
    # count: all that wait (the page holds at most ``limit`` of them)
    return {"count": found.total if found.total is not None else len(rows), "events": rows}


@router.post("/events/unlocated/{unlocated_id}/place", status_code=201,
             summary="Place an event that needs a location: routed and stored as an event",
             responses={404: {"description": "No such event waiting"},
                        409: {"description": "Placed already"}})
async def place_event(unlocated_id: Id, body: PlaceIn, request: Request, who: EventsAct,
                      engine: Engine = Depends(get_engine)) -> JSONResponse:
    waiting = await run_in_threadpool(get_unlocated, engine, unlocated_id)
    if not (who.everywhere or who.overlaps(waiting["area_code"])):
        raise NotFound(f"no event {unlocated_id} waiting for a location")
    rules = rules_of(request)
    cache = routers_of(request)
    published = await run_in_threadpool(cache.get, int(waiting["territory_id"]))
    routed = published.route(body.x, body.y, body.coord_sys)[0]
    if not who.covers(routed["grid_code"]):
        raise outside(who, f"the event's place (grid {routed['grid_code']}); nothing stored")
    await run_in_threadpool(claim, engine, unlocated_id)
    fields = {"category": waiting["category"], "source": waiting["source"],
              "description": waiting["description"], "reporter": waiting["reporter"],
              "reported_at": datetime.fromisoformat(waiting["reported_at"]),
              "address": waiting["address"], "geocode_level": "placed", "x": body.x,
              "y": body.y, "coord_sys": body.coord_sys, "idempotency_key": None,
              **{k: routed[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                        "village_code", "town_code", "district_code",
                                        "distance_m", "other_grid_code", "flags")}}
    try:
        created = await run_in_threadpool(create_event, engine, fields, routed["lon"],
                                          routed["lat"], rules)
    except BaseException:
        await run_in_threadpool(placed, engine, unlocated_id, None)
        raise
    await run_in_threadpool(placed, engine, unlocated_id, int(created.event["id"]))
    created.event["routing"] = routed
    created.event.setdefault("lon", routed["lon"])
    created.event.setdefault("lat", routed["lat"])
    created.event["photos"] = []
    return JSONResponse(with_light(created.event, rules, now_of(request), who),
                        status_code=201)
