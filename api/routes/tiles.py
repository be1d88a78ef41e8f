"""Vector tiles of a plan's grids (Mapbox Vector Tile) and their TileJSON, cached."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import Engine

from api.auth import PlansRead, check_plan, partial
from api.deps import Id, get_engine, get_settings, plan_cache
from api.problems import BadRequest
from gis.errors import NotFound
from gis.plans import get_plan
from gis.settings import Settings
from gis.store import territory_row
from maps.tiles import (
    FIELDS,
    LAYER,
    MAX_ZOOM,
    PlanStamp,
    Tile,
    TileError,
    check_tile,
    etag,
    plan_bounds,
    plan_stamp,
    render_tile,
)

router = APIRouter(tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"
#: The zoom range TileJSON announces: a district fills a z8 tile, and from z16 on a grid is
#: hundreds of pixels wide, so clients over-zoom z16 tiles (any z up to 22 is served).
MIN_ZOOM, SOURCE_MAX_ZOOM = 8, 16
#: A tile URL with the plan's generation token (``?v=``, as TileJSON hands it out) never
#: changes; one without it is revalidated each time (a 304 when unchanged). Always
#: ``private``: a tile is an answer to a signed-in account, cut to its areas, and a shared
#: cache (a proxy, a command centre's shared PC profile) must not hand it to anyone else;
#: ``Vary`` names what tells accounts apart, for caches that ignore ``private``.
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"
VARY = "Authorization, X-API-Key, Cookie"

TileNumber = Annotated[int, Path(description="Tile number (XYZ scheme, y down from the north)")]


def _matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names ``tag`` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    wanted = tag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == wanted
               for t in if_none_match.split(","))


@router.get(
    "/tiles/{plan_id}/{z}/{x}/{y}.mvt", response_class=Response,
    summary="A vector tile of a plan's grids (Mapbox Vector Tile)",
    description=(
        f"Layer `{LAYER}` (extent 4096, buffer 64), one polygon per grid with feature id = "
        "the grid's id and properties " + ", ".join(f"`{k}`" for k in FIELDS) + ". `status` "
        "compares households with the server's band (GRIDMAP_MIN/MAX_HOUSEHOLDS): `below`, "
        f"`in_band`, `above`, or `dedicated`. z is 0–{MAX_ZOOM}, x and y 0–2^z−1. A tile with "
        "no grid is 200 with an empty body. Tiles carry an ETag (If-None-Match gives 304); "
        "`v` is the plan's generation token as the TileJSON gives it."),
    responses={200: {"content": {MVT: {}}, "description": "The tile (empty body: no grid)"},
               304: {"description": "Not modified (If-None-Match)"},
               400: {"description": "z, x or y outside the tile pyramid"},
               404: {"description": "No such plan, or `v` names a plan generation that is "
                                    "gone"}})
def tile(plan_id: Id, z: TileNumber, x: TileNumber, y: TileNumber, request: Request,
         who: PlansRead,
         v: Annotated[str | None, Query(max_length=64, description="Generation token")] = None,
         engine: Engine = Depends(get_engine),
         settings: Settings = Depends(get_settings)) -> Response:
    try:
        address = check_tile(z, x, y)
    except TileError as exc:
        raise BadRequest(exc.message) from exc
    check_plan(request, who, plan_id)
    areas = partial(who)
    stamp = plan_stamp(engine, plan_id)
    if v is not None and v != stamp.token:
        raise NotFound(f"方案 {plan_id} 已不是签发此瓦片地址时的版本 (v={v}),请重新读取 "
                       f"TileJSON; plan {plan_id} is no longer the generation this tile URL "
                       f"was issued for: reload /tiles/{plan_id}.json")
    band = (settings.min_households, settings.max_households)
    tag = etag(stamp, address, band, engine.dialect.name, areas)
    headers = {"ETag": tag, "Cache-Control": IMMUTABLE if v is not None else REVALIDATE,
               "Vary": VARY}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    data, hit = _tile_bytes(request, engine, stamp, address, band, areas)
    headers["X-Tile-Cache"] = "hit" if hit else "miss"
    return Response(content=data, media_type=MVT, headers=headers)


def _tile_bytes(request: Request, engine: Engine, stamp: PlanStamp, address: Tile,
                band: tuple[int, int], areas: tuple[str, ...] | None) -> tuple[bytes, bool]:
    cache = plan_cache(request)
    key = address if areas is None else (address, areas)
    data = cache.get(stamp, key)
    if data is not None:
        return data, True
    data = render_tile(engine, stamp.plan_id, address, band, areas=areas)
    cache.put(stamp, key, data)
    return data, False


@router.get(
    "/tiles/{plan_id}.json", summary="TileJSON 3.0 of a plan's vector tiles",
    description=(
        "For MapLibre (`{\"type\": \"vector\", \"url\": …}`) and other TileJSON clients: the "
        "tile URL template (with the plan's generation token), bounds, center, zoom range "
        f"{MIN_ZOOM}–{SOURCE_MAX_ZOOM} (clients over-zoom beyond) and the `{LAYER}` layer "
        "with its fields."),
    responses={404: {"description": "No such plan"}})
def tilejson(plan_id: Id, request: Request, response: Response, who: PlansRead,
             engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    check_plan(request, who, plan_id)
    stamp = plan_stamp(engine, plan_id)
    plan = get_plan(engine, plan_id)
    territory = territory_row(engine, plan.territory_id)
    bounds = plan_bounds(engine, plan_id) or (-180.0, -85.0511, 180.0, 85.0511)
    center = [round((bounds[0] + bounds[2]) / 2, 6), round((bounds[1] + bounds[3]) / 2, 6),
              12]
    base = str(request.base_url).rstrip("/")
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = VARY
    return {
        "tilejson": "3.0.0",
        "name": f"{territory.name} 网格 v{plan.version} ({plan.status})",
        "description": f"Grids of plan {plan_id} (territory {plan.territory_id}, version "
                       f"{plan.version}, {plan.n_grids} grids) 网格划分方案",
        "version": "1.0.0",
        "attribution": "gridmap",
        "scheme": "xyz",
        "tiles": [f"{base}/tiles/{plan_id}/{{z}}/{{x}}/{{y}}.mvt?v={stamp.token}"],
        "minzoom": MIN_ZOOM,
        "maxzoom": SOURCE_MAX_ZOOM,
        "bounds": [round(b, 6) for b in bounds],
        "center": center,
        "vector_layers": [{
            "id": LAYER, "description": "网格 grids, coloured by status against the band",
            "minzoom": MIN_ZOOM, "maxzoom": SOURCE_MAX_ZOOM, "fields": dict(FIELDS)}],
    }
