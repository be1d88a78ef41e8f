"""Benchmark: partition posters (网格划分图) of the Baiyun-sized demo plan, A3/A0, PNG/PDF.

Run: PYTHONPATH=. .venv/bin/python bench/poster_bench.py [--rounds 1] [--keep DIR]
Writes bench/results/poster_bench.json.

Starts a throwaway PostGIS (tests/pgcluster.py), stores the demo district
(``data.demo.generate(1_400_000, 7)``) and its cached partition (~3,500 grids, see
bench/route_bench.py) as the published plan (bench/demo_db.py's ``demo_setup``), then
renders, through ``maps.poster.make_poster`` as the route and the CLI do (read from PostGIS,
draw, encode), the poster of the town with the most grids and of that town's community with
the most grids: A3 and A0, PNG and PDF. Each render is timed (wall and CPU seconds of this
process; the reading from PostGIS is also timed on its own) and its size recorded. Target
(issue 6): a town poster in at most 20 s. ``--keep DIR`` keeps the files to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results" / "poster_bench.json"
TARGET_TOWN_S = 20.0


def _areas(engine: Any, plan_id: int, territory_id: int) -> tuple[str, str, dict[str, str]]:
    """The town with the most grids, its community with the most grids, and area names."""
    from gis.plans import read_grids
    from gis.store import read_layer

    grids = read_grids(engine, plan_id)
    admin = read_layer(engine, territory_id, "admin_areas")
    parent = dict(zip(admin["code"], admin["parent_code"], strict=True))
    names = dict(zip(admin["code"], admin["name"], strict=True))
    towns = grids["village_code"].map(parent).value_counts()
    town = str(towns.index[0])
    in_town = grids[grids["village_code"].map(parent) == town]
    community = str(in_town["village_code"].value_counts().index[0])
    return town, community, names


def main() -> dict[str, Any]:
    from demo_db import demo_setup
    from pgcluster import ThrowawayCluster
    from route_bench import DEMO_HOUSEHOLDS, DEMO_SEED

    from gis.database import make_engine
    from maps.poster import PNG_DPI, load_poster_data, make_poster, register_fonts

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="renders of each poster")
    parser.add_argument("--keep", type=Path, help="folder to keep the posters in")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work), "
                   f"Python {platform.python_version()}, {platform.platform()}",
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "png_dpi": {size.value: dpi for size, dpi in PNG_DPI.items()},
        "target": f"a town poster in at most {TARGET_TOWN_S:.0f} s",
    }
    cluster = ThrowawayCluster().start()
    try:
        url = cluster.url("postgres")
        setup = demo_setup(url, DEMO_HOUSEHOLDS, DEMO_SEED)
        result["territory"] = {"source": f"data.demo.generate({DEMO_HOUSEHOLDS:,}, "
                                         f"{DEMO_SEED}) and its cached partition, published",
                               "grids": setup["grids"], "households": setup["households"]}
        engine = make_engine(url)
        plan_id, territory_id = setup["plan_id"], setup["territory_id"]
        town, community, names = _areas(engine, plan_id, territory_id)
        started = time.perf_counter()
        register_fonts()
        result["register_fonts_s"] = round(time.perf_counter() - started, 2)
        runs = []
        for code in (town, community):
            started = time.perf_counter()
            data = load_poster_data(engine, plan_id, code)
            load_s = time.perf_counter() - started
            for size in ("A3", "A0"):
                for fmt in ("png", "pdf"):
                    walls, cpus = [], []
                    for _ in range(args.rounds):
                        wall0, cpu0 = time.perf_counter(), time.process_time()
                        made = make_poster(engine, plan_id, code, size, fmt)
                        walls.append(time.perf_counter() - wall0)
                        cpus.append(time.process_time() - cpu0)
                    pages = (len(re.findall(rb"/Type /Page\b", made.content))
                             if fmt == "pdf" else 1)
                    run = {"area": f"{names[code]} ({code})",
                           "level": "town" if len(code) == 9 else "community",
                           "grids": len(data.grids), "barriers_drawn": len(data.barriers),
                           "size": size, "format": fmt, "pages": pages,
                           "wall_s": round(min(walls), 2), "wall_s_all": [round(w, 2)
                                                                         for w in walls],
                           "cpu_s": round(min(cpus), 2),
                           "read_from_postgis_s": round(load_s, 2),
                           "bytes": len(made.content),
                           "load_average_1min": round(os.getloadavg()[0], 2)}
                    runs.append(run)
                    print(json.dumps(run, ensure_ascii=False), flush=True)
                    if args.keep:
                        args.keep.mkdir(parents=True, exist_ok=True)
                        (args.keep / made.filename).write_bytes(made.content)
        engine.dispose()
    finally:
        cluster.stop()
    result["runs"] = runs
    towns = [r["wall_s"] for r in runs if r["level"] == "town"]
    result["slowest_town_poster_s"] = max(towns)
    result["target_met"] = max(towns) <= TARGET_TOWN_S
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    return result


if __name__ == "__main__":
    out = main()
    print(f"slowest town poster: {out['slowest_town_poster_s']} s "
          f"(target ≤ {TARGET_TOWN_S:.0f} s: {'met' if out['target_met'] else 'NOT met'})")
