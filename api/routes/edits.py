"""Editing draft plans: edits with If-Match versions, undo, redo, history, copy."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Body, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Engine

from api.auth import PlansRead, PlansWrite, check_plan
from api.deps import PAGE_HEADERS, USER, Id, Limit, Offset, author, get_engine, paged
from api.problems import BadRequest
from api.routes.plans import PlanOut
from gis.band import classify_all
from gis.edits import (
    Change,
    EditOutcome,
    PlanReader,
    copy_plan,
    edit_plan,
    edits_page,
    redo,
    undo,
)
from gis.errors import PreconditionRequired, msg
from gis.geometry import feature_collection
from gis.paging import Page
from gis.plans import get_plan
from partitioning import edit
from partitioning.blocks import barrier_lines
from partitioning.params import PartitionParams
from partitioning.plan import ROW_FIELDS, Neighbourhood, refuse

router = APIRouter(tags=["editing"])
GEOJSON = "application/geo+json"
#: A grid code: the village's 12 digits and a 3-digit serial.
Code = Annotated[str, Field(pattern=r"^\d{15}$", description="15-digit grid code")]
BlockNo = Annotated[int, Field(ge=0, le=2**31 - 1)]
Note = Annotated[str | None, Field(max_length=2_000, description="Why (kept in the history)")]
Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]
IF_MATCH = Header(alias="If-Match", description=(
    'The plan version the edit was made on, as GET /plans/{id} gives it in its ETag '
    '(e.g. "3"); required'))


class MoveEdit(BaseModel):
    op: Literal["move"]
    blocks: list[BlockNo] = Field(min_length=1, max_length=10_000,
                                  description="Block numbers (GET /plans/{id}/blocks)")
    to: Code = Field(description="The grid that receives them (same village)")
    note: Note = None


class MergeEdit(BaseModel):
    op: Literal["merge"]
    grids: list[Code] = Field(min_length=2, max_length=2,
                              description="Two adjacent grids of one village")
    note: Note = None


class SplitEdit(BaseModel):
    op: Literal["split"]
    grid: Code
    k: int | None = Field(None, ge=2, le=50, description=(
        "Into how many grids (default: the count nearest the target that fits the band)"))
    note: Note = None


class ReshapeEdit(BaseModel):
    op: Literal["reshape"]
    line: list[tuple[Lon, Lat]] = Field(min_length=2, max_length=2_000, description=(
        "The new boundary, WGS84 lon/lat points, drawn across the two grids"))
    grids: list[Code] | None = Field(None, min_length=2, max_length=2, description=(
        "The two grids (default: the grids the line crosses)"))
    note: Note = None


class LockEdit(BaseModel):
    op: Literal["lock", "unlock"]
    grids: list[Code] = Field(min_length=1, max_length=5_000)
    note: Note = None


class RenameEdit(BaseModel):
    op: Literal["rename"]
    grid: Code
    name: str = Field(min_length=1, max_length=200)
    note: Note = None


class RebalanceEdit(BaseModel):
    op: Literal["rebalance"]
    village: str | None = Field(None, pattern=r"^\d{12}$", description=(
        "Rebalance every unlocked comprehensive grid of this village/community (12 digits)"))
    grids: list[Code] | None = Field(None, min_length=1, max_length=200, description=(
        "Or only these grids (unlocked, comprehensive)"))
    note: Note = None

    @model_validator(mode="after")
    def one_region(self) -> RebalanceEdit:
        if (self.village is None) == (self.grids is None):
            raise ValueError("give either village or grids")
        return self


EditBody = Annotated[MoveEdit | MergeEdit | SplitEdit | ReshapeEdit | LockEdit | RenameEdit
                     | RebalanceEdit, Field(discriminator="op")]


class StepBody(BaseModel):
    note: Note = None


class EditOut(BaseModel):
    plan_id: int
    version: int = Field(description="The plan's new version (also the ETag)")
    seq: int = Field(description="The history entry")
    op: str
    summary: str
    target_seq: int | None = Field(None, description="The edit an undo/redo acted on")
    removed: list[str] = Field(description="Codes of grids that no longer exist")
    grids: dict[str, Any] = Field(description=(
        "The touched grids as now stored: a GeoJSON FeatureCollection with households, "
        "quality, 四至, flags, flag_reason, barrier_inside_m and locked, and `warning`: "
        "why a grid this edit reshaped is out of the band or in parts (empty otherwise)"))


class HistoryEntry(BaseModel):
    seq: int
    op: str
    params: dict[str, Any]
    state: str = Field(description="applied, undone or discarded (undo/redo: applied)")
    target_seq: int | None
    author: str | None
    at: str | None
    note: str | None
    summary: str | None
    version_before: int
    version_after: int
    grids: list[str]


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such plan"},
    409: {"description": "Stale version (the body has current_version, the ETag header the "
                         "version), a published or archived plan, a locked grid, or nothing "
                         "to undo/redo"},
    422: {"description": "The edit is refused (contiguity, nesting, …) or malformed"},
    428: {"description": "If-Match is missing"},
}


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int:
    if value is None or not value.strip():
        raise PreconditionRequired(msg(
            "编辑须带 If-Match 头，写明所基于的方案版本",
            'an edit must name the plan version it was made on in an If-Match header, e.g. '
            'If-Match: "3", the ETag of GET /plans/{id}'))
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 9:
        raise BadRequest(f'If-Match {value!r} must be a plan version in quotes, e.g. "3"')
    return int(text)


def _answer(out: EditOutcome, request: Request, engine: Engine) -> JSONResponse:
    settings = request.app.state.settings
    band = get_plan(engine, out.plan_id).band((settings.min_households,
                                               settings.max_households))
    grids = out.grids.drop(columns=["id", "wkb"], errors="ignore")
    # The editor colours the grids it draws anew by this class (gis.band's one rule).
    grids = grids.assign(band_class=classify_all(grids["kind"], grids["households"], band))
    body = EditOut(plan_id=out.plan_id, version=out.version, seq=out.seq, op=out.op,
                   summary=out.summary, target_seq=out.target_seq, removed=out.removed,
                   grids=json.loads(feature_collection(grids, id_column="code")))
    return JSONResponse(body.model_dump(), headers={"ETag": etag(out.version)})


def _hood(reader: PlanReader, villages: set[str], *, used: bool) -> Neighbourhood:
    blocks, grids = reader.around(villages)
    bounds = grids.total_bounds if len(grids) else blocks.total_bounds
    layers = reader.layers_near(bounds)
    village_areas = layers.pop("villages")
    params = PartitionParams(**{k: v for k, v in reader.parameters.items()
                                if k in ("min_households", "max_households",
                                         "target_households", "dedicated_serial_start")})
    barriers = barrier_lines(layers, params)
    return Neighbourhood(
        blocks, grids[[*ROW_FIELDS, "flag_reason", "barrier_inside_m", "geometry"]],
        barriers, village_areas,
        f"EPSG:{reader.metric_epsg}", (params.min_households, params.max_households),
        params.dedicated_serial_start, reader.used_codes(villages) if used else frozenset())


def _compute(body: Any, run: Callable[..., Any]) -> Any:
    """The edit's computation; ``run(fn, *args)`` runs the engine's part of a rebalance on
    the cluster (the other edits are quick and run here)."""
    params = body.model_dump(exclude={"op", "note"}, exclude_none=True)
    op = str(body.op)

    def compute(reader: PlanReader) -> Change:
        codes: list[str] = []
        if op in ("lock", "unlock", "merge"):
            codes = list(params["grids"])
        elif op in ("split", "rename"):
            codes = [params["grid"]]
        elif op == "move":
            codes = [params["to"]]
            found = reader.block_villages(params["blocks"])
            missing = sorted(set(params["blocks"]) - set(found))
            if missing:
                raise refuse(f"方案没有地块 {missing[:10]}",
                                  f"the plan has no blocks {missing[:10]}")
        elif op == "reshape":
            codes = list(params.get("grids") or [])
            if not codes:
                codes = reader.grids_on_line(shapely.LineString(params["line"]).wkt)
        if op == "rebalance" and params.get("village"):
            if reader.around({params["village"]})[0].empty:
                raise refuse(f"本方案没有村（社区）{params['village']}",
                                  f"the plan has no village {params['village']}")
            hood = _hood(reader, {params["village"]}, used=True)
            result = run(edit.apply_edit, hood, op, params)
            return Change(op, params, result.summary, result.grids, result.removed,
                          result.assignment, result.previous)
        if op == "rebalance":
            codes = list(params["grids"])
        rows = reader.grids(codes)
        missing_codes = sorted(set(codes) - set(rows["code"]))
        if missing_codes:
            raise refuse(f"本方案没有网格 {'、'.join(missing_codes)}",
                              f"the plan has no grid {', '.join(missing_codes)}")
        if not codes:
            raise refuse("线没有穿过任何网格", "the line crosses no grid of the plan")
        hood = _hood(reader, set(rows["village_code"]), used=op in ("split", "rebalance"))
        result = run(edit.apply_edit, hood, op, params) if op == "rebalance" else \
            edit.apply_edit(hood, op, params)
        return Change(op, params, result.summary, result.grids, result.removed,
                      result.assignment, result.previous)

    return compute


@router.post("/plans/{plan_id}/edits", response_model=EditOut, responses=PROBLEM_RESPONSES,
             summary="Edit a draft plan (move, merge, split, reshape, lock, unlock, rename, "
                     "rebalance)")
def make_edit(plan_id: Id, request: Request, who: PlansWrite,
              body: Annotated[EditBody, Body()],
              if_match: Annotated[str | None, IF_MATCH] = None,
              user: Annotated[str | None, USER] = None,
              engine: Engine = Depends(get_engine)) -> Response:
    expected = parse_if_match(if_match)
    check_plan(request, who, plan_id, whole=True)
    # A stale version is StaleVersion: a 409 from the problem table, with current_version
    # and the ETag to redo the edit on.
    out = edit_plan(engine, plan_id, expected, _compute(body, request.app.state.jobs.run),
                    author=author(user, who), note=body.note)
    return _answer(out, request, engine)


@router.post("/plans/{plan_id}/undo", response_model=EditOut, responses=PROBLEM_RESPONSES,
             summary="Undo the latest edit of a draft plan")
def undo_edit(plan_id: Id, request: Request, who: PlansWrite,
              body: Annotated[StepBody | None, Body()] = None,
              if_match: Annotated[str | None, IF_MATCH] = None,
              user: Annotated[str | None, USER] = None,
              engine: Engine = Depends(get_engine)) -> Response:
    return _step(undo, plan_id, request, who, body, if_match, user, engine)


@router.post("/plans/{plan_id}/redo", response_model=EditOut, responses=PROBLEM_RESPONSES,
             summary="Redo the earliest undone edit of a draft plan")
def redo_edit(plan_id: Id, request: Request, who: PlansWrite,
              body: Annotated[StepBody | None, Body()] = None,
              if_match: Annotated[str | None, IF_MATCH] = None,
              user: Annotated[str | None, USER] = None,
              engine: Engine = Depends(get_engine)) -> Response:
    return _step(redo, plan_id, request, who, body, if_match, user, engine)


def _step(step: Any, plan_id: int, request: Request, who: Any, body: StepBody | None,
          if_match: str | None, user: str | None, engine: Engine) -> Response:
    """An undo or a redo of the plan at the version ``If-Match`` names."""
    expected = parse_if_match(if_match)
    check_plan(request, who, plan_id, whole=True)
    out = step(engine, plan_id, expected, author=author(user, who),
               note=body.note if body else None)
    return _answer(out, request, engine)


@router.get("/plans/{plan_id}/edits", response_model=list[HistoryEntry],
            responses={404: {"description": "No such plan"}, **PAGE_HEADERS},
            summary="A plan's edit history (who, what, when), oldest first")
def history(plan_id: Id, request: Request, response: Response, who: PlansRead,
            limit: Limit = 1_000, offset: Offset = 0,
            engine: Engine = Depends(get_engine)) -> list[dict[str, Any]]:
    check_plan(request, who, plan_id, whole=True)
    page = Page(limit, offset)
    return paged(request, response, page, edits_page(engine, plan_id, page))


class CopyBody(BaseModel):
    note: Note = None


@router.post("/plans/{plan_id}/copy", response_model=PlanOut, status_code=201,
             responses={404: {"description": "No such plan"}},
             summary="A new draft from any plan (to edit a published or archived one)")
def copy(plan_id: Id, request: Request, who: PlansWrite,
         body: Annotated[CopyBody | None, Body()] = None,
         user: Annotated[str | None, USER] = None,
         engine: Engine = Depends(get_engine)) -> Response:
    check_plan(request, who, plan_id, whole=True)
    new_id = copy_plan(engine, plan_id, author=author(user, who), note=body.note if body else None)
    info = get_plan(engine, new_id)
    return JSONResponse(PlanOut(**info.as_dict()).model_dump(), status_code=201,
                        headers={"ETag": etag(info.edit_version),
                                 "Location": f"/plans/{new_id}"})

