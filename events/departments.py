"""Which department unit an event falls to (多网融合): category, department, its overlay's unit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import shapely
from sqlalchemy import Engine, select

from gis import models
from gis.overlays import read_alignment, read_units


def department_of(category: str | None, mapping: Mapping[str, str]) -> str | None:
    """The department that handles a category (None when the mapping names none)."""
    return mapping.get(category or "")


def department_unit(engine: Engine, event: Mapping[str, Any], mapping: Mapping[str, str]
                    ) -> dict[str, Any] | None:
    """The department unit of an event: its category's department, and that department's
    unit — through the alignment adopted for the event's plan (by its grid) when there is
    one, else the unit of the overlay as drawn that holds the event's point (``via``
    says which). None when no department handles the category; ``unit_code`` None when the
    territory has no overlay of that department or no unit holds the point."""
    department = department_of(event.get("category"), mapping)
    if department is None:
        return None
    answer: dict[str, Any] = {"department": department, "unit_code": None, "unit_name": None,
                              "via": None}
    table = models.Overlay.__table__
    with engine.connect() as conn:
        overlay_id = conn.execute(select(table.c.id).where(
            table.c.territory_id == event.get("territory_id"),
            table.c.department == department)).scalar_one_or_none()
    if overlay_id is None:
        return answer
    units = read_units(engine, int(overlay_id))
    names = dict(zip(units["code"], units["name"], strict=True))
    plan_id, grid = event.get("plan_id"), event.get("grid_code")
    if plan_id is not None and grid is not None:
        aligned = read_alignment(engine, int(overlay_id), int(plan_id))
        if grid in aligned:
            code = aligned[grid]
            return {**answer, "unit_code": code, "unit_name": names.get(code),
                    "via": "aligned"}
    lon, lat = event.get("lon"), event.get("lat")
    if lon is None or lat is None or not len(units):
        return answer
    point = shapely.Point(float(lon), float(lat))
    geoms = units.geometry.to_numpy()
    hits = [i for i in shapely.STRtree(geoms).query(point, predicate="intersects")]
    if not hits:
        return answer
    # A point on the shared edge of two units: the smaller code, the same every time.
    code = min(str(units["code"].iloc[i]) for i in hits)
    return {**answer, "unit_code": code, "unit_name": names.get(code), "via": "overlay"}
