"""The methods of the baselines benchmark, each run in a fresh subprocess with a time cap:
our engine, PySAL spopt MaxPHeuristic and GerryChain recursive_tree_part."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from bench.baselines_metrics import LO, TARGET

ROOT = Path(__file__).resolve().parent.parent
EPSILON = 0.25  # GerryChain: parts within 400 ± 25% = [300, 500]
GC_CAP_HOUSEHOLDS = 480  # the variant: every block capped at 480 households
METHODS = ("engine", "spopt_maxp", "gerrychain", "gerrychain_cap480")


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


def worker(job_path: str, out_path: str) -> None:
    """Run the job pickled at ``job_path`` (``python -m bench.baselines --worker JOB OUT``);
    pickle its result, with the process's peak memory, to ``out_path``."""
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
