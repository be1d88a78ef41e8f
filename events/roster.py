"""The staff roster in the store: who looks after which grids of a territory (read, replaced)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, insert, or_, select

from gis.accounts import within_areas
from gis.errors import NotFound
from gis.models.staff import Staff, StaffGrid
from gis.models.territories import Territory
from gis.paging import Page, Paged, read_page


@dataclass(frozen=True)
class Member:
    """One person of a roster: their role, phone, the area they work for and their grids."""

    name: str
    role: str = "grid_worker"
    phone: str | None = None
    area_code: str | None = None
    grids: tuple[str, ...] = field(default_factory=tuple)
    id: int | None = None


def read_roster(engine: Engine, territory_id: int) -> list[Member]:
    """A territory's staff by name (then id), each with their grid codes in order."""
    return roster_page(engine, territory_id, None).items


def roster_page(engine: Engine, territory_id: int, page: Page | None, *,
                areas: tuple[str, ...] | None = None, grid: str | None = None
                ) -> Paged[Member]:
    """A page of :func:`read_roster`. ``areas``: only members with a grid in them, or (no
    ``grid`` asked for) whose own area is in them; ``grid``: only those who look after it."""
    table, links = Staff.__table__, StaffGrid.__table__
    query = select(table.c.id, table.c.name, table.c.role, table.c.phone, table.c.area_code
                   ).where(table.c.territory_id == territory_id
                           ).order_by(table.c.name, table.c.id)
    in_areas = within_areas(links.c.grid_code, areas)
    if grid is not None or in_areas is not None:
        theirs = select(links.c.staff_id).where(links.c.staff_id == table.c.id)
        if grid is not None:
            theirs = theirs.where(links.c.grid_code == grid)
        if in_areas is not None:
            theirs = theirs.where(in_areas)
        own = within_areas(table.c.area_code, areas)
        query = query.where(theirs.exists() if grid is not None or own is None
                            else or_(theirs.exists(), own))
    with engine.connect() as conn:
        found = read_page(conn, query, page)
        grids: dict[int, list[str]] = {}
        for staff_id, code in conn.execute(select(links.c.staff_id, links.c.grid_code).where(
                links.c.staff_id.in_([r.id for r in found.items])).order_by(links.c.grid_code)):
            grids.setdefault(int(staff_id), []).append(str(code))
    return found.map(lambda r: Member(r.name, r.role, r.phone, r.area_code,
                                      tuple(grids.get(int(r.id), [])), int(r.id)))


def replace_roster(engine: Engine, territory_id: int, members: Iterable[Member]) -> None:
    """The territory's roster replaced by ``members`` in one transaction (NotFound for no
    such territory; nothing changes then)."""
    with engine.begin() as conn:
        if conn.execute(select(Territory.id).where(
                Territory.id == territory_id)).first() is None:
            raise NotFound(f"no territory {territory_id}")
        conn.execute(delete(Staff).where(Staff.territory_id == territory_id))
        for member in members:
            staff_id = conn.execute(insert(Staff).values(
                territory_id=territory_id, name=member.name, role=member.role,
                phone=member.phone, area_code=member.area_code)
                .returning(Staff.id)).scalar_one()
            codes = sorted(set(member.grids))
            if codes:
                conn.execute(insert(StaffGrid),
                             [{"staff_id": staff_id, "grid_code": c} for c in codes])
