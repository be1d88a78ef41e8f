"""The planner's map of a plan (an HTML page), its overlay layers as GeoJSON, the index page,
the editor page of a draft and the compare page of two plans."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import (
    PlansRead,
    PlansWrite,
    Principal,
    authenticate,
    check_plan,
    check_territory,
    partial,
    visible,
)
from api.deps import GridCode, Id, VillageCode, get_engine, get_settings
from api.problems import BadRequest
from api.routes.plans import GEOJSON, parse_bbox
from api.routes.workspace import me_of
from gis.errors import Conflict
from gis.geometry import feature_collection, for_basemap
from gis.names import plan_status_name
from gis.overlays import list_overlays
from gis.plans import PlanInfo, flag_counts, get_plan, list_plans, locked_codes
from gis.settings import Settings
from gis.store import area_outlines, list_territories, territory_row, town_names
from gis.times import local_text, page_zone, zone_label
from maps.editor import ComparePlan, compare_html, editor_html
from maps.index import IndexPlan, IndexTerritory, index_html
from maps.overlays import (
    FEATURE_CAP,
    LAYERS,
    LINE_LAYERS,
    bbox_to_wgs84,
    read_overlay,
    read_plan_blocks,
    read_plan_lines,
)
from maps.planner import PlannerPage, display_system, planner_html

router = APIRouter(tags=["maps"])
Display = Literal["wgs84", "gcj02", "bd09"]
OverlayLayer = StrEnum("OverlayLayer", {k: k for k in LAYERS})  # type: ignore[misc]
LineKind = StrEnum("LineKind", {k: k for k in LINE_LAYERS})  # type: ignore[misc]

BBOX_QUERY = Query(description=(
    "minlon,minlat,maxlon,maxlat in the display system (as the map shows it); "
    "without it, the whole layer"))
DISPLAY_QUERY = Query(description=(
    "Coordinate system of the answer: wgs84, gcj02 (AMap/Tencent basemaps) or bd09 "
    "(Baidu). Default: the basemap's system (GRIDMAP_BASEMAP_CRS) when a basemap is "
    "configured, else wgs84"))
LIMIT_QUERY = Query(ge=1, le=FEATURE_CAP, description=(
    "The most features to return; with more in the bbox the answer is a 400 asking to "
    "zoom in"))
GEOJSON_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {GEOJSON: {}}, "description": "A FeatureCollection"},
    400: {"description": "Too many features in the bbox (zoom in), or a malformed bbox"}}


def _geojson(frame: Any, bbox: str | None, display: Display | None, limit: int,
             what: str, settings: Settings, extra: dict[str, Any],
             id_column: str | None = None) -> Response:
    system = display or display_system(settings)
    if len(frame) > limit:
        where = "in this bbox" if bbox else "in the whole layer"
        raise BadRequest(
            f"{what} 要素过多（超过 {limit} 个），请放大地图后再加载 / more than {limit} "
            f"features {where}: zoom in (pass a smaller bbox)")
    frame = for_basemap(frame, system)
    return Response(feature_collection(frame, id_column=id_column,
                                       extra={**extra, "display": system}),
                    media_type=GEOJSON)


def _bbox(text: str | None, display: Display | None, settings: Settings
          ) -> tuple[float, float, float, float] | None:
    box = parse_bbox(text)
    return None if box is None else bbox_to_wgs84(box, display or display_system(settings))


@router.get("/territories/{territory_id}/layers/{layer}", response_class=Response,
            summary="One of a territory's layers as GeoJSON, for the planner map",
            responses={**GEOJSON_RESPONSES, 404: {"description": "No such territory"}})
def territory_layer(
    territory_id: Id, layer: OverlayLayer, request: Request, who: PlansRead,
    bbox: Annotated[str | None, BBOX_QUERY] = None,
    display: Annotated[Display | None, DISPLAY_QUERY] = None,
    limit: Annotated[int, LIMIT_QUERY] = FEATURE_CAP,
    engine: Engine = Depends(get_engine), settings: Settings = Depends(get_settings),
) -> Response:
    # The layers are not cut by area: an account bound to part of the territory gets 403.
    check_territory(request, who, territory_id, whole=True)
    frame = read_overlay(engine, territory_id, layer.value,
                         bbox=_bbox(bbox, display, settings), limit=limit)
    return _geojson(frame, bbox, display, limit, f"图层 {LAYERS[layer.value]}", settings,
                    {"territory_id": territory_id, "layer": layer.value})


@router.get("/plans/{plan_id}/blocks", response_class=Response,
            summary="A plan's blocks (the units grids are made of) as GeoJSON",
            responses={**GEOJSON_RESPONSES, 404: {"description": "No such plan"}})
def plan_blocks(
    plan_id: Id,
    request: Request,
    who: PlansRead,
    bbox: Annotated[str | None, BBOX_QUERY] = None,
    display: Annotated[Display | None, DISPLAY_QUERY] = None,
    limit: Annotated[int, LIMIT_QUERY] = FEATURE_CAP,
    grid: GridCode = None,
    village: VillageCode = None,
    engine: Engine = Depends(get_engine), settings: Settings = Depends(get_settings),
) -> Response:
    check_plan(request, who, plan_id)
    frame = read_plan_blocks(engine, plan_id, bbox=_bbox(bbox, display, settings),
                             limit=limit, grid=grid, village=village, areas=partial(who))
    return _geojson(frame, bbox, display, limit, "地块", settings, {"plan_id": plan_id},
                    id_column="block_no")


@router.get("/plans/{plan_id}/lines", response_class=Response,
            summary="A plan's lines as GeoJSON: the inferred streets (推测巷道)",
            responses={**GEOJSON_RESPONSES, 404: {"description": "No such plan"}})
def plan_lines(
    plan_id: Id,
    request: Request,
    who: PlansRead,
    kind: Annotated[LineKind | None, Query(description=(
        "Only lines of this kind: inferred_street (streets found between buildings where "
        "the roads layer has none); without it, every line of the plan"))] = None,
    bbox: Annotated[str | None, BBOX_QUERY] = None,
    display: Annotated[Display | None, DISPLAY_QUERY] = None,
    limit: Annotated[int, LIMIT_QUERY] = FEATURE_CAP,
    engine: Engine = Depends(get_engine), settings: Settings = Depends(get_settings),
) -> Response:
    check_plan(request, who, plan_id)
    frame = read_plan_lines(engine, plan_id, kind=kind.value if kind else None,
                            bbox=_bbox(bbox, display, settings), limit=limit,
                            areas=partial(who))
    return _geojson(frame, bbox, display, limit, LINE_LAYERS.get(
        kind.value if kind else "", "线"), settings, {"plan_id": plan_id}, id_column="line_no")


def _bounds(engine: Engine, territory_id: int, display: str
            ) -> tuple[float, float, float, float] | None:
    """The territory's extent (its admin areas), in the display system."""
    wkb = area_outlines(engine, territory_id)
    if not wkb:
        return None
    import geopandas as gpd

    x0, y0, x1, y1 = shapely.total_bounds(shapely.from_wkb(wkb))
    corners = gpd.GeoDataFrame(geometry=[shapely.box(x0, y0, x1, y1)], crs=4326)
    shifted = for_basemap(corners, display).geometry.to_numpy()
    b = np.asarray(shapely.total_bounds(shifted), dtype=float)
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


@router.get("/plans/{plan_id}/map", response_class=HTMLResponse,
            summary="The planner's map of a plan (HTML; grids and layers fetched by URL)",
            responses={404: {"description": "No such plan"}})
def plan_map(plan_id: Id, request: Request, who: PlansRead,
             engine: Engine = Depends(get_engine),
             settings: Settings = Depends(get_settings)) -> HTMLResponse:
    check_plan(request, who, plan_id)
    return HTMLResponse(planner_html(_planner_page(engine, settings, get_plan(engine, plan_id)),
                                     timezone=page_zone(settings.timezone)))


def _band(info: PlanInfo, settings: Settings) -> tuple[int, int]:
    return info.band((settings.min_households, settings.max_households))


def _planner_page(engine: Engine, settings: Settings, info: PlanInfo) -> PlannerPage:
    territory = territory_row(engine, info.territory_id)
    display = display_system(settings)
    return PlannerPage(
        plan_id=info.id, territory_id=info.territory_id, territory_name=str(territory.name),
        version=info.version, status=info.status, n_grids=info.n_grids,
        band=_band(info, settings),
        bounds=_bounds(engine, info.territory_id, display), display=display,
        basemap_url=settings.basemap_url, basemap_attribution=settings.basemap_attribution,
        basemap_labels_url=settings.basemap_labels_url,
        basemap_subdomains=settings.basemap_subdomains, edit_version=info.edit_version,
        overlays=tuple(o["department"] for o in list_overlays(engine, info.territory_id)))


@router.get("/plans/{plan_id}/edit", response_class=HTMLResponse,
            summary="The editor of a draft plan (HTML): the planner map with edit tools",
            responses={303: {"description": "Not a draft: to its map, which offers a copy"},
                       404: {"description": "No such plan"}})
def plan_editor(plan_id: Id, request: Request, who: PlansWrite,
                engine: Engine = Depends(get_engine),
                settings: Settings = Depends(get_settings)) -> Response:
    check_plan(request, who, plan_id, whole=True)
    info = get_plan(engine, plan_id)
    if info.status != "draft":
        return RedirectResponse(f"/plans/{plan_id}/map", status_code=303)
    return HTMLResponse(editor_html(_planner_page(engine, settings, info), info.parent_id,
                                    timezone=page_zone(settings.timezone)))


class LockedOut(BaseModel):
    plan_id: int
    edit_version: int = Field(description="The plan's edit version (also the ETag)")
    locked: list[str] = Field(description="Codes of the locked grids")


@router.get("/plans/{plan_id}/locked", response_model=LockedOut,
            responses={404: {"description": "No such plan"}},
            summary="The codes of a plan's locked grids (for the editor page)")
def locked_grids(plan_id: Id, request: Request, who: PlansRead,
                 engine: Engine = Depends(get_engine)) -> JSONResponse:
    check_plan(request, who, plan_id, whole=True)
    info = get_plan(engine, plan_id)
    codes = locked_codes(engine, plan_id)
    body = LockedOut(plan_id=plan_id, edit_version=info.edit_version, locked=codes)
    return JSONResponse(body.model_dump(), headers={"ETag": f'"{info.edit_version}"'})


@router.get("/plans/{a}/compare/{b}", response_class=HTMLResponse,
            summary="Two plans side by side on synced maps, with their diff (HTML)",
            responses={404: {"description": "No such plan"},
                       409: {"description": "Plans of different territories"}})
def plan_compare(a: Id, b: Id, request: Request, who: PlansRead,
                 engine: Engine = Depends(get_engine),
                 settings: Settings = Depends(get_settings)) -> HTMLResponse:
    check_plan(request, who, a, whole=True)
    check_plan(request, who, b, whole=True)
    pa, pb = get_plan(engine, a), get_plan(engine, b)
    if pa.territory_id != pb.territory_id:
        raise Conflict(f"第 {a} 号与第 {b} 号方案属于不同区域，不能对比 (plans {a} and {b} "
                       f"belong to different territories: {pa.territory_id} and "
                       f"{pb.territory_id})")
    name = str(territory_row(engine, pa.territory_id).name)
    display = display_system(settings)

    def side(p: PlanInfo) -> ComparePlan:
        return ComparePlan(p.id, f"第 {p.id} 号方案 · {name} 第{p.version}版",
                           plan_status_name(p.status))

    return HTMLResponse(compare_html(
        side(pa), side(pb), _band(pb, settings), display,
        _bounds(engine, pa.territory_id, display),
        tuple(o["department"] for o in list_overlays(engine, pa.territory_id))))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, engine: Engine = Depends(get_engine)) -> HTMLResponse:
    who = await authenticate(request)
    return await run_in_threadpool(_index, request, who, engine, request.app.state.settings)


def _index(request: Request, who: Principal, engine: Engine, settings: Settings
           ) -> HTMLResponse:
    plans = list_plans(engine)
    flagged = flag_counts(engine)
    rows = list_territories(engine)
    territories = [
        IndexTerritory(id=int(tid), name=str(name), towns=town_names(engine, int(tid)),
                       plans=[IndexPlan(p.id, p.version, p.status, p.n_grids,
                                        local_text(p.created_at, settings.timezone),
                                        p.publish_note or p.note or "",
                                        flagged.get(p.id, {}))
                              for p in plans if p.territory_id == tid])
        for tid, name in rows if visible(request, who, int(tid))]
    defaults = {"min_households": settings.min_households,
                "max_households": settings.max_households,
                "target_households": settings.target_households}
    return HTMLResponse(index_html(territories, zone_label(settings.timezone), me_of(who),
                                   defaults, page_zone(settings.timezone)))
