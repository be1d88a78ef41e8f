"""Stored tables of events: located and unlocated events, their history, photos and bulk imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import WKBElement
from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gis.models.base import NO_REUSE, Base, enum_type, geometry_column, utcnow

EVENT_STATUSES = ("reported", "accepted", "dispatched", "handling", "resolved", "verified",
                  "closed")
EVENT_LEVELS = ("grid", "station", "town", "district", "department")


class Event(Base):
    """A located event, with the plan and grid it was routed under."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    #: The territory, plan and grid are not foreign keys on PostgreSQL (migration 0006: the
    #: checks cost a bulk import ~23 s per million rows); deleting a territory deletes its
    #: events first (gis.store.delete_territory).
    territory_id: Mapped[int] = mapped_column(Integer, index=True)
    plan_id: Mapped[int | None] = mapped_column(Integer)
    grid_id: Mapped[int | None] = mapped_column(Integer)
    grid_code: Mapped[str | None] = mapped_column(String(20), index=True)
    category: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text)
    reporter: Mapped[str | None] = mapped_column(String(100))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(enum_type("event_status", EVENT_STATUSES),
                                        default="reported")
    level: Mapped[str] = mapped_column(enum_type("event_level", EVENT_LEVELS), default="grid")
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: ``<account id>:<the client's key>`` (events.store.scoped_key): a key is unique per
    #: account, so one account's key never finds or blocks another's event.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    #: The coordinate system the location arrived in, and the raw coordinates.
    coord_sys: Mapped[str] = mapped_column(String(60))
    #: The address it was reported with, and how precisely the geocoder placed it
    #: (events.geocode.LEVELS), when it came without x/y (migration 0013).
    address: Mapped[str | None] = mapped_column(String(300))
    geocode_level: Mapped[str | None] = mapped_column(String(16))
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    geom: Mapped[WKBElement] = geometry_column("POINT")
    #: Where routing put it: the chain above the grid, the distance to the grid
    #: (0 inside) and, near a boundary, the other candidate grid.
    village_code: Mapped[str | None] = mapped_column(String(12), index=True)
    town_code: Mapped[str | None] = mapped_column(String(9))
    district_code: Mapped[str | None] = mapped_column(String(6))
    distance_m: Mapped[float | None] = mapped_column(Float)
    other_grid_code: Mapped[str | None] = mapped_column(String(20))
    #: Who handles it (never the reporter), since when it is at its level.
    handler: Mapped[str | None] = mapped_column(String(100))
    level_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rating: Mapped[int | None] = mapped_column(Integer)
    feedback: Mapped[str | None] = mapped_column(Text)
    #: The bulk import that stored it on SpatiaLite (``event_imports``), which stores in
    #: short transactions and removes its rows again when it fails; None otherwise.
    import_id: Mapped[int | None] = mapped_column(Integer, index=True)


class EventImport(Base):
    """A bulk import of events on SpatiaLite, stored in short transactions (other writers get
    in between): running, done or failed; a failed or orphaned one has its rows removed."""

    __tablename__ = "event_imports"
    __table_args__ = NO_REUSE
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="running")
    #: "host:pid" of the process storing it, to tell orphans after a restart.
    worker: Mapped[str] = mapped_column(String(100))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UnlocatedEvent(Base):
    """An event reported with an address the geocoder could not place precisely enough
    (status ``needs_location``): kept here, without a point, until an operator places it
    on the desk's map — then it becomes an ordinary, routed event (migration 0013)."""

    __tablename__ = "unlocated_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(Integer, index=True)
    category: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(40))
    address: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    reporter: Mapped[str | None] = mapped_column(String(100))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The geocoder's best answer (level, confidence, point, candidates) as JSON.
    geocode: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(60))
    #: Set when placed: the event it became.
    event_id: Mapped[int | None] = mapped_column(Integer)


class EventHistory(Base):
    """One transition of an event: who, when, from which state to which, and why."""

    __tablename__ = "event_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"),
                                          index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    level: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)


class EventPhoto(Base):
    """A photo of an event (a grid worker's report, a handler's proof), kept in the store so
    that every server process serves it; its type and size checked on the way in."""

    __tablename__ = "event_photos"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"),
                                          index=True)
    content_type: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
