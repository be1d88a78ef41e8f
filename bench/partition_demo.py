"""Benchmark: the engine alone on the demo district at several sizes (time, quality, memory).

Run: .venv/bin/python bench/partition_demo.py [HOUSEHOLDS ...]   (default 60000 300000)
Writes bench/results/partition_demo.json. The comparison with spopt and GerryChain
on the same block graph is not here yet.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path

from data.demo import generate
from gis.layers import Territory
from partitioning.engine import partition_territory
from partitioning.params import PartitionParams

KEYS = ("n_grids", "n_forced", "in_range_share", "in_range_share_all",
        "barrier_boundary_share", "compactness_mean", "coverage_share", "overlap_m2",
        "n_blocks", "relaxed_cuts")


def main(sizes: list[int]) -> list[dict[str, object]]:
    rows = []
    for households in sizes:
        territory = Territory("demo", generate(households, 7).layers)
        started = time.perf_counter()
        report = partition_territory(territory, PartitionParams(seed=0)).report
        seconds = time.perf_counter() - started
        row = {"households": households, "seed": 7, "partition_s": round(seconds, 2),
               **{k: report[k] for k in KEYS},
               "peak_rss_mb_so_far": round(
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print(json.dumps(row, ensure_ascii=False))
        rows.append(row)
    return rows


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [60_000, 300_000]
    results = {"machine": f"{platform.machine()}, {platform.python_version()}",
               "runs": main(sizes)}
    out = Path(__file__).parent / "results" / "partition_demo.json"
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
