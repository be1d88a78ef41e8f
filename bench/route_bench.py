"""Benchmark: routing points to ~3,500 demo grids — shapely STRtree, PostGIS, GridRouter.

Run: .venv/bin/python bench/route_bench.py [--points N] [--grids PATH] [--postgis URL]
Writes bench/results/route_bench.json.

The grids are the demo district's (``data.demo.generate(1_400_000, 7)`` partitioned, ~3,500
grids over a Baiyun-sized district); partitioning takes a minute or two, so they are cached
in bench/.cache/ (or give any grid layer with a ``code`` field with --grids). N random points
(1M by default) lie in the grids' bounding box, so about a quarter fall outside every grid.

Compared in the same run, each timed ``--repeat`` times, interleaved, best kept (the machine
may be shared):

* shapely 2 ``STRtree.query(points, predicate="within")`` on one core (the tree built and the
  point geometries made beforehand, each timed separately);
* PostGIS ``ST_Contains`` join with a GiST index, parallel workers off (one core), the answer
  fetched (only with ``--postgis URL``, or ``--postgis throwaway`` to start a temporary
  cluster with tests/pgcluster.py);
* GridRouter: build time, ``locate`` (the owner only: the like-for-like comparison) and
  ``route`` (owner, nearest grid and distance for points outside, second candidate within
  10 m, flags as Python lists).

Answers are asserted identical: the STRtree's ``within`` answer, and for points on an edge
(no ``within`` hit but an ``intersects`` one) or in two grids, the documented edge rule.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from events.router import GridRouter  # noqa: E402

CACHE = Path(__file__).parent / ".cache"
RESULTS = Path(__file__).parent / "results" / "route_bench.json"
DEMO_HOUSEHOLDS, DEMO_SEED = 1_400_000, 7


def demo_grids(households: int = DEMO_HOUSEHOLDS, seed: int = DEMO_SEED) -> tuple[Path, float]:
    """The demo district's grids (cached GeoPackage) and the seconds it took to make them."""
    path = CACHE / f"demo_grids_{households}_{seed}.gpkg"
    if path.exists():
        return path, 0.0
    from data.demo import generate
    from gis.contract import Territory
    from partitioning.engine import partition_territory
    from partitioning.output import grid_table
    from partitioning.params import PartitionParams

    started = time.perf_counter()
    print(f"generating and partitioning the demo district ({households:,} households) ...",
          flush=True)
    territory = Territory("demo", generate(households, seed).layers)
    grids = grid_table(partition_territory(territory, PartitionParams(seed=0)))
    CACHE.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part.gpkg")
    part.unlink(missing_ok=True)
    grids.to_file(part, layer="grids", driver="GPKG", engine="pyogrio")
    part.rename(path)
    return path, time.perf_counter() - started


def best_of(repeat: int, jobs: dict[str, Callable[[], Any]]) -> tuple[dict[str, float],
                                                                      dict[str, Any]]:
    """Run each job ``repeat`` times, interleaved; the best time of each and its last result."""
    times: dict[str, float] = dict.fromkeys(jobs, float("inf"))
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, job in jobs.items():
            started = time.perf_counter()
            results[name] = job()
            times[name] = min(times[name], time.perf_counter() - started)
    return times, results


def reference(grids: gpd.GeoDataFrame, tree: shapely.STRtree, pts: np.ndarray,
              within: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The STRtree answer with the edge rule: smallest code among the hits; points with no
    ``within`` hit but an ``intersects`` one (on an edge) likewise."""
    n = len(pts)
    codes = grids["code"].astype(str).to_numpy()
    rank = np.empty(len(codes), dtype=np.int64)
    rank[np.lexsort((np.arange(len(codes)), codes))] = np.arange(len(codes))
    by_rank = np.argsort(rank)
    best = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best, within[0], rank[within[1]])
    multi = int((np.bincount(within[0], minlength=n) > 1).sum())
    none = np.flatnonzero(best == np.iinfo(np.int64).max)
    pi, gi = tree.query(pts[none], predicate="intersects")
    np.minimum.at(best, none[pi], rank[gi])
    found = best < len(codes)
    return np.where(found, by_rank[np.where(found, best, 0)], -1), multi, len(np.unique(pi))


def postgis(url: str, grids: gpd.GeoDataFrame, lon: np.ndarray, lat: np.ndarray,
            repeat: int) -> tuple[dict[str, Any], np.ndarray]:
    """Load grids and points into PostGIS and time the ST_Contains join (one core)."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    out: dict[str, Any] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute("DROP TABLE IF EXISTS bench_grids, bench_points")
        conn.execute("CREATE TABLE bench_grids (gid integer PRIMARY KEY, code text, "
                     "geom geometry(MultiPolygon, 4326))")
        conn.execute("CREATE TABLE bench_points (pid integer PRIMARY KEY, "
                     "geom geometry(Point, 4326))")
        started = time.perf_counter()
        geoms = [shapely.to_wkb(shapely.force_2d(g), hex=True) for g in grids.geometry]
        with conn.cursor().copy("COPY bench_grids (gid, code, geom) FROM STDIN") as copy:
            for i, (code, wkb) in enumerate(zip(grids["code"], geoms, strict=True)):
                copy.write_row((i, str(code), f"SRID=4326;{wkb}"))
        with conn.cursor().copy("COPY bench_points (pid, geom) FROM STDIN") as copy:
            for i, (x, y) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True)):
                copy.write_row((i, f"SRID=4326;POINT({x!r} {y!r})"))
        conn.execute("CREATE INDEX ON bench_grids USING gist (geom)")
        # Indexing the points too lets the planner loop over grids and probe the points, so
        # each grid's prepared geometry is reused (PostGIS's best case).
        conn.execute("CREATE INDEX ON bench_points USING gist (geom)")
        conn.execute("ANALYZE bench_grids")
        conn.execute("ANALYZE bench_points")
        out["load_s"] = round(time.perf_counter() - started, 2)
        version = conn.execute("SELECT postgis_lib_version(), version()").fetchone()
        out["version"] = f"PostGIS {version[0]}, {str(version[1]).split(',')[0]}" \
            if version else "?"
        out["plan"] = [str(r[0]) for r in conn.execute(
            "EXPLAIN SELECT p.pid, g.gid FROM bench_points p JOIN bench_grids g "
            "ON ST_Contains(g.geom, p.geom)").fetchall()]
        query = ("SELECT p.pid, g.gid FROM bench_points p JOIN bench_grids g "
                 "ON ST_Contains(g.geom, p.geom)")
        best = float("inf")
        rows: list[tuple[int, int]] = []
        for _ in range(repeat):
            started = time.perf_counter()
            rows = conn.execute(query).fetchall()
            best = min(best, time.perf_counter() - started)
        conn.execute("DROP TABLE bench_grids, bench_points")
    out["query_s"] = round(best, 3)
    out["points_per_s"] = round(len(lon) / best)
    return out, np.array(rows, dtype=np.int64).reshape(-1, 2)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--grids", type=Path, help="a grid layer with a `code` field")
    parser.add_argument("--postgis", help="PostgreSQL URL, or 'throwaway'")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    load_start = os.getloadavg()

    made_s = 0.0
    if args.grids is None:
        path, made_s = demo_grids()
        source = f"demo district: data.demo.generate({DEMO_HOUSEHOLDS:,}, {DEMO_SEED}), " \
                 "partitioned"
    else:
        path, source = args.grids, str(args.grids)
    grids = pyogrio.read_dataframe(path)
    print(f"{len(grids):,} grids from {path}", flush=True)

    started = time.perf_counter()
    router = GridRouter.from_grids(grids)
    build_s = time.perf_counter() - started
    stats = router.stats()
    print(f"GridRouter built in {build_s:.1f} s: {stats}", flush=True)
    geoms = router.grids.geometry.to_numpy()  # the same WGS84 polygons for every contender

    rng = np.random.default_rng(args.seed)
    minx, miny, maxx, maxy = router.grids.total_bounds
    lon = rng.uniform(minx, maxx, args.points)
    lat = rng.uniform(miny, maxy, args.points)

    started = time.perf_counter()
    tree = shapely.STRtree(geoms)
    tree_s = time.perf_counter() - started
    started = time.perf_counter()
    pts = shapely.points(lon, lat)
    points_s = time.perf_counter() - started

    times, res = best_of(args.repeat, {
        "strtree": lambda: tree.query(pts, predicate="within"),
        "locate": lambda: router.locate(lon, lat),
        "route": lambda: router.route(lon, lat),
    })
    expected, multi, on_edge = reference(router.grids, tree, pts, res["strtree"])
    identical = bool(np.array_equal(res["locate"], expected)
                     and np.array_equal(res["route"].index, expected))
    assert identical, "GridRouter and the STRtree disagree"
    inside = np.flatnonzero(expected >= 0)
    times_in, _ = best_of(args.repeat, {
        "route_inside": lambda: router.route(lon[inside], lat[inside]),
        "strtree_inside": lambda: tree.query(pts[inside], predicate="within"),
    })
    routed = res["route"]
    n = args.points

    def rate(seconds: float, count: int = n) -> int:
        return round(count / seconds)

    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
                   f"Python {platform.python_version()}, shapely {shapely.__version__}, "
                   f"GEOS {shapely.geos_version_string}, numpy {np.__version__}",
        "load_average_1min": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "grids": {"source": source, "count": len(grids), "made_s": round(made_s, 1),
                  "bbox_wgs84": [round(float(v), 5) for v in (minx, miny, maxx, maxy)]},
        "points": {"count": n, "seed": args.seed, "in_bbox": True,
                   "outside_share": round(float((expected < 0).mean()), 4),
                   "near_boundary_share": round(float((routed.other >= 0).mean()), 4),
                   "on_edge": on_edge, "in_two_grids": multi},
        "strtree": {"build_s": round(tree_s, 3), "make_points_s": round(points_s, 3),
                    "query_s": round(times["strtree"], 3),
                    "points_per_s": rate(times["strtree"]),
                    "inside_points_per_s": rate(times_in["strtree_inside"], len(inside))},
        "router": {"build_s": round(build_s, 2), **stats,
                   "locate_s": round(times["locate"], 3),
                   "locate_points_per_s": rate(times["locate"]),
                   "route_s": round(times["route"], 3),
                   "route_points_per_s": rate(times["route"]),
                   "route_inside_points_per_s": rate(times_in["route_inside"], len(inside))},
        "ratio_to_strtree": {
            "locate": round(times["strtree"] / times["locate"], 1),
            "route": round(times["strtree"] / times["route"], 1),
            "route_inside": round(times_in["strtree_inside"] / times_in["route_inside"], 1)},
        "identical_answers": identical,
    }
    if args.postgis:
        cluster = None
        url = args.postgis
        if url == "throwaway":
            sys.path.insert(0, str(ROOT / "tests"))
            from pgcluster import ThrowawayCluster

            cluster = ThrowawayCluster().start()
            url = cluster.url("postgres")
        try:
            pg, pairs = postgis(url, router.grids, lon, lat, args.repeat)
        finally:
            if cluster is not None:
                cluster.stop()
        # The same (point, grid) pairs as the STRtree's `within`?
        mine = {(int(p), int(g)) for p, g in res["strtree"].T.tolist()}
        theirs = {(int(p), int(g)) for p, g in pairs.tolist()}
        pg["identical_pairs_to_strtree"] = mine == theirs
        pg["pairs_only_in_postgis"] = len(theirs - mine)
        pg["pairs_only_in_strtree"] = len(mine - theirs)
        result["postgis"] = pg
        result["ratio_to_strtree"]["postgis"] = round(pg["points_per_s"]
                                                      / result["strtree"]["points_per_s"], 2)
        result["ratio_to_postgis"] = {"locate": round(rate(times["locate"])
                                                      / pg["points_per_s"], 1)}
    else:
        result["postgis"] = {"skipped": "no --postgis URL given (or --postgis throwaway)"}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


if __name__ == "__main__":
    results = main()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n",
                       encoding="utf-8")
