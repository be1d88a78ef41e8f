"""Field work over HTTP: event photos, the staff roster of a grid, patrols (日双巡) and per
grid and day whether each grid had its two patrols."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, Field, field_validator
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import EventsAct, EventsCreate, EventsRead, check_code, check_territory, outside
from api.deps import (
    PAGE_HEADERS,
    AreaCodeQuery,
    GridCode,
    Id,
    IdQuery,
    Limit,
    Offset,
    get_engine,
    paged,
)
from api.routes.events import now_of, routers_of
from events.patrols import (
    MAX_POINTS,
    PER_DAY,
    add_points,
    coverage,
    day_window,
    end_patrol,
    get_patrol,
    patrols_page,
    start_patrol,
)
from events.photos import add_photo, photos_page, read_photo
from events.roster import roster_page
from events.store import get_event
from gis.codes import check_code as area_code
from gis.errors import NotFound
from gis.paging import Page
from gis.plans import grid_names, published_plan_id
from gis.settings import Settings
from gis.store import territory_row
from gis.times import zone_label

router = APIRouter(tags=["field"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# --- photos -------------------------------------------------------------------------------


@router.post("/events/{event_id}/photos", status_code=201, tags=["events"],
             summary="Add a photo to an event (JPEG, PNG or WebP; size-limited)",
             responses={404: {"description": "No such event"},
                        413: {"description": "Over GRIDMAP_PHOTO_MAX_KB or the pixel limit, "
                                             "or the event has its most photos"},
                        415: {"description": "Not a JPEG, PNG or WebP image"}})
async def upload_photo(event_id: Id, request: Request, who: EventsCreate,
                       photo: Annotated[UploadFile, File(description="The photo")],
                       engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    settings = _settings(request)
    limit = settings.photo_max_kb * 1024
    data = await photo.read(limit + 1)   # one byte over is enough to refuse it
    event = await run_in_threadpool(get_event, engine, event_id, False)
    check_code(who, event["grid_code"], f"event {event_id}")
    return await run_in_threadpool(
        lambda: add_photo(engine, event_id, data, by=who.label, now=now_of(request),
                          max_bytes=limit, max_pixels=settings.photo_max_pixels,
                          max_count=settings.photos_per_event))


@router.get("/events/{event_id}/photos", tags=["events"],
            summary="The photos of an event (descriptions and URLs)",
            responses={404: {"description": "No such event"}, **PAGE_HEADERS})
def photos(event_id: Id, request: Request, response: Response, who: EventsRead,
           limit: Limit = 1_000, offset: Offset = 0, engine: Engine = Depends(get_engine)
           ) -> list[dict[str, Any]]:
    check_code(who, get_event(engine, event_id, False)["grid_code"], f"event {event_id}")
    page = Page(limit, offset)
    return paged(request, response, page, photos_page(engine, event_id, page))


@router.get("/events/{event_id}/photos/{photo_id}", tags=["events"], response_class=Response,
            summary="One photo of an event (the image)",
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
                       404: {"description": "No such event or photo"}})
def photo(event_id: Id, photo_id: Id, who: EventsRead,
          engine: Engine = Depends(get_engine)) -> Response:
    check_code(who, get_event(engine, event_id, False)["grid_code"], f"event {event_id}")
    data, media = read_photo(engine, event_id, photo_id)
    # Never changed once stored: the browser may keep it (privately: it is an account's).
    return Response(data, media_type=media, headers={
        "Cache-Control": "private, max-age=86400, immutable",
        "Content-Disposition": f'inline; filename="event{event_id}-{photo_id}"'})


# --- the roster ----------------------------------------------------------------------------


@router.get("/territories/{territory_id}/staff", tags=["territories"],
            summary="The staff roster (who looks after which grids), for dispatching",
            responses={404: {"description": "No such territory"}, **PAGE_HEADERS})
def staff(territory_id: Id, request: Request, response: Response, who: EventsRead,
          grid: GridCode = None, limit: Limit = 1_000, offset: Offset = 0,
          engine: Engine = Depends(get_engine)) -> list[dict[str, Any]]:
    territory_row(engine, territory_id)   # 404 for none
    check_territory(request, who, territory_id)
    page = Page(limit, offset)
    # The reader keeps the members with a grid (or their area) within the account's areas.
    found = roster_page(engine, territory_id, page,
                        areas=None if who.everywhere else who.areas, grid=grid)
    return paged(request, response, page, found.map(lambda r: {
        "name": r.name, "role": r.role, "grids": [g for g in r.grids if who.covers(g)],
        "phone": r.phone if who.can("personal") else None, "area_code": r.area_code}))


# --- patrols -------------------------------------------------------------------------------


def _as_utc(value: datetime | None) -> datetime | None:
    """In UTC: naive times are taken as UTC (SpatiaLite keeps the wall time it is given)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A time in a body: any offset, stored in UTC; default now.
When = Annotated[datetime | None, AfterValidator(_as_utc)]


class PointIn(BaseModel):
    lon: float = Field(ge=-180, le=180, description="WGS84 (the browser's geolocation)")
    lat: float = Field(ge=-90, le=90)
    at: When = Field(None, description="When it was taken (default: now)")
    accuracy_m: float | None = Field(None, ge=0, le=100_000)
    kind: Literal["track", "checkin"] = "track"
    note: str | None = Field(None, max_length=500, description="A check-in's note")


class PatrolIn(BaseModel):
    lon: float = Field(ge=-180, le=180, description="Where it starts (WGS84)")
    lat: float = Field(ge=-90, le=90)
    at: When = None
    accuracy_m: float | None = Field(None, ge=0, le=100_000)
    grid_code: str | None = Field(None, description="The grid walked (default: the grid "
                                                    "holding the start)")
    territory_id: int | None = Field(None, ge=1, le=2**31 - 1)
    idempotency_key: str | None = Field(None, min_length=1, max_length=100)

    @field_validator("grid_code")
    @classmethod
    def _grid(cls, value: str | None) -> str | None:
        return None if value is None else area_code(value, "grid")


class PointsIn(BaseModel):
    points: list[PointIn] = Field(min_length=1, max_length=MAX_POINTS)


class EndIn(BaseModel):
    at: When = None


def _visible_patrol(engine: Engine, patrol_id: int, who: Any) -> dict[str, Any]:
    found = get_patrol(engine, patrol_id)
    if found["username"] != who.username:
        check_code(who, found["grid_code"], f"patrol {patrol_id}")
    return found


@router.post("/patrols", status_code=201, summary="Start a patrol of a grid (日双巡)",
             responses={200: {"description": "A retry (same idempotency key): that patrol"},
                        409: {"description": "No published plan to find the grid in"}})
def start(body: PatrolIn, request: Request, who: EventsAct,
          engine: Engine = Depends(get_engine)) -> JSONResponse:
    published = routers_of(request).get(body.territory_id)
    routed = published.route(body.lon, body.lat, "wgs84")[0]
    grid = body.grid_code or routed["grid_code"]
    if grid is None or not who.covers(grid):
        raise outside(who, f"the grid {grid}")
    key = request.headers.get("idempotency-key") or body.idempotency_key
    at = body.at or now_of(request)
    patrol, made = start_patrol(engine, territory_id=routed["territory_id"], grid_code=grid,
                                username=who.username, walker=who.label, at=at,
                                lon=body.lon, lat=body.lat, accuracy_m=body.accuracy_m,
                                key=key)
    return JSONResponse(patrol, status_code=201 if made else 200)


@router.post("/patrols/{patrol_id}/points", summary="Add track points and check-ins",
             responses={404: {"description": "No such patrol"},
                        409: {"description": "Another's patrol, or points after its end"}})
def points(patrol_id: Id, body: PointsIn, request: Request, who: EventsAct,
           engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    now = now_of(request)
    rows = [{**p.model_dump(), "at": p.at or now} for p in body.points]
    n = add_points(engine, patrol_id, who.username, rows)
    return {"added": n, **get_patrol(engine, patrol_id, with_points=False)}


@router.post("/patrols/{patrol_id}/end", summary="End a patrol",
             responses={404: {"description": "No such patrol"},
                        409: {"description": "Another's patrol"}})
def end(patrol_id: Id, request: Request, who: EventsAct, body: EndIn | None = None,
        engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    at = (body.at if body is not None else None) or now_of(request)
    return end_patrol(engine, patrol_id, who.username, at)


def _day(request: Request, day: date | None) -> tuple[date, tuple[datetime, datetime]]:
    zone = _settings(request).timezone
    if day is None:
        day = now_of(request).astimezone(ZoneInfo(zone)).date()
    return day, day_window(day, zone)


@router.get("/patrols", summary="Patrols, newest first (a day in GRIDMAP_TIMEZONE; mine)",
            responses=PAGE_HEADERS)
def patrols(request: Request, response: Response, who: EventsRead, territory: IdQuery = None,
            grid: GridCode = None, day: date | None = None,
            mine: Annotated[bool, Query()] = False,
            limit: Limit = 200, offset: Offset = 0,
            engine: Engine = Depends(get_engine)) -> list[dict[str, Any]]:
    window = _day(request, day)[1] if day is not None else None
    page = Page(limit, offset)
    return paged(request, response, page, patrols_page(
        engine, page, territory_id=territory, grid=grid, window=window,
        username=who.username if mine else None,
        areas=None if who.everywhere or mine else who.areas))


@router.get("/patrols/coverage", summary="Per grid and day: its patrols, and whether it had "
                                         "its two (日双巡)",
            responses={409: {"description": "The territory has no published plan"}})
def patrol_coverage(request: Request, who: EventsRead, territory: IdQuery = None,
                    area: AreaCodeQuery = None, day: date | None = None,
                    engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    tid = territory if territory is not None else routers_of(request).default_territory()
    check_territory(request, who, tid)
    plan_id = published_plan_id(engine, tid)
    if plan_id is None:
        raise NotFound(f"territory {tid} has no published plan")
    grids = grid_names(engine, plan_id, area=area, areas=who.areas)
    the_day, window = _day(request, day)
    rows = coverage(engine, grids, window, territory_id=tid)
    zone = _settings(request).timezone
    return {"territory_id": tid, "plan_id": plan_id, "day": the_day.isoformat(),
            "zone": zone_label(zone), "per_day": PER_DAY, "grids": rows,
            "total": len(rows), "twice": sum(r["twice"] for r in rows)}


@router.get("/patrols/{patrol_id}", summary="One patrol with its track and check-ins",
            responses={404: {"description": "No such patrol"}})
def patrol(patrol_id: Id, who: EventsRead, engine: Engine = Depends(get_engine)
           ) -> dict[str, Any]:
    return _visible_patrol(engine, patrol_id, who)
