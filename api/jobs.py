"""Partition and redraw jobs: computed on the Dask cluster, state and progress in the store.

The web process never runs the engine: it queues a job (within the per-account and
per-territory limits), and a driver thread of the process sends its tasks to the cluster
(partitioning/cluster.py) and records what they report. A partition is a task that reads the
territory from the store and cuts it into towns on a worker, a task per town, and a task
that joins them and writes the plan; a redraw is one task (the workers' tasks:
api/job_tasks.py). The plan is written in one
transaction that also records the job ``done``, and only while the job is still running:
a job cancelled (``DELETE /jobs/{id}``), timed out (``GRIDMAP_JOB_TIMEOUT_S``) or given up
for dead stores nothing, and a stored plan's job is never marked failed.

A job ends ``done``, ``cancelled``, or ``failed`` with a reason: bad input, the database
going away while it ran, its time limit, its workers dying (Dask retries a town whose
worker dies on another; a town that keeps killing workers fails the job), or the cluster
going away. Its end is recorded even when the database is briefly away (the write is
retried until it is back); a job whose server process died is marked failed by
:meth:`JobRunner.recover`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from api.job_tasks import (
    PROGRESS_EVERY_S,
    DatabaseGone,
    JobGone,
    TaskRefused,
    database_url,
    reason_of,
    task_load,
    task_redraw,
    task_store_partition,
)
from api.problems import TooManyJobs
from events.router_cache import concat_columns, route_chunk
from gis.contract import Territory
from gis.database import is_unavailable
from gis.errors import Conflict, GridmapError, msg
from gis.jobs import (
    active_jobs,
    cancel_job,
    end_job,
    fail_jobs,
    get_job,
    queue_job,
    start_job,
    update_running,
)
from gis.models.base import utcnow
from gis.plans import PlanInfo, get_plan, published_plan_id
from gis.workers import this_worker, worker_gone
from partitioning.cluster import (
    Cancelled,
    Compute,
    Run,
    WorkerLost,
    new_run,
    piece_of,
    run_pieces,
    split_crs,
    split_keys,
)
from partitioning.params import PartitionParams

log = logging.getLogger("gridmap.jobs")
#: How often (s) a driver waiting on the cluster wakes to check for a cancel or a deadline.
TICK_S = 0.25
RESTARTED = ("the server stopped before this job finished (it was restarted or crashed); "
             "nothing was stored: submit the job again")
#: Why a job failed when the database went away under it ({} is the driver's words).
DB_LOST = ("数据库连接中断 the database went away while the job ran (PostgreSQL restarted or "
           "became unreachable: {}); nothing was stored: submit the job again")
#: Why a job failed when its time ran out ({} is GRIDMAP_JOB_TIMEOUT_S).
TIMED_OUT = ("任务超时 timed out after {} s (GRIDMAP_JOB_TIMEOUT_S); its result was discarded "
             "and nothing was stored: submit the job again, or raise the limit")
#: Why a job failed when the workers computing it died (and their retries too).
WORKERS_DIED = ("计算节点中断 {}; nothing was stored: submit the job again (and see the "
                "workers' memory: docs/scale.md)")
#: Why a job failed when the cluster could not be reached ({} is the address).
NO_CLUSTER = ("计算集群不可用 the Dask cluster ({}) could not be reached or went away while the "
              "job ran: {}; nothing was stored: start the scheduler and workers (docs/scale.md) "
              "and submit the job again")
CANCELLED = "已取消 cancelled by {} before it finished; nothing was stored"
#: Points routed by one task of a bulk import.
ROUTE_CHUNK = 250_000
#: The longest pause between two attempts to record a job's end while the database is away.
RETRY_MAX_S = 2.0


class JobCancelled(Exception):
    """Raised in a job's driver thread once the job must stop (cancelled, timed out, ended
    by another process, or the server stops)."""


# --- the driver, in the web process ----------------------------------------------------------


class _Control:
    """What the driver thread of one job and its timer share."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.timer: threading.Timer | None = None
        self.run: Run | None = None

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled


class JobRunner:
    """Queues jobs and drives them on the cluster from a few threads; the store is the
    record of each job."""

    def __init__(self, engine: Engine, workers: int = 2, stale_after_s: int = 900,
                 timeout_s: float = 0.0, compute: Compute | None = None, nice: int = 0,
                 limit_per_account: int = 0, limit_per_territory: int = 0,
                 retry_after_s: int = 30) -> None:
        self.engine = engine
        self.url = database_url(engine)
        self.stale_after = timedelta(seconds=stale_after_s)
        #: A running job is stopped and marked failed after this many seconds (0: never).
        self.timeout_s = timeout_s
        #: How long the end of a job is retried while the database is away (seconds).
        self.record_for_s = float(stale_after_s)
        self.worker = this_worker()
        self.compute = compute or Compute()
        self.nice = nice
        self.limit_per_account = limit_per_account
        self.limit_per_territory = limit_per_territory
        self.retry_after_s = retry_after_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="gridmap-job")
        self._lock = threading.Lock()
        self._running: dict[str, _Control] = {}
        self._submit_lock = threading.Lock()

    def shutdown(self) -> None:
        with self._lock:
            for control in self._running.values():
                control.cancelled.set()
                if control.run is not None:
                    control.run.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def running(self) -> list[str]:
        """The ids of the jobs whose driver threads run in this process now."""
        with self._lock:
            return list(self._running)

    def recover(self) -> int:
        """Mark as failed the jobs whose process is gone; returns how many.

        A job is orphaned when it was driven by a process of this host that no longer
        exists, or when it has not reported progress for ``stale_after``. (Its tasks on the
        cluster were released with that process's connection; a plan they might still
        store is refused, the job being no longer running.)
        """
        now = utcnow()
        orphans = []
        for row in active_jobs(self.engine):
            seen = row.heartbeat_at or row.created_at
            if seen is not None and seen.tzinfo is None:
                seen = seen.replace(tzinfo=now.tzinfo)
            if worker_gone(row.worker) or seen is None or now - seen > self.stale_after:
                orphans.append(row.id)
        if orphans:
            fail_jobs(self.engine, orphans, RESTARTED)
            log.warning("marked %d orphaned job(s) as failed", len(orphans))
        return len(orphans)

    # --- queueing ---------------------------------------------------------------------------

    def submit(self, territory_id: int, parameters: dict[str, Any],
               note: str | None = None, created_by: str | None = None,
               account: str | None = None) -> str:
        """Queue a partition of a stored territory; returns the job id at once."""
        # Validates the band before queueing; the overlays are the load's, not the engine's.
        params = PartitionParams(**{k: v for k, v in parameters.items()
                                    if k != "barrier_overlays"})
        overlays = tuple(parameters.get("barrier_overlays") or ())
        job_id = self._queue("partition", territory_id, parameters, account)
        self._pool.submit(self._drive, job_id, "loading 读取图层", lambda control: self._partition(
            control, job_id, territory_id, params, parameters, note, created_by, overlays))
        return job_id

    def submit_redraw(self, territory_id: int, territory: Territory, plan_id: int | None,
                      note: str | None = None, created_by: str | None = None,
                      source: str | None = None, account: str | None = None) -> str:
        """Queue a stable redraw of a plan (default: the published one) for new data."""
        base = plan_id if plan_id is not None else published_plan_id(self.engine,
                                                                       territory_id)
        if base is None:
            raise Conflict(msg(f"区域 {territory_id} 没有已发布的方案",
                               f"territory {territory_id} has no published plan: publish one, "
                               "or name the plan with plan_id"))
        info = get_plan(self.engine, base)
        if info.territory_id != territory_id:
            raise Conflict(f"plan {base} belongs to territory {info.territory_id}, not "
                           f"{territory_id}")
        job_id = self._queue("redraw", territory_id, {"plan_id": base, "source": source},
                             account)
        self._pool.submit(self._drive, job_id, "loading 读取方案", lambda control: self._redraw(
            control, job_id, territory_id, territory, info, note, created_by))
        return job_id

    def _queue(self, kind: str, territory_id: int, parameters: dict[str, Any],
               account: str | None) -> str:
        """A new ``queued`` job row of a territory that exists, within the limits; its id."""
        job_id = uuid.uuid4().hex
        with self._submit_lock:
            crowded = queue_job(self.engine, job_id, kind=kind, territory_id=territory_id,
                                parameters=parameters, worker=self.worker, account=account,
                                limit_per_territory=self.limit_per_territory,
                                limit_per_account=self.limit_per_account)
        if crowded is not None:
            what = {"territory": "区域 {0} territory {0}",
                    "account": "账户 {0} account {0}"}[crowded.which].format(crowded.value)
            raise TooManyJobs(
                f"任务过多 {what} has {crowded.count} jobs queued or running, the most "
                f"allowed (GRIDMAP_JOB_LIMIT_PER_{crowded.which.upper()} = {crowded.limit}): "
                "wait for one to end, or cancel one (DELETE /jobs/{id})", self.retry_after_s)
        return job_id

    def cancel(self, job_id: str, by: str | None = None) -> dict[str, Any]:
        """Cancel a queued or running job: its row ``cancelled`` at once, its tasks on the
        cluster cancelled (by its driver, in whichever process it runs); nothing it computed
        is stored. A job that ended already is a Conflict."""
        if not cancel_job(self.engine, job_id, CANCELLED.format(by or "a user")):
            state = get_job(self.engine, job_id)["state"]   # (404 when there is none)
            raise Conflict(f"任务已结束 job {job_id} has ended already ({state}): only a "
                           "queued or running job can be cancelled")
        with self._lock:
            control = self._running.get(job_id)
        if control is not None:
            control.cancelled.set()
            if control.run is not None:
                control.run.cancel()
        return get_job(self.engine, job_id)

    # --- work that answers a request ---------------------------------------------------------

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a worker of the cluster, its result here (its error raised here):
        a request's heavy step (a rebalance) off the web process."""
        return self.compute.run(fn, *args)

    def route_columns(self, territory_id: int, x: Any, y: Any, coord_sys: str | int,
                      near_m: float) -> dict[str, Any]:
        """A bulk import's points routed on the cluster, in chunks of ROUTE_CHUNK side by
        side (each worker keeps the territory's router): :func:`route_chunk`'s columns."""
        client = self.compute.client()
        futures = [client.submit(route_chunk, self.url, near_m, territory_id,
                                 x[i:i + ROUTE_CHUNK], y[i:i + ROUTE_CHUNK], coord_sys,
                                 pure=False)
                   for i in range(0, max(len(x), 1), ROUTE_CHUNK)]
        try:
            return concat_columns(client.gather(futures))
        finally:
            client.cancel(futures)

    # --- driving ----------------------------------------------------------------------------

    def _set(self, job_id: str, **values: Any) -> None:
        """Record progress of a running job; JobCancelled when it is no longer running (it
        was cancelled, timed out, or given up for dead)."""
        if not update_running(self.engine, job_id, **values):
            raise JobCancelled

    def _wait(self, control: _Control, job_id: str, future: Any) -> Any:
        """A future's result, writing the job's heartbeat while waiting and stopping when
        the job must stop."""
        last = time.monotonic()
        while True:
            control.check()
            try:
                return future.result(timeout=TICK_S)
            except TimeoutError:
                pass
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                self._set(job_id)

    def _wait_done(self, control: _Control, job_id: str, futures: list[Any]) -> None:
        """Until every future is done (its data left where it is), as :meth:`_wait`."""
        last = time.monotonic()
        while not all(f.done() for f in futures):
            control.check()
            time.sleep(TICK_S / 5)
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                self._set(job_id)

    def _partition(self, control: _Control, job_id: str, territory_id: int,
                   params: PartitionParams, parameters: dict[str, Any], note: str | None,
                   created_by: str | None, overlays: tuple[str, ...] = ()) -> int:
        started = time.time()
        client = self.compute.client()
        run = control.run = new_run(client, job_id[:16])
        loaded = client.submit(task_load, self.url, territory_id, overlays,
                               key=f"gridmap-{run.name}-load", pure=False)
        run.futures.append(loaded)
        sizes_f = client.submit(split_keys, loaded, key=f"gridmap-{run.name}-keys")
        crs_f = client.submit(split_crs, loaded, key=f"gridmap-{run.name}-crs")
        run.futures += [sizes_f, crs_f]
        sizes = self._wait(control, job_id, sizes_f)
        crs = self._wait(control, job_id, crs_f)
        total = len(sizes)
        pieces = [client.submit(piece_of, loaded, i, key=f"gridmap-{run.name}-get-{i}")
                  for i in range(total)]
        run.futures += pieces
        # The whole territory is not kept once its pieces are cut out (a piece lost with
        # its worker is cut again: the scheduler still knows how).
        self._wait_done(control, job_id, pieces)
        for held in (loaded, sizes_f, crs_f):
            run.futures.remove(held)
            held.release()
        self._set(job_id, stage=f"towns 分街道计算 0/{total}", progress=0.1, towns_done=0,
                  towns_total=total)
        last = [time.monotonic()]

        def progress(_key: str, _share: float, done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= PROGRESS_EVERY_S / 4:
                last[0] = now
                self._set(job_id, stage=f"towns 分街道计算 {done}/{total}",
                          progress=round(0.1 + 0.8 * done / total, 3), towns_done=done)

        def stop() -> bool:
            if control.cancelled.is_set():
                return True
            if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
                last[0] = time.monotonic()
                self._set(job_id)    # heartbeat; raises JobCancelled once it ended
            return False

        results = run_pieces(run, pieces, sizes, params, progress=progress, stop=stop,
                             nice=self.nice)
        self._set(job_id, stage="saving 合并并保存方案", progress=0.92)
        stored = client.submit(task_store_partition, self.url, job_id, territory_id, crs,
                               params, parameters, note, created_by, started, self.nice, *results,
                               key=f"gridmap-{run.name}-store", pure=False)
        run.futures.append(stored)
        return int(self._wait(control, job_id, stored))

    def _redraw(self, control: _Control, job_id: str, territory_id: int,
                territory: Territory, base: PlanInfo, note: str | None,
                created_by: str | None) -> int:
        client = self.compute.client()
        run = control.run = new_run(client, job_id[:16])
        data = client.scatter(territory, hash=False)
        run.futures.append(data)
        self._set(job_id, stage="redrawing 重划", progress=0.05)
        future = client.submit(task_redraw, self.url, job_id, territory_id, data, base.id,
                               note, created_by, self.nice, key=f"gridmap-{run.name}-redraw",
                               pure=False)
        run.futures.append(future)
        return int(self._wait(control, job_id, future))

    def _drive(self, job_id: str, stage: str, work: Callable[[_Control], int]) -> None:
        """Run a job: ``running``, then ``done`` with the plan it wrote (recorded by the
        task that wrote it, in the same transaction), or ``failed`` with a reason a user
        can act on, or nothing more when it was cancelled or timed out."""
        control = _Control()
        with self._lock:
            self._running[job_id] = control
        end: dict[str, Any] | None = None
        try:
            if not start_job(self.engine, job_id, stage):   # cancelled while it waited
                return
            if self.timeout_s > 0:
                control.timer = threading.Timer(self.timeout_s, self._time_out,
                                                (job_id, control))
                control.timer.daemon = True
                control.timer.start()
            work(control)
        except (JobCancelled, JobGone, Cancelled):
            log.warning("job %s stopped", job_id)
        except (TaskRefused, GridmapError) as exc:
            end = dict(state="failed", error=str(exc.message if isinstance(exc, GridmapError)
                                                 else exc))
        except DatabaseGone as exc:
            log.warning("job %s: the database went away: %s", job_id, exc)
            end = dict(state="failed", error=DB_LOST.format(exc))
        except WorkerLost as exc:
            end = dict(state="failed", error=WORKERS_DIED.format(exc))
        except Exception as exc:
            if is_unavailable(exc):
                reason = reason_of(exc)
                log.warning("job %s: the database went away: %s", job_id, reason)
                end = dict(state="failed", error=DB_LOST.format(reason))
            elif _cluster_error(exc):
                end = dict(state="failed", error=NO_CLUSTER.format(
                    self.compute.address or "LocalCluster", reason_of(exc)))
            elif type(exc).__name__ == "KilledWorker":
                end = dict(state="failed", error=WORKERS_DIED.format(
                    f"the workers running it died (killed, or out of memory): {exc}"))
            else:  # a bug: keep the trace in the log, tell the user why
                log.exception("job %s failed", job_id)
                end = dict(state="failed", error=f"internal error ({type(exc).__name__}: "
                                                 f"{exc}); the territory and plans are "
                                                 "unchanged")
        finally:
            if control.timer is not None:
                control.timer.cancel()
            if control.run is not None:
                if end is not None or control.cancelled.is_set():
                    control.run.cancel()
                control.run.release()
            with self._lock:
                self._running.pop(job_id, None)
        if end is not None:
            self._end(job_id, **end)

    def _time_out(self, job_id: str, control: _Control) -> None:
        """The timer of a job: mark it failed (unless it ended already: its plan stored)
        and stop its driver and tasks."""
        log.warning("job %s timed out after %g s", job_id, self.timeout_s)
        self._end(job_id, state="failed", error=TIMED_OUT.format(f"{self.timeout_s:g}"))
        control.cancelled.set()
        if control.run is not None:
            control.run.cancel()

    def _end(self, job_id: str, **values: Any) -> None:
        """Record the end of a job that has not ended (``failed``), retried while the
        database is away (for up to ``record_for_s``); a job that ended already keeps its
        end."""
        values.update(finished_at=utcnow(), heartbeat_at=utcnow())
        self._retry(f"record the end of job {job_id}",
                    lambda: end_job(self.engine, job_id, **values))

    def _retry(self, what: str, step: Callable[[], Any]) -> None:
        """Run ``step`` (a write in a transaction of its own), again and again while the
        database is away."""
        give_up = time.monotonic() + self.record_for_s
        pause = 0.2
        while True:
            try:
                step()
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


def _cluster_error(exc: BaseException) -> bool:
    """The scheduler could not be reached or the connection to it was lost."""
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"CommClosedError", "StreamClosedError", "FutureCancelledError",
                         "CancelledError", "OSError", "ConnectionRefusedError"}) \
        and not is_unavailable(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in out:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out
