"""Benchmark: latency of one edit (a move, and its undo) over HTTP on a draft of the demo plan.

Run: .venv/bin/python bench/edit_bench.py [--households 60000] [--seed 1] [--moves 20]
Writes bench/results/edit_bench.json.

A throwaway PostGIS (tests/pgcluster.py) gets the demo district (data.demo.generate),
partitioned and stored with its blocks, then copied to a draft (POST /plans/{id}/copy).
Each accepted move (a boundary block into the neighbouring grid, through the FastAPI app
in-process) and its undo are timed; a move reads only its village's blocks and the grids
two rings around them, and recomputes only the grids whose blocks change (and the 四至 of
unlocked neighbours). The named baseline, timed in the same run: reading the whole plan
(every grid and block), which is what recomputing the plan from scratch would start from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    import shapely
    from pgcluster import ThrowawayCluster
    from signin import client_for
    from sqlalchemy import text

    from api.app import create_app
    from data.demo import generate
    from gis.database import make_engine, upgrade
    from gis.edits import read_plan_blocks
    from gis.io.territory import read_territory
    from gis.models.base import SRID
    from gis.plans import read_grids, write_plan
    from gis.settings import Settings
    from gis.store import import_territory
    from partitioning.engine import partition_territory
    from partitioning.output import grid_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--moves", type=int, default=20)
    args = parser.parse_args()
    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work), "
                   f"Python {platform.python_version()}",
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "territory": f"data.demo.generate({args.households:,}, {args.seed})",
    }
    cluster = ThrowawayCluster().start()
    try:
        url = cluster.url()
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        upgrade(engine)
        with tempfile.TemporaryDirectory() as tmp:
            territory = read_territory(generate(args.households, args.seed)
                                       .write(Path(tmp) / "demo.gpkg"))
        tid = import_territory(engine, territory)
        started = time.perf_counter()
        result = partition_territory(territory)
        out["partition_s"] = round(time.perf_counter() - started, 1)
        blocks = result.blocks[["village_code", "households", "population", "grid_code",
                                "geometry"]].to_crs(SRID)
        plan = write_plan(engine, tid, grid_table(result), blocks, result.report, {})
        metric = territory.metric_crs.to_epsg()
        with client_for(create_app(Settings(database_url=url), engine)) as client:
            draft = client.post(f"/plans/{plan}/copy").json()["id"]
            grids = read_grids(engine, draft).to_crs(metric).set_index("code")
            blocks_m = read_plan_blocks(engine, draft).to_crs(metric)
            out.update(grids=len(grids), blocks=len(blocks_m))
            tree = shapely.STRtree(grids.geometry.to_numpy())
            codes = grids.index.to_numpy()
            bi, gi = tree.query(blocks_m.geometry.to_numpy(), predicate="touches")
            tried: set[int] = set()
            move_ms: list[float] = []
            undo_ms: list[float] = []
            touched: list[int] = []
            refused = 0
            version = 0
            for b, g in zip(bi, gi, strict=True):
                row = blocks_m.iloc[b]
                target = codes[g]
                if len(move_ms) >= args.moves or int(row.block_no) in tried:
                    continue
                if target == row.grid_code or grids.loc[target, "village_code"] != \
                        row.village_code or grids.loc[target, "kind"] != "comprehensive":
                    continue
                tried.add(int(row.block_no))
                started = time.perf_counter()
                r = client.post(f"/plans/{draft}/edits", json={
                    "op": "move", "blocks": [int(row.block_no)], "to": str(target)},
                    headers={"If-Match": f'"{version}"'})
                elapsed = (time.perf_counter() - started) * 1000
                if r.status_code != 200:
                    refused += 1
                    continue
                move_ms.append(elapsed)
                touched.append(len(r.json()["grids"]["features"]))
                version += 1
                started = time.perf_counter()
                r = client.post(f"/plans/{draft}/undo", headers={"If-Match": f'"{version}"'})
                undo_ms.append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, r.text
                version += 1
            started = time.perf_counter()
            read_grids(engine, draft)
            read_plan_blocks(engine, draft)
            whole_ms = (time.perf_counter() - started) * 1000
        engine.dispose()
    finally:
        cluster.stop()

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median_ms": round(statistics.median(ordered), 1),
                "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
                "max_ms": round(ordered[-1], 1), "n": len(ordered)}

    out.update(move=summary(move_ms), undo=summary(undo_ms), refused_moves=refused,
               grids_returned_per_move={"median": statistics.median(touched),
                                        "max": max(touched)},
               baseline_read_whole_plan_ms=round(whole_ms, 1))
    print(json.dumps(out, ensure_ascii=False, indent=2))
    target_file = ROOT / "bench" / "results" / "edit_bench.json"
    target_file.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
