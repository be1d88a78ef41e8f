"""The stored table of long-running jobs (a partition, a redraw) with their state and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gis.models.base import Base, enum_type, utcnow

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


class Job(Base):
    """A long-running piece of work (a partition, a redraw) with its state and progress:
    queued → running → done | failed | cancelled."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="partition")
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(enum_type("job_state", JOB_STATES), default="queued",
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
