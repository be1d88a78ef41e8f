"""The engine on a territory file, as a step any commit can run (served by refs.Worker).

It imports only what every compared commit has (``read_territory``: ``gis.io.territory``'s,
or ``gis.layers``' before the reader was split; ``partitioning.engine.partition_territory``)
and answers with files and plain figures, so that the benchmark's own code (fabrics, metrics)
stays today's on both sides.
"""

from __future__ import annotations

import os
import pickle
import time
from typing import Any

GRID_COLUMNS = ("code", "village_code", "kind", "households", "flags", "geometry")
REPORT_KEYS = ("n_grids", "n_comprehensive", "n_dedicated", "n_forced", "in_range_share",
               "in_range_share_all", "households", "households_min", "households_max",
               "n_blocks", "blocks_cut_between_buildings", "relaxed_cuts", "runtime_s",
               "timings_s", "barrier_boundary_share", "compactness_mean")


def partition_file(gpkg: str, out: str) -> dict[str, Any]:
    """Read ``gpkg`` through the layer contract and partition it with the default
    parameters; pickle the grids (metric CRS) and the report to ``out``; answer the
    timings and the report's figures."""
    try:
        from gis.io.territory import read_territory
    except ModuleNotFoundError:  # a commit from before gis/layers.py was split
        from gis.layers import read_territory
    from partitioning.engine import partition_territory

    started = time.perf_counter()
    territory = read_territory(gpkg)
    read_s = time.perf_counter() - started
    cpu0, started = time.process_time(), time.perf_counter()
    result = partition_territory(territory)
    engine_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu0
    grids = result.grids[[c for c in GRID_COLUMNS if c in result.grids.columns]].copy()
    with open(out, "wb") as fh:
        pickle.dump({"grids": grids, "report": result.report}, fh)
    return {"read_s": round(read_s, 3), "engine_s": round(engine_s, 3),
            "engine_cpu_s": round(cpu_s, 3), "pid": os.getpid(),
            "report": {k: result.report.get(k) for k in REPORT_KEYS}}


def where() -> dict[str, str]:
    """Where the engine's packages are imported from (to check a worker's code tree)."""
    import gis
    import partitioning

    return {"partitioning": os.path.dirname(partitioning.__file__ or ""),
            "gis": os.path.dirname(gis.__file__ or "")}
