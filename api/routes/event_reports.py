"""Events reported over HTTP: one event, located by a point or by an address the geocoder
places (else kept as needs_location), and the routing lookup of a point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import EventsCreate, Principal, check_code, outside
from api.deps import IdQuery, get_engine
from api.problems import BadRequest
from api.routes.events import now_of, routers_of, rules_of, with_light
from api.routes.geocode import index_for
from events.departments import department_unit
from events.geocode import at_least
from events.intake import create_event
from events.photos import list_photos
from events.privacy import mask_routing
from events.store import scoped_key
from events.unlocated import create_unlocated

router = APIRouter(tags=["events"])
#: operationIds stay ``events_<function>`` (api.app.operation_id): these routes were split out
#: of api/routes/events.py, and generated clients keep the names they had.
OPERATION_PREFIX = "events"


class EventIn(BaseModel):
    """An event located by x/y (``coord_sys`` required with them: there is no silent
    default) or by an ``address``, which the territory's own address points place."""

    x: float | None = Field(None, description="Longitude, or easting in a projected system")
    y: float | None = Field(None, description="Latitude, or northing in a projected system")
    coord_sys: str | None = Field(None, min_length=1, max_length=200, description=(
        "wgs84, cgcs2000, gcj02 (AMap, Tencent), bd09 (Baidu), 2000sz, or EPSG:xxxx"))
    address: str | None = Field(None, min_length=1, max_length=300, description=(
        "Instead of x/y: the address as written (白云区鹤龙社区同和路88号3栋). Routed when the "
        "geocoder places it at GRIDMAP_GEOCODE_MIN_LEVEL or better; else kept as "
        "needs_location (202) for an operator to place"))
    category: str = Field(min_length=1, max_length=60)
    source: Literal["patrol", "citizen", "hotline", "sensor"]
    territory_id: int | None = Field(None, ge=1, le=2**31 - 1, description=(
        "Default: the only territory with a published plan"))
    description: str | None = Field(None, max_length=5_000)
    reporter: str | None = Field(None, max_length=100)
    reported_at: datetime | None = Field(None, description="Default: now")
    idempotency_key: str | None = Field(None, min_length=1, max_length=100, description=(
        "The client's key: a retried request with the same key never makes a second event"))

    @model_validator(mode="after")
    def _located(self) -> EventIn:
        if self.x is None and self.y is None:
            if not self.address or not self.address.strip():
                raise ValueError("give x, y and coord_sys, or an address (地址或坐标必填)")
            return self
        if self.x is None or self.y is None or not self.coord_sys:
            raise ValueError("x, y and coord_sys go together: give all three (or an address "
                             "instead)")
        return self

    @field_validator("reported_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """In UTC: naive times are taken as UTC, others converted (SpatiaLite keeps the
        wall time it is given, so 08:00+08:00 must arrive as 00:00 UTC)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_reported_at(moment: datetime | None, now: datetime, settings: Any
                      ) -> datetime | None:
    """``reported_at`` within the window the settings allow around ``now`` (400 if not: a
    year-9999 report would overflow its deadline, and a report from long ago or the future is
    a mistake)."""
    if moment is None:
        return None
    earliest = now - timedelta(days=settings.reported_at_max_age_days)
    latest = now + timedelta(minutes=settings.reported_at_max_ahead_minutes)
    if not earliest <= moment <= latest:
        raise BadRequest(
            f"上报时间超出范围 reported_at {moment.isoformat()} is outside the accepted window "
            f"{earliest.isoformat(timespec='seconds')} – {latest.isoformat(timespec='seconds')} "
            f"(GRIDMAP_REPORTED_AT_MAX_AGE_DAYS={settings.reported_at_max_age_days:g}, "
            f"GRIDMAP_REPORTED_AT_MAX_AHEAD_MINUTES="
            f"{settings.reported_at_max_ahead_minutes:g}): check the client's clock, or leave "
            "it out for now")
    return moment

@router.get("/route", summary="Which grid owns a point (routing only, nothing stored)",
            responses={409: {"description": "The territory has no published plan"},
                       422: {"description": "Bad coordinates or coordinate system"}})
async def route(
    request: Request,
    who: EventsCreate,
    x: Annotated[float, Query(description="Longitude or easting")],
    y: Annotated[float, Query(description="Latitude or northing")],
    coord_sys: Annotated[str, Query(min_length=1, max_length=200)],
    territory: IdQuery = None,
) -> JSONResponse:
    # Answered on the event loop (no thread hop): routing one point is a few microseconds of
    # CPU. Only the router's database check (every few seconds) or a rebuild goes to a thread.
    cache = routers_of(request)
    published = cache.fresh(territory)
    if published is None:
        published = await run_in_threadpool(cache.get, territory)
    answer = published.route(x, y, coord_sys)[0]
    if not who.covers(answer["grid_code"]):
        raise outside(who, f"the point (grid {answer['grid_code']})")
    return JSONResponse(answer if who.can("personal") else mask_routing(answer))


@router.post("/events", status_code=201, summary="Report an event: routed and stored",
             responses={200: {"description": "A retry of an event already stored (same "
                                             "idempotency key): the stored event"},
                        409: {"description": "No published plan to route against"},
                        422: {"description": "Bad coordinates, coordinate system or "
                                             "category; nothing stored"}})
async def report_event(body: EventIn, request: Request, who: EventsCreate,
                       engine: Engine = Depends(get_engine)) -> JSONResponse:
    # Checks and routing on the event loop (microseconds of CPU; one thread keeps one set of
    # pyproj transformers, which pyproj makes per thread), the database work in a thread.
    rules = rules_of(request)
    rules.check_category(body.category)
    request.app.state.event_limit.take(who.username, "events")
    key = scoped_key(who.account_id,
                     request.headers.get("idempotency-key") or body.idempotency_key)
    cache = routers_of(request)
    published = cache.fresh(body.territory_id)
    if published is None:
        published = await run_in_threadpool(cache.get, body.territory_id)
    x, y, coord_sys, level = body.x, body.y, body.coord_sys, None
    if x is None or y is None or coord_sys is None:
        geocoded = await _geocode_event(request, who, published.territory_id, body, key)
        if isinstance(geocoded, JSONResponse):
            return geocoded
        x, y, coord_sys, level = geocoded
    routed = published.route(x, y, coord_sys)[0]
    if not who.covers(routed["grid_code"]):
        raise outside(who, f"the event's place (grid {routed['grid_code']}); nothing stored")
    fields = {**body.model_dump(exclude={"x", "y", "coord_sys", "territory_id",
                                         "idempotency_key"}),
              "x": x, "y": y, "coord_sys": coord_sys, "idempotency_key": key,
              "geocode_level": level,
              **{k: routed[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                        "village_code", "town_code", "district_code",
                                        "distance_m", "other_grid_code", "flags")}}
    now = now_of(request)
    fields["reported_at"] = check_reported_at(body.reported_at, now,
                                              request.app.state.settings) or now
    created = await run_in_threadpool(create_event, engine, fields, routed["lon"],
                                      routed["lat"], rules)
    if not created.created:
        # A replay answers with what is stored under the key: checked again against the
        # caller's areas now (and masked below as any read is).
        check_code(who, created.event["grid_code"], "event under this idempotency key")
    created.event["routing"] = routed
    # As GET /events/{id} answers: the stored point, and the photos (none yet when new).
    created.event.setdefault("lon", routed["lon"])
    created.event.setdefault("lat", routed["lat"])
    created.event["photos"] = [] if created.created else await run_in_threadpool(
        list_photos, engine, int(created.event["id"]))
    created.event["department_unit"] = await run_in_threadpool(
        department_unit, engine, created.event, request.app.state.settings.event_departments)
    event = with_light(created.event, rules, now_of(request), who)
    # Plain JSON values already (times as ISO text): rendered directly, as FastAPI would.
    return JSONResponse(event, status_code=201 if created.created else 200)


async def _geocode_event(request: Request, who: Principal, territory_id: int, body: EventIn,
                         key: str | None) -> tuple[float, float, str, str] | JSONResponse:
    """Place an event reported by address: (lon, lat, "wgs84", level) when the geocoder
    reaches GRIDMAP_GEOCODE_MIN_LEVEL; else it is stored as ``needs_location`` and the 202
    answer (or, for a replayed key, the stored one with 200) is returned."""
    assert body.address is not None
    index = await index_for(request, who, territory_id)
    answer = index.to([index.geocode(body.address)], "wgs84")[0]
    minimum = request.app.state.settings.geocode_min_level
    if answer["level"] != "none" and at_least(answer["level"], minimum):
        return float(answer["lon"]), float(answer["lat"]), "wgs84", str(answer["level"])
    if answer["area_code"] and not who.overlaps(answer["area_code"]):
        raise outside(who, f"the address's area ({answer['area_code']}); nothing stored")
    now = now_of(request)
    fields = {"territory_id": territory_id, "category": body.category, "source": body.source,
              "address": body.address, "description": body.description,
              "reporter": body.reporter,
              "reported_at": check_reported_at(body.reported_at, now,
                                               request.app.state.settings) or now,
              "geocode": answer, "idempotency_key": key, "created_by": who.username}
    stored, created = await run_in_threadpool(create_unlocated, request.app.state.engine,
                                              fields)
    if not who.can("personal"):
        stored = {**stored, "reporter": None if stored.get("reporter") is None else "***"}
    return JSONResponse(stored, status_code=202 if created else 200)
