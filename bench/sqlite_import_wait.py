"""Benchmark: single event reports during a bulk import on SpatiaLite — how long they wait.

Run: PYTHONPATH=. .venv/bin/python bench/sqlite_import_wait.py [--events 100000]
     [--every 0.05] [--out PATH]

Issue 15, item 8: a bulk import on SpatiaLite held the database for its whole duration, and
other writers got "the database cannot be reached" 503s after 5 s. Here the service runs
in-process (TestClient) over a fresh SpatiaLite file with a small published demo plan; one
thread sends ``POST /events/import`` with ``--events`` rows while another sends a single
``POST /events`` every ``--every`` seconds until the import ends. Measured: the import's
time, and the single reports' answers by status and their latency (p50, max). Run with
PYTHONPATH pointing at another checkout for an A/B.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from data.demo import generate
from gis.accounts import add_account, create_api_key
from gis.database import make_engine, upgrade
from gis.io.territory import read_territory
from gis.plans import publish_plan, write_plan
from gis.settings import Settings
from gis.store import import_territory
from partitioning.engine import partition_territory
from partitioning.output import grid_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--every", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=Path("bench/results/sqlite_import_wait.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gridmap-import-wait-"))
    url = f"sqlite:///{tmp / 'store.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    territory = read_territory(generate(5_000, 11).write(tmp / "territory.gpkg"))
    tid = import_territory(engine, territory)
    result = partition_territory(territory)
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(4326)
    grids = grid_table(result).to_crs(4326)
    plan = write_plan(engine, tid, grids, blocks, result.report, {})
    publish_plan(engine, plan)
    add_account(engine, "bench", "bench password 1", "admin", "*")
    key = create_api_key(engine, "bench", "bench")
    app = create_app(Settings(database_url=url, escalation_interval_s=0,
                              event_rate_per_minute=0), engine)
    rng = np.random.default_rng(0)
    points = shapely.point_on_surface(grids.geometry.to_numpy()[
        rng.integers(0, len(grids), args.events)])
    csv = "x,y,category\n" + "".join(f"{p.x:.7f},{p.y:.7f},sanitation\n" for p in points)
    one = shapely.point_on_surface(grids.geometry.iloc[0])
    answers: list[tuple[int, float]] = []
    done = threading.Event()
    outcome: dict[str, object] = {}
    with TestClient(app, headers={"X-API-Key": key}) as client:

        def importer() -> None:
            started = time.perf_counter()
            answer = client.post("/events/import", files={"file": ("e.csv", io.BytesIO(
                csv.encode()))}, data={"coord_sys": "wgs84", "source": "hotline"})
            outcome.update(status=answer.status_code, seconds=round(
                time.perf_counter() - started, 2))
            done.set()

        thread = threading.Thread(target=importer)
        thread.start()
        time.sleep(0.5)   # the file is read and routed first; then the writes begin
        while not done.is_set():
            started = time.perf_counter()
            single = client.post("/events", json={"x": one.x, "y": one.y,
                                                  "coord_sys": "wgs84",
                                                  "category": "sanitation",
                                                  "source": "patrol"})
            answers.append((single.status_code, time.perf_counter() - started))
            time.sleep(args.every)
        thread.join()
    codes: dict[str, int] = {}
    for code, _ in answers:
        codes[str(code)] = codes.get(str(code), 0) + 1
    waits = [s for _, s in answers]
    report = {"events": args.events, "code": os.environ.get("PYTHONPATH", "."),
              "import": outcome, "single_reports": codes,
              "single_p50_s": round(statistics.median(waits), 3) if waits else None,
              "single_max_s": round(max(waits), 3) if waits else None}
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    engine.dispose()


if __name__ == "__main__":
    main()
