"""Department grids as overlays (多网融合): upload, list, read, delete; a plan's cross-walk with
one, its aligned proposal (a layer to download) and the adopted alignment."""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pyogrio
from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.background import BackgroundTask

from api.auth import PlansRead, PlansWrite, check_plan, check_territory
from api.deps import (
    PAGE_HEADERS,
    Id,
    Limit,
    Offset,
    app_once,
    check_encoding,
    get_engine,
    paged,
)
from api.routes.territories import _field_map, _saved
from gis.crs import parse_coord_sys
from gis.exports.plan import content_disposition
from gis.exports.sheets import SHEET_TYPES, write_sheet
from gis.geometry import feature_collection, for_basemap
from gis.io.limits import ReadLimits
from gis.overlays import (
    check_department,
    delete_overlay,
    get_overlay,
    overlays_page,
    read_overlay,
    read_units,
    store_alignment,
    store_overlay,
)
from gis.paging import Page
from gis.store import territory_row
from maps.planner import display_system
from partitioning.crosswalk import SLIVER_SHARE, Crosswalk, Proposal
from partitioning.crosswalk_store import CrosswalkCache, map_layer

router = APIRouter(tags=["overlays"])


class OverlayOut(BaseModel):
    id: int
    territory_id: int
    department: str = Field(description="公安, 城管, …: the key events are routed by")
    name: str | None
    source: str | None = Field(description="The uploaded file names")
    source_crs: str = Field(description="The coordinate system the units were drawn in "
                                        "(their stored source geometry is in it)")
    field_map: dict[str, str] = Field(description="The columns the code and name came from")
    created_by: str | None
    created_at: str | None
    units: int
    notes: list[str] = Field(default_factory=list)


class Strategy(StrEnum):
    households = "households"
    area = "area"
    centroid = "centroid"


class SheetFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class LayerFormat(StrEnum):
    geojson = "geojson"
    gpkg = "gpkg"


Tolerance = Annotated[float, Query(ge=0, lt=0.5, description=(
    "Share of a grid's area (and households) below which a piece of it in a unit is a "
    "sliver, and within which a grid counts as whole"))]


@router.post("/territories/{territory_id}/overlays", status_code=201,
             response_model=OverlayOut,
             summary="Import a department's own grid units (警格, 城管网格, …) as an overlay",
             responses={404: {"description": "No such territory"},
                        409: {"description": "The territory has this department's overlay"},
                        422: {"description": "The file breaks the overlay contract: file, "
                                             "row and what to fix"}})
def add_overlay(
    territory_id: Id, request: Request, who: PlansWrite,
    files: Annotated[list[UploadFile], File(description=(
        "One polygon layer: a GeoPackage, GeoJSON, a Shapefile set (.shp .shx .dbf .prj "
        ".cpg) or a .zip of one"))],
    department: Annotated[str, Form(max_length=40, description="公安, 城管, 应急, …")],
    field_map: Annotated[str | None, Form(description=(
        'Which columns hold the unit code and name: "警格编号=code, 警格名称=name" or a '
        "JSON object; taken from code/name/编码/名称… when not given"))] = None,
    crs: Annotated[str | None, Form(description=(
        'The coordinate system where the file declares none (or wrongly): "EPSG:4490", '
        '"EPSG:4547", "gcj02", …'))] = None,
    encoding: Annotated[str | None, Form(description=(
        "Attribute encoding of a Shapefile without .cpg, e.g. GBK"))] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
    replace: Annotated[bool, Form(description="Replace this department's overlay")] = False,
    engine: Engine = Depends(get_engine),
) -> OverlayOut:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id, whole=True)
    dept = check_department(department)
    if crs is not None and crs.strip():
        parse_coord_sys(crs.strip())
    limits = ReadLimits.from_settings(request.app.state.settings)
    with _saved(files) as (path, names):
        layer = read_overlay(path, field_map=_field_map(field_map),
                             crs=crs.strip() if crs and crs.strip() else None,
                             encoding=check_encoding(encoding), limits=limits)
    overlay_id = store_overlay(engine, territory_id, dept, layer, name=name,
                               source=", ".join(names)[:1000], created_by=who.username,
                               replace=replace)
    notes = [f"repaired {len(layer.repairs)} invalid geometries with make_valid (rows "
             + ", ".join(str(r.row) for r in layer.repairs[:5]) + "); the source geometry "
             "is stored as given"] if layer.repairs else []
    found = get_overlay(engine, territory_id, dept)
    assert found["id"] == overlay_id
    return OverlayOut(**found, notes=notes)


@router.get("/territories/{territory_id}/overlays", response_model=list[OverlayOut],
            summary="A territory's overlays",
            responses={404: {"description": "No such territory"}, **PAGE_HEADERS})
def overlays(territory_id: Id, request: Request, response: Response, who: PlansRead,
             limit: Limit = 1_000, offset: Offset = 0,
             engine: Engine = Depends(get_engine)) -> list[OverlayOut]:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id)
    page = Page(limit, offset)
    return paged(request, response, page,
                 overlays_page(engine, territory_id, page).map(lambda o: OverlayOut(**o)))


@router.get("/territories/{territory_id}/overlays/{department}",
            summary="An overlay's units as GeoJSON (WGS84; the source CRS is named)",
            responses={200: {"content": {"application/geo+json": {}}},
                       404: {"description": "No such territory or overlay"}})
def overlay(territory_id: Id, department: str, request: Request, who: PlansRead,
            display: Annotated[Literal["wgs84", "gcj02", "bd09"] | None, Query(
                description="Shift the units into this basemap's system (the screen's); "
                            "default WGS84")] = None,
            engine: Engine = Depends(get_engine)) -> Response:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id)
    info = get_overlay(engine, territory_id, department)
    units = read_units(engine, int(info["id"]))
    if display is not None:
        units = for_basemap(units, display)
    body = feature_collection(units, id_column="code", extra={
        "name": f"overlay {info['department']}", "overlay": {
            k: info[k] for k in ("id", "territory_id", "department", "name", "source_crs")}})
    return Response(body, media_type="application/geo+json")


@router.delete("/territories/{territory_id}/overlays/{department}", status_code=204,
               summary="Delete an overlay with its adopted alignments",
               responses={404: {"description": "No such territory or overlay"}})
def remove_overlay(territory_id: Id, department: str, request: Request, who: PlansWrite,
                   engine: Engine = Depends(get_engine)) -> Response:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id, whole=True)
    gone = int(get_overlay(engine, territory_id, department)["id"])
    delete_overlay(engine, territory_id, department)
    crosswalk_cache(request).forget(gone)
    return Response(status_code=204)


# --- a plan with an overlay ---------------------------------------------------------------

#: Says whether a cross-walk or proposal answered was kept from an earlier request.
CACHE_HEADER = "X-Crosswalk-Cache"
def crosswalk_cache(request: Request) -> CrosswalkCache:
    """The app's cache of cross-walks and proposals (made on first use)."""
    return app_once(request, "crosswalk_cache", lambda _: CrosswalkCache())


#: The cross-walk sheet: one row per (grid, unit) piece.
CROSSWALK_COLUMNS = (
    ("grid_code", "网格编码", "Grid code"),
    ("unit_code", "部门单元编码", "Unit code"),
    ("unit_name", "部门单元名称", "Unit name"),
    ("area_m2", "重叠面积(平方米)", "Area m²"),
    ("area_share", "占网格面积比例", "Share of grid area"),
    ("households", "户数", "Households"),
    ("household_share", "占网格户数比例", "Share of grid households"),
    ("sliver", "碎片", "Sliver"),
    ("grid_split", "网格被分割", "Grid split"),
)


def _round(values: Any, digits: int) -> list[Any]:
    return [round(float(v), digits) for v in values]


def _crosswalk_json(cw: Crosswalk, info: dict[str, Any], plan_id: int) -> dict[str, Any]:
    names = dict(zip(cw.units["code"], cw.units["name"], strict=True))
    pieces = cw.pieces
    grids = cw.grids
    return {
        "plan_id": plan_id, "overlay": {k: info[k] for k in (
            "id", "department", "name", "source_crs", "units")},
        "summary": cw.summary,
        "units": [{"code": u.code, "name": u.name, "area_m2": round(float(u.area_m2), 1),
                   "households": round(float(u.households), 3),
                   "whole_grids": int(u.whole_grids), "partial_grids": int(u.partial_grids),
                   "slivers": int(u.slivers), "whole": bool(u.whole),
                   "outside_area_share": round(float(u.outside_area_share), 4),
                   "grids": [{"code": p.grid_code, "area_share": round(float(p.area_share), 4),
                              "household_share": round(float(p.household_share), 4),
                              "households": round(float(p.households), 3),
                              "sliver": bool(p.sliver)}
                             for p in pieces[pieces["unit_code"] == u.code].itertuples()]}
                  for u in cw.units.itertuples()],
        "grids": [{"code": g.code, "households": round(float(g.households), 3),
                   "area_m2": round(float(g.area_m2), 1), "main_unit": g.main_unit,
                   "main_unit_name": names.get(g.main_unit), "units": int(g.units),
                   "split": bool(g.split),
                   "uncovered_area_share": round(float(g.uncovered_area_share), 4),
                   "uncovered_households": round(float(g.uncovered_households), 3)}
                  for g in grids.itertuples()],
    }


def _file(path: Path, folder: Path, filename: str, ascii_name: str, media: str
          ) -> FileResponse:
    return FileResponse(path, media_type=media, headers={
        "Content-Disposition": content_disposition(filename, ascii_name)},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


@router.get("/plans/{plan_id}/overlays/{department}/crosswalk",
            summary="Which basic grids each department unit holds, and how much of each",
            description=(
                "Per unit: its grids with the share of each grid's area and households "
                "inside it (households from the plan's blocks, split by area), slivers, "
                "whether it is made of whole grids. Per grid: the unit holding most of it, "
                "split or not. `format`: json (with a summary), csv or xlsx (one row per "
                "grid–unit piece). Needs an account covering the whole territory."),
            responses={200: {"content": {"application/json": {}, "text/csv": {},
                                         SHEET_TYPES["xlsx"]: {}}},
                       404: {"description": "No such plan or overlay"}})
def crosswalk_route(plan_id: Id, department: str, request: Request, who: PlansRead,
                    format: SheetFormat = SheetFormat.json,
                    tolerance: Tolerance = SLIVER_SHARE,
                    engine: Engine = Depends(get_engine)) -> Response:
    check_plan(request, who, plan_id, whole=True)
    found, cw, kept = crosswalk_cache(request).crosswalk(engine, plan_id, department, tolerance)
    if format is SheetFormat.json:
        return JSONResponse(_crosswalk_json(cw, found.overlay, plan_id),
                            headers={CACHE_HEADER: "hit" if kept else "miss"})
    names = dict(zip(cw.units["code"], cw.units["name"], strict=True))
    split = dict(zip(cw.grids["code"], cw.grids["split"], strict=True))
    frame = cw.pieces.assign(
        unit_name=[names.get(c) for c in cw.pieces["unit_code"]],
        area_m2=_round(cw.pieces["area_m2"], 1), area_share=_round(cw.pieces["area_share"], 4),
        households=_round(cw.pieces["households"], 3),
        household_share=_round(cw.pieces["household_share"], 4),
        sliver=["是" if s else "" for s in cw.pieces["sliver"]],
        grid_split=["是" if split[c] else "" for c in cw.pieces["grid_code"]])
    folder = Path(tempfile.mkdtemp(prefix="gridmap-crosswalk-"))
    try:
        ascii_name = f"crosswalk_plan{plan_id}_overlay{found.overlay['id']}.{format.value}"
        path = write_sheet(frame, CROSSWALK_COLUMNS, folder / ascii_name, format.value,
                           title="对照 crosswalk", about={
                               "方案 plan": str(plan_id),
                               "部门 department": str(found.overlay["department"]),
                               "碎片阈值 tolerance": f"{tolerance:g}",
                               **{f"{k}": str(v) for k, v in cw.summary.items()}})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    filename = f"网格对照_{found.overlay['department']}_方案{plan_id}.{format.value}"
    return _file(path, folder, filename, ascii_name, SHEET_TYPES[format.value])


def _proposal_json(p: Proposal) -> dict[str, Any]:
    return {"summary": p.summary, "assignment": p.assignment,
            "units": p.units.to_dict("records")}


@router.get("/plans/{plan_id}/overlays/{department}/proposal",
            summary="The department's units redrawn as unions of whole basic grids",
            description=(
                "Each grid to the unit holding most of its households (`by=households`, "
                "area where it has none; `area` and `centroid` are the simple alternatives), "
                "contiguity kept, no unit that holds part of a grid left without one. "
                "`format`: json (summary, grid → unit, per unit households in and out), "
                "geojson or gpkg (the redrawn units as a layer)."),
            responses={200: {"content": {"application/json": {}, "application/geo+json": {},
                                         "application/geopackage+sqlite3": {}}},
                       404: {"description": "No such plan or overlay"}})
def proposal_route(plan_id: Id, department: str, request: Request, who: PlansRead,
                   format: Annotated[str, Query(pattern="^(json|geojson|gpkg)$")] = "json",
                   by: Strategy = Strategy.households,
                   display: Annotated[Literal["wgs84", "gcj02", "bd09"] | None, Query(
                       description="geojson: shifted into this basemap's system (the "
                                   "compare page's); default WGS84")] = None,
                   engine: Engine = Depends(get_engine)) -> Response:
    check_plan(request, who, plan_id, whole=True)
    found, proposal, kept = crosswalk_cache(request).proposal(engine, plan_id, department,
                                                              by.value)
    if format == "json":
        return JSONResponse(_proposal_json(proposal),
                            headers={CACHE_HEADER: "hit" if kept else "miss"})
    layer = proposal.geometry
    if format == "geojson":
        shown = layer if display is None else for_basemap(layer, display)
        body = feature_collection(shown, id_column="code", extra={
            "name": f"aligned {found.overlay['department']}", "summary": proposal.summary})
        return Response(body, media_type="application/geo+json", headers={
            "Content-Disposition": content_disposition(
                f"对齐_{found.overlay['department']}_方案{plan_id}.geojson",
                f"aligned_plan{plan_id}_overlay{found.overlay['id']}.geojson")})
    folder = Path(tempfile.mkdtemp(prefix="gridmap-aligned-"))
    try:
        ascii_name = f"aligned_plan{plan_id}_overlay{found.overlay['id']}.gpkg"
        pyogrio.write_dataframe(layer, folder / ascii_name, layer="aligned_units",
                                driver="GPKG")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _file(folder / ascii_name, folder,
                 f"对齐_{found.overlay['department']}_方案{plan_id}.gpkg", ascii_name,
                 "application/geopackage+sqlite3")


@router.get("/plans/{plan_id}/overlays/{department}/map",
            summary="An overlay against a plan, for the planner map: units and slivers",
            description=(
                "GeoJSON: each unit's outline (`kind` unit: `whole`, whole and partial grids, "
                "slivers) and each sliver's shape (`kind` sliver: grid, unit, area). "
                "`display`: as for the other layers of the map."),
            responses={200: {"content": {"application/geo+json": {}}},
                       404: {"description": "No such plan or overlay"}})
def overlay_map(plan_id: Id, department: str, request: Request, who: PlansRead,
                display: Annotated[Literal["wgs84", "gcj02", "bd09"] | None, Query()] = None,
                engine: Engine = Depends(get_engine)) -> Response:
    check_plan(request, who, plan_id, whole=True)
    found, cw, _ = crosswalk_cache(request).crosswalk(engine, plan_id, department)
    layer = map_layer(found, cw)
    system = display or display_system(request.app.state.settings)
    body = feature_collection(for_basemap(layer, system), id_column="code", extra={
        "plan_id": plan_id, "department": found.overlay["department"], "display": system})
    return Response(body, media_type="application/geo+json")


class AlignIn(BaseModel):
    by: Strategy = Field(Strategy.households, description="As for the proposal")


@router.post("/plans/{plan_id}/overlays/{department}/alignment",
             summary="Adopt the aligned proposal: events of this plan are then routed to the "
                     "department's units through it",
             responses={404: {"description": "No such plan or overlay"}})
def adopt(plan_id: Id, department: str, request: Request, who: PlansWrite,
          body: AlignIn | None = None, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    check_plan(request, who, plan_id, whole=True)
    found, proposal, _ = crosswalk_cache(request).proposal(
        engine, plan_id, department, (body or AlignIn(by=Strategy.households)).by.value)
    stored = store_alignment(engine, int(found.overlay["id"]), plan_id, proposal.assignment)
    return {"plan_id": plan_id, "department": found.overlay["department"],
            "grids": stored, "summary": proposal.summary}
