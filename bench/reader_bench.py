"""Hostile files cost little to refuse; the readers' checks cost little on good files.

Each case runs in a fresh process that reports its wall time and peak memory (ru_maxrss)
over a baseline of the same process after its imports:

- ``million_refused``: a territory GeoPackage whose village is a polygon of 10^6 vertices,
  refused by ``GRIDMAP_MAX_FEATURE_VERTICES`` (the default 250,000);
- ``million_read``: the same file read with the limit lifted (what the limit spares: the
  vertices read, checked, repaired if need be and reprojected);
- ``zip_bomb``: a .zip of 3 members of 1 GiB of zeros each (3 MB packed), refused before
  anything is unpacked;
- ``events_csv`` / ``events_csv_pandas``: a 1,000,000-row event CSV read by the import's
  reader (``events.files.event_frame``: decoding, empty/header/encoding checks, row limit,
  the text check of the stored columns) against plain ``pandas.read_csv`` of the same bytes
  as the named baseline, in the same run;
- ``demo_read``: the demo district (60,000 households) read by ``read_territory`` with
  the time the new checks take (budget, finite vertices) measured inside it.

Run: ``PYTHONPATH=. .venv/bin/python bench/reader_bench.py`` (about a minute); results in
``bench/results/reader_bench.json``.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "reader_bench.json"

CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, {root!r})
case, path = sys.argv[1], sys.argv[2]
import numpy as np, pandas as pd, io
from gis.errors import GridmapError
from gis.io.limits import ReadLimits
from gis.io.territory import read_territory
from events.files import event_frame, check_text
import gis.io.limits as limits

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

base = peak_mb()
extra = {{}}
started = time.perf_counter()
outcome = "read"
try:
    if case == "million_refused":
        read_territory(path)
    elif case == "million_read":
        read_territory(path, limits=ReadLimits(10**6, 10**8, 2 * 10**6, 10, 10, 10))
    elif case == "zip_bomb":
        read_territory(path)
    elif case == "events_csv":
        data = open(path, "rb").read()
        started = time.perf_counter()
        frame = event_frame(data, "events.csv", max_rows=2_000_000,
                            keep=("category", "source", "description", "reporter"))
        check_text(frame, ("description", "reporter"), "events.csv")
        extra["rows"] = len(frame)
    elif case == "events_csv_pandas":
        data = open(path, "rb").read()
        started = time.perf_counter()
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str,
                            keep_default_na=False)
        extra["rows"] = len(frame)
    elif case == "demo_read":
        spent = {{"budget": 0.0, "finite": 0.0}}
        add = limits.Budget.add
        def timed_add(self, geoms, **kw):
            t = time.perf_counter(); add(self, geoms, **kw)
            spent["budget"] += time.perf_counter() - t
        limits.Budget.add = timed_add
        import shapely
        get_coordinates = shapely.get_coordinates
        def timed_coordinates(*a, **kw):
            t = time.perf_counter(); out = get_coordinates(*a, **kw)
            spent["finite"] += time.perf_counter() - t
            return out
        shapely.get_coordinates = timed_coordinates
        terr = read_territory(path)
        extra["features"] = sum(terr.counts().values())
        extra["checks_s"] = {{k: round(v, 3) for k, v in spent.items()}}
except GridmapError as exc:
    outcome = "refused: " + exc.message[:160]
print(json.dumps({{"case": case, "seconds": round(time.perf_counter() - started, 3),
                  "peak_mb_over_baseline": round(peak_mb() - base, 1),
                  "outcome": outcome, **extra}}))
'''


def run(case: str, path: Path) -> dict[str, object]:
    script = CHILD.format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script, case, str(path)], check=True,
                         capture_output=True, text=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    print(result, flush=True)
    return result


def main() -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "tests" / "api"))
    import numpy as np
    import shapely
    from conftest import ORIGIN, tiny_layers, write_layers
    from test_hostile_files import GIB, zip_bomb

    from data.demo import generate

    results: dict[str, object] = {"machine": platform.node(), "python": platform.python_version(),
                                  "date": time.strftime("%Y-%m-%d %H:%M"), "cases": []}
    cases: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tiny = tiny_layers()
        t = np.linspace(0, 2 * math.pi, 1_000_000, endpoint=False)
        ox, oy = ORIGIN
        admin = tiny["admin_areas"].copy()
        admin.loc[3, "geometry"] = shapely.Polygon(np.column_stack(
            [ox + 0.0105 + 0.004 * np.cos(t), oy + 0.005 + 0.004 * np.sin(t)]))
        tiny["admin_areas"] = admin
        million = write_layers(tiny, folder / "million", "GPKG")
        bomb = folder / "bomb.zip"
        bomb.write_bytes(zip_bomb(3, GIB))
        rng = np.random.default_rng(1)
        x = 113.2 + rng.random(1_000_000) * 0.2
        y = 23.1 + rng.random(1_000_000) * 0.2
        events = folder / "events.csv"
        with events.open("w", encoding="utf-8") as fh:
            fh.write("lon,lat,category,description,reporter\n")
            for i in range(1_000_000):
                fh.write(f"{x[i]:.6f},{y[i]:.6f},sanitation,井盖缺失第{i}号,张三\n")
        demo = generate(60_000, 7).write(folder / "demo" / "territory.gpkg")
        results["inputs"] = {"million_gpkg_bytes": million.stat().st_size,
                             "zip_bomb_bytes": bomb.stat().st_size,
                             "zip_bomb_declared_bytes": 3 * GIB,
                             "events_csv_bytes": events.stat().st_size}
        for case, path in (("million_refused", million), ("million_read", million),
                           ("zip_bomb", bomb), ("events_csv_pandas", events),
                           ("events_csv", events), ("events_csv_pandas", events),
                           ("events_csv", events), ("demo_read", demo)):
            cases.append(run(case, path))
    results["cases"] = cases
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                       encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
