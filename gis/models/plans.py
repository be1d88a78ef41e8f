"""Stored tables of plans: a plan, its grids, blocks and lines, and the edits of a draft."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import WKBElement
from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.schema import ForeignKey, Index, UniqueConstraint

from gis.models.base import NO_REUSE, Base, enum_type, geometry_column, utcnow
from gis.models.territories import Territory, TerritoryRow

PLAN_STATUSES = ("draft", "published", "archived")
GRID_KINDS = ("comprehensive", "dedicated")


class PlanRow:
    """A row that belongs to a plan and goes with it: its id and ``plan_id`` (the first two
    columns)."""

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True,
                                         sort_order=-1)


class Plan(TerritoryRow, Base):
    """A versioned partition of a territory (a generation, as MapIt calls it)."""

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("territory_id", "version"),
        # One published plan per territory, whatever races (migration 0009).
        Index("uq_plans_one_published", "territory_id", unique=True,
              postgresql_where=text("status = 'published'"),
              sqlite_where=text("status = 'published'")),
        NO_REUSE)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(enum_type("plan_status", PLAN_STATUSES), default="draft")
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
                                                foreign_keys="Plan.territory_id")
    grids: Mapped[list[Grid]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", passive_deletes=True)


class Grid(PlanRow, Base):
    """One grid of a plan: 300–500 households, a 15-digit code and its 四至."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("plan_id", "code"),)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200))
    village_code: Mapped[str] = mapped_column(String(12), index=True)
    kind: Mapped[str] = mapped_column(enum_type("grid_kind", GRID_KINDS), default="comprehensive")
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


class Block(PlanRow, Base):
    """An atomic block of a plan (a face between barriers) and the grid it is assigned to."""

    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("plan_id", "block_no"),)
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


class PlanLine(PlanRow, Base):
    """A line that belongs to a plan (it comes from its partition): an inferred street."""

    __tablename__ = "plan_lines"
    __table_args__ = (UniqueConstraint("plan_id", "line_no"),)
    #: Its number within the plan (kept by copies and redraws; the OGC feature id).
    line_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(enum_type("line_kind", LINE_KINDS), default="inferred_street")
    #: As the 四至 names it: "…旁巷道" after a named place nearby, else "无名巷道".
    name: Mapped[str | None] = mapped_column(String(200))
    village_code: Mapped[str | None] = mapped_column(String(12))
    #: Width of the open corridor between the buildings (m).
    width_m: Mapped[float | None] = mapped_column(Float)
    #: How much the gap looks like a street (0–1: the buildings on its sides laid out apart).
    likeness: Mapped[float | None] = mapped_column(Float)
    geom: Mapped[WKBElement] = geometry_column("MULTILINESTRING")


class PlanEdit(PlanRow, Base):
    """One edit of a draft plan (or an undo/redo of one), with what undo and redo need.

    ``before``/``after``: the touched grids' stored rows (geometry as hex WKB) by code
    and the touched blocks' grid codes by block number; an edit's ``state`` is
    ``applied``, ``undone`` (redo can bring it back) or ``discarded`` (a new edit was
    made after it was undone). Undo and redo rows name the edit in ``target_seq``.
    """

    __tablename__ = "plan_edits"
    __table_args__ = (UniqueConstraint("plan_id", "seq"),)
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
