"""Benchmark: the cross-walk and the aligned proposal (多网融合) on the 1.4 M-household demo.

Run from the repository root (a few minutes on 2 cores, most of it the partition):

    .venv/bin/python bench/overlay_bench.py                  # 1.4 M households
    .venv/bin/python bench/overlay_bench.py --households 300000 --out /tmp/o.json

1. The demo district: ``/work/proto/demo_1400000.pkl`` (a pickled ``gis.contract.Territory``,
   or ``gis.layers.Territory`` as it was called when the pickle was made)
   when it is there and the size is 1.4 M, else ``data.demo.generate(households, seed=7)``;
   partitioned by ``partition_territory`` (timed, but not the subject).
2. Two department layers of about ``--units`` units each, with known misalignment:
   **lattice**: square cells rotated 17° over the district (no edge follows a grid), kept
   where they touch a grid; **shifted**: unions of runs of about households/units grids
   of a town in code order, moved 80 m east and 50 m south — a drawing that once matched.
3. For each: the cross-walk (``partitioning.crosswalk.crosswalk``) and the proposal with
   each strategy (households = ours, area, centroid), timed (best of ``--repeat``), with
   their summaries; then the store path on SpatiaLite: plan and overlay written, the
   cross-walk read back through ``load`` + ``of_store`` as the route does (timed).

Writes ``bench/results/overlay_bench.json``. The machine is shared: the load average
before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.demo import generate  # noqa: E402
from gis.contract import Territory  # noqa: E402
from gis.database import make_engine, upgrade  # noqa: E402
from gis.models.base import SRID  # noqa: E402
from gis.overlays import OverlayLayer, store_overlay  # noqa: E402
from gis.plans import write_plan  # noqa: E402
from gis.store import LAYER_COLUMNS, import_territory  # noqa: E402
from partitioning.crosswalk import STRATEGIES, crosswalk, propose  # noqa: E402
from partitioning.crosswalk_store import load, of_store  # noqa: E402
from partitioning.engine import partition_territory  # noqa: E402
from partitioning.output import grid_table  # noqa: E402

PICKLE = Path("/work/proto/demo_1400000.pkl")


class _Unpickler(pickle.Unpickler):
    """Reads a pickle made before gis/layers.py was split (its classes are in gis.contract)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class("gis.contract" if module == "gis.layers" else module, name)


def _territory(households: int) -> Territory:
    if households == 1_400_000 and PICKLE.exists():
        with PICKLE.open("rb") as fh:
            territory: Territory = _Unpickler(fh).load()
        return territory
    with tempfile.TemporaryDirectory() as tmp:
        from gis.io.territory import read_territory
        path = generate(households, 7).write(Path(tmp) / "demo.gpkg")
        return read_territory(path)


def lattice(grids: gpd.GeoDataFrame, units: int, epsg: int) -> gpd.GeoDataFrame:
    metric = grids.to_crs(epsg)
    x0, y0, x1, y1 = metric.total_bounds
    area = shapely.union_all(metric.geometry.to_numpy())
    size = float(np.sqrt(area.area / units))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    n = int(np.ceil(max(x1 - x0, y1 - y0) * 1.5 / size))
    cells = [shapely.box(cx + (i - n / 2) * size, cy + (j - n / 2) * size,
                         cx + (i + 1 - n / 2) * size, cy + (j + 1 - n / 2) * size)
             for i in range(n) for j in range(n)]
    cells = np.array([shapely.affinity.rotate(c, 17, origin=(cx, cy)) for c in cells])
    cells = cells[shapely.intersects(cells, area)]
    frame = gpd.GeoDataFrame({"code": [f"L{i:04d}" for i in range(len(cells))],
                              "name": [f"警格{i}" for i in range(len(cells))]},
                             geometry=cells, crs=epsg)
    return frame.to_crs(4326)


def shifted(grids: gpd.GeoDataFrame, per_unit: int, epsg: int) -> gpd.GeoDataFrame:
    metric = grids.to_crs(epsg).sort_values("code").reset_index(drop=True)
    group = []
    # Runs of about ``per_unit`` grids in code order within a town (codes run in reading
    # order within a village, villages follow each other).
    for town, rows in metric.groupby(metric["village_code"].str[:9], sort=True):
        k = max(1, round(len(rows) / per_unit))
        group.extend(f"{town}-{int(i * k / len(rows))}" for i in range(len(rows)))
    metric["unit"] = group
    units = metric.dissolve("unit").reset_index()
    frame = gpd.GeoDataFrame({"code": units["unit"], "name": units["unit"]},
                             geometry=units.geometry.translate(80, -50), crs=epsg)
    return frame.to_crs(4326)


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=1_400_000)
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/overlay_bench.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    t = time.perf_counter()
    territory = _territory(args.households)
    read_s = time.perf_counter() - t
    epsg = int(territory.metric_crs.to_epsg())
    t = time.perf_counter()
    result = partition_territory(territory)
    partition_s = time.perf_counter() - t
    grids = grid_table(result).to_crs(4326)
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(4326)
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "command": " ".join(sys.argv),
        "households": int(grids["households"].sum()), "grids": len(grids),
        "blocks": len(blocks), "read_s": round(read_s, 2),
        "partition_s": round(partition_s, 2), "overlays": {}}
    per_unit = max(1, round(len(grids) / args.units))
    for name, units in (("lattice", lattice(grids, args.units, epsg)),
                        ("shifted", shifted(grids, per_unit, epsg))):
        cw_s, cw = _best(lambda u=units: crosswalk(grids, blocks, u, epsg), args.repeat)
        entry: dict[str, Any] = {"units": len(units), "crosswalk_s": round(cw_s, 3),
                                 "crosswalk": cw.summary, "proposals": {}}
        for by in STRATEGIES:
            p_s, p = _best(lambda b=by, u=units, c=cw: propose(c, grids, u, epsg, by=b),
                           args.repeat)
            entry["proposals"][by] = {"seconds": round(p_s, 3), **p.summary}
        report["overlays"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k != "crosswalk"},
                               ensure_ascii=False), flush=True)
    # The store path the route takes (SpatiaLite): read plan, blocks and units, cross-walk.
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite")
        upgrade(engine)
        for layer, columns in LAYER_COLUMNS.items():  # a pickle from before a column
            if layer in territory.layers:
                for column in columns:
                    if column not in territory.layers[layer]:
                        territory.layers[layer][column] = None
        territory_id = import_territory(engine, territory, name="bench")
        plan_id = write_plan(engine, territory_id, grid_table(result),
                             result.blocks[["village_code", "households", "population",
                                            "grid_code", "geometry"]].to_crs(SRID),
                             result.report, {"seed": 0})
        units = report_units = lattice(grids, args.units, epsg)
        store_overlay(engine, territory_id, "公安", OverlayLayer(
            units, units.geometry.to_numpy(), "EPSG:4326", {"code": "code"}))
        t = time.perf_counter()
        found = load(engine, plan_id, "公安")
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        of_store(found)
        report["store_spatialite"] = {"units": len(report_units), "load_s": round(load_s, 3),
                                      "crosswalk_s": round(time.perf_counter() - t, 3)}
        engine.dispose()
    report["load_before_after"] = [load_before, os.getloadavg()]
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    print(json.dumps(report["store_spatialite"]), "->", args.out)


if __name__ == "__main__":
    main()
