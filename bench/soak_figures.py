"""The soak's figures: per kind (rate, latency, statuses, errors), a timeline, the memory
trends, the tile cache and screens, and the events table checked against the answers."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np
from demo_db import connect, count_rows
from latency import latency_ms
from soak_client import KINDS, Recorder
from soak_memory import memory_report
from soak_traffic import Ledger, ScreenLog, TileLog

from events.store import client_key

MB = 2**20


def kind_report(rows: list[tuple[float, float, int | str]], seconds: float,
                target: float | None) -> dict[str, Any]:
    statuses = Counter(str(s) for _, _, s in rows)
    errors = {s: n for s, n in statuses.items()
              if not s.isdigit() or int(s) >= 500}
    unexpected = {s: n for s, n in statuses.items() if s.isdigit() and 400 <= int(s) < 500}
    ms = np.array([lat for _, lat, _ in rows]) * 1000
    out: dict[str, Any] = {
        "target_per_s": target, "requests": len(rows),
        "requests_per_s": round(len(rows) / seconds, 2) if seconds else 0.0,
        "statuses": dict(sorted(statuses.items())),
        "errors": errors, "errors_total": sum(errors.values()),
        "unexpected_4xx": unexpected}
    if len(ms):
        out["latency_ms"] = latency_ms(ms)
    return out


def timeline(rows: list[tuple[float, float, int | str]], bucket: float) -> list[dict[str, Any]]:
    by: dict[int, list[tuple[float, int | str]]] = {}
    for t, lat, status in rows:
        by.setdefault(int(t // bucket), []).append((lat * 1000, status))
    out = []
    for b in sorted(by):
        ms = np.array([m for m, _ in by[b]])
        errs = sum(1 for _, s in by[b] if not isinstance(s, int) or s >= 500)
        out.append({"from_s": round(b * bucket), "requests": len(ms),
                    "p50_ms": round(float(np.percentile(ms, 50)), 1),
                    "p99_ms": round(float(np.percentile(ms, 99)), 1), "errors": errs})
    return out


def events_check(url: str, prefix: str, ledger: Ledger, before: int) -> dict[str, Any]:
    with connect(url) as conn:
        rows = conn.execute("SELECT idempotency_key, id FROM events WHERE idempotency_key "
                            "LIKE %s", ("%:" + prefix + "-%",)).fetchall()
    # Keys are stored scoped to the account (``<account id>:<key>``, events.store).
    stored = {str(client_key(k)): int(i) for k, i in rows}
    total = count_rows(url)[0]
    lost = [k for k in ledger.answered if k not in stored]
    other_id = [k for k, i in ledger.answered.items() if k in stored and stored[k] != i]
    extra = [k for k in stored if k not in ledger.answered]
    extra_unsure = [k for k in extra if k in ledger.unsure]
    return {
        "keys_answered_2xx": len(ledger.answered), "answered_201": ledger.created,
        "new_key_answered_200": ledger.first_answered_200,
        "events_stored_with_our_keys": len(stored),
        "events_table_grew_by": total - before,
        "lost": len(lost), "lost_examples": lost[:5],
        "answered_with_another_id": len(other_id),
        "stored_without_a_2xx": len(extra),
        "of_which_the_request_failed_client_side": len(extra_unsure),
        "retries_sent": ledger.retries, "retries_200_same_event": ledger.retries_200_same,
        "retries_made_a_new_event": ledger.retries_new_event,
        "inside_points_routed_outside": ledger.routed_outside,
        "consistent": (not lost and not other_id and ledger.retries_new_event == 0
                       and len(extra) == len(extra_unsure)
                       and total - before == len(stored)),
    }


def report(args: argparse.Namespace, run: dict[str, Any], load_start: float, load_end: float,
           alive: bool) -> dict[str, Any]:
    rec: Recorder = run["rec"]
    seconds = run["seconds"]
    kinds = {k: kind_report(rec.rows[k], seconds, run["targets"].get(k)) for k in KINDS}
    total = sum(len(r) for r in rec.rows.values())
    tiles: TileLog = run["tiles"]
    sizes = list(tiles.sizes.values())
    screens: ScreenLog = run["screens"]
    memory = memory_report(run["samples"], args.flat_mb_per_min)
    errors = sum(k["errors_total"] for k in kinds.values())
    unexpected = sum(sum(k["unexpected_4xx"].values()) for k in kinds.values())
    return {
        "run": {"seconds": round(seconds, 1), "requests": total,
                "requests_per_s": round(total / seconds, 1),
                "stopped_by": "max_requests" if rec.sent >= args.max_requests else "time",
                "load_average_1min": [load_start, load_end],
                "server_alive_at_end": alive, **run["cpu"],
                "warmup": {k: dict(Counter({str(s): n for s, n in c.items()}))
                           for k, c in rec.warmup.items() if c}},
        "kinds": kinds,
        "slowest": {k: [{"ms": ms, "at_s": at, "status": st, "path": path}
                        for ms, at, st, path in rec.slowest[k]] for k in KINDS},
        "tiles": {"answers_by_server_cache": dict(tiles.cache),
                  "hit_share": round(tiles.cache["hit"] / max(1, sum(tiles.cache.values())), 3),
                  "distinct_tiles": len(sizes), "distinct_bytes_mb": round(sum(sizes) / MB, 2),
                  "empty_tiles": sum(1 for s in sizes if s == 0),
                  "revalidations_sent": tiles.revalidations,
                  "note": "the server keeps up to GRIDMAP_TILE_CACHE_MB (64) of tiles per "
                          "worker; distinct_bytes_mb is how much of it this run could fill"},
        "screens": {"answers_by_level": {lv: dict(Counter({str(s): n for s, n in c.items()}))
                                         for lv, c in screens.by_level.items()}},
        "memory": {**memory, "samples": run["samples"]},
        "timeline": {k: timeline(rec.rows[k], args.bucket) for k in KINDS},
        "verdict": {"errors": errors, "unexpected_4xx": unexpected,
                    "every_kind_answered": all(
                        any(isinstance(s, int) and s < 400 for _, _, s in rec.rows[k])
                        for k in KINDS),
                    "memory_flat": memory["all_flat"],
                    "events_consistent": None},
    }

