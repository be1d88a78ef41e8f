"""Plans as generations: list, get, grids as GeoJSON, report, publish, diff."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from api.auth import PlansRead, PlansWrite, check_plan, partial, visible_territories
from api.deps import (
    PAGE_HEADERS,
    USER,
    Id,
    IdQuery,
    Limit,
    Offset,
    TownCode,
    VillageCode,
    author,
    get_engine,
    get_settings,
    paged,
    plan_cache,
)
from api.problems import BadRequest
from gis.band import classify_all
from gis.geometry import feature_collection, for_basemap, simplify_coverage
from gis.paging import Page
from gis.plans import get_plan, plan_diff, plans_page, publish_plan, read_grids, stored_report
from gis.settings import Settings
from gis.store import territory_row
from maps.tiles import plan_stamp

router = APIRouter(tags=["plans"])
GEOJSON = "application/geo+json"
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such plan"}}


class PlanOut(BaseModel):
    id: int
    territory_id: int
    version: int
    status: str = Field(description="draft, published or archived")
    parameters: dict[str, Any]
    parent_id: int | None
    note: str | None
    created_by: str | None
    created_at: str | None
    published_at: str | None
    n_grids: int
    edit_version: int = Field(0, description=(
        "Edit generation: one more after every edit, undo or redo of the draft; sent as "
        "the ETag, and an edit names it in If-Match (see docs/editing.md)"))
    published_by: str | None = None
    publish_note: str | None = Field(None, description="Why it was published (发布说明)")


class PublishIn(BaseModel):
    note: str | None = Field(None, max_length=2_000,
                             description="Why this plan is published (发布说明)")


class GridMove(BaseModel):
    from_: str | None = Field(alias="from")
    to: str
    households: int


class DiffOut(BaseModel):
    from_plan: int
    to_plan: int
    grids_added: list[str]
    grids_removed: list[str]
    grids_changed: list[dict[str, Any]]
    grids_unchanged: int
    households_moved: int
    moves: list[GridMove]


def metric_epsg(engine: Engine, territory_id: int) -> int:
    return int(territory_row(engine, territory_id).metric_epsg)


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None or not text.strip():
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise BadRequest(f"bbox {text!r} must be four numbers: minlon,minlat,maxlon,maxlat"
                         ) from exc
    if len(values) != 4 or not (values[0] <= values[2] and values[1] <= values[3]) or not (
            -180 <= values[0] <= 180 and -90 <= values[1] <= 90
            and -180 <= values[2] <= 180 and -90 <= values[3] <= 90):
        raise BadRequest(f"bbox {text!r} must be minlon,minlat,maxlon,maxlat in WGS84 "
                         "degrees, min before max")
    return values[0], values[1], values[2], values[3]


@router.get("/plans", response_model=list[PlanOut], summary="Plans, oldest first",
            responses=PAGE_HEADERS)
def plans(request: Request, response: Response, who: PlansRead, territory: IdQuery = None,
          limit: Limit = 1_000, offset: Offset = 0,
          engine: Engine = Depends(get_engine)) -> list[PlanOut]:
    page = Page(limit, offset)
    found = plans_page(engine, page, territory_id=territory,
                       territory_ids=visible_territories(request, who, engine))
    return paged(request, response, page, found.map(lambda p: PlanOut(**p.as_dict())))


@router.get("/plans/{plan_id}", response_model=PlanOut, responses=NOT_FOUND,
            summary="One plan; its ETag is the edit version an edit names in If-Match")
def plan(plan_id: Id, request: Request, response: Response, who: PlansRead,
         engine: Engine = Depends(get_engine)) -> PlanOut:
    check_plan(request, who, plan_id)
    info = get_plan(engine, plan_id)
    response.headers["ETag"] = f'"{info.edit_version}"'
    return PlanOut(**info.as_dict())


@router.get("/plans/{plan_id}/grids", response_class=Response, summary="Grids as GeoJSON",
            responses={200: {"content": {GEOJSON: {}}, "description": "A FeatureCollection"},
                       **NOT_FOUND})
def grids(
    plan_id: Id,
    request: Request,
    who: PlansRead,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")]
    = None,
    village: VillageCode = None,
    town: TownCode = None,
    flags: Annotated[list[str] | None, Query(
        description="Grids with any of these flags; 'regular' for grids without")] = None,
    simplify: Annotated[float, Query(ge=0, le=1_000, description=(
        "Simplify for display by this many metres; shared edges stay shared"))] = 0.0,
    display: Annotated[Literal["wgs84", "gcj02", "bd09"], Query(description=(
        "Shift the answer into a basemap's system for display: gcj02 (AMap/Tencent) or "
        "bd09 (Baidu); wgs84 (RFC 7946) by default"))] = "wgs84",
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> Response:
    box = parse_bbox(bbox)
    check_plan(request, who, plan_id)
    info = get_plan(engine, plan_id)
    areas = partial(who)
    # The planner map and the screen ask for the whole plan simplified: kept in memory by
    # the plan's stamp (an edit of a draft makes a new one), as tiles are.
    whole_plan = box is None and not (village or town or flags)
    key = ("grids", simplify, display, info.status, areas)
    cache, stamp = (plan_cache(request), plan_stamp(engine, plan_id)) if whole_plan \
        else (None, None)
    if cache is not None and stamp is not None:
        cached = cache.get(stamp, key)
        if cached is not None:
            return Response(cached, media_type=GEOJSON)
    gdf = read_grids(engine, plan_id, bbox=box, village=village, town=town, flags=flags,
                     areas=areas)
    if simplify > 0:
        # Simplify the whole coverage, then take the selection, so edges stay shared
        # with grids outside the selection too.
        every = gdf if box is None and not (village or town or flags) \
            else read_grids(engine, plan_id)
        whole = simplify_coverage(every, simplify, metric_epsg(engine, info.territory_id))
        gdf = gdf.assign(geometry=whole.set_index("id").geometry.loc[gdf["id"]].to_numpy())
    # The pages colour a grid by its class against the plan's band, computed here by the
    # one rule (gis.band), not in the browser.
    gdf = gdf.assign(band_class=classify_all(
        gdf["kind"], gdf["households"],
        info.band((settings.min_households, settings.max_households))))
    body = feature_collection(for_basemap(gdf, display), id_column="code",
                              extra={"plan_id": plan_id, "status": info.status})
    if cache is not None and stamp is not None:
        cache.put(stamp, key, body)
    return Response(body, media_type=GEOJSON)


@router.get("/plans/{plan_id}/report", responses=NOT_FOUND,
            summary="The plan's quality report (per plan; per grid in the grids)")
def report(plan_id: Id, request: Request, who: PlansRead,
           engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    check_plan(request, who, plan_id, whole=True)
    return stored_report(engine, plan_id)


@router.post("/plans/{plan_id}/publish", response_model=PlanOut,
             responses={**NOT_FOUND, 409: {"description": "Already published"}},
             summary="Make the plan its territory's active plan; the previous one is archived")
def publish(plan_id: Id, request: Request, who: PlansWrite, body: PublishIn | None = None,
            user: Annotated[str | None, USER] = None,
            engine: Engine = Depends(get_engine)) -> PlanOut:
    check_plan(request, who, plan_id, whole=True)
    info = publish_plan(engine, plan_id, by=author(user, who),
                        note=body.note if body else None)
    request.app.state.routers.invalidate(info.territory_id)   # route against it at once
    return PlanOut(**info.as_dict())


@router.get("/plans/{a}/diff/{b}", response_model=DiffOut, response_model_by_alias=True,
            responses={**NOT_FOUND, 409: {"description": "Plans of different territories"}},
            summary="What changes from plan a to plan b")
def diff(a: Id, b: Id, request: Request, who: PlansRead,
         engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    check_plan(request, who, a, whole=True)
    check_plan(request, who, b, whole=True)
    info = get_plan(engine, a)
    return plan_diff(engine, a, b, metric_epsg(engine, info.territory_id))
