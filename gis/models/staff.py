"""Stored tables of grid staff: who looks after which grids, and their patrols (巡查)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gis.models.base import Base, enum_type, utcnow
from gis.models.territories import TerritoryRow

STAFF_ROLES = ("grid_worker", "grid_head", "station_head")


class Staff(TerritoryRow, Base):
    """A grid worker, grid head or station head, bound to an area code."""

    __tablename__ = "staff"
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(enum_type("staff_role", STAFF_ROLES))
    phone: Mapped[str | None] = mapped_column(String(40))
    area_code: Mapped[str | None] = mapped_column(String(20))


class StaffGrid(Base):
    """Which grids (by code, stable across plans) a member of staff looks after."""

    __tablename__ = "staff_grids"
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"),
                                          primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(20), primary_key=True)


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
    kind: Mapped[str] = mapped_column(enum_type("patrol_point_kind", ("track", "checkin")))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(String(500))
