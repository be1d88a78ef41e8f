"""The benchmarks' database: a throwaway PostGIS given the demo district and its published plan,
points in its grids, PostgreSQL's settings and the fsync rate of its disk, event counts."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def connect(url: str) -> Any:
    """A psycopg connection to the SQLAlchemy ``url`` (to use as a context manager)."""
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def demo_setup(url: str, households: int, seed: int) -> dict[str, Any]:
    """Migrate, import the demo district, store its cached partition as the published plan."""
    import geopandas as gpd
    import pyogrio
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED, demo_grids

    from data.demo import generate
    from gis.database import make_engine, upgrade
    from gis.io.territory import read_territory
    from gis.plans import publish_plan, write_plan
    from gis.store import import_territory

    out: dict[str, Any] = {}
    engine = make_engine(url)
    started = time.perf_counter()
    upgrade(engine)
    out["migrate_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    if (households, seed) == (DEMO_HOUSEHOLDS, DEMO_SEED):
        path, made = demo_grids()
    else:  # pragma: no cover - other sizes are partitioned here, not cached
        path, made = _partition(households, seed)
    grids = pyogrio.read_dataframe(path)
    out["partition_s"] = round(made, 1) if made else "cached"
    with tempfile.TemporaryDirectory() as tmp:  # through the checks of a real import
        territory = read_territory(generate(households, seed).write(Path(tmp) / "demo.gpkg"))
    out["generate_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    tid = import_territory(engine, territory)
    out["import_territory_s"] = round(time.perf_counter() - started, 1)
    blocks = gpd.GeoDataFrame(
        {"village_code": [], "households": [], "population": [], "grid_code": []},
        geometry=[], crs=4326)
    started = time.perf_counter()
    plan_id = write_plan(engine, tid, grids.to_crs(4326), blocks, {}, {"seed": 0},
                         note="service bench")
    publish_plan(engine, plan_id)
    out["write_plan_s"] = round(time.perf_counter() - started, 1)
    engine.dispose()
    out.update(territory_id=tid, plan_id=plan_id, grids=len(grids),
               households=territory.layers["buildings"]["households"].sum().item(),
               layers=territory.counts(),
               bbox_wgs84=[round(float(v), 5) for v in grids.to_crs(4326).total_bounds])
    return out


def _partition(households: int, seed: int) -> tuple[Path, float]:  # pragma: no cover
    from route_bench import demo_grids

    return demo_grids(households, seed)


def in_grids(lon: np.ndarray, lat: np.ndarray, grids: Path | None = None) -> np.ndarray:
    """Which points lie in a grid of the demo partition (or of the grid layer ``grids``)."""
    import pyogrio
    import shapely
    from route_bench import demo_grids

    path = grids if grids is not None else demo_grids()[0]
    geoms = pyogrio.read_dataframe(path).to_crs(4326).geometry.to_numpy()
    pi, _ = shapely.STRtree(geoms).query(shapely.points(lon, lat), predicate="within")
    mask = np.zeros(len(lon), dtype=bool)
    mask[pi] = True
    return mask


def pg_settings(url: str) -> dict[str, Any]:
    with connect(url) as conn:
        names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
                 "shared_buffers", "max_connections")
        values = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}  # type: ignore
        version = conn.execute("SELECT version(), postgis_lib_version()").fetchone()
    assert version is not None
    return {"version": f"{str(version[0]).split(',')[0]}, PostGIS {version[1]}", **values}


def fsync_rate(cluster: Any) -> dict[str, Any]:
    """What one fsync costs on this disk (pg_test_fsync, 2 s per method), for context."""
    tool = cluster.bindir / "pg_test_fsync"
    if not tool.exists():
        return {"skipped": "no pg_test_fsync"}
    target = cluster.root / "fsync_test"
    cmd = [str(tool), "-s", "2", "-f", str(target)]
    if cluster.as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    rates = {}
    for line in out.splitlines():
        parts = line.split()
        if "ops/sec" in parts and parts[0] in ("fdatasync", "fsync", "open_datasync",
                                               "open_sync") and parts[0] not in rates:
            rates[parts[0]] = float(parts[parts.index("ops/sec") - 1])
    return {"ops_per_s_one_8kB_write": rates, "disk": _disk_of(cluster.root)}


def _disk_of(path: Path) -> str:
    out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True).stdout
    lines = out.splitlines()
    return " ".join(lines[1].split()[:2]) if len(lines) > 1 else "?"


def count_rows(url: str) -> tuple[int, int]:
    with connect(url) as conn:
        a = conn.execute("SELECT count(*) FROM events").fetchone()
        b = conn.execute("SELECT count(*) FROM event_history").fetchone()
    assert a is not None and b is not None
    return int(a[0]), int(b[0])
