"""The soak's memory watch: RSS of each server process and of PostgreSQL sampled from /proc,
and whether each stayed flat (the slope of its second half)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
from procs import cmdline, load1, parent_of, status_kb, tree
from soak_client import Limits, Recorder


def _label(pid: int, root: int) -> str:
    if pid == root:
        return "supervisor"
    cmd = cmdline(pid)
    if "resource_tracker" in cmd:
        return "resource_tracker"
    # The Dask workers' fork server (partitioning/cluster.py); its children are workers.
    if "multiprocessing.forkserver" in cmd and \
            "multiprocessing.forkserver" not in cmdline(parent_of(pid)):
        return "fork_server"
    if "spawn_main" in cmd or "multiprocessing" in cmd:
        return "worker"
    return "other"


def sample(server_pid: int, pg_pid: int, t: float) -> dict[str, Any]:
    """RSS (MB) of each server process and of PostgreSQL's processes summed."""
    procs: dict[str, Any] = {}
    for pid in tree(server_pid):
        with contextlib.suppress(OSError, ValueError):
            kb = status_kb(pid)
            procs[str(pid)] = {"label": _label(pid, server_pid),
                               "rss_mb": round(kb.get("VmRSS", 0) / 1024, 2),
                               "anon_mb": round(kb.get("RssAnon", 0) / 1024, 2),
                               "threads": kb.get("Threads", 0)}
    pg: dict[str, float] = {"rss_mb": 0.0, "anon_mb": 0.0, "pss_mb": 0.0, "shmem_mb": 0.0,
                            "processes": 0}
    for pid in tree(pg_pid):
        with contextlib.suppress(OSError, ValueError):
            kb = status_kb(pid)
            pg["rss_mb"] += kb.get("VmRSS", 0) / 1024
            pg["anon_mb"] += kb.get("RssAnon", 0) / 1024
            pg["pss_mb"] += kb.get("Pss", 0) / 1024
            pg["shmem_mb"] += kb.get("RssShmem", 0) / 1024
            pg["processes"] += 1
    pg = {k: v if k == "processes" else round(v, 2) for k, v in pg.items()}
    return {"t_s": round(t, 1), "load1": load1(), "server": procs, "postgres": pg}


async def sampler(server_pid: int, pg_pid: int, every: float, rec: Recorder, limits: Limits,
                  out: list[dict[str, Any]]) -> None:
    while not rec.measuring:
        await asyncio.sleep(0.05)
    while True:
        taken = time.monotonic()
        out.append(sample(server_pid, pg_pid, taken - rec.t0))
        if limits.over():
            break
        while time.monotonic() < taken + every and not limits.over():
            await asyncio.sleep(0.1)


def trend(ts: list[float], mbs: list[float], threshold: float, min_points: int = 4,
          min_span_s: float = 60.0) -> dict[str, Any]:
    """Start, end, peak and the least-squares slope (MB/min) over the second half; judged
    flat or not only when the second half holds ``min_points`` samples over ``min_span_s``."""
    out: dict[str, Any] = {"start_mb": mbs[0], "end_mb": mbs[-1], "peak_mb": max(mbs),
                           "samples": len(mbs)}
    half = ts[-1] / 2
    xs = [t for t in ts if t >= half]
    ys = [m for t, m in zip(ts, mbs, strict=True) if t >= half]
    if len(xs) >= 2 and xs[-1] > xs[0]:
        slope = float(np.polyfit(np.array(xs) / 60, np.array(ys), 1)[0])
        out["slope_mb_per_min_second_half"] = round(slope, 3)
        judged = len(xs) >= min_points and xs[-1] - xs[0] >= min_span_s
        out["flat"] = slope < threshold if judged else None
    else:
        out["slope_mb_per_min_second_half"] = None
        out["flat"] = None
    if out["flat"] is None:
        out["why_not_judged"] = (f"the second half holds fewer than {min_points} samples or "
                                 f"spans under {min_span_s:g} s: too short a run to judge")
    return out


def memory_report(samples: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    ts = [s["t_s"] for s in samples]
    out: dict[str, Any] = {"threshold_mb_per_min": threshold, "server": {}, "postgres": {}}
    pids = {pid: info["label"] for s in samples for pid, info in s["server"].items()}
    for pid, label in sorted(pids.items(), key=lambda p: (p[1], p[0])):
        seen = [(s["t_s"], s["server"][pid]["rss_mb"]) for s in samples if pid in s["server"]]
        entry = trend([t for t, _ in seen], [m for _, m in seen], threshold)
        threads = [s["server"][pid]["threads"] for s in samples if pid in s["server"]]
        entry["threads"] = {"start": threads[0], "end": threads[-1], "max": max(threads)}
        if len(seen) < len(samples):
            entry["note"] = f"present in {len(seen)} of {len(samples)} samples (restarted?)"
        out["server"][f"{label} {pid}"] = entry
    for key in ("rss_mb", "pss_mb", "anon_mb"):
        out["postgres"][key.removesuffix("_mb")] = trend(
            ts, [s["postgres"][key] for s in samples], threshold)
    procs = [s["postgres"]["processes"] for s in samples]
    out["postgres"]["processes"] = {"start": procs[0], "end": procs[-1], "max": max(procs)}
    out["postgres"]["note"] = (
        "sums over the postmaster and all its children. rss counts the shared buffers "
        "(shared_buffers) once per backend that touched them; pss splits shared pages among "
        "the processes sharing them (the real footprint; it grows while shared_buffers "
        "fills, bounded by its size); anon is private memory only (work_mem, caches per "
        "backend): a leak in PostgreSQL shows there. all_flat judges PostgreSQL by anon, "
        "the server processes by rss.")
    judged = [e["flat"] for e in out["server"].values()] + [out["postgres"]["anon"]["flat"]]
    out["all_flat"] = None if None in judged else all(judged)
    return out

