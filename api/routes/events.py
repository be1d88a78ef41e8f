"""Events over HTTP: the list with lights, counts, one event, workflow steps, re-route and
escalation; the app state every events route reads (rules, routers, clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from api.auth import EventsAct, EventsRead, Principal, authenticate, check_code, outside, partial
from api.deps import (
    PAGE_HEADERS,
    GridCode,
    Id,
    IdQuery,
    Limit,
    Offset,
    TownCode,
    VillageCode,
    get_engine,
    paged,
)
from events.departments import department_unit
from events.photos import list_photos
from events.privacy import mask_event
from events.router_cache import RouterCache
from events.rules import Rules, describe
from events.store import event_light, event_location, events_page, get_event, light_counts
from events.transitions import escalate_overdue, reroute, transition
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


def with_light(event: dict[str, Any], rules: Rules, now: datetime, who: Principal
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
    shown = paged(request, response, page, found.map(lambda e: with_light(e, rules, now, who)))
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
    found = with_light(_visible(engine, event_id, who), rules_of(request), now_of(request),
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
    return with_light(transition(engine, event_id, body.action, actor=actor,
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
    return with_light(reroute(engine, event_id, values, actor=who.label, reason=body.reason,
                               now=now_of(request)), rules_of(request), now_of(request), who)


@router.post("/events/escalate-overdue", summary="Escalate every open event whose time at its "
                                                "level ran out (also done every minute)")
def escalate(request: Request, who: EventsAct, territory: IdQuery = None,
             engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    ids = escalate_overdue(engine, rules_of(request), now_of(request), territory,
                           partial(who))
    return {"escalated": ids}
