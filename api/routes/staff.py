"""A territory's staff roster over HTTP: grid workers and the grids they look after."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Engine

from api.auth import StaffWrite, check_territory
from api.deps import Id, get_engine
from api.routes.events import routers_of
from events.roster import Member, replace_roster
from gis.codes import check_code as area_code

router = APIRouter(tags=["events"])
#: operationIds stay ``events_<function>`` (api.app.operation_id): these routes were split out
#: of api/routes/events.py, and generated clients keep the names they had.
OPERATION_PREFIX = "events"


class StaffIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["grid_worker", "grid_head", "station_head"] = "grid_worker"
    phone: str | None = Field(None, max_length=40)
    area_code: str | None = Field(None, max_length=20, description=(
        "The area the person works for: a district, town, village/community or grid code"))
    grids: list[str] = Field(default_factory=list, description="Grid codes looked after")

    @field_validator("area_code")
    @classmethod
    def _area(cls, value: str | None) -> str | None:
        return None if value is None else area_code(value)

    @field_validator("grids")
    @classmethod
    def _grids(cls, value: list[str]) -> list[str]:
        return [area_code(code, "grid") for code in value]


@router.put("/territories/{territory_id}/staff", tags=["territories"],
            summary="Replace the territory's staff roster (grid workers and their grids)",
            responses={404: {"description": "No such territory"}})
def put_staff(territory_id: Id, body: list[StaffIn], request: Request, who: StaffWrite,
              engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    check_territory(request, who, territory_id, whole=True)
    replace_roster(engine, territory_id, [
        Member(m.name, m.role, m.phone, m.area_code, tuple(m.grids)) for m in body])
    routers_of(request).invalidate(territory_id)
    return {"staff": len(body), "grids": sum(len(set(m.grids)) for m in body)}
