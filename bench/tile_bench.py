"""Benchmark: vector tiles of the Baiyun-sized plan from PostGIS, uncached and cached.

Run: PYTHONPATH=. .venv/bin/python bench/tile_bench.py [--sample 300] [--rounds 2]
Writes bench/results/tile_bench.json.

1. Starts a throwaway PostgreSQL + PostGIS (tests/pgcluster.py), migrates it and stores the
   demo district's partition (``data.demo.generate(1_400_000, 7)``, ~3,500 grids, cached in
   bench/.cache/ by bench/route_bench.py) twice under one territory row: version 1
   archived, version 2 published, so the grids table holds two plans and the query has to
   pick one. Tiles only read the grids, so the territory's other layers are not imported.
2. Takes every z14 and z12 tile over the plan's extent (a random sample of ``--sample``
   when there are more) and times, per tile and in random order:
   - ``maps.tiles.render_tile(method="sql")``: one ST_AsMVT statement (what the service
     does on PostGIS), and
   - the named baseline ``method="python"``: the grids of the tile's box read from PostGIS
     and clipped, projected and encoded in Python with shapely and mapbox-vector-tile (the
     SpatiaLite path pointed at PostGIS), in the same run, interleaved tile by tile;
   each over ``--rounds`` rounds (the first also warms PostgreSQL's buffers), the figures
   of the last round reported.
3. Runs ``gridmap serve`` (one uvicorn worker) and requests the same tiles with httpx over
   one keep-alive connection: first pass uncached (the server's tile cache is empty: each
   answer says ``X-Tile-Cache: miss``), second pass cached (``hit``), third pass with
   ``If-None-Match`` (304). Latency is measured by the client, end to end; ``GET /healthz``
   on the same connection gives the floor any request costs (a cached tile adds one
   primary-key look-up of the plan, which tells a deleted or replaced plan).

p50/p99 in milliseconds; tile sizes p50/max in bytes, over the tiles that hold grids (the
empty ones, outside the district's outline but inside its box, are counted apart).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results" / "tile_bench.json"
TARGETS = {"z14_p50_ms": 50.0, "z14_p99_ms": 200.0, "cached_ms": 5.0}


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": len(values), "p50": round(float(np.percentile(a, 50)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "max": round(float(a.max()), 2),
            "mean": round(float(a.mean()), 2)}


def setup(url: str) -> dict[str, Any]:
    """Migrate; store the cached Baiyun-sized partition as plan v1 (archived) and v2
    (published) of one territory."""
    import geopandas as gpd
    import pyogrio
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED, demo_grids
    from sqlalchemy import insert

    from gis.database import make_engine, upgrade
    from gis.models.territories import Territory
    from gis.plans import publish_plan, write_plan

    engine = make_engine(url)
    upgrade(engine)
    path, made = demo_grids()
    grids = pyogrio.read_dataframe(path).to_crs(4326)
    with engine.begin() as conn:
        territory_id = int(conn.execute(insert(Territory).values(
            name="白云示范区", metric_epsg=4526, source="tile bench").returning(
            Territory.id)).scalar_one())
    blocks = gpd.GeoDataFrame({"village_code": [], "households": [], "population": [],
                               "grid_code": []}, geometry=[], crs=4326)
    started = time.perf_counter()
    plans = [write_plan(engine, territory_id, grids, blocks, {}, {"seed": 0}, note=n)
             for n in ("tile bench v1", "tile bench v2")]
    for plan_id in plans:
        publish_plan(engine, plan_id)  # v1 is archived when v2 is published
    engine.dispose()
    return {"source": f"data.demo.generate({DEMO_HOUSEHOLDS:,}, {DEMO_SEED}) partitioned "
                      "(bench/route_bench.py's cache), stored twice (v1 archived, v2 "
                      "published)",
            "partition_s": round(made, 1) if made else "cached",
            "write_plans_s": round(time.perf_counter() - started, 1),
            "territory_id": territory_id, "plan_id": plans[-1], "grids": len(grids),
            "households": int(grids["households"].sum()),
            "bbox_wgs84": [round(float(v), 5) for v in grids.total_bounds]}


def sample_tiles(bbox: list[float], z: int, n: int, rng: np.random.Generator) -> list[Any]:
    from maps.tiles import tiles_covering

    tiles = list(tiles_covering((bbox[0], bbox[1], bbox[2], bbox[3]), z))
    if len(tiles) > n:
        tiles = [tiles[i] for i in sorted(rng.choice(len(tiles), n, replace=False))]
    return tiles


def time_functions(url: str, plan_id: int, tiles: list[Any], rounds: int,
                   rng: np.random.Generator) -> dict[str, Any]:
    """render_tile by ST_AsMVT and by the Python baseline, interleaved, per tile."""
    import mapbox_vector_tile

    from gis.database import make_engine
    from maps.tiles import plan_stamp, render_tile

    engine = make_engine(url)
    band = (300, 500)
    times: dict[str, dict[Any, float]] = {"sql": {}, "python": {}}
    sizes: dict[Any, int] = {}
    same_codes = 0
    for _ in range(rounds):
        for i in rng.permutation(len(tiles)):
            tile = tiles[i]
            out = {}
            for method in ("sql", "python") if i % 2 else ("python", "sql"):
                started = time.perf_counter()
                out[method] = render_tile(engine, plan_id, tile, band, method)
                times[method][tile] = (time.perf_counter() - started) * 1000
            sizes[tile] = len(out["sql"])
            codes = [{f["properties"]["code"] for f in mapbox_vector_tile.decode(
                out[m])["grids"]["features"]} if out[m] else set() for m in ("sql", "python")]
            same_codes += codes[0] == codes[1]
    stamp_ms = []
    for _ in range(200):  # the look-up every request makes (deleted or replaced plan?)
        started = time.perf_counter()
        plan_stamp(engine, plan_id)
        stamp_ms.append((time.perf_counter() - started) * 1000)
    engine.dispose()
    full = [t for t in tiles if sizes[t]]
    result: dict[str, Any] = {
        "tiles": len(tiles), "tiles_with_grids": len(full),
        "same_codes_sql_vs_python": f"{same_codes}/{len(tiles) * rounds}",
        "bytes": {"p50": int(np.percentile([sizes[t] for t in full], 50)) if full else 0,
                  "max": max((sizes[t] for t in full), default=0),
                  "total_mb": round(sum(sizes.values()) / 2**20, 2)},
        "plan_stamp_lookup_ms": percentiles(stamp_ms)}
    for method, label in (("sql", "st_asmvt_ms"), ("python", "baseline_python_ms")):
        result[label] = percentiles([times[method][t] for t in full])
        result[label + "_empty_tiles"] = percentiles(
            [times[method][t] for t in tiles if not sizes[t]])
    if full:
        result["baseline_over_st_asmvt"] = {
            k: round(result["baseline_python_ms"][k] / result["st_asmvt_ms"][k], 1)
            for k in ("p50", "p99", "mean")}
    return result


def time_route(base: str, plan_id: int, tiles: list[Any]) -> dict[str, Any]:
    """Three passes over the tiles through HTTP: uncached, cached, 304."""
    import httpx

    passes = ("uncached", "cached", "not_modified_304")
    times: dict[str, dict[Any, float]] = {name: {} for name in passes}
    states: dict[str, set[str]] = {name: set() for name in passes}
    tags: dict[Any, str] = {}
    nonempty: set[Any] = set()
    from live_server import AUTH

    with httpx.Client(base_url=base, timeout=60, headers=AUTH) as client:
        client.get(f"/tiles/{plan_id}.json").raise_for_status()
        floor = []
        for _ in range(200):  # what any request costs here: the floor of a cached tile
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            floor.append((time.perf_counter() - started) * 1000)
        for name in passes:
            revalidate = name == "not_modified_304"
            for tile in tiles:
                headers = {"If-None-Match": tags[tile]} if revalidate else {}
                started = time.perf_counter()
                response = client.get(f"/tiles/{plan_id}/{tile}.mvt", headers=headers)
                times[name][tile] = (time.perf_counter() - started) * 1000
                assert response.status_code == (304 if revalidate else 200), response.text
                tags[tile] = response.headers["etag"]
                states[name].add(response.headers.get("x-tile-cache", "-"))
                if response.content:
                    nonempty.add(tile)
    out: dict[str, Any] = {
        name: {"all_tiles": percentiles(list(times[name].values())),
               "tiles_with_grids": percentiles([times[name][t] for t in tiles
                                                if t in nonempty]),
               "x_tile_cache": sorted(states[name])}
        for name in passes}
    out["healthz_floor_ms"] = percentiles(floor)
    return out


def main() -> dict[str, Any]:
    from live_server import server, sign_in
    from pgcluster import ThrowawayCluster

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=300, help="most tiles per zoom")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the function timing")
    parser.add_argument("--zooms", default="14,12")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = np.random.default_rng(6)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work), "
                   f"Python {platform.python_version()}, {platform.platform()}",
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "targets": TARGETS,
    }
    cluster = ThrowawayCluster().start()
    log = Path(tempfile.mkdtemp(prefix="gridmap-tile-bench-")) / "server.log"
    try:
        url = cluster.url("postgres")
        result["plan"] = setup(url)
        sign_in(url)
        print(json.dumps(result, ensure_ascii=False, indent=1), flush=True)
        plan_id = result["plan"]["plan_id"]
        zooms = [int(z) for z in args.zooms.split(",")]
        tiles = {z: sample_tiles(result["plan"]["bbox_wgs84"], z, args.sample, rng)
                 for z in zooms}
        result["functions"] = {}
        for z in zooms:
            result["functions"][f"z{z}"] = time_functions(url, plan_id, tiles[z], args.rounds,
                                                          rng)
            print(f"z{z}", json.dumps(result["functions"][f"z{z}"]), flush=True)
        result["route"] = {"server": "gridmap serve, 1 uvicorn worker, GRIDMAP_TILE_CACHE_MB "
                                     "64; client httpx, one keep-alive connection, "
                                     "sequential, on the same machine"}
        with server(url, 1, log) as (base, _proc):
            for z in zooms:
                result["route"][f"z{z}"] = time_route(base, plan_id, tiles[z])
                print(f"route z{z}", json.dumps(result["route"][f"z{z}"]), flush=True)
    finally:
        cluster.stop()
    result["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    z14 = result["functions"].get("z14", {})
    route14 = result["route"].get("z14", {})
    if z14 and route14:
        result["verdict"] = {
            "z14_st_asmvt_p50_ms": z14["st_asmvt_ms"]["p50"],
            "z14_st_asmvt_p99_ms": z14["st_asmvt_ms"]["p99"],
            "z14_route_uncached_p50_ms": route14["uncached"]["tiles_with_grids"]["p50"],
            "z14_route_uncached_p99_ms": route14["uncached"]["tiles_with_grids"]["p99"],
            "z14_route_cached_p50_ms": route14["cached"]["tiles_with_grids"]["p50"],
            "z14_route_cached_p99_ms": route14["cached"]["tiles_with_grids"]["p99"],
            "baseline_python_over_st_asmvt_p50": z14["baseline_over_st_asmvt"]["p50"],
        }
        v = result["verdict"]
        v["meets_targets"] = bool(
            v["z14_route_uncached_p50_ms"] <= TARGETS["z14_p50_ms"]
            and v["z14_route_uncached_p99_ms"] <= TARGETS["z14_p99_ms"]
            and v["z14_route_cached_p50_ms"] <= TARGETS["cached_ms"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    print_table(result)
    return result


def print_table(result: dict[str, Any]) -> None:
    print("\n| zoom | tiles (with grids) | ST_AsMVT p50 / p99 ms | Python baseline p50 / p99 ms "
          "| ratio p50 | route uncached p50 / p99 ms | route cached p50 / p99 ms | 304 p50 ms "
          "| /healthz p50 ms | bytes p50 / max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, f in result["functions"].items():
        r = result["route"].get(key, {})
        u, c, n = (r.get(p, {}).get("tiles_with_grids", {}) for p in
                   ("uncached", "cached", "not_modified_304"))
        print(f"| {key} | {f['tiles']} ({f['tiles_with_grids']}) | "
              f"{f['st_asmvt_ms'].get('p50')} / {f['st_asmvt_ms'].get('p99')} | "
              f"{f['baseline_python_ms'].get('p50')} / {f['baseline_python_ms'].get('p99')} | "
              f"{f.get('baseline_over_st_asmvt', {}).get('p50')}× | "
              f"{u.get('p50')} / {u.get('p99')} | {c.get('p50')} / {c.get('p99')} | "
              f"{n.get('p50')} | {r.get('healthz_floor_ms', {}).get('p50')} | "
              f"{f['bytes']['p50']:,} / {f['bytes']['max']:,} |")


if __name__ == "__main__":
    main()
