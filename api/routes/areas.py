"""The admin hierarchy: an area with its parent, children and grids."""

from __future__ import annotations

import json
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from api.auth import PlansRead, partial
from api.deps import IdQuery, get_engine
from gis.errors import NotFound
from gis.plans import get_plan, published_plan_id, read_grids
from gis.store import read_area

router = APIRouter(tags=["areas"])


class AreaRef(BaseModel):
    code: str
    name: str
    level: str


class GridRef(BaseModel):
    code: str
    name: str | None
    households: int
    flags: list[str]


class AreaOut(BaseModel):
    territory_id: int
    code: str
    name: str
    level: str = Field(description="district, town or village")
    kind: str | None
    parent: AreaRef | None
    children: list[AreaRef]
    plan_id: int | None = Field(description="The plan the grids come from")
    grids: list[GridRef]
    households: int
    geometry: dict[str, Any] | None = Field(description="GeoJSON geometry (WGS84)")


@router.get("/areas/{code}", response_model=AreaOut,
            responses={404: {"description": "No area with this code"}},
            summary="A district, town or village/community with its parent, children and "
                    "grids")
def area(
    who: PlansRead,
    code: str,
    territory: IdQuery = None,
    plan: IdQuery = None,
    geometry: Annotated[bool, Query(description="Include the outline")] = False,
    engine: Engine = Depends(get_engine),
) -> AreaOut:
    if not who.overlaps(code):
        raise NotFound(f"no admin area with code {code!r}")
    found = read_area(engine, code, territory)
    if found is None:
        where = f" in territory {territory}" if territory is not None else ""
        raise NotFound(f"no admin area with code {code!r}{where}")
    row, parent, children = found
    tid = int(row.territory_id)
    plan_id = plan if plan is not None else published_plan_id(engine, tid)
    grid_refs: list[GridRef] = []
    if plan_id is not None:
        if get_plan(engine, plan_id).territory_id != tid:
            raise NotFound(f"plan {plan_id} is not a plan of territory {tid}")
        grids = read_grids(engine, plan_id,
                           village=code if row.level == "village" else None,
                           town=code if row.level == "town" else None,
                           areas=partial(who))
        grid_refs = [GridRef(code=g.code, name=g.name, households=int(g.households),
                             flags=list(g.flags or [])) for g in grids.itertuples()]
    outline = json.loads(shapely.to_geojson(shapely.from_wkb(bytes(row.wkb)))) \
        if geometry else None
    return AreaOut(
        territory_id=tid, code=row.code, name=row.name, level=row.level, kind=row.kind,
        parent=AreaRef(code=parent.code, name=parent.name, level=parent.level)
        if parent else None,
        children=[AreaRef(code=c.code, name=c.name, level=c.level) for c in children
                  if who.overlaps(c.code)],
        plan_id=plan_id, grids=grid_refs, households=sum(g.households for g in grid_refs),
        geometry=outline)
