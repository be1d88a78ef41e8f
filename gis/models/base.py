"""The one declarative Base (one metadata) of the stored tables, and their column helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from geoalchemy2 import Geometry
from sqlalchemy import JSON, Enum
from sqlalchemy.orm import DeclarativeBase, mapped_column

#: Every geometry is stored in WGS84 lon/lat; areas and distances are
#: computed in the territory's metric CRS (``Territory.metric_epsg``).
SRID = 4326


def geometry_column(kind: str = "GEOMETRY", *, sort_order: int = 0) -> Any:
    return mapped_column(Geometry(geometry_type=kind, srid=SRID, spatial_index=True),
                         nullable=False, sort_order=sort_order)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back naive datetimes, which are stored as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


def enum_type(name: str, values: tuple[str, ...]) -> Enum:
    """A short text column that takes only ``values`` (a CHECK constraint, not a native enum)."""
    return Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


#: SQLite reuses the highest rowid once its row is deleted; with AUTOINCREMENT it never
#: does. Ids of these tables key per-process caches (scopes, routers) and appear in links,
#: so a deleted territory's id must never name a new one (migration 0009).
NO_REUSE = {"sqlite_autoincrement": True}
