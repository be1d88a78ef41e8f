"""Evaluation: route the 228 real grid events of old Xiacheng district (Hangzhou, 2018) to the
332 real grids, as stored (WGS84) and after shifting them into GCJ-02 and BD-09.

Run: .venv/bin/python bench/real_hangzhou_events.py [PATH]
PATH defaults to ../shared/data/real/hangzhou_xiacheng (see its README: the data is for
evaluation only and is not copied into the project). Writes
bench/results/real_hangzhou_events.json.

Checks: every event routes to the grid that contains it (plain shapely); 226 lie in the grid
that reported them (``上报部门``, e.g. 灯芯巷网格1 = 灯芯巷社区 grid 1) and two were reported by a
neighbouring grid's worker and lie inside TS-3-4; the same events in GCJ-02 and BD-09, routed
with that coordinate system, land in the same grids (and, taken as WGS84 by mistake, in
others); ``gridmap route`` on a GCJ-02 CSV of them gives the same grids.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from events.router import GridRouter  # noqa: E402
from gis.crs import WGS84, transform  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "real" / "hangzhou_xiacheng"
RESULTS = Path(__file__).parent / "results" / "real_hangzhou_events.json"
GEOD = pyproj.Geod(ellps="WGS84")


def reporting_grid_codes(grids: gpd.GeoDataFrame, reported: pd.Series) -> dict[str, str]:
    """``上报部门`` (e.g. 胭脂新村网格2) -> grid code: the grid whose organisation
    (``所属组织``, e.g. 天水街道胭脂新村社区胭脂新村社区网格2) ends with it once 社区 is dropped."""
    orgs = grids[["网格编号", "所属组织"]].drop_duplicates()
    short = orgs["所属组织"].str.replace("社区", "", regex=False)
    out = {}
    for name in sorted(reported.unique()):
        codes = orgs.loc[short.str.endswith(name), "网格编号"].unique()
        if len(codes) != 1:
            raise SystemExit(f"reporting grid {name!r} matches {len(codes)} grids")
        out[name] = str(codes[0])
    return out


def shift_m(lon: np.ndarray, lat: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    return np.asarray(GEOD.inv(lon, lat, lon2, lat2)[2])


def main(folder: Path) -> dict[str, Any]:
    grids = gpd.read_file(folder / "xiacheng_grid.geojson")
    events = gpd.read_file(folder / "xiacheng_grid_events.geojson")
    lon, lat = events.geometry.x.to_numpy(), events.geometry.y.to_numpy()
    started = time.perf_counter()
    router = GridRouter.from_grids(grids.rename(columns={"网格编号": "code"}))
    build_s = time.perf_counter() - started

    routed = router.route(lon, lat)
    codes = router.codes_at(routed.index)
    # Plain shapely: the grid(s) containing each event.
    tree = shapely.STRtree(router.grids.geometry.to_numpy())
    pi, gi = tree.query(shapely.points(lon, lat), predicate="within")
    containing: list[set[str]] = [set() for _ in range(len(lon))]
    for p, g in zip(pi.tolist(), gi.tolist(), strict=True):
        containing[p].add(str(router.codes[g]))
    in_containing = [str(c) in s for c, s in zip(codes, containing, strict=True)]

    reported = reporting_grid_codes(grids, events["上报部门"])
    reporting = events["上报部门"].map(reported).to_numpy()
    same = codes == reporting
    metric = router.grids.to_crs(router.metric_crs)
    mx, my = transform(lon, lat, WGS84, router.metric_crs)
    pts = shapely.points(mx, my)
    differ = []
    for i in np.flatnonzero(~same).tolist():
        own = metric[router.codes == codes[i]].geometry.union_all()
        rep = metric[router.codes == reporting[i]].geometry.union_all()
        differ.append({
            "event": i, "type": events["事件类型"].iloc[i],
            "reported_by": events["上报部门"].iloc[i],
            "reporting_grid": reporting[i], "routed_to": str(codes[i]),
            "inside_by_m": round(float(shapely.distance(pts[i], own.boundary)), 1),
            "distance_to_reporting_grid_m": round(float(shapely.distance(pts[i], rep)), 1),
            "flags": list(routed.flags[i]),
        })

    shifted: dict[str, Any] = {}
    for system in ("gcj02", "bd09"):
        x, y = transform(lon, lat, WGS84, system)
        again = router.route_points(x, y, system)
        naive = router.route(x, y)  # the classic mistake: obfuscated coordinates as WGS84
        shifted[system] = {
            "shift_m_median": round(float(np.median(shift_m(lon, lat, x, y))), 1),
            "same_grid": int((again.index == routed.index).sum()),
            "taken_as_wgs84_same_grid": int((naive.index == routed.index).sum()),
            "taken_as_wgs84_outside": int((naive.index < 0).sum()),
        }

    # The command line on a GCJ-02 CSV (written to a temporary folder only).
    from typer.testing import CliRunner

    from api.cli import app

    gx, gy = transform(lon, lat, WGS84, "gcj02")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "events_gcj02.csv"
        table = pd.DataFrame(events.drop(columns="geometry"))
        table["lng"], table["lat"] = gx, gy
        table.to_csv(csv, index=False, encoding="gbk")
        out = Path(tmp) / "routed.csv"
        result = CliRunner().invoke(app, [
            "route", str(csv), "--grids", str(folder / "xiacheng_grid.geojson"),
            "--code-field", "网格编号", "--field-map", "所属组织=name",
            "--coord-sys", "gcj02", "--out", str(out)])
        if result.exit_code != 0:
            raise SystemExit(result.output)
        cli = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    cli_same = int((cli["grid_code"].to_numpy() == codes.astype(str)).sum())

    return {
        "data": "hangzhou_xiacheng (zvzuola/address, 2018-2019); see its README",
        "grids": {"rows": len(grids), "codes": int(grids["网格编号"].nunique()),
                  "router_build_s": round(build_s, 2), "near_m": router.near_m},
        "events": len(events),
        "routed_inside_a_grid": int((routed.index >= 0).sum()),
        "routed_to_the_containing_grid": int(sum(in_containing)),
        "in_more_than_one_grid": int(sum(len(s) > 1 for s in containing)),
        "same_as_reporting_grid": int(same.sum()),
        "differ_from_reporting_grid": differ,
        "near_boundary": int((routed.other >= 0).sum()),
        "on_edge": int(sum("on_edge" in f for f in routed.flags)),
        "shifted": shifted,
        "cli_gcj02_csv_same_grid": cli_same,
    }


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    results = main(path)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    assert results["routed_to_the_containing_grid"] == results["events"]
    assert results["same_as_reporting_grid"] == 226
    assert all(d["routed_to"] == "TS-3-4" for d in results["differ_from_reporting_grid"])
    assert all(s["same_grid"] == results["events"] for s in results["shifted"].values())
    assert results["cli_gcj02_csv_same_grid"] == results["events"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n",
                       encoding="utf-8")
