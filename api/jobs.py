"""Partition and redraw jobs: run the engine in the background, record state and progress.

A job ends ``done`` (its plan written in one transaction) or ``failed`` with a reason: bad
input, the database going away while it ran, or its time limit (``GRIDMAP_JOB_TIMEOUT_S``)
running out. Its end is recorded even when the database is briefly away (the write is
retried until it is back); a job whose process died is marked failed by :meth:`recover`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import timedelta
from typing import Any

import shapely
from sqlalchemy import Engine, delete, insert, select, update

from gis import models
from gis.database import is_unavailable
from gis.edits import PlanReader
from gis.errors import Conflict, GridmapError, NotFound
from gis.layers import Territory
from gis.plans import (
    PlanInfo,
    get_plan,
    published_plan_id,
    read_blocks,
    read_grids,
    read_lines,
    write_plan,
)
from gis.store import load_territory
from partitioning import quality
from partitioning.engine import partition_territory
from partitioning.output import grid_table
from partitioning.params import PartitionParams
from partitioning.redraw import redraw_plan

log = logging.getLogger("gridmap.jobs")
#: Progress is written at most this often (seconds), plus at every stage change.
PROGRESS_EVERY_S = 1.0
RESTARTED = ("the server stopped before this job finished (it was restarted or crashed); "
             "nothing was stored: submit the job again")
#: Why a job failed when the database went away under it ({} is the driver's words).
DB_LOST = ("数据库连接中断 the database went away while the job ran (PostgreSQL restarted or "
           "became unreachable: {}); nothing was stored: submit the job again")
#: Why a job failed when its time ran out ({} is GRIDMAP_JOB_TIMEOUT_S).
TIMED_OUT = ("任务超时 timed out after {} s (GRIDMAP_JOB_TIMEOUT_S); its result was discarded "
             "and nothing was stored: submit the job again, or raise the limit")
#: Why a job stopped when someone cancelled it (DELETE /jobs/{id}).
CANCELLED = "已取消 cancelled (DELETE /jobs/{id}); nothing was stored"
#: The longest pause between two attempts to record a job's end while the database is away.
RETRY_MAX_S = 2.0


class JobCancelled(Exception):
    """Raised in a job's thread (at its next progress report) once the job must stop."""


class _Control:
    """What the thread of one running job and its timer share."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        #: Held while the result is stored, and by the timeout: a job's result is either
        #: stored (and the job done) or discarded (and the job failed), never both.
        self.lock = threading.Lock()
        self.stored = False
        self.timer: threading.Timer | None = None

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """Runs partition jobs on a small thread pool; the store is the record of each job."""

    def __init__(self, engine: Engine, workers: int = 1, stale_after_s: int = 900,
                 timeout_s: float = 0.0) -> None:
        self.engine = engine
        self.stale_after = timedelta(seconds=stale_after_s)
        #: A running job is stopped and marked failed after this many seconds (0: never).
        self.timeout_s = timeout_s
        #: How long the end of a job is retried while the database is away (seconds).
        self.record_for_s = float(stale_after_s)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="gridmap-job")
        self._lock = threading.Lock()
        self._running: dict[str, _Control] = {}

    def shutdown(self) -> None:
        with self._lock:
            for control in self._running.values():
                control.cancelled.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def running(self) -> list[str]:
        """The ids of the jobs whose threads run in this process now."""
        with self._lock:
            return list(self._running)

    def recover(self) -> int:
        """Mark as failed the jobs whose process is gone; returns how many.

        A job is orphaned when it was run by a process of this host that no longer
        exists, or when it has not reported progress for ``stale_after``.
        """
        host = socket.gethostname()
        now = models.utcnow()
        table = models.Job.__table__
        orphans = []
        with self.engine.connect() as conn:
            for row in conn.execute(select(table.c.id, table.c.worker, table.c.heartbeat_at,
                                           table.c.created_at).where(
                    table.c.state.in_(("queued", "running")))):
                w_host, _, w_pid = (row.worker or ":").partition(":")
                seen = row.heartbeat_at or row.created_at
                if seen is not None and seen.tzinfo is None:
                    seen = seen.replace(tzinfo=now.tzinfo)
                dead = (w_host == host and w_pid.isdigit() and int(w_pid) != os.getpid()
                        and not _pid_alive(int(w_pid)))
                if dead or seen is None or now - seen > self.stale_after:
                    orphans.append(row.id)
        if orphans:
            with self.engine.begin() as conn:
                conn.execute(update(models.Job).where(models.Job.id.in_(orphans)).values(
                    state="failed", error=RESTARTED, finished_at=now))
            log.warning("marked %d orphaned job(s) as failed", len(orphans))
        return len(orphans)

    def submit(self, territory_id: int, parameters: dict[str, Any],
               note: str | None = None, created_by: str | None = None) -> str:
        """Queue a partition of a stored territory; returns the job id at once."""
        params = PartitionParams(**parameters)  # validates the band before queueing
        job_id = self._queue("partition", territory_id, parameters)
        self._pool.submit(self._run, job_id, territory_id, params, parameters, note,
                          created_by)
        return job_id

    def _queue(self, kind: str, territory_id: int, parameters: dict[str, Any]) -> str:
        """A new ``queued`` job row of a territory that exists; its id."""
        job_id = uuid.uuid4().hex
        now = models.utcnow()
        with self.engine.begin() as conn:
            if conn.execute(select(models.Territory.id).where(
                    models.Territory.id == territory_id)).first() is None:
                raise NotFound(f"no territory {territory_id}")
            conn.execute(insert(models.Job).values(
                id=job_id, kind=kind, territory_id=territory_id, state="queued",
                progress=0.0, stage="queued 排队中", parameters=parameters, worker=self.worker,
                created_at=now, heartbeat_at=now))
        return job_id

    def submit_redraw(self, territory_id: int, territory: Territory, plan_id: int | None,
                      note: str | None = None, created_by: str | None = None,
                      source: str | None = None) -> str:
        """Queue a stable redraw of a plan (default: the published one) for new data."""
        base = plan_id if plan_id is not None else published_plan_id(self.engine,
                                                                       territory_id)
        if base is None:
            raise Conflict(f"区域 {territory_id} 没有已发布的方案（territory {territory_id} has "
                           "no published plan: publish one, or name the plan with plan_id)")
        info = get_plan(self.engine, base)
        if info.territory_id != territory_id:
            raise Conflict(f"plan {base} belongs to territory {info.territory_id}, not "
                           f"{territory_id}")
        job_id = self._queue("redraw", territory_id, {"plan_id": base, "source": source})
        self._pool.submit(self._run_redraw, job_id, territory_id, territory, info, note,
                          created_by)
        return job_id

    def _run_redraw(self, job_id: str, territory_id: int, territory: Territory,
                    base: PlanInfo, note: str | None, created_by: str | None) -> None:
        def work(control: _Control) -> int:
            known = {f.name for f in fields(PartitionParams)}
            params = PartitionParams(**{k: v for k, v in base.parameters.items() if k in known})
            blocks = read_blocks(self.engine, base.id)
            grids = read_grids(self.engine, base.id)
            with self.engine.connect() as conn:
                locked = {str(c) for (c,) in conn.execute(select(models.Grid.code).where(
                    models.Grid.plan_id == base.id, models.Grid.locked.is_(True)))}
                used = PlanReader(conn, base.id).used_codes(set(grids["village_code"]))
            grids["locked"] = grids["code"].isin(locked)

            def progress(stage: str, done: float) -> None:
                control.check()
                self._set(job_id, stage=stage, progress=round(0.05 + 0.85 * done, 3))

            result = redraw_plan(blocks, grids, territory, params, used, progress)
            control.check()
            self._set(job_id, stage="saving 保存方案", progress=0.92)
            plan_grids = result.grids.to_crs(models.SRID)
            metric = plan_grids.to_crs(territory.metric_crs)
            admin = territory.layers["admin_areas"].to_crs(territory.metric_crs)
            village_area = float(admin.loc[admin["level"] == "village"].area.sum())
            report = quality.plan_report(metric, village_area,
                                         float(shapely.union_all(metric.geometry.to_numpy())
                                               .area),
                                         params.min_households, params.max_households)
            report.update(result.report, parent_plan_id=base.id)
            still = sorted(set(plan_grids["code"][plan_grids["locked"]]))

            # The blocks are the plan's, so are the streets found between its buildings.
            lines = read_lines(self.engine, base.id)

            def store() -> int:
                plan_id = write_plan(self.engine, territory_id, plan_grids,
                                     result.blocks.to_crs(models.SRID), report,
                                     base.parameters, parent_id=base.id, created_by=created_by,
                                     note=note or f"稳定重划自方案 {base.id} (stable redraw of "
                                                  f"plan {base.id} v{base.version})",
                                     lines=lines)
                if still:
                    try:
                        with self.engine.begin() as conn:
                            conn.execute(update(models.Grid).where(
                                models.Grid.plan_id == plan_id, models.Grid.code.in_(still))
                                .values(locked=True))
                    except Exception:  # no plan without its locks: take it back
                        self._discard(plan_id)
                        raise
                return plan_id

            return self._store(control, store)

        self._guarded(job_id, "loading 读取方案", work)

    def _set(self, job_id: str, **values: Any) -> None:
        """Record a running job's progress; :class:`JobCancelled` once the job has ended
        meanwhile (cancelled, here or in another process, or timed out)."""
        values.setdefault("heartbeat_at", models.utcnow())
        with self.engine.begin() as conn:
            changed = conn.execute(update(models.Job).where(
                models.Job.id == job_id, models.Job.state.in_(("queued", "running")))
                .values(**values)).rowcount
        if not changed:
            raise JobCancelled

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job: it ends ``cancelled`` at once and stores nothing (a
        thread running it stops at its next progress report). False when the job had ended
        already, or its plan is being stored."""
        with self._lock:
            control = self._running.get(job_id)
        if control is not None:
            with control.lock:
                if control.stored:
                    return False
                control.cancelled.set()
        now = models.utcnow()
        with self.engine.begin() as conn:
            changed = conn.execute(update(models.Job).where(
                models.Job.id == job_id, models.Job.state.in_(("queued", "running")))
                .values(state="cancelled", stage="cancelled 已取消", error=CANCELLED,
                        finished_at=now, heartbeat_at=now)).rowcount
        return bool(changed)

    def _run(self, job_id: str, territory_id: int, params: PartitionParams,
             parameters: dict[str, Any], note: str | None, created_by: str | None) -> None:
        def work(control: _Control) -> int:
            last_t, last_stage = 0.0, ""

            def progress(stage: str, done: float) -> None:
                nonlocal last_t, last_stage
                control.check()
                now = time.monotonic()
                if stage != last_stage or now - last_t >= PROGRESS_EVERY_S:
                    last_t, last_stage = now, stage
                    self._set(job_id, stage=stage, progress=round(0.05 + 0.85 * done, 3))

            territory = load_territory(self.engine, territory_id)
            result = partition_territory(territory, params, progress)
            control.check()
            self._set(job_id, stage="saving 保存方案", progress=0.92)
            blocks = result.blocks[["village_code", "households", "households_estimated",
                                    "population", "grid_code", "geometry"]].to_crs(models.SRID)
            grids = grid_table(result)
            return self._store(control, lambda: write_plan(
                self.engine, territory_id, grids, blocks, result.report, parameters,
                note=note, created_by=created_by, lines=result.streets))

        self._guarded(job_id, "loading 读取图层", work)

    def _guarded(self, job_id: str, stage: str, work: Callable[[_Control], int]) -> None:
        """Run a job's work: ``running``, then ``done`` with the plan it wrote, or ``failed``
        with a reason a user can act on. Nothing is half-written: a plan is written in one
        transaction at the end, and only while the job has not timed out."""
        control = _Control()
        with self._lock:
            self._running[job_id] = control
        try:
            self._set(job_id, state="running", started_at=models.utcnow(), progress=0.01,
                      stage=stage)
            if self.timeout_s > 0:
                control.timer = threading.Timer(self.timeout_s, self._time_out,
                                                (job_id, control))
                control.timer.daemon = True
                control.timer.start()
            plan_id = work(control)
            end = dict(state="done", progress=1.0, stage="done 完成", plan_id=plan_id)
        except JobCancelled:  # cancelled or timed out (recorded already), or the server stops
            log.warning("job %s stopped", job_id)
            return
        except GridmapError as exc:
            end = dict(state="failed", error=exc.message)
        except Exception as exc:
            if is_unavailable(exc):
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                log.warning("job %s: the database went away: %s", job_id, reason)
                end = dict(state="failed", error=DB_LOST.format(reason))
            else:  # a bug: keep the trace in the log, tell the user why
                log.exception("job %s failed", job_id)
                end = dict(state="failed", error=f"internal error ({type(exc).__name__}: "
                                                 f"{exc}); the territory and plans are "
                                                 "unchanged")
        finally:
            if control.timer is not None:
                control.timer.cancel()
            with self._lock:
                self._running.pop(job_id, None)
        self._end(job_id, **end)

    def _store(self, control: _Control, write: Callable[[], int]) -> int:
        """Store a job's result with ``write`` unless the job timed out (then nothing)."""
        with control.lock:
            control.check()
            plan_id = write()
            control.stored = True
            return plan_id

    def _time_out(self, job_id: str, control: _Control) -> None:
        """The timer of a job: stop it (at its next progress report) and mark it failed,
        unless its result is stored already."""
        with control.lock:
            if control.stored:
                return
            control.cancelled.set()
        log.warning("job %s timed out after %g s", job_id, self.timeout_s)
        self._end(job_id, state="failed", error=TIMED_OUT.format(f"{self.timeout_s:g}"))

    def _end(self, job_id: str, **values: Any) -> None:
        """Record the end of a running job (``done`` or ``failed``), retried while the
        database is away (for up to ``record_for_s``); a job that ended already (e.g. it
        timed out) keeps its end."""
        values.update(finished_at=models.utcnow(), heartbeat_at=models.utcnow())
        query = update(models.Job).where(models.Job.id == job_id,
                                         models.Job.state.in_(("queued", "running")))
        self._retry(f"record the end of job {job_id}", lambda conn: conn.execute(
            query.values(**values)))

    def _discard(self, plan_id: int) -> None:
        """Delete a plan a job wrote but may not keep (its grids and blocks go with it)."""
        self._retry(f"discard plan {plan_id}", lambda conn: conn.execute(
            delete(models.Plan).where(models.Plan.id == plan_id)))

    def _retry(self, what: str, step: Callable[[Any], Any]) -> None:
        """Run ``step`` in a transaction, again and again while the database is away."""
        give_up = time.monotonic() + self.record_for_s
        pause = 0.2
        while True:
            try:
                with self.engine.begin() as conn:
                    step(conn)
                return
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() > give_up:
                    # recover() (at the next start) marks a job left running as failed
                    log.exception("could not %s", what)
                    return
                log.warning("could not %s, the database is away; trying again in %.1f s",
                            what, pause)
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_S)


def job_dict(row: Any) -> dict[str, Any]:
    out = {k: getattr(row, k) for k in ("id", "kind", "territory_id", "state", "progress",
                                         "stage", "parameters", "plan_id", "error",
                                         "created_at", "started_at", "finished_at")}
    for k in ("created_at", "started_at", "finished_at"):
        out[k] = models.iso(out[k])
    return out


def get_job(engine: Engine, job_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(models.Job.__table__).where(
            models.Job.__table__.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return job_dict(row)


def list_jobs(engine: Engine, territory_id: int | None = None) -> list[dict[str, Any]]:
    table = models.Job.__table__
    query = select(table).order_by(table.c.created_at.desc())
    if territory_id is not None:
        query = query.where(table.c.territory_id == territory_id)
    with engine.connect() as conn:
        return [job_dict(r) for r in conn.execute(query.limit(500))]
