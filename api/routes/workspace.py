"""The workspace pages of the other roles: accounts (/admin), the event desk (/desk) and the
grid worker's phone page (/m). Each is HTML with one config block; the data comes from the
API by the page's own requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine

from api.auth import PERMISSIONS, ROLE_NAMES, Admin, EventsAct, EventsCreate, Principal, visible
from api.deps import IdQuery, get_engine, get_settings
from api.routes.accounts import role_table
from events.rules import CATEGORY_NAMES
from gis.plans import published_plan_id
from gis.settings import Settings
from gis.store import list_territories
from gis.times import page_zone
from maps.planner import display_system
from maps.workspace import Me, admin_html, desk_html, phone_html

router = APIRouter(tags=["maps"])


def me_of(who: Principal) -> Me:
    return Me(who.username, who.label, who.role, ROLE_NAMES.get(who.role, who.role),
              PERMISSIONS.get(who.role, frozenset()), who.areas)


def _territories(request: Request, who: Principal, engine: Engine) -> list[dict[str, Any]]:
    """The territories the account has an area in, with their published plan."""
    return [{"id": tid, "name": name, "published": published_plan_id(engine, tid)}
            for tid, name in list_territories(engine) if visible(request, who, tid)]


def _map(settings: Settings) -> dict[str, Any]:
    return {"display": display_system(settings), "basemap": settings.basemap_url,
            "attribution": settings.basemap_attribution,
            "labels": settings.basemap_labels_url, "subdomains": settings.basemap_subdomains}


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_page(request: Request, who: Admin, engine: Engine = Depends(get_engine),
               settings: Settings = Depends(get_settings)) -> HTMLResponse:
    return HTMLResponse(admin_html(me_of(who), role_table(), _territories(request, who, engine),
                                   page_zone(settings.timezone)))


@router.get("/desk", response_class=HTMLResponse, include_in_schema=False)
def desk_page(request: Request, who: EventsAct,
              territory: IdQuery = None,
              event: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
              engine: Engine = Depends(get_engine),
              settings: Settings = Depends(get_settings)) -> HTMLResponse:
    territories = _territories(request, who, engine)
    return HTMLResponse(desk_html(me_of(who), {
        "territories": territories, "territory": territory, "event": event,
        "categories": CATEGORY_NAMES, "timezone": page_zone(settings.timezone),
        "map": _map(settings)}))


@router.get("/m", response_class=HTMLResponse, include_in_schema=False)
def phone_page(request: Request, who: EventsCreate,
               territory: IdQuery = None,
               engine: Engine = Depends(get_engine),
               settings: Settings = Depends(get_settings)) -> HTMLResponse:
    territories = [t for t in _territories(request, who, engine) if t["published"]]
    chosen = next((t for t in territories if t["id"] == territory), None) or \
        (territories[0] if territories else None)
    return HTMLResponse(phone_html(me_of(who), {
        "territories": territories, "territory": chosen, "categories": CATEGORY_NAMES,
        "timezone": page_zone(settings.timezone), "map": _map(settings),
        "photoMaxKb": settings.photo_max_kb, "photosPerEvent": settings.photos_per_event}))
