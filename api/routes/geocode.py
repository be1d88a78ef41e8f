"""Geocoding over HTTP: one address or a batch, against a territory's own address points."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import EventsCreate, Principal, check_territory
from api.deps import IdQuery
from api.problems import BadRequest
from events.geocode import AddressIndex, IndexCache
from events.router_cache import RouterCache
from gis import crs as crsmod

router = APIRouter(tags=["geocode"])


def indexes_of(request: Request) -> IndexCache:
    cache: IndexCache = request.app.state.geocoders
    return cache


async def index_for(request: Request, who: Principal, territory: int | None) -> AddressIndex:
    """The territory's address index (default: the only territory with a published plan),
    404 for a territory outside the account's areas."""
    if territory is None:
        routers: RouterCache = request.app.state.routers
        territory = await run_in_threadpool(routers.default_territory)
    check_territory(request, who, territory)
    cache = indexes_of(request)
    index = cache.fresh(territory)
    if index is None:
        index = await run_in_threadpool(cache.get, territory)
    return index


def check_coord_sys(coord_sys: str) -> str:
    crsmod.parse_coord_sys(coord_sys)  # CRSError (422) for an unknown system
    return coord_sys


def visible_answers(answers: list[dict[str, Any]], who: Principal) -> list[dict[str, Any]]:
    """An answer outside the account's areas tells nothing of where it is."""
    out = []
    for a in answers:
        if a["level"] != "none" and not who.overlaps(a["area_code"]):
            a = {**a, "level": "none", "confidence": 0.0, "x": None, "y": None, "lon": None,
                 "lat": None, "area_code": None, "area_name": None, "candidates": [],
                 "outside_your_areas": True}
        out.append(a)
    return out


@router.get("/geocode", summary="Where an address is: the territory's own address points, "
                                "roads and areas (nothing sent outside the server)",
            responses={404: {"description": "No such territory"},
                       422: {"description": "Bad coordinate system"}})
async def geocode_one(
    request: Request,
    who: EventsCreate,
    q: Annotated[str, Query(min_length=1, max_length=300, description="The address as written")],
    territory: IdQuery = None,
    coord_sys: Annotated[str, Query(min_length=1, max_length=200, description=(
        "The answer's system: wgs84, cgcs2000, gcj02, bd09, 2000sz or EPSG:xxxx"))] = "wgs84",
) -> dict[str, Any]:
    index = await index_for(request, who, territory)
    check_coord_sys(coord_sys)
    return visible_answers(index.to([index.geocode(q)], coord_sys), who)[0]


class GeocodeBatch(BaseModel):
    addresses: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        min_length=1, description="Addresses as written (at most GRIDMAP_GEOCODE_BATCH_MAX)")
    territory_id: int | None = Field(None, ge=1, le=2**31 - 1)
    coord_sys: str = Field("wgs84", min_length=1, max_length=200)


@router.post("/geocode", summary="Geocode many addresses at once (same answers as GET)",
             responses={404: {"description": "No such territory"},
                        400: {"description": "Too many addresses"}})
async def geocode_batch(body: GeocodeBatch, request: Request, who: EventsCreate
                        ) -> dict[str, Any]:
    limit = int(request.app.state.settings.geocode_batch_max)
    if len(body.addresses) > limit:
        raise BadRequest(f"地址过多 {len(body.addresses)} addresses in one request, more than "
                         f"{limit} (GRIDMAP_GEOCODE_BATCH_MAX): send them in several batches")
    index = await index_for(request, who, body.territory_id)
    check_coord_sys(body.coord_sys)

    def run() -> list[dict[str, Any]]:
        return index.to(index.geocode_many(body.addresses), body.coord_sys)

    results = visible_answers(await run_in_threadpool(run), who)
    return {"territory_id": body.territory_id, "results": results}
