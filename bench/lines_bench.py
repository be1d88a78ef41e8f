"""Benchmark: the grid lines the engine draws where no road was given, on street-first fabrics.

Run from the repository root:

    PYTHONPATH=. .venv/bin/python bench/lines_bench.py                 # the default set
    PYTHONPATH=. .venv/bin/python bench/lines_bench.py --smoke         # smallest fabric only
    PYTHONPATH=. .venv/bin/python bench/lines_bench.py --baseline main~3 --png /tmp/lines.png

Each fabric (``data.fabric.generate``: seeds × densities × footprints/address points, a
river on seed 2, two thirds of the minor streets withheld from the roads layer) is
written to a GeoPackage and partitioned by **today's engine** and by the **baseline**
commit (``--baseline REF``, default 652f5b1, checked out into a temporary git worktree,
``bench/refs.py``), each in its own long-lived worker process, alternately first, so both
engines meet the same load. The workers only read the file and partition it
(``bench/engine_step.py``); the metrics are computed here, by today's code, for both
(``bench/lines_metrics.py``, whose docstring defines them exactly):

- **free lines**: grid boundary inside communities that is not within 12 m of a given
  road, river, railway or ridge — drawn where no road was given; their length;
- **near withheld**: the share of the free lines' length within 12 m of a withheld
  street (a street on the ground that the roads layer lacks);
- **turns per km** of the free lines (maximal lines between junctions, simplified at
  2 m, a vertex turning more than 30°);
- **buildings cut**: footprints in two or more grids, across a given line (allowed) or
  not; with address points, the fabric's true footprints are measured (the engine never
  saw them);
- **in range**: the report's share of comprehensive grids in 300–500, forced grids
  excluded and all; **runtime** of ``partition_territory`` (and the ratio of the two).

Writes ``bench/results/lines_bench.json`` for the default set (``--out`` elsewhere; the
smoke run writes nothing unless given ``--out``) and prints rich tables.
"""

from __future__ import annotations

import argparse
import contextlib
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
from lines_metrics import GIVEN_M, classify_boundaries, given_lines_of, line_figures
from refs import Worker, checkout, describe
from rich.console import Console
from rich.table import Table

from data.fabric import Fabric, generate

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_BASELINE = "652f5b1"
SEEDS = (1, 2, 3)
DENSITIES = ("low", "mid", "high")
MODES = ("footprints", "points")
HOUSEHOLDS = 30_000
SMOKE = {"seed": 1, "density": "mid", "households": 6_000, "points": False, "river": False}
console = Console(width=None if sys.stdout.isatty() else 150)


def fabric_specs(seeds: list[int], densities: list[str], modes: list[str], households: int,
                 withhold: float) -> list[dict[str, Any]]:
    """The default set: every seed × density × mode; the river on seed 2."""
    return [{"seed": s, "density": d, "households": households, "points": m == "points",
             "river": s == 2, "withhold": withhold}
            for d in densities for s in seeds for m in modes]


def metric_layers(fabric: Fabric, crs: Any) -> dict[str, Any]:
    """What the metrics need from a fabric, in the engine's metric CRS."""
    layers = {name: gdf.to_crs(crs) for name, gdf in fabric.layers.items()}
    admin = layers["admin_areas"]
    return {
        "villages": admin[admin["level"] == "village"].geometry.to_numpy(),
        "given": given_lines_of(layers),
        "withheld": shapely.union_all(fabric.withheld.to_crs(crs).geometry.to_numpy()),
        "footprints": fabric.footprints.to_crs(crs).geometry.to_numpy(),
        "layers": layers,
    }


def measure(fabric: Fabric, grids: gpd.GeoDataFrame, report: dict[str, Any]
            ) -> dict[str, Any]:
    """The lines figures of one partition of ``fabric`` (grids in a metric CRS)."""
    m = metric_layers(fabric, grids.crs)
    figures = line_figures(grids.geometry.to_numpy(), m["villages"], m["given"],
                           m["withheld"], m["footprints"])
    figures["buildings_cut"]["footprints_seen_by_engine"] = not fabric.points
    figures["in_range_share"] = report["in_range_share"]
    figures["in_range_share_all"] = report["in_range_share_all"]
    figures["n_grids"] = report["n_grids"]
    figures["n_forced"] = report["n_forced"]
    return figures


def summarise(rows: list[dict[str, Any]], engine: str) -> dict[str, Any]:
    """Pooled figures of one engine over the fabrics (length-weighted shares)."""
    runs = [r["engines"][engine] for r in rows if engine in r["engines"]]
    if not runs:
        return {}
    free_km = sum(r["free_km"] for r in runs)
    near = sum(r["free_km"] * (r["free_near_withheld_share"] or 0.0) for r in runs)
    turns = sum(r["free_turns"]["turns"] for r in runs)
    turn_km = sum(r["free_turns"]["km"] for r in runs)
    out: dict[str, Any] = {
        "fabrics": len(runs),
        "free_km": round(free_km, 2),
        "free_near_withheld_share": round(near / free_km, 4) if free_km else 0.0,
        "free_turns_per_km": round(turns / turn_km, 2) if turn_km else 0.0,
        "in_range_share_min": min(r["in_range_share"] for r in runs),
        "in_range_share_mean": round(float(np.mean([r["in_range_share"] for r in runs])), 4),
        "in_range_share_all_min": min(r["in_range_share_all"] for r in runs),
        "in_range_share_all_mean": round(float(np.mean([r["in_range_share_all"]
                                                        for r in runs])), 4),
        "grids": sum(r["n_grids"] for r in runs),
        "forced": sum(r["n_forced"] for r in runs),
        "engine_s": round(sum(r["engine_s"] for r in runs), 2),
        "engine_cpu_s": round(sum(r["engine_cpu_s"] for r in runs), 2),
    }
    for kind, seen in (("footprints", True), ("points_true_footprints", False)):
        cuts = [r["buildings_cut"] for r in runs
                if r["buildings_cut"]["footprints_seen_by_engine"] is seen]
        if not cuts:
            continue
        other = sum(c["cut_other"] for c in cuts)
        free = sum(c["buildings"] - c["buildings_crossing_given"] for c in cuts)
        out[f"buildings_cut_{kind}"] = {
            "buildings": sum(c["buildings"] for c in cuts),
            "cut_across_given": sum(c["cut_across_given"] for c in cuts),
            "cut_other": other,
            "cut_other_share": round(other / free, 5) if free else 0.0,
        }
    return out


def runtime_ratio(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Today's engine time over the baseline's: of the sums (wall and CPU), and the median
    of the per-fabric wall ratios (each pair ran back to back)."""
    pairs = [(r["engines"]["current"], r["engines"]["baseline"]) for r in rows]
    wall = sum(c["engine_s"] for c, _ in pairs) / max(sum(b["engine_s"] for _, b in pairs),
                                                      1e-9)
    cpu = sum(c["engine_cpu_s"] for c, _ in pairs) / max(
        sum(b["engine_cpu_s"] for _, b in pairs), 1e-9)
    per = [c["engine_s"] / b["engine_s"] for c, b in pairs if b["engine_s"] > 0]
    return {"wall": round(wall, 3), "cpu": round(cpu, 3),
            "wall_median_per_fabric": round(float(np.median(per)), 3) if per else 0.0}


def run(specs: list[dict[str, Any]], baseline: str | None, png: Path | None
        ) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    engines = ["current"] + (["baseline"] if baseline else [])
    with tempfile.TemporaryDirectory(prefix="gridmap-lines-") as tmp_name:
        tmp = Path(tmp_name)
        with checkout(baseline) if baseline else contextlib.nullcontext() as tree:
            workers = {"current": Worker(HERE / "engine_step.py")}
            if baseline and tree is not None:
                workers["baseline"] = Worker(HERE / "engine_step.py", code=tree)
            try:
                for name, w in workers.items():
                    console.log(f"{name} engine from {w.call('where')['partitioning']}")
                for i, spec in enumerate(specs):
                    rows.append(_one(i, spec, workers, engines, tmp, png))
            finally:
                for w in workers.values():
                    w.close()
    return {"fabrics": rows, "summary": {e: summarise(rows, e) for e in engines}}


def _one(i: int, spec: dict[str, Any], workers: dict[str, Worker], engines: list[str],
         tmp: Path, png: Path | None) -> dict[str, Any]:
    started = time.perf_counter()
    fabric = generate(spec["seed"], households=spec["households"], density=spec["density"],
                      withhold=spec.get("withhold", 2 / 3), points=spec["points"],
                      river=spec["river"])
    gen_s = time.perf_counter() - started
    gpkg = fabric.write(tmp / f"{fabric.name}.gpkg")
    row: dict[str, Any] = {"name": fabric.name, **spec, "generate_s": round(gen_s, 2),
                           "info": fabric.info, "engines": {}}
    order = engines if i % 2 == 0 else engines[::-1]
    for engine in order:
        out = tmp / f"{fabric.name}.{engine}.pickle"
        load = os.getloadavg()[0]
        answer = workers[engine].call("partition_file", gpkg=str(gpkg), out=str(out))
        with open(out, "rb") as fh:
            part = pickle.load(fh)
        figures = measure(fabric, part["grids"], part["report"])
        figures.update({"engine_s": answer["engine_s"], "engine_cpu_s": answer["engine_cpu_s"],
                        "read_s": answer["read_s"], "load_1min": round(load, 2)})
        row["engines"][engine] = figures
        if png is not None and i == 0 and engine == "current":
            draw(fabric, part["grids"], png)
            draw(fabric, part["grids"], png.with_name(f"{png.stem}-community{png.suffix}"),
                 crop=0)
    cur = row["engines"]["current"]
    console.log(f"{fabric.name}: {fabric.info['buildings']} buildings, free lines "
                f"{cur['free_km']} km, near withheld {cur['free_near_withheld_share']}, "
                f"{cur['free_turns']['turns_per_km']} turns/km, engine {cur['engine_s']} s")
    return row


def draw(fabric: Fabric, grids: gpd.GeoDataFrame, path: Path, crop: int | None = None
         ) -> None:
    """A picture of the fabric: footprints, given roads (grey), withheld streets (orange,
    dashed), community lines (blue) and the grid lines (black, red where drawn with no
    road given). ``crop``: only the community of that index."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = metric_layers(fabric, grids.crs)
    community = shapely.union_all(shapely.boundary(m["villages"]))
    parts = classify_boundaries(grids.geometry.to_numpy(), community, m["given"])
    fig, ax = plt.subplots(figsize=(13, 13))
    layers = m["layers"]
    if "water" in layers:
        layers["water"].plot(ax=ax, color="#bcdff5")
    gpd.GeoSeries(m["footprints"], crs=grids.crs).plot(ax=ax, color="#b9b9b9")
    if fabric.points:
        layers["buildings"].plot(ax=ax, color="black", markersize=4)
    layers["roads"].plot(ax=ax, color="#707070", linewidth=2.2)
    fabric.withheld.to_crs(grids.crs).plot(ax=ax, color="orange", linewidth=1.6,
                                           linestyle="--")
    for key, colour, width in (("given", "black", 1.0), ("free", "red", 1.6),
                               ("community", "blue", 2.4)):
        geom = parts[key]
        if not shapely.is_empty(geom):
            gpd.GeoSeries([geom], crs=grids.crs).plot(ax=ax, color=colour, linewidth=width)
    if crop is not None:
        x0, y0, x1, y1 = shapely.bounds(m["villages"][crop])
        ax.set_xlim(x0 - 20, x1 + 20)
        ax.set_ylim(y0 - 20, y1 + 20)
    ax.set_title(f"{fabric.name}: grid lines drawn where no road was given (red), given "
                 "roads (grey), withheld streets (orange dashed)", fontsize=10)
    ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=75, bbox_inches="tight")
    plt.close(fig)
    console.log(f"picture written to {path}")


def print_tables(results: dict[str, Any]) -> None:
    engines = list(results["summary"])
    table = Table(title=f"grid lines drawn where no road was given (within {GIVEN_M:g} m "
                        "counts as along)", header_style="bold")
    for col in ("fabric", "engine", "free km", "near withheld", "turns/km", "cut (other)",
                "cut (across)", "in range (excl. forced / all)", "engine s"):
        table.add_column(col, justify="left" if col in ("fabric", "engine") else "right")
    for row in results["fabrics"]:
        for e in engines:
            r = row["engines"].get(e)
            if r is None:
                continue
            cut = r["buildings_cut"]
            star = "" if cut["footprints_seen_by_engine"] else "*"
            table.add_row(row["name"], e, f"{r['free_km']:.2f}",
                          f"{r['free_near_withheld_share']:.1%}",
                          f"{r['free_turns']['turns_per_km']:.1f}",
                          f"{cut['cut_other']}/{cut['buildings']}{star}",
                          str(cut["cut_across_given"]),
                          f"{r['in_range_share']:.3f} / {r['in_range_share_all']:.3f}",
                          f"{r['engine_s']:.2f}")
    console.print(table)
    summary = Table(title="summary (pooled over the fabrics; * = address points, the true "
                          "footprints measured)", header_style="bold")
    summary.add_column("figure")
    for e in engines:
        summary.add_column(e, justify="right")
    keys = sorted({k for e in engines for k in results["summary"][e]},
                  key=lambda k: list(results["summary"][engines[0]]).index(k)
                  if k in results["summary"][engines[0]] else 99)
    for k in keys:
        summary.add_row(k, *[json.dumps(results["summary"][e].get(k), ensure_ascii=False)
                             for e in engines])
    if "runtime_ratio" in results:
        summary.add_row("runtime ratio current / baseline",
                        json.dumps(results["runtime_ratio"]))
    console.print(summary)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest fabric only (seconds); no baseline unless asked")
    parser.add_argument("--baseline", default=None,
                        help=f"commit to compare with (default {DEFAULT_BASELINE}; "
                             "none for --smoke)")
    parser.add_argument("--no-baseline", action="store_true", help="today's engine only")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--densities", default=",".join(DENSITIES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--households", type=int, default=HOUSEHOLDS)
    parser.add_argument("--withhold", type=float, default=2 / 3)
    parser.add_argument("--out", type=Path, help="results file (default for the full set: "
                                                 "bench/results/lines_bench.json)")
    parser.add_argument("--png", type=Path, help="a picture of the first fabric")
    args = parser.parse_args(argv)
    if args.smoke:
        specs = [{**SMOKE, "withhold": args.withhold}]
        baseline = args.baseline
    else:
        specs = fabric_specs([int(s) for s in args.seeds.split(",")],
                             args.densities.split(","), args.modes.split(","),
                             args.households, args.withhold)
        baseline = args.baseline or DEFAULT_BASELINE
    if args.no_baseline:
        baseline = None
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "command": "bench/lines_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "current": describe("HEAD"),
        "baseline": describe(baseline) if baseline else None,
        "definitions": {
            "free lines": f"grid boundary inside communities, not within {GIVEN_M:g} m of a "
                          "given road/river/railway/ridge/dedicated-area edge",
            "near withheld": f"share of free-line length within {GIVEN_M:g} m of a withheld "
                             "street",
            "turns per km": "free lines merged between junctions, simplified at 2 m, vertices "
                            "turning > 30°, per km",
            "buildings cut": "footprints with > max(1 m², 1 %) of their area in each of two "
                             "or more grids; 'across' = the footprint crosses a given line "
                             "or community boundary",
            "in range": "report's share of comprehensive grids in 300–500 (forced excluded "
                        "/ all)",
        },
    }
    results.update(run(specs, baseline, args.png))
    if baseline:
        results["runtime_ratio"] = runtime_ratio(results["fabrics"])
    results["bench_s"] = round(time.perf_counter() - started, 1)
    print_tables(results)
    out = args.out or (None if args.smoke else RESULTS / "lines_bench.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n",
                       encoding="utf-8")
        console.log(f"results written to {out}")
    return results


if __name__ == "__main__":
    main()
