"""Lists read a page at a time in SQL: LIMIT/OFFSET, whether more follow, the total where cheap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, func, select

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Page:
    """Which slice of a list: ``limit`` rows after the first ``offset``."""

    limit: int
    offset: int = 0


@dataclass
class Paged(Generic[T]):
    """One page of a list: its items, whether more follow, and the list's total (None when
    counting would cost a scan of a table that grows without bound: events, the audit)."""

    items: list[T]
    more: bool
    total: int | None

    def map(self, fn: Callable[[T], U]) -> Paged[U]:
        return Paged([fn(i) for i in self.items], self.more, self.total)


def read_page(conn: Connection, query: Any, page: Page | None, *,
              count: bool = True) -> Paged[Any]:
    """``query`` (ordered, so pages do not overlap) run for one page: one row past the page
    tells whether more follow; ``count`` adds the total (not asked again when the whole
    list fits on this page)."""
    if page is None:
        rows = list(conn.execute(query).all())
        return Paged(rows, False, len(rows))
    rows = list(conn.execute(query.limit(page.limit + 1).offset(page.offset)).all())
    more = len(rows) > page.limit
    rows = rows[:page.limit]
    total: int | None = None
    if page.offset == 0 and not more:
        total = len(rows)
    elif count:
        total = int(conn.execute(select(func.count()).select_from(
            query.order_by(None).subquery())).scalar_one())
    return Paged(rows, more, total)
