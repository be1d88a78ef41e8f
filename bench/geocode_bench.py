"""Benchmark: geocoding written addresses of the demo district against its own address points.

Run: PYTHONPATH=. .venv/bin/python bench/geocode_bench.py [--households N] [--seed S]
     [--points N] [--out PATH] [--smoke]
Writes bench/results/geocode_bench.json.

The demo district (data.demo.generate) is partitioned into grids (partitioning.engine) and its
address points indexed (events.geocode.AddressIndex). For up to ``--points`` address points,
each written several ways, with the true point (the address point itself):

* complete — district, town/street, community/village, road, number, compound, building;
* abbreviated — road and number (and compound and building), no admin parts;
* reordered — road and number first, the compound and building after, the admin parts last;
* typo — one character of the road (or compound) name replaced by a look-alike or dropped;
* fullwidth — full-width digits, 號 for 号, 幢 for 栋, Chinese numerals for the building;
* no_admin_town — the community without its town and district;
* neighbour — a house number next to the point's (same side) that is not in the data:
  interpolated along the road (the truth: the point itself, 20 m per number pair away);
* intersection — "A路与B路交叉口" for named roads that cross (the truth: their crossing).

Reported per variant: the share within 20 m of the truth, the share in the right grid (the
grid holding the truth, GridRouter), the share answered at each level; over all variants:
answers in a wrong grid given with confidence ≥ 0.9; throughput one address at a time (cache
cleared) and in a batch (geocode_many + the transform to WGS84).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from data.demo import generate
from events.geocode import AddressIndex, Answer
from events.router import GridRouter
from gis.contract import Territory
from partitioning.engine import partition_territory

OUT = Path(__file__).parent / "results" / "geocode_bench.json"
FULL = str.maketrans("0123456789", "０１２３４５６７８９")
CN = "零一二三四五六七八九"
#: Look-alike characters a hand (or an input method) mixes up.
SIMILAR = {"路": "露", "街": "接", "巷": "港", "园": "圆", "苑": "院", "华": "化", "花": "化",
           "新": "心", "村": "材", "田": "由", "岗": "刚", "塘": "唐", "龙": "隆", "湖": "胡"}


def cn_number(n: int) -> str:
    """A small integer in Chinese numerals (1–99)."""
    if n < 10:
        return CN[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else CN[tens]) + "十" + (CN[ones] if ones else "")


def typo(rng: np.random.Generator, name: str) -> str:
    """One character of a name mixed up or dropped (never the first: people get it right)."""
    if len(name) < 3:
        return name
    k = int(rng.integers(1, len(name) - 1))
    ch = name[k]
    if ch in SIMILAR and rng.random() < 0.7:
        return name[:k] + SIMILAR[ch] + name[k + 1:]
    return name[:k] + name[k + 1:]


def variants(rng: np.random.Generator, row: dict[str, Any], doors: set[tuple[str, int]]
             ) -> dict[str, str]:
    district, town, village = row["district"], row["town"], row["village"]
    road, num, comp, bno = row["road"], row["house_number"], row["compound"], row["building_no"]
    tail = f"{comp}{bno}栋" if comp else ""
    place = f"{road}{num}号" if road else f"{num}号"
    out = {
        "complete": f"{district}{town}{village}{place}{tail}",
        "abbreviated": f"{road}{num}号{tail}" if road else f"{village}{num}号",
        "reordered": (f"{place}{tail}，{town}{village}" if road
                      else f"{village}{num}号，{district}{town}"),
        "fullwidth": (f"{village}{(road or '')}{str(num).translate(FULL)}號"
                      + (f"{comp}{cn_number(int(bno))}幢" if comp else "")),
        "no_admin_town": f"{village}{place}{tail}",
    }
    if road:
        out["typo"] = f"{village}{typo(rng, road)}{num}号{tail}"
    elif comp:
        out["typo"] = f"{typo(rng, comp)}{bno}栋"
    if road and not comp:
        n = int(num)
        for step in (2, -2, 4, -4):
            if n + step > 0 and (road, n + step) not in doors:
                out["neighbour"] = f"{village}{road}{n + step}号"
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=40_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--points", type=int, default=5_000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--smoke", action="store_true", help="a small district, a few hundred points")
    args = ap.parse_args()
    if args.smoke:
        args.households, args.points = 6_000, 300
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    demo = generate(args.households, args.seed)
    territory = Territory("demo", demo.layers)
    result = partition_territory(territory)
    grids = result.grids.to_crs(4326)
    router = GridRouter.from_grids(grids)
    prep_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = AddressIndex(demo.layers, territory.metric_crs)
    index_s = time.perf_counter() - t0

    admin = demo.layers["admin_areas"]
    names = dict(zip(admin["code"], admin["name"], strict=True))
    district = admin.loc[admin["level"] == "district", "name"].iloc[0]
    bld = demo.layers["buildings"]
    has = bld["house_number"].notna().to_numpy()
    rows = np.flatnonzero(has)
    pick = rng.choice(rows, size=min(args.points, len(rows)), replace=False)
    doors = {(r, int(n)) for r, n in zip(bld["road"], bld["house_number"], strict=True)
             if isinstance(r, str) and n is not None}
    truth_x, truth_y = index.px, index.py
    cases: list[tuple[str, str, float, float]] = []
    for i in pick.tolist():
        v = index.village[i]
        rec = {k: bld[k].iloc[i] for k in ("road", "house_number", "compound", "building_no")}
        rec = {k: (None if not isinstance(val, str) else val) for k, val in rec.items()}
        rec.update(district=district, town=names.get(v[:9], ""), village=names.get(v, ""))
        for kind, text in variants(rng, rec, doors).items():
            cases.append((kind, text, float(truth_x[i]), float(truth_y[i])))
    # Intersections of named roads.
    keys = list(index.road_geom)
    geoms = [index.road_geom[k] for k in keys]
    tree = shapely.STRtree(geoms)
    a_i, b_i = tree.query(geoms, predicate="crosses")
    pairs = sorted({(min(a, b), max(a, b)) for a, b in zip(a_i.tolist(), b_i.tolist(),
                                                            strict=True) if a != b})
    road_names = {}
    for nm_ in demo.layers["roads"]["name"].dropna().unique():
        from events.address_text import normalise
        road_names[normalise(nm_)] = nm_
    for a, b in pairs[: max(len(pick) // 10, 20)]:
        meet = shapely.get_coordinates(shapely.intersection(geoms[a], geoms[b]))
        if len(meet) != 1:
            continue  # roads that cross twice: no one point to score against
        text = f"{road_names.get(keys[a], keys[a])}与{road_names.get(keys[b], keys[b])}交叉口"
        cases.append(("intersection", text, float(meet[0][0]), float(meet[0][1])))

    texts = [c[1] for c in cases]
    # Throughput: one at a time (cache cleared: every address new), then a batch.
    index._cache.clear()
    t0 = time.perf_counter()
    single = [index.geocode(t) for t in texts[:2000]]
    single_s = time.perf_counter() - t0
    index._cache.clear()
    t0 = time.perf_counter()
    answers: list[Answer] = index.geocode_many(texts)
    out = index.to(answers, "wgs84")
    batch_s = time.perf_counter() - t0
    assert len(single) == min(2000, len(texts))

    tx = np.array([c[2] for c in cases])
    ty = np.array([c[3] for c in cases])
    from gis import crs as crsmod
    epsg = f"EPSG:{territory.metric_crs.to_epsg()}"
    tlon, tlat = crsmod.transform(tx, ty, epsg, "wgs84")
    true_grid = router.locate(tlon, tlat)
    ax = np.array([a.x if a.x is not None else np.nan for a in answers])
    ay = np.array([a.y if a.y is not None else np.nan for a in answers])
    ok = np.isfinite(ax)
    dist = np.full(len(cases), np.inf)
    dist[ok] = np.hypot(ax[ok] - tx[ok], ay[ok] - ty[ok])
    got_grid = np.full(len(cases), -2)
    if ok.any():
        got_grid[ok] = router.locate(np.array([o["lon"] for o, k in zip(out, ok, strict=True)
                                               if k]),
                                     np.array([o["lat"] for o, k in zip(out, ok, strict=True)
                                               if k]))
    right = (got_grid == true_grid) & (true_grid >= 0)
    conf = np.array([a.confidence for a in answers])
    kinds = np.array([c[0] for c in cases])
    levels = np.array([a.level for a in answers])
    by: dict[str, Any] = {}
    for kind in dict.fromkeys(kinds.tolist()):
        m = kinds == kind
        lv, cnt = np.unique(levels[m], return_counts=True)
        by[kind] = {"n": int(m.sum()),
                    "within_20m": round(float((dist[m] <= 20).mean()), 4),
                    "right_grid": round(float(right[m].mean()), 4),
                    "levels": {str(k): int(c) for k, c in zip(lv, cnt, strict=True)},
                    "median_error_m": round(float(np.median(dist[m][np.isfinite(dist[m])]))
                                            if np.isfinite(dist[m]).any() else -1.0, 1)}
    wrong_conf = (~right) & ok & (conf >= 0.9)
    examples = [{"kind": str(kinds[i]), "query": texts[i], "level": str(levels[i]),
                 "confidence": float(conf[i]), "error_m": round(float(dist[i]), 1)}
                for i in np.flatnonzero(~right)[:15].tolist()]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "command": "bench/geocode_bench.py " + " ".join(sys.argv[1:]),
        "households": args.households, "seed": args.seed,
        "address_points_indexed": index.size, "grids": len(grids),
        "points_sampled": len(pick), "queries": len(cases),
        "prepare_s": round(prep_s, 2), "index_build_s": round(index_s, 3),
        "by_variant": by,
        "overall": {"within_20m": round(float((dist <= 20).mean()), 4),
                    "right_grid": round(float(right.mean()), 4),
                    "wrong_grid_conf_ge_0_9": round(float(wrong_conf.mean()), 5),
                    "wrong_grid_conf_ge_0_9_n": int(wrong_conf.sum())},
        "throughput": {"single_per_s": round(len(single) / single_s, 1),
                       "batch_per_s": round(len(texts) / batch_s, 1),
                       "batch_n": len(texts)},
        "targets": {"complete_right_grid_ge": 0.95, "overall_right_grid_ge": 0.85,
                    "confident_wrong_lt": 0.01, "batch_per_s_ge": 2000},
        "wrong_grid_examples": examples,
    }
    report["targets_met"] = {
        "complete": by["complete"]["right_grid"] >= 0.95,
        "overall": report["overall"]["right_grid"] >= 0.85,
        "confident_wrong": report["overall"]["wrong_grid_conf_ge_0_9"] < 0.01,
        "batch": report["throughput"]["batch_per_s"] >= 2000,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("by_variant", "overall", "throughput",
                                             "targets_met")}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
