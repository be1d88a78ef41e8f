"""Events over HTTP: intake (one, bulk), routing lookup, workflow steps, lights and counts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import (
    EventsAct,
    EventsCreate,
    EventsImport,
    EventsRead,
    Principal,
    StaffWrite,
    authenticate,
    check_code,
    check_territory,
    outside,
    partial,
)
from api.deps import (
    PAGE_HEADERS,
    GridCode,
    Id,
    IdQuery,
    Limit,
    Offset,
    TownCode,
    VillageCode,
    check_encoding,
    get_engine,
    paged,
)
from api.problems import BadRequest, Forbidden
from api.routes.geocode import index_for
from events.departments import department_unit
from events.files import check_text, coordinate_columns, event_frame
from events.geocode import at_least
from events.photos import list_photos
from events.privacy import mask_event, mask_routing
from events.roster import Member, replace_roster
from events.router import points_to_wgs84
from events.router_cache import RouterCache
from events.rules import SOURCES, Rules, describe
from events.store import (
    create_event,
    create_events_columns,
    escalate_overdue,
    event_light,
    event_location,
    events_page,
    get_event,
    light_counts,
    reroute,
    scoped_key,
    transition,
)
from events.unlocated import (
    claim,
    create_unlocated,
    create_unlocated_many,
    forget_unlocated,
    get_unlocated,
    placed,
    unlocated_page,
)
from gis.codes import check_code as area_code
from gis.errors import CoordinateError, LayerError, NotFound
from gis.io.limits import ReadLimits
from gis.paging import Page

router = APIRouter(tags=["events"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such event"}}


def rules_of(request: Request) -> Rules:
    rules: Rules = request.app.state.rules
    return rules


def routers_of(request: Request) -> RouterCache:
    cache: RouterCache = request.app.state.routers
    return cache


def now_of(request: Request) -> datetime:
    moment: datetime = request.app.state.clock()
    return moment


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


class ActionIn(BaseModel):
    action: Literal["accept", "dispatch", "start", "resolve", "verify", "close", "reopen",
                    "escalate"]
    actor: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=2_000)
    handler: str | None = Field(None, max_length=100, description="For dispatch")
    rating: int | None = Field(None, ge=1, le=5, description="For close: 1–5")
    feedback: str | None = Field(None, max_length=2_000, description="For close")


class RerouteIn(BaseModel):
    actor: str | None = Field(None, max_length=100, description=(
        "Ignored: the history names the signed-in account (kept for older clients)"))
    reason: str = Field(min_length=1, max_length=2_000)


class StaffIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["grid_worker", "grid_head", "station_head"] = "grid_worker"
    phone: str | None = Field(None, max_length=40)
    area_code: str | None = Field(None, max_length=20, description=(
        "The area the person works for: a district, town, village/community or grid code"))
    grids: list[str] = Field(default_factory=list, description="Grid codes looked after")

    @field_validator("area_code")
    @classmethod
    def _area(cls, value: str | None) -> str | None:
        return None if value is None else area_code(value)

    @field_validator("grids")
    @classmethod
    def _grids(cls, value: list[str]) -> list[str]:
        return [area_code(code, "grid") for code in value]


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


def _with_light(event: dict[str, Any], rules: Rules, now: datetime, who: Principal
                ) -> dict[str, Any]:
    """The event as the account may see it: its light, names and phones masked unless the
    role needs them."""
    event["light"] = event_light(event, rules, now)
    return event if who.can("personal") else mask_event(event)


def _visible(engine: Engine, event_id: int, who: Principal) -> dict[str, Any]:
    """The event, or 404 when it lies outside the account's areas."""
    event = get_event(engine, event_id)
    check_code(who, event["grid_code"], f"event {event_id}")
    return event


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
    event = _with_light(created.event, rules, now_of(request), who)
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
    return JSONResponse(_with_light(created.event, rules, now_of(request), who),
                        status_code=201)


#: The columns an import reads besides the coordinates (other properties are ignored).
IMPORT_COLUMNS = ("category", "source", "description", "reporter", "address", "地址")
#: Names of an import's address column (rows without coordinates are geocoded from it).
ADDRESS_COLUMNS = ("address", "地址", "详细地址", "事发地址")


def _by_row(x: np.ndarray, y: np.ndarray, coord_sys: str, exc: CoordinateError) -> str:
    """The reason some imported points cannot be routed, naming rows (1 = the first event)
    rather than array indexes; worked out again only when the import is refused."""
    try:
        points_to_wgs84(x, y, coord_sys, row_numbers=np.arange(1, len(x) + 1))
    except CoordinateError as named:
        return named.message
    return exc.message


def _geocode_rows(request: Request, who: Principal, tid: int, name: str, table: pd.DataFrame,
                  x: np.ndarray, y: np.ndarray, coord_sys: str
                  ) -> tuple[np.ndarray, list[int], list[dict[str, Any]]]:
    """Rows without coordinates placed by their address (in place, in ``coord_sys``):
    (each row's geocode level or None, the rows left waiting for a location, their
    geocoder answers). A row with neither is refused, naming it."""
    level = np.full(len(table), None, dtype=object)
    need = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if not need.size:
        return level, [], []
    by_name = {str(c).strip().lower(): c for c in table.columns}
    col = next((by_name[n] for n in ADDRESS_COLUMNS if n in by_name), None)
    texts = (table[col].fillna("").astype(str).str.strip().to_numpy(dtype=object)
             if col is not None else np.full(len(table), "", dtype=object))
    empty = need[texts[need] == ""]
    if empty.size:
        raise CoordinateError(f"{name}: row {int(empty[0]) + 1} has neither valid coordinates "
                              f"nor an address ({empty.size} such rows); nothing was "
                              "imported")
    index = request.app.state.geocoders.get(tid)
    answers = index.to(index.geocode_many(texts[need].tolist()), coord_sys)
    minimum = request.app.state.settings.geocode_min_level
    waiting: list[int] = []
    kept: list[dict[str, Any]] = []
    for row, answer in zip(need.tolist(), answers, strict=True):
        if answer["level"] != "none" and at_least(answer["level"], minimum):
            x[row], y[row], level[row] = answer["x"], answer["y"], answer["level"]
        else:
            if answer["area_code"] and not who.overlaps(answer["area_code"]):
                raise Forbidden(f"{name}: row {row + 1}'s address lies outside your areas "
                                f"({', '.join(who.areas)}); nothing was imported")
            waiting.append(row)
            kept.append(answer)
    return level, waiting, kept


@router.post("/events/import", summary="Bulk import: a CSV (x/lon, y/lat columns, or an address "
                                       "column) or GeoJSON of points, routed and stored in one "
                                       "transaction",
             responses={409: {"description": "No published plan"},
                        422: {"description": "A bad row (named); nothing stored"}})
def import_events(
    request: Request,
    who: EventsImport,
    file: Annotated[UploadFile, File(description="CSV or GeoJSON of points")],
    coord_sys: Annotated[str | None, Form(min_length=1, max_length=200, description=(
        "The coordinates' system (required when the file has coordinates)"))] = None,
    territory_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
    category: Annotated[str | None, Form(max_length=60, description=(
        "For rows without a category column"))] = None,
    source: Annotated[str, Form(max_length=40)] = "hotline",
    encoding: Annotated[str | None, Form(max_length=40)] = None,
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    started = time.perf_counter()
    rules = rules_of(request)
    name = Path(file.filename or "events.csv").name or "events.csv"
    limits = ReadLimits.from_settings(request.app.state.settings)
    table = event_frame(file.file.read(), name, encoding=check_encoding(encoding),
                        max_rows=limits.max_features, keep=IMPORT_COLUMNS)
    with_address = any(str(c).strip().lower() in ADDRESS_COLUMNS for c in table.columns)
    xcol: str | None
    ycol: str | None
    try:
        xcol, ycol = coordinate_columns(table, name, ("x", "lon", "lng", "longitude", "经度"),
                                        ("y", "lat", "latitude", "纬度"))
    except LayerError:
        if not with_address:
            raise
        xcol = ycol = None  # an address column alone: every row geocoded
    check_text(table, IMPORT_COLUMNS, name)
    if xcol is not None and ycol is not None:
        if coord_sys is None:
            raise CoordinateError(f"{name}: coord_sys is required for the file's coordinates "
                                  "(wgs84, cgcs2000, gcj02, bd09, 2000sz, EPSG:xxxx): there "
                                  "is no default; nothing was imported")
        # Copies: rows without coordinates get their geocoded point written in.
        x = pd.to_numeric(table[xcol], errors="coerce").to_numpy(dtype=float, copy=True)
        y = pd.to_numeric(table[ycol], errors="coerce").to_numpy(dtype=float, copy=True)
    else:
        x = np.full(len(table), np.nan)
        y = np.full(len(table), np.nan)
    coord_sys = coord_sys or "wgs84"
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size and not with_address:
        raise CoordinateError(f"{name}: row {int(bad[0]) + 1} has no valid {xcol}/{ycol} "
                              f"({bad.size} such rows); nothing was imported")
    cats = table["category"].astype(str).to_numpy(dtype=object) if "category" in table \
        else np.full(len(table), category or "", dtype=object)
    bad = np.flatnonzero(~pd.Series(cats).isin(list(rules.limits)).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise BadRequest(f"{name}: row {i + 1} has category {cats[i]!r}, not one of "
                         f"{', '.join(rules.limits)}; nothing was imported")
    srcs = table["source"].astype(str).to_numpy(dtype=object) if "source" in table else \
        np.full(len(table), source, dtype=object)
    bad = np.flatnonzero(~pd.Series(srcs).isin(list(SOURCES)).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise BadRequest(f"{name}: row {i + 1} has source {srcs[i]!r}, not one of "
                         f"{', '.join(SOURCES)}; nothing was imported")
    tid = territory_id if territory_id is not None else \
        routers_of(request).default_territory()
    if with_address:
        check_territory(request, who, tid)
    level, waiting, answers = _geocode_rows(request, who, tid, name, table, x, y, coord_sys) \
        if with_address else (np.full(len(table), None, dtype=object), [], [])
    keep = np.ones(len(table), dtype=bool)
    keep[waiting] = False
    located = table[keep].reset_index(drop=True)
    x, y = x[keep], y[keep]
    cats_all, srcs_all = cats, srcs
    cats, srcs, level = cats[keep], srcs[keep], level[keep]
    checked = time.perf_counter()
    try:   # on the cluster's workers (which keep the territory's router), not here
        routed = request.app.state.jobs.route_columns(
            tid, x, y, coord_sys, request.app.state.settings.near_boundary_m)
    except CoordinateError as exc:
        raise CoordinateError(f"{name}: {_by_row(x, y, coord_sys, exc)}; nothing was "
                              "imported") from exc
    if not who.everywhere:
        codes = pd.Series(routed["grid_code"], dtype=object).fillna("")
        out = np.flatnonzero(~codes.str.startswith(tuple(who.areas)).to_numpy(dtype=bool))
        if out.size:
            raise Forbidden(f"{name}: {out.size} rows lie outside your areas "
                            f"({', '.join(who.areas)}), the first row {int(out[0]) + 1} in "
                            f"grid {codes.iloc[int(out[0])]}; nothing was imported")
    now = now_of(request)

    def text(frame: pd.DataFrame, col: str) -> np.ndarray | None:
        return frame[col].astype(str).to_numpy(dtype=object) if col in frame else None

    by_name = {str(c).strip().lower(): c for c in located.columns}
    addr_col = next((by_name[n] for n in ADDRESS_COLUMNS if n in by_name), None)
    columns = {k: routed[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                      "village_code", "town_code", "district_code",
                                      "distance_m", "other_grid_code", "flags")}
    columns.update(category=cats, source=srcs, coord_sys=coord_sys, x=x, y=y, reported_at=now,
                   description=text(located, "description"),
                   reporter=text(located, "reporter"), geocode_level=level,
                   address=(located[addr_col].fillna("").astype(str).str.slice(0, 300)
                            .replace("", None).to_numpy(dtype=object)
                            if addr_col is not None else None))
    stored = time.perf_counter()
    # The rows waiting for a location first (one transaction), removed again if the
    # events cannot be stored: nothing of a refused import stays.
    waited = _store_waiting(engine, who, tid, table, waiting, answers, now, cats_all,
                            srcs_all)
    try:
        n = create_events_columns(engine, columns, routed["lon"], routed["lat"], rules) \
            if len(x) else 0
    except BaseException:
        forget_unlocated(engine, waited)
        raise
    done = time.perf_counter()
    flags = routed["flags"]
    return {"imported": n, "needs_location": len(waited), "plan_id": routed["plan_id"],
            "outside": sum("outside" in f for f in flags),
            "near_boundary": sum("near_boundary" in f for f in flags),
            "seconds": {"read": round(checked - started, 2), "route": round(stored - checked, 2),
                        "store": round(done - stored, 2), "total": round(done - started, 2)}}


def _store_waiting(engine: Engine, who: Principal, tid: int, table: pd.DataFrame,
                   rows: list[int], answers: list[dict[str, Any]], now: datetime,
                   cats: np.ndarray, srcs: np.ndarray) -> list[int]:
    """An import's rows too vague to route, kept as ``needs_location``; their ids."""
    if not rows:
        return []
    by_name = {str(c).strip().lower(): c for c in table.columns}
    col = next(by_name[n] for n in ADDRESS_COLUMNS if n in by_name)

    def cell(name: str, row: int) -> str | None:
        return str(table[name].iloc[row]) if name in table and str(table[name].iloc[row]) \
            else None

    fields = [{"territory_id": tid, "category": str(cats[r]), "source": str(srcs[r]),
               "address": str(table[col].iloc[r])[:300], "description": cell("description", r),
               "reporter": cell("reporter", r), "reported_at": now, "geocode": a,
               "idempotency_key": None, "created_by": who.username}
              for r, a in zip(rows, answers, strict=True)]
    return create_unlocated_many(engine, fields)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/events", summary="Events, newest first, with their light",
            responses=PAGE_HEADERS)
def events(
    request: Request,
    response: Response,
    who: EventsRead,
    territory: IdQuery = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    grid: GridCode = None,
    village: VillageCode = None,
    town: TownCode = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    category: Annotated[str | None, Query(max_length=60)] = None,
    since: Annotated[datetime | None, Query(description="Reported at or after")] = None,
    until: Annotated[datetime | None, Query(description="Reported before")] = None,
    light: Annotated[Literal["green", "yellow", "red"] | None, Query(description=(
        "Only events of this light (of the page asked for)"))] = None,
    order: Annotated[Literal["newest", "deadline"], Query(description=(
        "newest first, or soonest deadline first (the desk's order)"))] = "newest",
    limit: Limit = 100,
    offset: Offset = 0,
    engine: Engine = Depends(get_engine),
) -> list[dict[str, Any]]:
    rules, now = rules_of(request), now_of(request)
    page = Page(limit, offset)
    found = events_page(
        engine, page, territory_id=territory, status=status, grid=grid, village=village,
        town=town, open_only=open_only, areas=partial(who), category=category,
        since=_utc(since), until=_utc(until), order=order)
    # "next" follows the store's page, whatever the light filter leaves of it
    shown = paged(request, response, page, found.map(lambda e: _with_light(e, rules, now, who)))
    return [e for e in shown if light is None or e["light"] == light]


@router.get("/events/rules", summary="Categories, sources, levels and time limits")
async def event_rules(request: Request) -> dict[str, Any]:
    await authenticate(request)
    rules = rules_of(request)
    return {**describe(), "limits_hours": rules.limits, "yellow_share": rules.yellow_share}


@router.get("/events/stats", summary="Open events by light, and the on-time rate, per grid, "
                                     "village, town or district")
def stats(
    request: Request,
    who: EventsRead,
    by: Annotated[Literal["grid", "village", "town", "district"], Query()] = "grid",
    territory: IdQuery = None,
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    groups = light_counts(engine, rules_of(request), now_of(request), by=by,
                          territory_id=territory, areas=partial(who))
    total = {k: sum(g[k] for g in groups.values())
             for k in ("open", "green", "yellow", "red", "resolved", "resolved_on_time")}
    total["on_time_rate"] = (round(total["resolved_on_time"] / total["resolved"], 4)
                             if total["resolved"] else None)
    return {"by": by, "total": total, "groups": groups}


@router.get("/events/{event_id}", responses=NOT_FOUND,
            summary="One event with its history and light")
def event(event_id: Id, request: Request, who: EventsRead,
          engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    found = _with_light(_visible(engine, event_id, who), rules_of(request), now_of(request),
                        who)
    found["photos"] = list_photos(engine, event_id)
    found["department_unit"] = department_unit(
        engine, found, request.app.state.settings.event_departments)
    return found


@router.post("/events/{event_id}/actions", responses={
    **NOT_FOUND, 400: {"description": "The step breaks the workflow rules (says which)"}},
    summary="One workflow step: accept, dispatch, start, resolve, verify, close, reopen, "
            "escalate")
def act(event_id: Id, body: ActionIn, request: Request, who: EventsAct,
        engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    rules, now = rules_of(request), now_of(request)
    _visible(engine, event_id, who)
    # A grid worker acts as themself; an operator may record the person at the station.
    actor = who.label if who.role == "grid_worker" else body.actor
    return _with_light(transition(engine, event_id, body.action, actor=actor,
                                  rules=rules, now=now, reason=body.reason,
                                  handler=body.handler, rating=body.rating,
                                  feedback=body.feedback), rules, now, who)


@router.post("/events/{event_id}/reroute", responses={
    **NOT_FOUND, 409: {"description": "No published plan"}},
    summary="Route an event again under the published plan (explicit and audited)")
def reroute_event(event_id: Id, body: RerouteIn, request: Request, who: EventsAct,
                  engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    current = _visible(engine, event_id, who)
    published = routers_of(request).get(current["territory_id"])
    row = event_location(engine, event_id)
    routed = published.route(row.x, row.y, row.coord_sys)[0]
    if not who.covers(routed["grid_code"]):
        raise outside(who, f"the grid it would move to ({routed['grid_code']})")
    values = {k: routed[k] for k in ("plan_id", "grid_id", "grid_code", "village_code",
                                     "town_code", "district_code", "distance_m",
                                     "other_grid_code", "flags")}
    # The signed-in account is the actor: a re-route moves an event between grids, and its
    # history must name who did it, not a name typed in the request.
    return _with_light(reroute(engine, event_id, values, actor=who.label, reason=body.reason,
                               now=now_of(request)), rules_of(request), now_of(request), who)


@router.post("/events/escalate-overdue", summary="Escalate every open event whose time at its "
                                                "level ran out (also done every minute)")
def escalate(request: Request, who: EventsAct, territory: IdQuery = None,
             engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    ids = escalate_overdue(engine, rules_of(request), now_of(request), territory,
                           partial(who))
    return {"escalated": ids}


@router.put("/territories/{territory_id}/staff", tags=["territories"],
            summary="Replace the territory's staff roster (grid workers and their grids)",
            responses={404: {"description": "No such territory"}})
def put_staff(territory_id: Id, body: list[StaffIn], request: Request, who: StaffWrite,
              engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    check_territory(request, who, territory_id, whole=True)
    replace_roster(engine, territory_id, [
        Member(m.name, m.role, m.phone, m.area_code, tuple(m.grids)) for m in body])
    routers_of(request).invalidate(territory_id)
    return {"staff": len(body), "grids": sum(len(set(m.grids)) for m in body)}
