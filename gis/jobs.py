"""The jobs table: a partition's or redraw's row (queued, running, its end), read and written."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, func, insert, select, text, update

from gis.errors import NotFound
from gis.models.base import iso, utcnow
from gis.models.jobs import Job
from gis.models.territories import Territory
from gis.paging import Page, Paged, read_page

#: The states of a job that has not ended.
ACTIVE = ("queued", "running")
#: What a job's answer holds (``GET /jobs/{id}``).
JOB_FIELDS = ("id", "kind", "territory_id", "state", "progress", "stage", "parameters",
              "plan_id", "error", "created_at", "started_at", "finished_at", "towns_done",
              "towns_total")
#: The key of the PostgreSQL advisory lock that lets one submission in at a time.
SUBMIT_LOCK = 7301017


def _jobs() -> Table:
    return cast(Table, Job.__table__)


def job_dict(row: Any) -> dict[str, Any]:
    out = {k: getattr(row, k) for k in JOB_FIELDS}
    for k in ("created_at", "started_at", "finished_at"):
        out[k] = iso(out[k])
    return out


def get_job(engine: Engine, job_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(_jobs()).where(_jobs().c.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return job_dict(row)


def jobs_page(engine: Engine, page: Page | None, *, territory_id: int | None = None,
              territory_ids: Collection[int] | None = None) -> Paged[dict[str, Any]]:
    """A page of the jobs, newest first; ``territory_ids``: only theirs."""
    table = _jobs()
    query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc())
    if territory_id is not None:
        query = query.where(table.c.territory_id == territory_id)
    if territory_ids is not None:
        query = query.where(table.c.territory_id.in_(sorted(territory_ids)))
    with engine.connect() as conn:
        return read_page(conn, query, page).map(job_dict)


@dataclass(frozen=True)
class Crowded:
    """A limit of active jobs reached: of the territory or of the account (``which``)."""

    which: str
    value: Any
    count: int
    limit: int


def queue_job(engine: Engine, job_id: str, *, kind: str, territory_id: int,
              parameters: dict[str, Any], worker: str, account: str | None,
              limit_per_territory: int = 0, limit_per_account: int = 0) -> Crowded | None:
    """A new ``queued`` job row of a territory that exists (NotFound otherwise), unless a
    limit of active jobs (0: none) is reached: then that limit, and nothing written."""
    jobs = _jobs()
    now = utcnow()
    with engine.begin() as conn:
        # One submission at a time, across server processes: an advisory lock on
        # PostgreSQL; on SQLite a write first, which takes the database's one write lock.
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({SUBMIT_LOCK})"))
        else:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(stage=None))
        if conn.execute(select(Territory.id).where(
                Territory.id == territory_id)).first() is None:
            raise NotFound(f"no territory {territory_id}")
        active = jobs.c.state.in_(ACTIVE)
        for which, limit, column, value in (
                ("territory", limit_per_territory, jobs.c.territory_id, territory_id),
                ("account", limit_per_account, jobs.c.account, account)):
            if limit <= 0 or value is None:
                continue
            n = conn.execute(select(func.count()).select_from(jobs).where(
                active, column == value)).scalar_one()
            if n >= limit:
                return Crowded(which, value, int(n), limit)
        conn.execute(insert(jobs).values(
            id=job_id, kind=kind, territory_id=territory_id, state="queued",
            progress=0.0, stage="queued 排队中", parameters=parameters, worker=worker,
            account=account, created_at=now, heartbeat_at=now))
    return None


def start_job(engine: Engine, job_id: str, stage: str) -> bool:
    """A queued job ``running`` at ``stage``; False when it is no longer queued (cancelled
    while it waited)."""
    now = utcnow()
    with engine.begin() as conn:
        return bool(conn.execute(update(_jobs()).where(
            _jobs().c.id == job_id, _jobs().c.state == "queued").values(
            state="running", started_at=now, progress=0.01, stage=stage,
            heartbeat_at=now)).rowcount)


def update_running(engine: Engine, job_id: str, **values: Any) -> bool:
    """Progress (stage, progress, towns…) and the heartbeat of a running job; False when it
    is no longer running (cancelled, timed out, given up for dead)."""
    values.setdefault("heartbeat_at", utcnow())
    with engine.begin() as conn:
        return bool(conn.execute(update(_jobs()).where(
            _jobs().c.id == job_id, _jobs().c.state == "running").values(**values)).rowcount)


def finish_job(conn: Connection, job_id: str, plan_id: int) -> bool:
    """Inside the transaction that writes a job's plan: the job ``done`` with it, only if
    it is still running (False: it is not, and the caller rolls the plan back)."""
    now = utcnow()
    return conn.execute(update(_jobs()).where(
        _jobs().c.id == job_id, _jobs().c.state == "running").values(
        state="done", progress=1.0, stage="done 完成", plan_id=plan_id, finished_at=now,
        heartbeat_at=now)).rowcount == 1


def cancel_job(engine: Engine, job_id: str, error: str) -> bool:
    """A queued or running job ``cancelled`` with why; False when it had ended."""
    now = utcnow()
    with engine.begin() as conn:
        return bool(conn.execute(update(_jobs()).where(
            _jobs().c.id == job_id, _jobs().c.state.in_(ACTIVE)).values(
            state="cancelled", stage="cancelled 已取消", finished_at=now, heartbeat_at=now,
            error=error)).rowcount)


def end_job(engine: Engine, job_id: str, **values: Any) -> None:
    """The end of a job that has not ended (a job that ended already keeps its end);
    ``finished_at`` now unless given."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(update(_jobs()).where(_jobs().c.id == job_id,
                                           _jobs().c.state.in_(ACTIVE))
                     .values({"finished_at": now, "heartbeat_at": now, **values}))


def active_jobs(engine: Engine) -> list[Any]:
    """The jobs not ended: ``id``, ``worker`` (host:pid of the driving process),
    ``heartbeat_at``, ``created_at``."""
    table = _jobs()
    with engine.connect() as conn:
        return list(conn.execute(select(table.c.id, table.c.worker, table.c.heartbeat_at,
                                        table.c.created_at).where(table.c.state.in_(ACTIVE))))


def fail_jobs(engine: Engine, job_ids: Sequence[str], error: str) -> None:
    """Jobs (of those still not ended) ``failed`` with why."""
    with engine.begin() as conn:
        conn.execute(update(_jobs()).where(
            _jobs().c.id.in_(list(job_ids)), _jobs().c.state.in_(ACTIVE)).values(
            state="failed", error=error, finished_at=utcnow()))
