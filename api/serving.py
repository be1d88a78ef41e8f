"""Run the HTTP service: the store migrated, the Dask cluster reached or started, uvicorn."""

from __future__ import annotations

from api.console import Output


def fewer_malloc_arenas() -> None:
    """Two glibc malloc arenas instead of 8 per core: with many worker threads, freed memory
    stayed in per-thread arenas and the server's RSS grew 5–20 MB/min under the soak
    benchmark; with 2 it stayed level (bench/results/soak_bench*.json). Set for this process
    (mallopt) and, through the environment, for uvicorn's worker processes; an explicit
    MALLOC_ARENA_MAX wins."""
    import contextlib
    import ctypes
    import os

    if "MALLOC_ARENA_MAX" in os.environ:
        return
    os.environ["MALLOC_ARENA_MAX"] = "2"
    with contextlib.suppress(OSError):   # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)   # M_ARENA_MAX


def serve_http(out: Output, host: str, port: int, workers: int, database_url: str | None,
               access_log: bool = True, scheduler: str | None = None) -> None:
    """Migrate the store, make sure a Dask cluster computes the jobs, and run uvicorn."""
    import os

    import uvicorn

    from gis.database import make_engine, upgrade
    from gis.settings import get_settings
    from partitioning.cluster import shared_compute

    if database_url:
        os.environ["GRIDMAP_DATABASE_URL"] = database_url   # seen by worker processes too
    if scheduler:
        os.environ["GRIDMAP_DASK_SCHEDULER"] = scheduler
    get_settings.cache_clear()
    fewer_malloc_arenas()
    upgrade(make_engine(database_url))
    settings = get_settings()
    if not settings.dask_scheduler:
        # One LocalCluster for every server process: started here, its address handed to
        # them (they only enqueue jobs and read; the workers compute).
        compute = shared_compute("", settings.dask_workers)
        os.environ["GRIDMAP_DASK_SCHEDULER"] = compute.scheduler
        get_settings.cache_clear()
        n = len(compute.client().scheduler_info().get("workers", {}))
        out.say(f"计算 compute: a LocalCluster of {n} worker processes at "
                f"{compute.scheduler} (GRIDMAP_DASK_SCHEDULER to use another)")
    else:
        out.say(f"计算 compute: the Dask cluster at {settings.dask_scheduler}")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    out.say(f"serving 服务地址 http://{shown}:{port}/docs  (API documentation), "
            f"OGC API – Features for QGIS: http://{shown}:{port}/ogc  — Ctrl+C to stop")
    # uvicorn picks uvloop and httptools when installed (uvicorn[standard] brings both).
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=access_log)
