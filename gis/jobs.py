"""The jobs table read for lists: a page of jobs, newest first (api/jobs.py runs them)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine, select

from gis import models
from gis.paging import Page, Paged, read_page


def jobs_page(engine: Engine, page: Page | None, *, territory_id: int | None = None,
              territory_ids: Collection[int] | None = None) -> Paged[Any]:
    """A page of job rows, newest first; ``territory_ids``: only theirs."""
    table = models.Job.__table__
    query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc())
    if territory_id is not None:
        query = query.where(table.c.territory_id == territory_id)
    if territory_ids is not None:
        query = query.where(table.c.territory_id.in_(sorted(territory_ids)))
    with engine.connect() as conn:
        return read_page(conn, query, page)
