"""The job tasks that run on the Dask workers: read and cut a stored territory, join the
towns and write the plan, redraw a plan; each writes its plan in the transaction that marks
its job done (only while the job is still running), and its errors travel back to the
driver (api/jobs.py) as the exceptions below.

Dask sends these functions to the workers by reference (module and name): a worker imports
this module to run them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

import shapely
from sqlalchemy import Connection, Engine

from gis.contract import Territory
from gis.database import is_unavailable, make_engine
from gis.edits import used_codes
from gis.errors import GridmapError
from gis.jobs import finish_job, update_running
from gis.models.base import SRID
from gis.overlays import BARRIER_LAYER, barrier_layer
from gis.plans import (
    get_plan,
    lock_grids,
    locked_codes,
    read_blocks,
    read_grids,
    read_lines,
    write_plan,
)
from gis.store import load_territory
from partitioning import quality
from partitioning.cluster import lower_priority
from partitioning.output import grid_table
from partitioning.params import PartitionParams
from partitioning.redraw import redraw_plan
from partitioning.towns import PieceResult, join, split_territory

#: Progress is written at most this often (seconds), plus at every stage change; a driver
#: waiting on the cluster writes its heartbeat as often.
PROGRESS_EVERY_S = 1.0


class DatabaseGone(Exception):
    """A worker's task lost the database (the reason in the driver's words)."""


class TaskRefused(Exception):
    """A worker's task refused its input (a GridmapError's message: what to fix)."""


class JobGone(Exception):
    """The job was no longer running when its result was to be stored: nothing stored."""


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _worker_engine(url: str) -> Engine:
    """One engine per database per worker process (its pool reused by the tasks)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def _task(work: Callable[[], Any]) -> Any:
    """Run a task's work, its errors as exceptions that travel back to the driver whole."""
    try:
        return work()
    except GridmapError as exc:
        raise TaskRefused(exc.message) from None
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseGone(reason_of(exc)) from None
        raise


def reason_of(exc: BaseException) -> str:
    """An exception's first line (the driver's words for a lost database), else its type."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] \
        if str(exc).strip() else type(exc).__name__


def task_load(url: str, territory_id: int, barrier_overlays: Sequence[str] = ()) -> Any:
    """A worker reads a stored territory and cuts it into towns (the pieces stay there and
    go to the workers that partition them); the unit boundaries of ``barrier_overlays``
    (departments) join its layers as a barrier class."""
    def work() -> Any:
        engine = _worker_engine(url)
        territory = load_territory(engine, territory_id)
        if barrier_overlays:
            territory.layers[BARRIER_LAYER] = barrier_layer(engine, territory_id,
                                                            list(barrier_overlays))
        return split_territory(territory)
    return _task(work)


def _finish(job_id: str, extra: Callable[[Connection, int], None] | None = None
            ) -> Callable[[Connection, int], None]:
    """The last step of a plan's transaction: the job ``done`` with its plan, only if it is
    still running (else nothing is stored)."""
    def finish(conn: Connection, plan_id: int) -> None:
        if extra is not None:
            extra(conn, plan_id)
        if not finish_job(conn, job_id, plan_id):
            raise JobGone(f"job {job_id} is no longer running")
    return finish


def task_store_partition(url: str, job_id: str, territory_id: int, crs: Any,
                         params: PartitionParams, parameters: dict[str, Any],
                         note: str | None, created_by: str | None, started: float,
                         nice: int, *results: PieceResult) -> int:
    """A worker joins the towns and writes the plan (and the job's end) in one
    transaction; the plan's id. ``started``: when the job started (epoch seconds)."""
    def work() -> int:
        lower_priority(nice)
        result = join(list(results), crs, params)
        result.report["runtime_s"] = round(time.time() - started, 3)
        blocks = result.blocks[["village_code", "households", "households_estimated",
                                "population", "grid_code", "geometry"]].to_crs(SRID)
        return write_plan(_worker_engine(url), territory_id, grid_table(result), blocks,
                          result.report, parameters, note=note, created_by=created_by,
                          lines=result.streets, finish=_finish(job_id))
    return int(_task(work))


def task_redraw(url: str, job_id: str, territory_id: int, territory: Territory,
                base_id: int, note: str | None, created_by: str | None, nice: int) -> int:
    """A worker redraws a plan for new data and writes the new draft (and the job's end)
    in one transaction; reports its progress to the job's row itself."""
    def work() -> int:
        lower_priority(nice)
        engine = _worker_engine(url)
        base = get_plan(engine, base_id)
        known = {f.name for f in fields(PartitionParams)}
        params = PartitionParams(**{k: v for k, v in base.parameters.items() if k in known})
        overlays = list(base.parameters.get("barrier_overlays") or [])
        if overlays:
            # The plan was cut along these departments' unit boundaries: so is its redraw.
            territory.layers[BARRIER_LAYER] = barrier_layer(engine, territory_id, overlays)
        blocks = read_blocks(engine, base.id)
        grids = read_grids(engine, base.id)
        locked = set(locked_codes(engine, base.id))
        used = used_codes(engine, base.id, set(grids["village_code"]))
        grids["locked"] = grids["code"].isin(locked)
        # The blocks are the plan's, so are the streets found between its buildings.
        lines = read_lines(engine, base.id)
        last = [0.0]

        def progress(stage: str, done: float) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
            if not update_running(engine, job_id, stage=stage,
                                  progress=round(0.05 + 0.85 * done, 3)):
                raise JobGone(f"job {job_id} is no longer running")

        result = redraw_plan(blocks, grids, territory, params, used, progress)
        plan_grids = result.grids.to_crs(SRID)
        metric = plan_grids.to_crs(territory.metric_crs)
        admin = territory.layers["admin_areas"].to_crs(territory.metric_crs)
        village_area = float(admin.loc[admin["level"] == "village"].area.sum())
        report = quality.plan_report(metric, village_area,
                                     float(shapely.union_all(metric.geometry.to_numpy()).area),
                                     params.min_households, params.max_households)
        report.update(result.report, parent_plan_id=base.id)
        still = sorted(set(plan_grids["code"][plan_grids["locked"]]))

        def locks(conn: Connection, plan_id: int) -> None:
            lock_grids(conn, plan_id, still)

        return write_plan(engine, territory_id, plan_grids, result.blocks.to_crs(SRID),
                          report, base.parameters, parent_id=base.id, created_by=created_by,
                          note=note or f"稳定重划自方案 {base.id} (stable redraw of plan "
                                       f"{base.id} v{base.version})",
                          lines=lines, finish=_finish(job_id, locks))
    return int(_task(work))


def database_url(engine: Engine) -> str:
    """The URL the workers open the same database with (a relative SQLite path made
    absolute: a LocalCluster's workers share this machine, not necessarily its folder)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not os.path.isabs(url.database):
        url = url.set(database=os.path.abspath(url.database))
    return url.render_as_string(hide_password=False)
