"""Benchmark: the partitioning engine on the demo district, from 10^4 to 1.4·10^6 households.

Run from the repository root (about 5 minutes on 2 cores for the default series):

    .venv/bin/python bench/partition_demo.py                   # 10k … 1.4M, writes the results
    .venv/bin/python bench/partition_demo.py 60000 300000      # chosen sizes only
    .venv/bin/python bench/partition_demo.py --workers 1       # engine in one process only

For each size, in fresh processes (so that each peak memory is that size's own):

1. the demo district (``data.demo.generate(households, seed=7)``) is written to a
   GeoPackage in a temporary folder (not timed: that is the input);
2. **engine**: ``read_territory`` then ``partition_territory`` in one process, with
   1 and with 2 worker processes for the villages (the grids are the same); the
   engine's time excludes reading and is split by stage (``timings_s``);
3. **cli**: ``gridmap partition territory.gpkg --out DIR`` as a user runs it, from
   the layers file to ``grids.gpkg``, ``blocks.gpkg`` and ``report.json``: wall time
   including interpreter start-up, imports, reading and writing.

Peak memory is sampled every 50 ms as the proportional set size (PSS, Linux
``/proc/*/smaps_rollup``) summed over the process and its worker processes, so
memory shared by forked workers is not counted twice; the kernel's own peak RSS of
the main process is recorded too. Quality figures come from the engine's report.
The time per household across sizes is fitted as time = a + b·households and as a
power law time ∝ households^k (k = 1 is linear), for the wall time, the engine's
CPU time (its own and its workers'; steadier on a shared machine) and from 10^5
households on (below, fixed costs such as start-up dominate).

Writes ``bench/results/partition_demo.json`` (only when the default series is run,
or with ``--out``). Timings on a shared machine are noisy: the load average before
and after each run is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = [10_000, 30_000, 100_000, 300_000, 1_000_000, 1_400_000]
SEED = 7
QUALITY = ("n_grids", "n_forced", "in_range_share", "in_range_share_all",
           "barrier_boundary_share", "compactness_mean", "coverage_share", "overlap_m2",
           "n_blocks", "relaxed_cuts", "repair_moves")


# --- memory ------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakMemory:
    """Samples the summed PSS of a process tree in a thread until stopped."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak_kb = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _tree(self.pid)))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> int:
        return round(self.peak_kb / 1024)


# --- the steps, each run in its own process ----------------------------------------------


def step_generate(households: int, gpkg: Path) -> dict[str, Any]:
    from data.demo import generate

    started = time.perf_counter()
    territory = generate(households, SEED)
    territory.write(gpkg)
    return {"households_generated": int(territory.households),
            "generate_s": round(time.perf_counter() - started, 2)}


def step_engine(gpkg: Path, workers: int) -> dict[str, Any]:
    from gis.layers import read_territory
    from partitioning.engine import partition_territory
    from partitioning.params import PartitionParams

    with PeakMemory(os.getpid()) as mem:
        started = time.perf_counter()
        territory = read_territory(gpkg)
        read_s = time.perf_counter() - started
        cpu0, started = time.process_time(), time.perf_counter()
        # (PartitionParams without workers: an older engine, for before/after runs)
        params = PartitionParams(workers=workers) \
            if "workers" in PartitionParams.__dataclass_fields__ else PartitionParams()
        report = partition_territory(territory, params).report
        engine_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    flags: dict[str, int] = {}
    out_of_band: list[dict[str, Any]] = []
    for grid in report["flagged"]:
        for flag in grid["flags"]:
            flags[flag] = flags.get(flag, 0) + 1
        if {"below_min", "above_max"} & set(grid["flags"]):
            out_of_band.append(grid)
    return {
        "workers": workers,
        "read_s": round(read_s, 2),
        "engine_s": round(engine_s, 2),
        "engine_cpu_s": round(cpu_s + children.ru_utime + children.ru_stime, 2),
        "timings_s": report.get("timings_s", {}),
        "peak_pss_mb": mem.peak_mb,
        "peak_rss_main_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "households": report["households"],
        **{k: report.get(k) for k in QUALITY},
        "flags": dict(sorted(flags.items())),
        "out_of_band_unforced": out_of_band,
    }


def run_cli(gpkg: Path, out: Path) -> dict[str, Any]:
    """``gridmap partition`` as a user runs it; wall time and peak memory of its tree."""
    cmd = [sys.executable, "-m", "api.cli", "partition", str(gpkg), "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with PeakMemory(proc.pid) as mem:
        output, _ = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"gridmap partition failed:\n{output}")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"cli_s": round(wall, 2), "cli_peak_pss_mb": mem.peak_mb,
            "cli_grids": report["n_grids"],
            "grids_gpkg_mb": round((out / "grids.gpkg").stat().st_size / 2**20, 1)}


def _child(args: list[str]) -> dict[str, Any]:
    """Run this script's ``--step`` in a fresh interpreter; its JSON answer."""
    out = subprocess.run([sys.executable, __file__, "--step", *args], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- the series --------------------------------------------------------------------------


def fit(rows: list[dict[str, Any]], key: str, smallest: int = 0) -> dict[str, Any]:
    """time = a + b·households (least squares), and the exponent k of time ∝ n^k, over
    the sizes from ``smallest`` households."""
    import numpy as np

    rows = [r for r in rows if r["households"] >= smallest and r.get(key) is not None]
    n = np.array([r["households"] for r in rows], dtype=float)
    t = np.array([r[key] for r in rows], dtype=float)
    if len(n) < 2:
        return {}
    b, a = np.polyfit(n, t, 1)
    pred = a + b * n
    r2 = 1 - float(((t - pred) ** 2).sum()) / max(float(((t - t.mean()) ** 2).sum()), 1e-12)
    k = float(np.polyfit(np.log(n), np.log(t), 1)[0])
    per = t / n * 1e6
    return {"a_s": round(float(a), 3), "b_us_per_household": round(float(b) * 1e6, 3),
            "r2": round(r2, 4), "exponent_k": round(k, 3),
            "us_per_household": [round(float(x), 2) for x in per],
            "us_per_household_last_over_first": round(float(per[-1] / per[0]), 2)}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, help="households (default: the series)")
    parser.add_argument("--workers", default="1,2",
                        help="engine worker processes to measure, comma-separated "
                             "(default 1,2; the row's figures are the first's)")
    parser.add_argument("--no-cli", action="store_true", help="skip the gridmap CLI runs")
    parser.add_argument("--out", type=Path, help="results file (default: "
                        "bench/results/partition_demo.json for the default series)")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, *rest = args.step
        if name == "generate":
            answer = step_generate(int(rest[0]), Path(rest[1]))
        else:
            answer = step_engine(Path(rest[0]), int(rest[1]))
        print(json.dumps(answer, ensure_ascii=False))
        return

    sizes = args.sizes or DEFAULT_SIZES
    workers = [int(w) for w in args.workers.split(",")]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gridmap-bench-") as tmp:
        for households in sizes:
            gpkg = Path(tmp) / f"territory_{households}.gpkg"
            row: dict[str, Any] = {"households_requested": households, "seed": SEED}
            row.update(_child(["generate", str(households), str(gpkg)]))
            for w in workers:
                before = load()
                engine = _child(["engine", str(gpkg), str(w)])
                engine["load_before_after"] = f"{before} / {load()}"
                if len(workers) == 1:
                    row.update(engine)
                else:
                    row.setdefault("engine_by_workers", []).append(engine)
                    if w == workers[0]:
                        row.update(engine)
            if not args.no_cli:
                before = load()
                row.update(run_cli(gpkg, Path(tmp) / f"out_{households}"))
                row["cli_load_before_after"] = f"{before} / {load()}"
            gpkg.unlink()
            print(json.dumps({k: v for k, v in row.items()
                              if k not in ("out_of_band_unforced", "engine_by_workers",
                                           "timings_s")}, ensure_ascii=False), flush=True)
            runs.append(row)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "command": "bench/partition_demo.py " + " ".join(sys.argv[1:]),
        "runs": runs,
        "scaling": {"engine_s": fit(runs, "engine_s"),
                    "engine_cpu_s": fit(runs, "engine_cpu_s"),
                    "engine_cpu_s_from_100k": fit(runs, "engine_cpu_s", 100_000)},
    }
    if not args.no_cli:
        results["scaling"]["cli_s"] = fit(runs, "cli_s")
        results["scaling"]["cli_s_from_100k"] = fit(runs, "cli_s", 100_000)
    print(json.dumps(results["scaling"], ensure_ascii=False, indent=2))
    out = args.out or (Path(__file__).parent / "results" / "partition_demo.json"
                       if not args.sizes else None)
    if out is not None:
        out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n",
                       encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
