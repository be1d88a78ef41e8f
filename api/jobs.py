"""Partition and redraw jobs: run the engine in the background, record state and progress."""

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
from sqlalchemy import Engine, insert, select, update

from gis import models
from gis.edits import PlanReader
from gis.errors import Conflict, GridmapError, NotFound
from gis.layers import Territory
from gis.plans import PlanInfo, get_plan, published_plan_id, read_blocks, read_grids, write_plan
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

    def __init__(self, engine: Engine, workers: int = 1, stale_after_s: int = 900) -> None:
        self.engine = engine
        self.stale_after = timedelta(seconds=stale_after_s)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="gridmap-job")
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        def work() -> int:
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
                self._set(job_id, stage=stage, progress=round(0.05 + 0.85 * done, 3))

            result = redraw_plan(blocks, grids, territory, params, used, progress)
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
            plan_id = write_plan(self.engine, territory_id, plan_grids,
                                 result.blocks.to_crs(models.SRID), report, base.parameters,
                                 parent_id=base.id, created_by=created_by,
                                 note=note or f"稳定重划自方案 {base.id} (stable redraw of plan "
                                              f"{base.id} v{base.version})")
            still = sorted(set(plan_grids["code"][plan_grids["locked"]]))
            if still:
                with self.engine.begin() as conn:
                    conn.execute(update(models.Grid).where(
                        models.Grid.plan_id == plan_id, models.Grid.code.in_(still))
                        .values(locked=True))
            return plan_id

        self._guarded(job_id, "loading 读取方案", work)

    def _set(self, job_id: str, **values: Any) -> None:
        values.setdefault("heartbeat_at", models.utcnow())
        with self.engine.begin() as conn:
            conn.execute(update(models.Job).where(models.Job.id == job_id).values(**values))

    def _run(self, job_id: str, territory_id: int, params: PartitionParams,
             parameters: dict[str, Any], note: str | None, created_by: str | None) -> None:
        last_t, last_stage = 0.0, ""

        def progress(stage: str, done: float) -> None:
            nonlocal last_t, last_stage
            now = time.monotonic()
            if stage != last_stage or now - last_t >= PROGRESS_EVERY_S:
                last_t, last_stage = now, stage
                self._set(job_id, stage=stage, progress=round(0.05 + 0.85 * done, 3))

        def work() -> int:
            territory = load_territory(self.engine, territory_id)
            result = partition_territory(territory, params, progress)
            self._set(job_id, stage="saving 保存方案", progress=0.92)
            blocks = result.blocks[["village_code", "households", "population", "grid_code",
                                    "geometry"]].to_crs(models.SRID)
            plan_id = write_plan(self.engine, territory_id, grid_table(result), blocks,
                                 result.report, parameters, note=note, created_by=created_by)
            return plan_id

        self._guarded(job_id, "loading 读取图层", work)

    def _guarded(self, job_id: str, stage: str, work: Callable[[], int]) -> None:
        """Run a job's work: ``running``, then ``done`` with the plan it wrote, or ``failed``
        with a reason a user can act on (nothing is half-written: a plan is written in one
        transaction at the end)."""
        try:
            self._set(job_id, state="running", started_at=models.utcnow(), progress=0.01,
                      stage=stage)
            plan_id = work()
            self._set(job_id, state="done", progress=1.0, stage="done 完成", plan_id=plan_id,
                      finished_at=models.utcnow())
        except GridmapError as exc:
            self._fail(job_id, exc.message)
        except Exception as exc:  # a bug: keep the trace in the log, tell the user why
            log.exception("job %s failed", job_id)
            self._fail(job_id, f"internal error ({type(exc).__name__}: {exc}); the "
                               "territory and plans are unchanged")

    def _fail(self, job_id: str, message: str) -> None:
        try:
            self._set(job_id, state="failed", error=message, finished_at=models.utcnow())
        except Exception:  # the database itself is gone; recover() will mark it later
            log.exception("could not record the failure of job %s", job_id)


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
