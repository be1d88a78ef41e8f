"""The stored tables (GeoAlchemy2): territories and layers, plans, grids, blocks, staff, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Every geometry is stored in WGS84 lon/lat; areas and distances are
#: computed in the territory's metric CRS (``Territory.metric_epsg``).
SRID = 4326


def geometry_column(kind: str = "GEOMETRY") -> Any:
    return mapped_column(Geometry(geometry_type=kind, srid=SRID, spatial_index=True),
                         nullable=False)


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


PLAN_STATUSES = ("draft", "published", "archived")
ADMIN_LEVELS = ("district", "town", "village")
GRID_KINDS = ("comprehensive", "dedicated")
BARRIER_LAYERS = ("roads", "water", "ridges", "railways")
STAFF_ROLES = ("grid_worker", "grid_head", "station_head")
EVENT_STATUSES = ("reported", "accepted", "dispatched", "handling", "resolved", "verified",
                  "closed")
EVENT_LEVELS = ("grid", "station", "town", "district", "department")
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


def _enum(name: str, values: tuple[str, ...]) -> Enum:
    return Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


#: SQLite reuses the highest rowid once its row is deleted; with AUTOINCREMENT it never
#: does. Ids of these tables key per-process caches (scopes, routers) and appear in links,
#: so a deleted territory's id must never name a new one (migration 0009).
NO_REUSE = {"sqlite_autoincrement": True}


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
    plans: Mapped[list[Plan]] = relationship(
        back_populates="territory", cascade="all, delete-orphan", passive_deletes=True,
        foreign_keys="Plan.territory_id")


class AdminArea(Base):
    """A district, town/street or village/community with its statistical code."""

    __tablename__ = "admin_areas"
    __table_args__ = (UniqueConstraint("territory_id", "code"),
                      Index("ix_admin_areas_parent", "territory_id", "parent_code"))
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(_enum("admin_level", ADMIN_LEVELS))
    parent_code: Mapped[str | None] = mapped_column(String(12))
    kind: Mapped[str | None] = mapped_column(String(16))
    geom: Mapped[WKBElement] = geometry_column()

    territory: Mapped[Territory] = relationship(back_populates="admin_areas")


class BarrierFeature(Base):
    """A road, river, ridge or railway: the lines grid boundaries follow."""

    __tablename__ = "barrier_features"
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    layer: Mapped[str] = mapped_column(_enum("barrier_layer", BARRIER_LAYERS))
    barrier_class: Mapped[str | None] = mapped_column("class", String(40))
    name: Mapped[str | None] = mapped_column(String(200))
    geom: Mapped[WKBElement] = geometry_column()


class Building(Base):
    """A building footprint or address point with its households."""

    __tablename__ = "buildings"
    __table_args__ = (CheckConstraint("households >= 0", name="households_not_negative"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
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
    geom: Mapped[WKBElement] = geometry_column()


class Facility(Base):
    """A school, hospital or market: part of the grid around it, never its own."""

    __tablename__ = "facilities"
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))
    geom: Mapped[WKBElement] = geometry_column()


class DedicatedArea(Base):
    """An industrial park, campus or scenic area: becomes a dedicated grid."""

    __tablename__ = "dedicated_areas"
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    geom: Mapped[WKBElement] = geometry_column()


class LandUse(Base):
    """A land-use area (residential, commercial, …): which footprints hold households."""

    __tablename__ = "land_use"
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    use: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))
    geom: Mapped[WKBElement] = geometry_column()


class Plan(Base):
    """A versioned partition of a territory (a generation, as MapIt calls it)."""

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("territory_id", "version"),
        # One published plan per territory, whatever races (migration 0009).
        Index("uq_plans_one_published", "territory_id", unique=True,
              postgresql_where=text("status = 'published'"),
              sqlite_where=text("status = 'published'")),
        NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(_enum("plan_status", PLAN_STATUSES), default="draft")
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report: Mapped[dict[str, Any] | None] = mapped_column()
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Who published the plan and why (the publish note, 发布说明).
    published_by: Mapped[str | None] = mapped_column(String(100))
    publish_note: Mapped[str | None] = mapped_column(Text)
    #: Edit generation of a draft: one more after every edit, undo and redo (the ETag).
    edit_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    territory: Mapped[Territory] = relationship(back_populates="plans",
                                                foreign_keys=[territory_id])
    grids: Mapped[list[Grid]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", passive_deletes=True)


class Grid(Base):
    """One grid of a plan: 300–500 households, a 15-digit code and its 四至."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("plan_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200))
    village_code: Mapped[str] = mapped_column(String(12), index=True)
    kind: Mapped[str] = mapped_column(_enum("grid_kind", GRID_KINDS), default="comprehensive")
    households: Mapped[int] = mapped_column(Integer, default=0)
    #: Of the households, those that come from estimates (footprints without a count).
    households_estimated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    population: Mapped[int] = mapped_column(Integer, default=0)
    area_m2: Mapped[float | None] = mapped_column(Float)
    compactness: Mapped[float | None] = mapped_column(Float)
    barrier_share: Mapped[float | None] = mapped_column(Float)
    radius_m: Mapped[float | None] = mapped_column(Float)
    #: 四至: "东至…，南至…，西至…，北至…"
    boundary_text: Mapped[str | None] = mapped_column(Text)
    #: Why the grid is irregular (e.g. "below_min", "single_building"); empty when regular.
    flags: Mapped[list[Any]] = mapped_column(default=list)
    #: The flags' reason in words (which river a grid crosses and why); empty when regular.
    flag_reason: Mapped[str | None] = mapped_column(Text)
    #: Metres of river, ridge or railway inside the grid (not along its boundary).
    barrier_inside_m: Mapped[float | None] = mapped_column(Float)
    #: A locked grid refuses every edit but unlock.
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    geom: Mapped[WKBElement] = geometry_column()

    plan: Mapped[Plan] = relationship(back_populates="grids")


class Block(Base):
    """An atomic block of a plan (a face between barriers) and the grid it is assigned to."""

    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("plan_id", "block_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    block_no: Mapped[int] = mapped_column(Integer)
    village_code: Mapped[str] = mapped_column(String(12))
    households: Mapped[int] = mapped_column(Integer, default=0)
    households_estimated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    population: Mapped[int] = mapped_column(Integer, default=0)
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grids.id", ondelete="SET NULL"), index=True)
    geom: Mapped[WKBElement] = geometry_column()


#: What a plan's line is: ``inferred_street``, a cut between buildings down a gap that
#: looks like a street on the ground but is not in the roads layer (推测巷道).
LINE_KINDS = ("inferred_street",)


class PlanLine(Base):
    """A line that belongs to a plan (it comes from its partition): an inferred street."""

    __tablename__ = "plan_lines"
    __table_args__ = (UniqueConstraint("plan_id", "line_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    #: Its number within the plan (kept by copies and redraws; the OGC feature id).
    line_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(_enum("line_kind", LINE_KINDS), default="inferred_street")
    #: As the 四至 names it: "…旁巷道" after a named place nearby, else "无名巷道".
    name: Mapped[str | None] = mapped_column(String(200))
    village_code: Mapped[str | None] = mapped_column(String(12))
    #: Width of the open corridor between the buildings (m).
    width_m: Mapped[float | None] = mapped_column(Float)
    #: How much the gap looks like a street (0–1: the buildings on its sides laid out apart).
    likeness: Mapped[float | None] = mapped_column(Float)
    geom: Mapped[WKBElement] = geometry_column("MULTILINESTRING")


class PlanEdit(Base):
    """One edit of a draft plan (or an undo/redo of one), with what undo and redo need.

    ``before``/``after``: the touched grids' stored rows (geometry as hex WKB) by code
    and the touched blocks' grid codes by block number; an edit's ``state`` is
    ``applied``, ``undone`` (redo can bring it back) or ``discarded`` (a new edit was
    made after it was undone). Undo and redo rows name the edit in ``target_seq``.
    """

    __tablename__ = "plan_edits"
    __table_args__ = (UniqueConstraint("plan_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="applied")
    target_seq: Mapped[int | None] = mapped_column(Integer)
    author: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    version_before: Mapped[int] = mapped_column(Integer)
    version_after: Mapped[int] = mapped_column(Integer)
    grids: Mapped[list[Any]] = mapped_column(default=list)
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any] | None] = mapped_column()


class Staff(Base):
    """A grid worker, grid head or station head, bound to an area code."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(_enum("staff_role", STAFF_ROLES))
    phone: Mapped[str | None] = mapped_column(String(40))
    area_code: Mapped[str | None] = mapped_column(String(20))


class StaffGrid(Base):
    """Which grids (by code, stable across plans) a member of staff looks after."""

    __tablename__ = "staff_grids"
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"),
                                          primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(20), primary_key=True)


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
    status: Mapped[str] = mapped_column(_enum("event_status", EVENT_STATUSES),
                                        default="reported")
    level: Mapped[str] = mapped_column(_enum("event_level", EVENT_LEVELS), default="grid")
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


class Job(Base):
    """A long-running piece of work (a partition, a redraw) with its state and progress:
    queued → running → done | failed | cancelled."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="partition")
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(_enum("job_state", JOB_STATES), default="queued",
                                       index=True)
    #: 0..1, and the stage the work is in (shown to the user).
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The draft plan the job made, once done.
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    #: Why the job failed, in words a user can act on.
    error: Mapped[str | None] = mapped_column(Text)
    #: "host:pid" of the process running it, to tell orphans after a restart.
    worker: Mapped[str | None] = mapped_column(String(100))
    #: The account that submitted it (the per-account job limit counts by it).
    account: Mapped[str | None] = mapped_column(String(60), index=True)
    #: Towns (pieces of work: a town, or a group of a big town's villages) done and in all.
    towns_done: Mapped[int | None] = mapped_column(Integer)
    towns_total: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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


class Patrol(Base):
    """One patrol (巡查) of a grid by a grid worker: started, ended, its track and check-ins
    in ``patrol_points``. Two ended patrols of a grid in a day are its 日双巡."""

    __tablename__ = "patrols"
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(Integer, index=True)
    grid_code: Mapped[str] = mapped_column(String(20), index=True)
    username: Mapped[str] = mapped_column(String(60), index=True)
    walker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The client's key of the start: a retried start makes no second patrol.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)


class PatrolPoint(Base):
    """A point of a patrol's track, or a check-in (打卡) with a note; WGS84."""

    __tablename__ = "patrol_points"
    id: Mapped[int] = mapped_column(primary_key=True)
    patrol_id: Mapped[int] = mapped_column(ForeignKey("patrols.id", ondelete="CASCADE"),
                                           index=True)
    kind: Mapped[str] = mapped_column(_enum("patrol_point_kind", ("track", "checkin")))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(String(500))



class Overlay(Base):
    """A department's own grid layer (警格, 城管网格, …) imported into a territory: its units
    are kept as the department drew them, for the cross-walk with the basic grids."""

    __tablename__ = "overlays"
    __table_args__ = (UniqueConstraint("territory_id", "department"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
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


#: The tables holding a territory's layers, by layer name.
LAYER_MODELS: dict[str, type[Base]] = {
    "admin_areas": AdminArea,
    "buildings": Building,
    "facilities": Facility,
    "dedicated_areas": DedicatedArea,
    "landuse": LandUse,
}


#: Who may do what (api/auth.py gives each role its permissions).
ROLES = ("admin", "planner", "operator", "grid_worker", "reporter", "viewer")


class Account(Base):
    """A person or an integration that signs in: a role and the areas it is bound to."""

    __tablename__ = "accounts"
    __table_args__ = NO_REUSE
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(_enum("account_role", ROLES))
    #: Area codes (district, town, village/community or grid), comma-separated; ``*`` is
    #: every area. The account sees and acts on what lies under one of them.
    areas: Mapped[str] = mapped_column(String(400))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When the password, role, areas or state last changed: tokens issued before are void.
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """A long-lived key of an account for integrations (only its SHA-256 is stored)."""

    __tablename__ = "api_keys"
    __table_args__ = NO_REUSE
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who read personal data or changed something, when, through which request."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str | None] = mapped_column(String(60), index=True)
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(400))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class ServiceSecret(Base):
    """A secret of the service made on first use (the key that signs tokens), shared by
    every server process through the store."""

    __tablename__ = "service_secrets"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Throttle(Base):
    """A fixed-window counter shared by every server process (sign-in failures per account
    and per client address): how many hits in the window that started at ``window_start``."""

    __tablename__ = "throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hits: Mapped[int] = mapped_column(Integer)


class RevokedToken(Base):
    """A token voided before its expiry (signed out): its id, kept until it would expire."""

    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
