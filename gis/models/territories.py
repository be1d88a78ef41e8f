"""Stored tables of a territory and its layers: admin areas, barriers, buildings, land use."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import WKBElement
from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.schema import CheckConstraint, ForeignKey, Index, UniqueConstraint

from gis.models.base import NO_REUSE, Base, enum_type, geometry_column, utcnow

ADMIN_LEVELS = ("district", "town", "village")
BARRIER_LAYERS = ("roads", "water", "ridges", "railways")


class TerritoryRow:
    """A row that belongs to a territory and goes with it: its id and ``territory_id``
    (the first two columns)."""

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True, sort_order=-1)


class LayerRow(TerritoryRow):
    """A feature of one of a territory's layers: a :class:`TerritoryRow` with a geometry
    (the last column)."""

    geom: Mapped[WKBElement] = geometry_column(sort_order=1)


class Territory(Base):
    """One imported territory (a district or county) and where it came from."""

    __tablename__ = "territories"
    __table_args__ = NO_REUSE
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The CGCS2000 3° Gauss–Krüger zone used for areas and distances.
    metric_epsg: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    admin_areas: Mapped[list[AdminArea]] = relationship(
        back_populates="territory", cascade="all, delete-orphan", passive_deletes=True)
    #: Plan lives in gis.models.plans, which imports this module: named here, not imported.
    plans: Mapped[list[Any]] = relationship(
        "Plan", back_populates="territory", cascade="all, delete-orphan", passive_deletes=True,
        foreign_keys="Plan.territory_id")


class AdminArea(LayerRow, Base):
    """A district, town/street or village/community with its statistical code."""

    __tablename__ = "admin_areas"
    __table_args__ = (UniqueConstraint("territory_id", "code"),
                      Index("ix_admin_areas_parent", "territory_id", "parent_code"))
    code: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(enum_type("admin_level", ADMIN_LEVELS))
    parent_code: Mapped[str | None] = mapped_column(String(12))
    kind: Mapped[str | None] = mapped_column(String(16))

    territory: Mapped[Territory] = relationship(back_populates="admin_areas")


class BarrierFeature(LayerRow, Base):
    """A road, river, ridge or railway: the lines grid boundaries follow."""

    __tablename__ = "barrier_features"
    layer: Mapped[str] = mapped_column(enum_type("barrier_layer", BARRIER_LAYERS))
    barrier_class: Mapped[str | None] = mapped_column("class", String(40))
    name: Mapped[str | None] = mapped_column(String(200))


class Building(LayerRow, Base):
    """A building footprint or address point with its households."""

    __tablename__ = "buildings"
    __table_args__ = (CheckConstraint("households >= 0", name="households_not_negative"),)
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    floors: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[float | None] = mapped_column(Float)
    use: Mapped[str | None] = mapped_column(String(40))
    #: Its address as written and its parts (gis.contract.ADDRESS_FIELDS; migration 0013).
    address: Mapped[str | None] = mapped_column(String(200))
    road: Mapped[str | None] = mapped_column(String(200))
    house_number: Mapped[str | None] = mapped_column(String(200))
    compound: Mapped[str | None] = mapped_column(String(200))
    building_no: Mapped[str | None] = mapped_column(String(200))


class Facility(LayerRow, Base):
    """A school, hospital or market: part of the grid around it, never its own."""

    __tablename__ = "facilities"
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))


class DedicatedArea(LayerRow, Base):
    """An industrial park, campus or scenic area: becomes a dedicated grid."""

    __tablename__ = "dedicated_areas"
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))


class LandUse(LayerRow, Base):
    """A land-use area (residential, commercial, …): which footprints hold households."""

    __tablename__ = "land_use"
    use: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))


#: The tables holding a territory's layers, by layer name.
LAYER_MODELS: dict[str, type[Base]] = {
    "admin_areas": AdminArea,
    "buildings": Building,
    "facilities": Facility,
    "dedicated_areas": DedicatedArea,
    "landuse": LandUse,
}
