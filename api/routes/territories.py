"""Territories (upload, list, get, delete) and the partition jobs run on them."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from api.auth import (
    PlansRead,
    PlansWrite,
    Principal,
    check_territory,
    visible,
    visible_territories,
)
from api.deps import PAGE_HEADERS, Id, IdQuery, Limit, Offset, check_encoding, get_engine, paged
from api.jobs import JobRunner
from api.problems import BadRequest, Forbidden
from gis.band import MAX_HOUSEHOLDS, MIN_HOUSEHOLDS, TARGET_HOUSEHOLDS
from gis.contract import Territory
from gis.errors import GridmapError, LayerError, NotFound
from gis.io.limits import ReadLimits
from gis.io.options import parse_crs_option, parse_field_map
from gis.io.territory import preview_territory, read_territory
from gis.jobs import get_job, jobs_page
from gis.models.base import iso
from gis.overlays import check_department, list_overlays
from gis.paging import Page
from gis.plans import list_plans, published_plan_id
from gis.store import (
    delete_territory,
    import_territory,
    layer_counts,
    read_layer,
    territories_page,
    territory_row,
)

router = APIRouter(tags=["territories"])
#: Files that are a whole territory on their own; anything else is one layer of a folder.
CONTAINERS = (".gpkg", ".zip", ".pbf", ".osm")


class TerritoryOut(BaseModel):
    id: int
    name: str
    metric_epsg: int
    source: str | None
    created_at: str
    layers: dict[str, int] = Field(description="Feature count of each stored layer")
    extent: list[float] | None = Field(
        description="minx, miny, maxx, maxy of the admin areas (WGS84)")
    published_plan_id: int | None
    plan_ids: list[int]
    notes: list[str] = Field(default_factory=list, description="What the import noticed")
    repairs: int = Field(0, description="Invalid geometries repaired on import (make_valid)")


class PartitionRequest(BaseModel):
    """The engine's parameters; every field has the urban standard as default."""

    min_households: int = Field(MIN_HOUSEHOLDS, ge=1, le=100_000)
    max_households: int = Field(MAX_HOUSEHOLDS, ge=1, le=100_000)
    target_households: int = Field(TARGET_HOUSEHOLDS, ge=1, le=100_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    service_radius_m: float = Field(5_000.0, gt=0, le=100_000)
    estimate: Literal["residential", "all", "off"] = Field(
        "residential", description="Which footprints without a household count are "
        "estimated: residential (by tag, land use or the rule for untagged buildings), "
        "all (every footprint not tagged otherwise), off (none: they count 0)")
    min_dwelling_m2: float = Field(50.0, gt=0, le=1_000, description="An estimate never "
                                   "exceeds floor area ÷ this")
    barrier_overlays: list[str] = Field(
        default_factory=list, max_length=10,
        description="Departments whose overlay's unit boundaries grids must not cross (a "
                    "barrier class like rivers: crossed only when forced, and then flagged), "
                    "e.g. [\"公安\"] so that no grid straddles two police beats")
    note: str | None = Field(None, max_length=2_000)
    created_by: str | None = Field(None, max_length=100)


class JobOut(BaseModel):
    id: str
    kind: str
    territory_id: int
    state: str = Field(description="queued, running, done, failed or cancelled")
    progress: float = Field(description="0 to 1")
    stage: str | None = Field(description="What the job is doing, e.g. \"towns 分街道计算 "
                                          "12/53\"")
    parameters: dict[str, Any]
    plan_id: int | None = Field(description="The draft plan made, once done")
    error: str | None = Field(description="Why the job failed")
    created_at: str
    started_at: str | None
    finished_at: str | None
    towns_done: int | None = Field(None, description="Towns (or groups of a big town's "
                                   "villages) partitioned so far, of towns_total")
    towns_total: int | None = Field(None, description="Towns the territory was cut into "
                                    "(null until it is read)")


def _territory(engine: Engine, territory_id: int, notes: list[str] | None = None,
               repairs: int = 0) -> TerritoryOut:
    row = territory_row(engine, territory_id)
    admin = read_layer(engine, territory_id, "admin_areas")
    extent = [round(float(v), 7) for v in admin.total_bounds] if len(admin) else None
    return TerritoryOut(
        id=row.id, name=row.name, metric_epsg=row.metric_epsg, source=row.source,
        created_at=iso(row.created_at) or "", layers=layer_counts(engine, territory_id),
        extent=extent, published_plan_id=published_plan_id(engine, territory_id),
        plan_ids=[p.id for p in list_plans(engine, territory_id)], notes=notes or [],
        repairs=repairs)


def _split_option(text: str | None) -> list[str] | None:
    if text is None or not text.strip():
        return None
    return [part.strip() for part in re.split(r"[,\n;]", text) if part.strip()]


def _field_map(text: str | None) -> dict[str, str]:
    if text and text.strip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"field_map is not valid JSON: {exc}") from exc
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise BadRequest('field_map must map names to names, e.g. {"社区编码": "code"}')
        return value
    return parse_field_map(_split_option(text))


def _safe_name(name: str | None, index: int) -> str:
    base = Path((name or "").replace("\\", "/")).name
    if not base or base.startswith(".") or not base.isprintable() \
            or len(base.encode("utf-8", "replace")) > 200:
        raise LayerError(f"uploaded file #{index + 1} has no usable file name; name files "
                         "after their layer (admin_areas.geojson, buildings.csv, ...) or "
                         "upload a .gpkg, .zip or .osm.pbf")
    return base


def _repair_note(territory: Territory) -> list[str]:
    """Say which invalid geometries were repaired (make_valid), the first few by row."""
    if not territory.repairs:
        return []
    shown = "; ".join(f"{r.layer} row {r.row}: {r.reason}" for r in territory.repairs[:5])
    more = f" and {len(territory.repairs) - 5} more" if len(territory.repairs) > 5 else ""
    return [f"repaired {len(territory.repairs)} invalid geometries with make_valid (check "
            f"them on the map): {shown}{more}"]


@router.post("/territories", status_code=201, response_model=TerritoryOut,
             summary="Upload a territory's layers (one transaction)",
             responses={413: {"description": "Upload over the size limit"},
                        422: {"description": "The layers break the contract: file, layer, "
                                             "row and what to fix"}})
def upload_territory(
    request: Request,
    who: PlansWrite,
    files: Annotated[list[UploadFile], File(
        description="A GeoPackage, a zipped folder of layer files (Shapefile sets with "
                    ".cpg, GeoJSON, CSV), an .osm.pbf, or several layer files named after "
                    "their layer (admin_areas.geojson, buildings.csv, ...)")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    field_map: Annotated[str | None, Form(
        description='Column renames: "社区编码=code, buildings.户数=households" or a JSON '
                    "object")] = None,
    crs: Annotated[str | None, Form(
        description='Coordinate system of the input where files declare none: "gcj02", '
                    '"EPSG:4547", or per layer "buildings=gcj02, roads=wgs84"')] = None,
    encoding: Annotated[str | None, Form(
        description="Attribute encoding of Shapefiles without a .cpg, e.g. GBK")] = None,
    engine: Engine = Depends(get_engine),
) -> TerritoryOut:
    territory, names = _read_upload(files, field_map, crs, encoding,
                                    ReadLimits.from_settings(request.app.state.settings))
    _check_new(who, territory)
    label = name or (Path(names[0]).stem if len(names) == 1 else territory.name)
    territory_id = import_territory(engine, territory, name=label,
                                    source=", ".join(names)[:1000])
    return _territory(engine, territory_id, territory.notes + _repair_note(territory),
                      len(territory.repairs))


def _check_new(who: Principal, territory: Territory) -> None:
    """403 unless the account's areas cover every top area of an uploaded territory."""
    if who.everywhere:
        return
    admin = territory.layers["admin_areas"]
    codes = set(admin["code"].astype(str))
    parents = admin["parent_code"] if "parent_code" in admin else [None] * len(admin)
    roots = sorted(c for c, p in zip(admin["code"].astype(str), parents, strict=True)
                   if p is None or str(p) not in codes)
    if not all(who.covers(r) for r in roots):
        raise Forbidden(f"the upload holds areas ({', '.join(roots[:5])}) outside your areas "
                        f"({', '.join(who.areas)}); nothing was stored")


@contextmanager
def _saved(files: list[UploadFile]) -> Iterator[tuple[Path, list[str]]]:
    """The uploaded files in a temporary folder, removed afterwards: what the reader opens
    (the one container, or the folder of layer files) and the file names."""
    if not files:
        raise LayerError("no file uploaded: send the territory as the multipart field "
                         "'files'")
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-upload-"))
    try:
        names = [_safe_name(f.filename, i) for i, f in enumerate(files)]
        if len(set(names)) != len(names):
            raise LayerError("two uploaded files have the same name: " + ", ".join(
                sorted({n for n in names if names.count(n) > 1})))
        for upload, fname in zip(files, names, strict=True):
            with (tmp / fname).open("wb") as out:
                shutil.copyfileobj(upload.file, out, 2**20)
        path = tmp / names[0] if len(names) == 1 and names[0].lower().endswith(CONTAINERS) \
            else tmp
        yield path, names
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_upload(files: list[UploadFile], field_map: str | None, crs: str | None,
                 encoding: str | None, limits: ReadLimits) -> tuple[Territory, list[str]]:
    """The uploaded layers as a checked territory, and the file names; ``limits`` bound
    what they may hold (a .zip is checked before it is unpacked)."""
    with _saved(files) as (path, names):
        territory = read_territory(path, field_map=_field_map(field_map),
                                   crs=parse_crs_option(_split_option(crs)),
                                   encoding=check_encoding(encoding), limits=limits)
        return territory, names


class PreviewOut(BaseModel):
    files: list[str]
    layers: list[dict[str, Any]] = Field(description=(
        "Each layer found: layer, file, features, crs (declared, or null), geometry, "
        "columns, samples (a few values per column), required/optional fields, missing "
        "(required fields not found), suggested (field -> column), needs_encoding "
        "(a Shapefile without .cpg), needs_crs (no declared CRS)"))
    missing_layers: list[str] = Field(description="Layers the contract needs, not found")
    notes: list[str] = Field(description="What was ignored, and why")
    contract: dict[str, Any] = Field(description="Every layer's fields (the contract)")


@router.post("/territories/preview", response_model=PreviewOut,
             summary="What an upload holds, before it is imported (nothing stored)",
             responses={413: {"description": "Upload over the size limit"},
                        422: {"description": "An archive or file that cannot be read: "
                                             "file, layer and why"}})
def preview_upload(
    request: Request,
    who: PlansWrite,
    files: Annotated[list[UploadFile], File(description="As for POST /territories")],
    encoding: Annotated[str | None, Form(description="As for POST /territories")] = None,
) -> PreviewOut:
    limits = ReadLimits.from_settings(request.app.state.settings)
    with _saved(files) as (path, names):
        found = preview_territory(path, encoding=check_encoding(encoding), limits=limits)
    return PreviewOut(files=names, **found)


@router.get("/territories", response_model=list[TerritoryOut], summary="List territories",
            responses=PAGE_HEADERS)
def territories(request: Request, response: Response, who: PlansRead,
                limit: Limit = 1_000, offset: Offset = 0,
                engine: Engine = Depends(get_engine)) -> list[TerritoryOut]:
    page = Page(limit, offset)
    found = territories_page(engine, visible_territories(request, who, engine), page)
    return paged(request, response, page, found.map(lambda t: _territory(engine, t[0])))


@router.get("/territories/{territory_id}", response_model=TerritoryOut,
            summary="A territory with its layer counts, extent and plans",
            responses={404: {"description": "No such territory"}})
def territory(territory_id: Id, request: Request, who: PlansRead,
              engine: Engine = Depends(get_engine)) -> TerritoryOut:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id)
    return _territory(engine, territory_id)


@router.delete("/territories/{territory_id}", status_code=204,
               summary="Delete a territory with its plans and events",
               responses={404: {"description": "No such territory"}})
def remove_territory(territory_id: Id, request: Request, who: PlansWrite,
                     engine: Engine = Depends(get_engine)) -> Response:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id, whole=True)
    delete_territory(engine, territory_id)
    request.app.state.scopes.forget(territory_id)
    return Response(status_code=204)


def _barrier_overlays(engine: Engine, territory_id: int, departments: list[str]) -> list[str]:
    """The departments named, each once, every one an overlay of the territory."""
    named = list(dict.fromkeys(check_department(d) for d in departments))
    missing = [d for d in named
               if d not in {o["department"] for o in list_overlays(engine, territory_id)}]
    if missing:
        raise LayerError(f"区域 {territory_id} 没有部门图层 {'、'.join(missing)}（territory "
                         f"{territory_id} has no overlay of {', '.join(missing)}: import it "
                         "first with POST /territories/{id}/overlays, or name one of "
                         "GET /territories/{id}/overlays)")
    return named


@router.post("/territories/{territory_id}/plans", status_code=202, response_model=JobOut,
             tags=["jobs"], summary="Start a partition job; returns at once",
             responses={404: {"description": "No such territory"},
                        429: {"description": "Too many queued or running jobs (of the "
                                             "account or the territory): see Retry-After"}})
def start_partition(territory_id: Id, body: PartitionRequest, request: Request,
                    response: Response, who: PlansWrite,
                    engine: Engine = Depends(get_engine)) -> JobOut:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id, whole=True)
    parameters = body.model_dump(exclude={"note", "created_by"})
    parameters["barrier_overlays"] = _barrier_overlays(engine, territory_id,
                                                       body.barrier_overlays)
    runner: JobRunner = request.app.state.jobs
    try:
        job_id = runner.submit(territory_id, parameters, body.note,
                               body.created_by or who.label, account=who.username)
    except ValueError as exc:  # the band: min <= target <= max
        raise GridmapError(str(exc)) from exc
    response.headers["Location"] = f"/jobs/{job_id}"
    return JobOut(**get_job(engine, job_id))


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"],
            summary="A job's state and progress; once done, the plan it made",
            responses={404: {"description": "No such job"}})
def job(job_id: str, request: Request, who: PlansRead,
        engine: Engine = Depends(get_engine)) -> JobOut:
    found = get_job(engine, job_id)
    if not visible(request, who, found["territory_id"]):
        raise NotFound(f"no job {job_id}")
    return JobOut(**found)


@router.delete("/jobs/{job_id}", response_model=JobOut, tags=["jobs"],
               summary="Cancel a queued or running job: its tasks on the cluster are "
                       "cancelled and nothing is stored",
               responses={404: {"description": "No such job"},
                          409: {"description": "The job has ended already (done, failed or "
                                               "cancelled)"}})
def cancel_job(job_id: str, request: Request, who: PlansWrite,
               engine: Engine = Depends(get_engine)) -> JobOut:
    found = get_job(engine, job_id)
    if not visible(request, who, found["territory_id"]):
        raise NotFound(f"no job {job_id}")
    check_territory(request, who, found["territory_id"], whole=True)
    runner: JobRunner = request.app.state.jobs
    return JobOut(**runner.cancel(job_id, who.label))


@router.get("/jobs", response_model=list[JobOut], tags=["jobs"],
            summary="Recent jobs (newest first)", responses=PAGE_HEADERS)
def jobs(request: Request, response: Response, who: PlansRead, territory: IdQuery = None,
         limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
         engine: Engine = Depends(get_engine)) -> list[JobOut]:
    page = Page(limit, offset)
    found = jobs_page(engine, page, territory_id=territory,
                      territory_ids=visible_territories(request, who, engine))
    return paged(request, response, page, found.map(lambda j: JobOut(**j)))


@router.post("/territories/{territory_id}/redraw", status_code=202, response_model=JobOut,
             tags=["jobs"], summary="Start a stable redraw for new household data; returns at once",
             responses={404: {"description": "No such territory or plan"},
                        409: {"description": "No published plan (and no plan_id given)"},
                        422: {"description": "The uploaded layers break the contract"}})
def start_redraw(
    territory_id: Id,
    request: Request,
    who: PlansWrite,
    response: Response,
    files: Annotated[list[UploadFile], File(
        description="The territory's layers with the new buildings/households, as for "
                    "POST /territories (a GeoPackage, a zipped folder, or layer files); the "
                    "same villages/communities and roads")],
    plan_id: Annotated[int | None, Form(ge=1, le=2**31 - 1, description=(
        "The plan to redraw (default: the territory's published plan)"))] = None,
    note: Annotated[str | None, Form(max_length=2_000)] = None,
    created_by: Annotated[str | None, Form(max_length=100)] = None,
    field_map: Annotated[str | None, Form(description="As for POST /territories")] = None,
    crs: Annotated[str | None, Form(description="As for POST /territories")] = None,
    encoding: Annotated[str | None, Form(description="As for POST /territories")] = None,
    engine: Engine = Depends(get_engine),
) -> JobOut:
    territory_row(engine, territory_id)
    check_territory(request, who, territory_id, whole=True)
    territory, names = _read_upload(files, field_map, crs, encoding,
                                    ReadLimits.from_settings(request.app.state.settings))
    runner: JobRunner = request.app.state.jobs
    job_id = runner.submit_redraw(territory_id, territory, plan_id, note,
                                  created_by or who.label,
                                  ", ".join(names)[:1000], account=who.username)
    response.headers["Location"] = f"/jobs/{job_id}"
    return JobOut(**get_job(engine, job_id))
