"""Stored tables of 多网融合: a department's grid layer, its units, their alignment to grids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import WKBElement
from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gis.models.base import NO_REUSE, Base, geometry_column, utcnow
from gis.models.territories import TerritoryRow


class Overlay(TerritoryRow, Base):
    """A department's own grid layer (警格, 城管网格, …) imported into a territory: its units
    are kept as the department drew them, for the cross-walk with the basic grids."""

    __tablename__ = "overlays"
    __table_args__ = (UniqueConstraint("territory_id", "department"), NO_REUSE)
    #: Which department drew it (公安, 城管, …): the key events are routed by.
    department: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))
    #: The uploaded file names, and the coordinate system the units were drawn in.
    source: Mapped[str | None] = mapped_column(Text)
    source_crs: Mapped[str] = mapped_column(Text)
    #: The columns that gave each unit's code and name.
    field_map: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OverlayUnit(Base):
    """One unit of a department's layer: its code, name, the geometry exactly as the file
    gave it (WKB in ``Overlay.source_crs``) and the same reprojected to WGS84 (repaired
    when the file's was invalid) for the store's spatial queries."""

    __tablename__ = "overlay_units"
    __table_args__ = (UniqueConstraint("overlay_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    overlay_id: Mapped[int] = mapped_column(ForeignKey("overlays.id", ondelete="CASCADE"),
                                            index=True)
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str | None] = mapped_column(String(200))
    source_wkb: Mapped[bytes] = mapped_column(LargeBinary)
    geom: Mapped[WKBElement] = geometry_column()


class OverlayAlignment(Base):
    """An adopted aligned cross-walk: which department unit each basic grid of a plan
    belongs to (by grid code). Events of that plan are routed to units through it."""

    __tablename__ = "overlay_alignments"
    overlay_id: Mapped[int] = mapped_column(ForeignKey("overlays.id", ondelete="CASCADE"),
                                            primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)
    grid_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    unit_code: Mapped[str] = mapped_column(String(60))
