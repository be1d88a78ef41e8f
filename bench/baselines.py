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
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "baselines.json"
LO, HI, TARGET = 300, 500, 400
EPSILON = 0.25  # GerryChain: parts within 400 ± 25% = [300, 500]
GC_CAP_HOUSEHOLDS = 480  # the variant: every block capped at 480 households

Layers = dict[str, gpd.GeoDataFrame]


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
METHODS = ("engine", "spopt_maxp", "gerrychain", "gerrychain_cap480")


# ---------------------------------------------------------------------------
# The block graph the baselines get


@dataclass
class BlockGraph:
    """Blocks (metric CRS) with households, and their contiguity edges."""

    geoms: np.ndarray
    households: np.ndarray
    a: np.ndarray
    b: np.ndarray
    info: dict[str, Any]


def block_graph(layers: Layers, name: str) -> BlockGraph:
    """The whole territory's block graph from our blocks stage (village lines ignored)."""
    from gis.contract import Territory
    from partitioning.blocks import adjacency, barrier_lines, make_blocks
    from partitioning.households import assign_to_blocks, building_households
    from partitioning.params import PartitionParams

    started = time.perf_counter()
    params = PartitionParams()
    metric = Territory(name, layers).to_metric()
    admin = metric["admin_areas"]
    villages = admin[admin["level"] == "village"].reset_index(drop=True)
    barriers = barrier_lines(metric, params)
    blocks = make_blocks(villages, barriers, params)
    # The blocks stage can leave a sliver snapped to nothing (empty, no area): drop it.
    empty = shapely.is_empty(blocks.geometry.to_numpy())
    blocks = blocks[~empty].reset_index(drop=True)
    hh, _pop, _est, _counts = building_households(metric["buildings"], params)
    owner = assign_to_blocks(metric["buildings"], blocks)
    households = np.bincount(owner, weights=hh, minlength=len(blocks)).astype(np.int64)
    adj = adjacency(blocks.assign(village_code="whole"), barriers)
    geoms = blocks.geometry.to_numpy()
    a, b = adj["a"].to_numpy(), adj["b"].to_numpy()
    a, b, n_components = _join_components(geoms, a, b)
    info = {
        "blocks": len(blocks), "edges": len(a), "households": int(households.sum()),
        "blocks_over_max": int((households > HI).sum()),
        "block_households_max": int(households.max()),
        "blocks_without_households": int((households == 0).sum()),
        "components_joined": n_components - 1,
        "empty_blocks_dropped": int(empty.sum()),
        "buildings": len(metric["buildings"]),
        "villages": len(villages),
        "build_s": round(time.perf_counter() - started, 2),
    }
    return BlockGraph(geoms, households, a, b, info)


def _join_components(geoms: np.ndarray, a: np.ndarray, b: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Add one edge from each smaller component to the nearest block (by centroid) of
    the largest, as spopt's ``policy="single"`` does; return the edges and the count of
    components found."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(geoms)
    m = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    count, label = connected_components(m, directed=False)
    if count == 1:
        return a, b, 1
    centre = shapely.centroid(geoms)
    xy = np.column_stack([shapely.get_x(centre), shapely.get_y(centre)])
    main = int(np.argmax(np.bincount(label)))
    in_main = np.flatnonzero(label == main)
    tree = cKDTree(xy[in_main])
    extra_a, extra_b = [], []
    for c in range(count):
        if c == main:
            continue
        members = np.flatnonzero(label == c)
        dist, near = tree.query(xy[members])
        k = int(np.argmin(dist))
        extra_a.append(members[k])
        extra_b.append(in_main[near[k]])
    return np.concatenate([a, extra_a]), np.concatenate([b, extra_b]), count


# ---------------------------------------------------------------------------
# Workers (each run in its own subprocess)


def _run_engine(job: dict[str, Any]) -> dict[str, Any]:
    from gis.contract import Territory
    from partitioning.engine import partition_territory
    from partitioning.params import PartitionParams

    stages: list[tuple[str, float]] = []
    started = time.perf_counter()
    result = partition_territory(
        Territory(job["name"], job["layers"]), PartitionParams(seed=job["seed"]),
        progress=lambda stage, _done: stages.append((stage, time.perf_counter() - started)))
    runtime = time.perf_counter() - started
    # Seconds spent in each stage; "regions 网格" repeats when villages are redone
    # with finer blocks.
    marks = [*stages, ("end", runtime)]
    stage_s = [[name, round(marks[i + 1][1] - t, 2)] for i, (name, t) in enumerate(marks[:-1])]
    grids = result.grids
    keys = ("n_grids", "n_comprehensive", "n_dedicated", "n_forced", "in_range_share",
            "in_range_share_all", "n_blocks", "relaxed_cuts", "blocks_cut_between_buildings",
            "coverage_share", "compactness_mean")
    return {
        "runtime_s": runtime,
        "geoms": shapely.to_wkb(grids.geometry.to_numpy()),
        "households": grids["households"].to_numpy(),
        "kind": grids["kind"].to_numpy(dtype=str),
        "flags": [list(f) for f in grids["flags"]],
        "code": grids["code"].to_numpy(dtype=str),
        "report": {k: result.report[k] for k in keys},
        "stage_s": stage_s,
    }


def _run_spopt(job: dict[str, Any]) -> dict[str, Any]:
    import libpysal
    from spopt.region import MaxPHeuristic

    started = time.perf_counter()
    geoms = shapely.from_wkb(job["geoms"])
    xy = shapely.get_coordinates(shapely.centroid(geoms)) / 1000.0
    gdf = gpd.GeoDataFrame({"households": job["households"], "x_km": xy[:, 0],
                            "y_km": xy[:, 1]}, geometry=geoms)
    neighbours: dict[int, list[int]] = {i: [] for i in range(len(geoms))}
    for i, j in zip(job["a"].tolist(), job["b"].tolist(), strict=True):
        neighbours[i].append(j)
        neighbours[j].append(i)
    w = libpysal.weights.W(neighbours, silence_warnings=True)
    np.random.seed(job["seed"])  # MaxP draws from numpy's global generator
    setup = time.perf_counter() - started
    started = time.perf_counter()
    model = MaxPHeuristic(gdf, w, ["x_km", "y_km"], "households", LO, top_n=2)
    model.solve()
    runtime = time.perf_counter() - started
    if model.labels_ is None:
        return {"runtime_s": runtime, "setup_s": setup, "failed": True,
                "reason": "MaxP found no feasible solution"}
    return {"runtime_s": runtime, "setup_s": setup, "labels": np.asarray(model.labels_)}


def _run_gerrychain(job: dict[str, Any]) -> dict[str, Any]:
    from functools import partial

    import networkx as nx
    from gerrychain import Graph
    from gerrychain.partition import recursive_tree_part
    from gerrychain.tree import bipartition_tree

    warnings.simplefilter("ignore")  # BipartitionWarning every 1,000 failed attempts
    started = time.perf_counter()
    households = job["households"]
    if job.get("cap") is not None:
        households = np.minimum(households, job["cap"])
    nxg: nx.Graph = nx.Graph()
    nxg.add_nodes_from((i, {"households": int(h)}) for i, h in enumerate(households))
    nxg.add_edges_from(zip(job["a"].tolist(), job["b"].tolist(), strict=True))
    graph = Graph.from_networkx(nxg)
    total = int(households.sum())
    k = max(2, round(total / TARGET))
    setup = time.perf_counter() - started
    started = time.perf_counter()
    try:
        assignment = recursive_tree_part(
            graph, range(k), total / k, "households", EPSILON,
            bipartition_tree_fn=partial(bipartition_tree, max_attempts=job["max_attempts"]),
            rng=job["seed"])
    except Exception as exc:  # "Could not find a possible cut after N attempts", ...
        return {"runtime_s": time.perf_counter() - started, "setup_s": setup, "failed": True,
                "reason": f"{type(exc).__name__}: {exc}".strip()}
    runtime = time.perf_counter() - started
    labels = np.array([assignment[i] for i in range(len(households))])
    return {"runtime_s": runtime, "setup_s": setup, "labels": labels, "k": k}


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "engine": _run_engine, "spopt_maxp": _run_spopt, "gerrychain": _run_gerrychain,
    "gerrychain_cap480": _run_gerrychain,
}


def _worker(job_path: str, out_path: str) -> None:
    with open(job_path, "rb") as fh:
        job = pickle.load(fh)
    try:
        result = RUNNERS[job["method"]](job)
    except Exception as exc:
        result = {"failed": True, "reason": f"{type(exc).__name__}: {exc}"}
    # VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across execve, so a
    # child would report the parent's size at fork time.
    result["peak_rss_mb"] = _vm_hwm_mb(os.getpid())
    with open(out_path, "wb") as fh:
        pickle.dump(result, fh)


def _vm_hwm_mb(pid: int) -> float | None:
    """Peak resident memory (MB) of a live process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_job(job: dict[str, Any], cap_s: float, tmp: Path) -> dict[str, Any]:
    """Run one job in a fresh Python process; a timeout or crash is a failed run."""
    job_path, out_path = tmp / "job.pkl", tmp / "out.pkl"
    out_path.unlink(missing_ok=True)
    with open(job_path, "wb") as fh:
        pickle.dump(job, fh, protocol=pickle.HIGHEST_PROTOCOL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    with open(tmp / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.baselines", "--worker", str(job_path),
             str(out_path)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            proc.wait(timeout=cap_s)
        except subprocess.TimeoutExpired:
            peak = _vm_hwm_mb(proc.pid)
            proc.kill()
            proc.wait()
            return {"failed": True, "reason": f"timeout: no result within the {cap_s:g} s cap",
                    "runtime_s": round(time.perf_counter() - started, 2),
                    "peak_rss_mb": round(peak) if peak else None}
    if not out_path.exists():
        tail = (tmp / "stderr.txt").read_text(errors="replace").strip().splitlines()[-3:]
        return {"failed": True, "reason": f"crashed (exit {proc.returncode}): "
                + " | ".join(tail), "runtime_s": round(time.perf_counter() - started, 2)}
    with open(out_path, "rb") as fh:
        result: dict[str, Any] = pickle.load(fh)
    return result


# ---------------------------------------------------------------------------
# Metrics (the same for every method)


def region_metrics(geoms: np.ndarray, households: np.ndarray) -> dict[str, Any]:
    """Size and shape figures of a plan's regions (geometries and households)."""
    from partitioning.quality import polsby_popper

    pp = polsby_popper(geoms)
    in_band = (households >= LO) & (households <= HI)
    return {
        "regions": len(households),
        "in_range_share": round(float(in_band.mean()), 4),
        "below_min": int((households < LO).sum()),
        "above_max": int((households > HI).sum()),
        "households_min": int(households.min()),
        "households_max": int(households.max()),
        "households_mean": round(float(households.mean()), 1),
        "polsby_popper_mean": round(float(pp.mean()), 4),
        "polsby_popper_median": round(float(np.median(pp)), 4),
        "noncontiguous": int((shapely.get_num_geometries(geoms) > 1).sum()),
    }


def labels_metrics(graph: BlockGraph, labels: np.ndarray) -> dict[str, Any]:
    """Dissolve the blocks of each region; metrics with the blocks' real households."""
    _, label = np.unique(labels, return_inverse=True)
    order = np.argsort(label, kind="stable")
    starts = np.searchsorted(label[order], np.arange(label.max() + 2))
    geoms = graph.geoms[order]
    merged = np.array([shapely.union_all(geoms[starts[r]:starts[r + 1]])
                       for r in range(len(starts) - 1)], dtype=object)
    households = np.bincount(label, weights=graph.households).astype(np.int64)
    return region_metrics(merged, households)


def engine_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """All grids as regions, plus the engine's own view (forced grids counted apart)."""
    from partitioning.flags import FORCED as FORCED_FLAGS

    out = region_metrics(shapely.from_wkb(result["geoms"]), result["households"])
    report = result["report"]
    out.update({
        "in_range_share_excl_forced": report["in_range_share"],
        "in_range_share_comprehensive": report["in_range_share_all"],
        "forced": report["n_forced"], "dedicated": report["n_dedicated"],
        "engine_blocks": report["n_blocks"], "relaxed_cuts": report["relaxed_cuts"],
        "blocks_cut_between_buildings": report["blocks_cut_between_buildings"],
        "coverage_share": report["coverage_share"], "stage_s": result["stage_s"],
    })
    out_of_band = [
        {"code": c, "households": int(h), "kind": k, "flags": f}
        for c, h, k, f in zip(result["code"], result["households"], result["kind"],
                              result["flags"], strict=True)
        if k == "comprehensive" and not LO <= h <= HI]
    out["out_of_band"] = out_of_band
    out["out_of_band_not_forced"] = [
        g for g in out_of_band if not set(g["flags"]) & set(FORCED_FLAGS)]
    return out


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
        _worker(sys.argv[2], sys.argv[3])
    else:
        main()
