"""Benchmark: stable redraw after 5% household changes vs repartitioning from scratch.

Run: .venv/bin/python bench/redraw_bench.py [--sizes 60000 300000] [--seed 7] [--change-seed 1]
Writes bench/results/redraw_bench.json.

For each size, the demo district (data.demo.generate) is partitioned by the engine and
held as the store holds a plan (WGS84, numbered blocks). Scripted changes
(data.changes.scripted_changes) then change 5% of its households: some communities grow
(more households in some buildings, a few new buildings), others shrink (fewer, a few
buildings demolished). On the new data, in the same run:

* **stable redraw** (partitioning.redraw.redraw_plan): grids that still fit are kept,
  those that break are repartitioned with as few neighbours as needed;
* **baseline, from scratch**: partition_territory on the new data.

Figures: grids keeping their exact geometry and code (share of the old grids), grids in
range (forced excluded), runtime, and households that change grid: every building's old
grid (the old block it lies in) against its new grid, counted after matching new grids to
old ones by maximum household overlap (an optimal one-to-one assignment), so that the
scratch plan is not penalised for numbering its grids differently.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _grid_of_buildings(buildings: Any, blocks: Any) -> Any:
    """The grid code of the block each building lies in (metric frames)."""
    from partitioning.households import assign_to_blocks
    owner = assign_to_blocks(buildings, blocks)
    return blocks["grid_code"].astype(str).to_numpy()[owner]


def _moved(old: Any, new: Any, hh: Any) -> dict[str, int]:
    """Households whose grid changes: by code, and after an optimal one-to-one matching of
    new grids to old ones by shared households."""
    import numpy as np
    import pandas as pd
    from scipy.optimize import linear_sum_assignment
    frame = pd.DataFrame({"old": old, "new": new, "hh": hh})
    by_code = int(frame.loc[frame["old"] != frame["new"], "hh"].sum())
    table = frame.pivot_table(index="old", columns="new", values="hh", aggfunc="sum",
                              fill_value=0)
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    kept = int(table.to_numpy()[rows, cols].sum())
    return {"households_moved_by_code": by_code,
            "households_moved_matched": int(np.sum(hh)) - kept}


def _exact(old: Any, new: Any) -> tuple[int, int]:
    """Old grids found in ``new`` with the same code and geometry; and with the same
    geometry under any code."""
    import shapely
    by_code = dict(zip(new["code"], new.geometry.to_numpy(), strict=True))
    same_code = sum(1 for c, g in zip(old["code"], old.geometry.to_numpy(), strict=True)
                    if c in by_code and shapely.equals(g, by_code[c]))
    tree = shapely.STRtree(new.geometry.to_numpy())
    same_shape = 0
    for g in old.geometry.to_numpy():
        hits = tree.query(g, predicate="intersects")
        if any(shapely.equals(g, new.geometry.to_numpy()[i]) for i in hits):
            same_shape += 1
    return same_code, same_shape


def run_size(households: int, seed: int, change_seed: int, share: float) -> dict[str, Any]:
    import numpy as np

    from data.changes import scripted_changes
    from data.demo import generate
    from gis.contract import Territory
    from partitioning.engine import partition_territory
    from partitioning.flags import FORCED as FORCED_FLAGS
    from partitioning.redraw import redraw_plan

    demo = generate(households, seed)
    territory = Territory("demo", demo.layers)
    t0 = time.perf_counter()
    base = partition_territory(territory)
    t_first = time.perf_counter() - t0
    grids = base.grids.to_crs(4326)
    blocks = base.blocks[["village_code", "households", "population", "grid_code",
                          "geometry"]].to_crs(4326)
    blocks.insert(0, "block_no", np.arange(len(blocks)))
    layers, info = scripted_changes(demo.layers, share, change_seed)
    new = Territory("demo-new", layers)
    metric = new.metric_crs
    buildings = new.to_metric()["buildings"]
    hh = buildings["households"].fillna(0).to_numpy(dtype=np.int64)
    old_grid = _grid_of_buildings(buildings, blocks.to_crs(metric))

    t0 = time.perf_counter()
    stable = redraw_plan(blocks, grids, new)
    t_stable = time.perf_counter() - t0
    t0 = time.perf_counter()
    scratch = partition_territory(new)
    t_scratch = time.perf_counter() - t0

    def figures(plan_grids: Any, plan_blocks: Any) -> dict[str, Any]:
        g = plan_grids.to_crs(metric)
        same_code, same_shape = _exact(grids.to_crs(metric), g)
        forced = np.array([bool(set(f) & set(FORCED_FLAGS)) for f in g["flags"]])
        regular = (g["kind"] == "comprehensive").to_numpy() & ~forced
        h = g["households"].to_numpy()
        in_band = (h >= 300) & (h <= 500)
        new_grid = _grid_of_buildings(buildings, plan_blocks.to_crs(metric))
        return {
            "grids": len(g),
            "old_grids_same_code_and_geometry": same_code,
            "kept_share": round(same_code / len(grids), 4),
            "old_grids_same_geometry_any_code": same_shape,
            "in_range_share_forced_excluded": round(float(in_band[regular].mean()), 4),
            "regular_out_of_range": int((regular & ~in_band).sum()),
            **_moved(old_grid, new_grid, hh),
        }

    r = stable.report["redraw"]
    return {
        "households": households, "seed": seed, "change_seed": change_seed,
        "old_grids": len(grids), "first_partition_s": round(t_first, 2),
        "change": {k: v for k, v in info.items() if not k.startswith("villages")},
        "villages_grown": len(info["villages_grown"]),
        "villages_shrunk": len(info["villages_shrunk"]),
        "households_after": int(hh.sum()),
        "stable_redraw": {"runtime_s": round(t_stable, 2), **figures(stable.grids,
                                                                     stable.blocks),
                          "grids_broken_by_change": r["grids_broken"],
                          "grids_changed": len(r["grids_changed"]),
                          "grids_new": len(r["grids_new"]),
                          "grids_retired": len(r["grids_retired"]),
                          "blocks_cut_finer": r.get("blocks_cut_finer", 0)},
        "from_scratch": {"runtime_s": round(t_scratch, 2),
                         **figures(scratch.grids.to_crs(4326),
                                   scratch.blocks.to_crs(4326))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60_000, 300_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--change-seed", type=int, default=1)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/redraw_bench.json")
    args = parser.parse_args()
    runs = []
    for size in args.sizes:
        print(f"{size:,} households ...", flush=True)
        runs.append(run_size(size, args.seed, args.change_seed, args.share))
        print(json.dumps(runs[-1], ensure_ascii=False, indent=1), flush=True)
    result = {"benchmark": "redraw_bench", "share_changed": args.share, "runs": runs,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "note": "shared 2-core machine (other jobs running)"},
              "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
