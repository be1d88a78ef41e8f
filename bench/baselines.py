"""Benchmark: our engine vs PySAL spopt MaxPHeuristic and GerryChain recursive_tree_part.

All three run on the same instance in the same run (this machine is shared and noisy,
so only ratios measured side by side mean anything). Each instance is a territory
(layers): the engine partitions it end to end from the layers; the baselines get the
block graph of our blocks stage on the same layers (``make_blocks`` + ``adjacency``:
units = blocks, weight = households summed from the buildings, contiguity = shared
edges ≥ 1 m) over the **whole territory**: they ignore community/village lines, which
the engine never crosses (a harder constraint for the engine). Components of the graph
are joined by one nearest-centroid link each, as spopt's ``policy="single"`` does.

Every run (engine and baselines) is a fresh subprocess with a time cap; a timeout or
an exception ("Could not find a possible cut ...") is recorded as a failed run, with
the peak RSS of the process. Metrics for every method come from the same functions:
households per region, share in [300, 500], Polsby–Popper of the dissolved blocks
(``partitioning.quality.polsby_popper``), non-contiguous regions.

Run from the repository root, with the bench extra installed (``pip install -e
'.[bench]'``)::

    python -m bench.baselines                      # every default instance
    python -m bench.baselines lattice-20           # one instance (quick check)
    python -m bench.baselines --cap 120 --seeds 3  # shorter cap, fewer seeds

Writes ``bench/results/baselines.json`` (``--out`` to change) and prints a table.
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from bench.baselines_graph import Layers, block_graph
from bench.baselines_metrics import HI, LO, TARGET, engine_metrics, labels_metrics
from bench.baselines_runs import EPSILON, GC_CAP_HOUSEHOLDS, METHODS, run_job, worker

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "baselines.json"


@dataclass(frozen=True)
class Instance:
    """A benchmark territory; ``baselines`` False means the engine alone at this size."""

    name: str
    description: str
    build: Callable[[], Layers]
    baselines: bool = True


def _lattice(n: int, community: int) -> Callable[[], Layers]:
    def build() -> Layers:
        from bench.lattice import lattice_city
        return lattice_city(n, community=community)
    return build


def _demo(households: int) -> Callable[[], Layers]:
    def build() -> Layers:
        from data.demo import generate
        return generate(households, 7).layers
    return build


INSTANCES = {
    i.name: i for i in (
        Instance("lattice-20", "lattice city 20×20 = 400 blocks, 48,000 households, "
                 "4 communities of 10×10 blocks", _lattice(20, 10)),
        Instance("lattice-45", "lattice city 45×45 = 2,025 blocks, 243,000 households "
                 "(22 blocks over 500), 9 communities of 15×15 blocks (the issue's instance)",
                 _lattice(45, 15)),
        Instance("demo-243k", "demo district data.demo.generate(243000, 7)", _demo(243_000)),
        Instance("lattice-100", "lattice city 100×100 = 10,000 blocks, 1,200,000 households, "
                 "25 communities of 20×20 blocks (engine alone)", _lattice(100, 20),
                 baselines=False),
    )
}
DEFAULT = ("lattice-20", "lattice-45", "demo-243k", "lattice-100")


# ---------------------------------------------------------------------------
# The benchmark


def run_instance(inst: Instance, args: argparse.Namespace, skip: dict[str, str],
                 tmp: Path) -> dict[str, Any]:
    """Build one instance and run every method on it (or record why not)."""
    print(f"\n== {inst.name}: {inst.description}", flush=True)
    started = time.perf_counter()
    layers = inst.build()
    build_s = round(time.perf_counter() - started, 2)
    graph = block_graph(layers, inst.name)
    print(f"   built in {build_s} s; block graph {graph.info}", flush=True)
    common = {"households": graph.households, "a": graph.a, "b": graph.b}
    alone = not (inst.baselines or args.baselines_everywhere)
    engine_seeds = args.alone_seeds if alone else args.seeds
    jobs: dict[str, list[dict[str, Any]]] = {
        "engine": [{"method": "engine", "name": inst.name, "layers": layers, "seed": s}
                   for s in range(engine_seeds)],
        "spopt_maxp": [{"method": "spopt_maxp", "geoms": shapely.to_wkb(graph.geoms),
                        "seed": s, **common} for s in range(args.spopt_seeds)],
        "gerrychain": [{"method": "gerrychain", "seed": s, "cap": None,
                        "max_attempts": args.gc_max_attempts, **common}
                       for s in range(args.seeds)],
        "gerrychain_cap480": [{"method": "gerrychain_cap480", "seed": s,
                               "cap": GC_CAP_HOUSEHOLDS, "max_attempts": args.gc_max_attempts,
                               **common} for s in range(args.seeds)],
    }
    methods: dict[str, Any] = {}
    for method in METHODS:
        if method != "engine" and alone:
            methods[method] = {"skipped": "engine alone at this size (baselines are run "
                               "where they finish within the cap)"}
            continue
        if method in skip:
            methods[method] = {"skipped": skip[method]}
            continue
        runs = []
        for job in jobs[method]:
            result = run_job(job, args.engine_cap if method == "engine" else args.cap, tmp)
            run: dict[str, Any] = {
                "seed": job["seed"], "failed": bool(result.get("failed")),
                "reason": result.get("reason"),
                "runtime_s": round(float(result["runtime_s"]), 2)
                if result.get("runtime_s") is not None else None,
                "setup_s": round(float(result["setup_s"]), 2) if "setup_s" in result else None,
                "peak_rss_mb": round(result["peak_rss_mb"])
                if result.get("peak_rss_mb") else None}
            if not run["failed"]:
                run.update(engine_metrics(result) if method == "engine"
                           else labels_metrics(graph, result["labels"]))
            runs.append(run)
            print(f"   {method:18s} seed {job['seed']}: "
                  + (f"FAILED ({run['reason']})" if run["failed"] else
                     f"{run['runtime_s']} s, {run['regions']} regions, "
                     f"{run['in_range_share']:.1%} in band, PP {run['polsby_popper_mean']}")
                  + f", {run['peak_rss_mb']} MB", flush=True)
        methods[method] = {"summary": summarise(runs), "runs": runs}
        if runs and all(str(r["reason"]).startswith("timeout") for r in runs):
            skip[method] = f"timed out on every run of {inst.name}, a smaller instance"
    out = {"name": inst.name, "description": inst.description, "build_s": build_s,
           "block_graph": graph.info, "methods": methods}
    out["ratios"], out["targets"] = ratios_and_targets(methods)
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Over the runs: failures, median time, worst share in band, mean compactness."""
    ok = [r for r in runs if not r["failed"]]
    times = [r["runtime_s"] for r in runs if r["runtime_s"] is not None]
    out: dict[str, Any] = {
        "runs": len(runs), "failed": len(runs) - len(ok),
        "failure_reasons": sorted({str(r["reason"]) for r in runs if r["failed"]}),
        "runtime_s_median_all": round(statistics.median(times), 2) if times else None,
        "peak_rss_mb_max": max((r["peak_rss_mb"] for r in runs if r["peak_rss_mb"]),
                               default=None),
    }
    if ok:
        out.update({
            "runtime_s_median_ok": round(statistics.median(r["runtime_s"] for r in ok), 2),
            "regions_median": statistics.median(r["regions"] for r in ok),
            "in_range_share_min": min(r["in_range_share"] for r in ok),
            "in_range_share_mean": round(statistics.mean(r["in_range_share"] for r in ok), 4),
            "households_min": min(r["households_min"] for r in ok),
            "households_max": max(r["households_max"] for r in ok),
            "polsby_popper_mean": round(statistics.mean(r["polsby_popper_mean"] for r in ok), 4),
            "noncontiguous_max": max(r["noncontiguous"] for r in ok),
        })
        if "in_range_share_excl_forced" in ok[0]:
            out["in_range_share_excl_forced_min"] = min(
                r["in_range_share_excl_forced"] for r in ok)
            out["in_range_share_comprehensive_min"] = min(
                r["in_range_share_comprehensive"] for r in ok)
            out["forced_max"] = max(r["forced"] for r in ok)
    return out


def ratios_and_targets(methods: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Baseline time ÷ engine time (medians, same run) and the issue's targets."""
    engine = methods["engine"].get("summary", {})
    ratios: dict[str, Any] = {}
    t_engine = engine.get("runtime_s_median_all")
    for method in METHODS[1:]:
        s = methods.get(method, {}).get("summary")
        if not s or not t_engine:
            continue
        ratios[f"{method}_time_over_engine"] = round(s["runtime_s_median_all"] / t_engine, 2)
        if "polsby_popper_mean" in s and "polsby_popper_mean" in engine:
            ratios[f"{method}_pp_minus_engine"] = round(
                s["polsby_popper_mean"] - engine["polsby_popper_mean"], 4)
    targets: dict[str, Any] = {
        "engine_never_failed": engine.get("failed", 1) == 0,
        "engine_in_band_ge_99pct_excl_forced":
            engine.get("in_range_share_excl_forced_min", 0) >= 0.99,
    }
    spopt = methods.get("spopt_maxp", {}).get("summary")
    if spopt and spopt.get("failed", 1) == 0 and t_engine:
        targets["engine_ge_10x_faster_than_spopt"] = \
            spopt["runtime_s_median_all"] / t_engine >= 10
        targets["engine_compactness_ge_spopt"] = \
            engine.get("polsby_popper_mean", 0) >= spopt["polsby_popper_mean"]
    return ratios, targets


def print_table(instances: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="engine vs spopt MaxP vs GerryChain (same block graph, same run)")
    for col in ("instance", "method", "ok/runs", "time s (median)", "× engine", "regions",
                "in [300,500]", "excl. forced", "hh min–max", "PP mean", "noncontig",
                "peak MB"):
        table.add_column(col, justify="left" if col in ("instance", "method") else "right")
    for inst in instances:
        for method, res in inst["methods"].items():
            if "skipped" in res:
                table.add_row(inst["name"], method, "skipped", *[""] * 9)
                continue
            s = res["summary"]
            ratio = inst["ratios"].get(f"{method}_time_over_engine", "")
            has = "in_range_share_min" in s
            table.add_row(
                inst["name"], method, f"{s['runs'] - s['failed']}/{s['runs']}",
                f"{s['runtime_s_median_all']}", f"{ratio}",
                f"{s['regions_median']}" if has else "",
                f"{s['in_range_share_min']:.1%}" if has else "",
                f"{s['in_range_share_excl_forced_min']:.1%}"
                if "in_range_share_excl_forced_min" in s else "",
                f"{s['households_min']}–{s['households_max']}" if has else "",
                f"{s['polsby_popper_mean']}" if has else "",
                f"{s['noncontiguous_max']}" if has else "",
                f"{s['peak_rss_mb_max']}")
        table.add_section()
    Console(width=170).print(table)
    for inst in instances:
        print(f"{inst['name']}: targets {inst['targets']}")


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("spopt", "libpysal", "gerrychain", "networkx", "shapely", "geopandas",
                "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("instances", nargs="*", metavar="INSTANCE",
                        help=f"of {', '.join(INSTANCES)} (default: all of them)")
    parser.add_argument("--cap", type=float, default=300.0,
                        help="time cap (s) of every single baseline run")
    parser.add_argument("--engine-cap", type=float, default=1800.0,
                        help="time cap (s) of every single engine run")
    parser.add_argument("--seeds", type=int, default=5,
                        help="runs (seeds) of the engine and of each GerryChain variant")
    parser.add_argument("--spopt-seeds", type=int, default=1, help="runs of spopt MaxP")
    parser.add_argument("--alone-seeds", type=int, default=1,
                        help="runs of the engine on the engine-alone instances")
    parser.add_argument("--gc-max-attempts", type=int, default=10_000,
                        help="GerryChain bipartition_tree max_attempts per cut (GerryChain "
                        "0.3's default; 1.0 defaults to 100,000, which only moves the "
                        "failure to the time cap)")
    parser.add_argument("--baselines-everywhere", action="store_true",
                        help="also run the baselines on the engine-alone instances")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.instances or list(DEFAULT)
    unknown = [n for n in names if n not in INSTANCES]
    if unknown:
        parser.error(f"unknown instance(s) {', '.join(unknown)}: use {', '.join(INSTANCES)}")
    results: list[dict[str, Any]] = []
    skip: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="gridmap-bench-") as tmp:
        for name in names:
            results.append(run_instance(INSTANCES[name], args, skip, Path(tmp)))
            out = _write(args, results)  # after every instance: a partial run is kept
    print_table(results)
    print(f"wrote {args.out}")
    return out


def _write(args: argparse.Namespace, results: list[dict[str, Any]]) -> dict[str, Any]:
    out = {
        "what": "engine vs PySAL spopt MaxPHeuristic and GerryChain recursive_tree_part on "
                "the same block graph, in the same run (bench/baselines.py)",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                    "versions": _versions()},
        "settings": {
            "cap_s": args.cap, "engine_cap_s": args.engine_cap, "seeds": args.seeds,
            "spopt_seeds": args.spopt_seeds,
            "engine_alone_seeds": args.alone_seeds,
            "band": [LO, HI],
            "spopt": f"MaxPHeuristic(threshold={LO} on households, attrs = block centroid "
                     "x, y in km, top_n=2, other arguments default)",
            "gerrychain": f"recursive_tree_part(k = round(total/{TARGET}), pop_target = "
                          f"total/k, epsilon={EPSILON}, bipartition_tree max_attempts="
                          f"{args.gc_max_attempts})",
            "gerrychain_cap480": f"the same with every block's households capped at "
                                 f"{GC_CAP_HOUSEHOLDS} (regions measured with the real "
                                 "households)",
            "engine": "partition_territory(Territory(layers), PartitionParams(seed)), end to "
                      "end from the layers (its time includes building the blocks)",
            "baseline_graph": "whole-territory block graph of make_blocks + adjacency "
                              "(community lines ignored; components joined by one "
                              "nearest-centroid link); baseline time = solve only",
            "threads": "every run a fresh process, OMP/OpenBLAS/MKL threads = 1",
        },
        "instances": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1, default=_json) + "\n",
                        encoding="utf-8")
    return out


def _json(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray | pd.Series):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
