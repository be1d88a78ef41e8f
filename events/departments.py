"""Which department unit an event falls to (多网融合): category, department, its overlay's unit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import shapely
from sqlalchemy import Engine, select

from gis.models.overlays import Overlay
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
    return department_units(engine, event.get("territory_id"), event.get("plan_id"), [(
        0, event.get("category"), event.get("grid_code"), event.get("lon"), event.get("lat"))],
        mapping).get(0)


def department_units(engine: Engine, territory_id: Any, plan_id: Any,
                     events: Sequence[tuple[int, Any, Any, Any, Any]],
                     mapping: Mapping[str, str]) -> dict[int, dict[str, Any]]:
    """:func:`department_unit` of many events of one territory, given as (id, category,
    grid code, lon, lat): each department's overlay, units and alignment read once. Events
    whose category no department handles are left out."""
    by_department: dict[str, list[tuple[int, Any, Any, Any]]] = {}
    for key, category, grid, lon, lat in events:
        department = department_of(category, mapping)
        if department is not None:
            by_department.setdefault(department, []).append((key, grid, lon, lat))
    out: dict[int, dict[str, Any]] = {}
    table = Overlay.__table__
    for department, mine in sorted(by_department.items()):
        answer: dict[str, Any] = {"department": department, "unit_code": None,
                                  "unit_name": None, "via": None}
        with engine.connect() as conn:
            overlay_id = conn.execute(select(table.c.id).where(
                table.c.territory_id == territory_id,
                table.c.department == department)).scalar_one_or_none()
        if overlay_id is None:
            out.update({key: dict(answer) for key, *_ in mine})
            continue
        units = read_units(engine, int(overlay_id))
        names = dict(zip(units["code"], units["name"], strict=True))
        aligned = read_alignment(engine, int(overlay_id), int(plan_id)) \
            if plan_id is not None else {}
        geoms = units.geometry.to_numpy()
        tree = shapely.STRtree(geoms)
        for key, grid, lon, lat in mine:
            if grid is not None and grid in aligned:
                code = aligned[grid]
                out[key] = {**answer, "unit_code": code, "unit_name": names.get(code),
                            "via": "aligned"}
                continue
            if lon is None or lat is None or not len(units):
                out[key] = dict(answer)
                continue
            hits = tree.query(shapely.Point(float(lon), float(lat)), predicate="intersects")
            if not len(hits):
                out[key] = dict(answer)
                continue
            # A point on the shared edge of two units: the smaller code, the same every time.
            code = min(str(units["code"].iloc[i]) for i in hits)
            out[key] = {**answer, "unit_code": code, "unit_name": names.get(code),
                        "via": "overlay"}
    return out
