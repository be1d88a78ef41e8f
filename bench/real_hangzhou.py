"""Evaluation: the partitioning engine on Hangzhou's Xiacheng district vs its official grids.

Run: PYTHONPATH=. .venv/bin/python bench/real_hangzhou.py [PATH] [--out DIR] [--png FILE]
PATH is the hangzhou_xiacheng folder (default ../shared/data/real/hangzhou_xiacheng,
beside the repo). Writes the figures (no geometry) to bench/results/real_hangzhou.json;
``--out`` writes grids.gpkg for looking at, ``--png`` a picture (needs matplotlib). The
data is read where it lies and never copied into the project (licence: evaluation only).

What is built (printed and written with the figures):

- admin areas: the district, its 8 streets and 75 communities (dissolved by their
  codes such as ``SQ-3``). The streets have belonged to 拱墅区 since 2021, and the NBS
  2023 list (../division_codes_*_subset.csv) has them with real codes: a street gets
  its real 9-digit code, a community the real 12-digit code of the same name in that
  street; one without (WH-99 "外网格区域") gets a well-formed synthetic code (serial
  101 on, not used in the street). The mapping is written with the figures;
- roads: the main-road lines and the main-road "polygons" layer (centre lines too),
  class primary; a line of the second layer lying along one of the first (90 % within
  15 m) is the same road and is dropped. Names ending in 河/港/漾/浜 in the main-road
  file are rivers and go to water with the river layer;
- households: there are none in the data. Each official grid (by code) gets 400
  households as address points of 10–40 households in 2–4 clusters inside it
  (deterministic, ``--seed``); the two "outside the grid" areas of WH-99 (a campus and
  a railway station) are dedicated areas, as the official data treats them;
- then: default engine parameters, the issue's figures, and per community the
  official grid count against ours; the share of our grid boundary (inside
  communities) within 30 m of an official grid boundary, with the share a random line
  would get for comparison.

Against the official grids (``boundary_agreement``): boundary agreement both ways within
30 m (the share of our grid boundary inside communities within 30 m of an official grid
boundary, and the share of the official internal boundary within 30 m of ours), the best
intersection-over-union of each official grid with any of ours (median, quartiles), and
the turns per km of the internal lines, ours and the official ones, with the metric of
bench/lines_bench.py (``lines_metrics``: lines merged between junctions, simplified at
2 m, a vertex turning more than 30°), for all internal lines and for the "free" ones
(not within 12 m of a given road or river).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from lines_metrics import best_iou, classify_boundaries, given_lines_of, merge_lines, turns_per_km
from real_common import (
    console,
    data_args,
    figures,
    geometry_checks,
    print_table,
    read_geojson,
    render_png,
    run_engine,
    territory_via_contract,
    timed,
    write_geometry,
    write_results,
)
from rich.table import Table

from gis.zones import metric_crs_for
from partitioning.blocks import barrier_lines
from partitioning.params import PartitionParams

DEFAULT_PATH = Path(__file__).resolve().parents[1] / ".." / "shared/data/real/hangzhou_xiacheng"
DISTRICT_CODE = "330105"
HOUSEHOLDS_PER_GRID = 400
POINT_HH = (10, 40)
CLUSTERS = (2, 4)
CLUSTER_SIGMA_M = 40.0
NEAR_M = 30.0
WATER_NAME = re.compile(r"(?:河|港|漾|浜|运河)$")
OUTSIDE_GRID = "WH-99"


def read(path: Path, name: str) -> gpd.GeoDataFrame:
    return read_geojson(path / f"xiacheng_{name}.geojson")


def admin_layer(path: Path, metric: Any) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """District, streets and communities with NBS codes, and the code mapping."""
    streets_csv = pd.read_csv(path.parent / "division_codes_streets_subset.csv", dtype=str)
    villages_csv = pd.read_csv(path.parent / "division_codes_villages_subset.csv", dtype=str)
    streets_csv = streets_csv[streets_csv["areaCode"] == DISTRICT_CODE].drop_duplicates("code")
    town_code = dict(zip(streets_csv["name"], streets_csv["code"], strict=True))
    district = read(path, "district_boundary").to_crs(metric)
    streets = read(path, "streets_8").to_crs(metric).dissolve("街道编码", as_index=False)
    comms = read(path, "communities").to_crs(metric)
    comms = comms.dissolve("社区编码", as_index=False, aggfunc="first")
    rows: list[dict[str, Any]] = [{
        "code": DISTRICT_CODE, "name": str(district["name"].iloc[0]), "level": "district",
        "geometry": shapely.union_all(district.geometry.to_numpy())}]
    for row in streets.itertuples(index=False):
        rows.append({"code": town_code[row.街道], "name": row.街道, "level": "town",
                     "geometry": row.geometry})
    mapping: list[dict[str, Any]] = []
    for row in comms.sort_values("社区编码").itertuples(index=False):
        tcode = town_code[row.街道]
        real = villages_csv[villages_csv["streetCode"] == tcode].drop_duplicates("code")
        hit = real[real["name"] == row.社区]
        if len(hit):
            code, synthetic = str(hit["code"].iloc[0]), False
        else:
            used = {c[-3:] for c in real["code"]} | {m["code"][-3:] for m in mapping
                                                      if m["code"].startswith(tcode)}
            serial = next(s for s in range(101, 200) if f"{s:03d}" not in used)
            code, synthetic = f"{tcode}{serial:03d}", True
        mapping.append({"source_code": row.社区编码, "name": row.社区, "street": row.街道,
                        "code": code, "synthetic": synthetic})
        rows.append({"code": code, "name": row.社区, "level": "village", "kind": "urban",
                     "geometry": shapely.make_valid(row.geometry)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=metric), pd.DataFrame(mapping)


def line_layers(path: Path, metric: Any) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str,
                                                                                           int]]:
    lines = read(path, "main_roads_lines").to_crs(metric)
    more = read(path, "main_roads_polygons").to_crs(metric)
    rivers = read(path, "rivers").to_crs(metric)
    is_water = lines["RNAME"].astype(str).str.contains(WATER_NAME)
    roads = lines[~is_water]
    near = shapely.buffer(shapely.union_all(roads.geometry.to_numpy()), 15.0)
    along = shapely.length(shapely.intersection(more.geometry.to_numpy(), near)) \
        / shapely.length(more.geometry.to_numpy())
    extra = more[along < 0.9]
    road_frame = pd.concat([roads[["RNAME", "geometry"]], extra[["RNAME", "geometry"]]],
                           ignore_index=True).rename(columns={"RNAME": "name"})
    road_frame["class"] = "primary"
    water = pd.concat([lines[is_water][["RNAME", "geometry"]], rivers[["RNAME", "geometry"]]],
                      ignore_index=True).rename(columns={"RNAME": "name"})
    counts = {"road_lines": int((~is_water).sum()), "road_lines_from_polygon_layer":
              len(extra), "polygon_layer_duplicates_dropped": int((along >= 0.9).sum()),
              "river_lines_in_road_file": int(is_water.sum()), "river_lines": len(rivers)}
    return (gpd.GeoDataFrame(road_frame, geometry="geometry", crs=metric),
            gpd.GeoDataFrame(water, geometry="geometry", crs=metric), counts)


def official_grids(path: Path, metric: Any) -> gpd.GeoDataFrame:
    grid = read(path, "grid").to_crs(metric)
    grid["geometry"] = shapely.make_valid(grid.geometry.to_numpy())
    out = grid.dissolve("网格编号", as_index=False, aggfunc="first")
    out["community"] = out["网格编号"].str.rsplit("-", n=1).str[0]
    return out


def _uniform_in(poly: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    x0, y0, x1, y1 = shapely.bounds(poly)
    out = np.empty((0, 2))
    shapely.prepare(poly)
    while len(out) < n:
        xy = rng.uniform((x0, y0), (x1, y1), size=(max(4 * n, 64), 2))
        out = np.vstack([out, xy[shapely.contains_xy(poly, xy[:, 0], xy[:, 1])]])
    return out[:n]


def household_points(grids: gpd.GeoDataFrame, seed: int) -> gpd.GeoDataFrame:
    """400 households per official grid: points of 10–40 households (the last takes the
    remainder, at least 10) around 2–4 cluster centres inside the grid."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    hh: list[np.ndarray] = []
    grid_of: list[str] = []
    for code, poly in zip(grids["网格编号"], grids.geometry, strict=True):
        sizes: list[int] = []
        while sum(sizes) < HOUSEHOLDS_PER_GRID:
            sizes.append(int(rng.integers(POINT_HH[0], POINT_HH[1] + 1)))
        sizes[-1] -= sum(sizes) - HOUSEHOLDS_PER_GRID
        if sizes[-1] < POINT_HH[0] and len(sizes) > 1:
            last = sizes.pop()
            sizes[-1] += last
        centres = _uniform_in(poly, int(rng.integers(CLUSTERS[0], CLUSTERS[1] + 1)), rng)
        which = rng.integers(0, len(centres), size=len(sizes))
        xy = centres[which] + rng.normal(0, CLUSTER_SIGMA_M, size=(len(sizes), 2))
        outside = ~shapely.contains_xy(poly, xy[:, 0], xy[:, 1])
        xy[outside] = _uniform_in(poly, int(outside.sum()), rng)
        xs.append(xy)
        hh.append(np.asarray(sizes))
        grid_of.extend([code] * len(sizes))
    xy = np.vstack(xs)
    assert sum(int(h.sum()) for h in hh) == HOUSEHOLDS_PER_GRID * len(grids)
    return gpd.GeoDataFrame({"households": np.concatenate(hh), "official_grid": grid_of},
                            geometry=shapely.points(xy), crs=grids.crs)


def compare_counts(ours: gpd.GeoDataFrame, official: gpd.GeoDataFrame,
                   mapping: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    by_code = dict(zip(mapping["source_code"], mapping["code"], strict=True))
    off = official.groupby("community").size().rename("official")
    off.index = off.index.map(by_code)
    mine = ours.groupby("village_code").size().rename("ours")
    table = pd.concat([off, mine], axis=1).fillna(0).astype(int)
    names = dict(zip(mapping["code"], mapping["street"] + mapping["name"], strict=True))
    table.insert(0, "community", table.index.map(names))
    diff = table["ours"] - table["official"]
    stats = {
        "communities": len(table),
        "official_grids": int(table["official"].sum()), "our_grids": int(table["ours"].sum()),
        "mean_abs_diff": round(float(diff.abs().mean()), 3),
        "mean_diff_ours_minus_official": round(float(diff.mean()), 3),
        "pearson_r": round(float(np.corrcoef(table["official"], table["ours"])[0, 1]), 3),
        "spearman_r": round(float(table["official"].rank().corr(table["ours"].rank())), 3),
        "share_equal": round(float((diff == 0).mean()), 3),
        "share_within_1": round(float((diff.abs() <= 1).mean()), 3),
        "diff_histogram": {str(k): int(v) for k, v in diff.value_counts().sort_index().items()},
    }
    return table.reset_index(names="code"), stats


def boundary_agreement(ours: gpd.GeoDataFrame, official: gpd.GeoDataFrame,
                       villages: gpd.GeoDataFrame) -> dict[str, Any]:
    """Length shares of grid boundary lying within NEAR_M of the other partition's,
    counting only boundary inside communities (both follow community boundaries)."""
    village_lines = shapely.buffer(shapely.union_all(
        shapely.boundary(villages.geometry.to_numpy())), 1.0)

    def internal(gdf: gpd.GeoDataFrame) -> shapely.Geometry:
        lines = shapely.union_all(shapely.boundary(gdf.geometry.to_numpy()))
        return shapely.difference(lines, village_lines)

    ours_in, official_in = internal(ours), internal(official)
    official_all = shapely.union_all(shapely.boundary(official.geometry.to_numpy()))
    ours_all = shapely.union_all(shapely.boundary(ours.geometry.to_numpy()))
    near_official = shapely.buffer(official_all, NEAR_M)
    near_ours = shapely.buffer(ours_all, NEAR_M)
    land = shapely.union_all(villages.geometry.to_numpy())

    def share(lines: shapely.Geometry, zone: shapely.Geometry) -> float:
        total = shapely.length(lines)
        return round(float(shapely.length(shapely.intersection(lines, zone)) / total), 4) \
            if total else 0.0

    return {
        "our_internal_boundary_km": round(float(shapely.length(ours_in)) / 1e3, 2),
        "official_internal_boundary_km": round(float(shapely.length(official_in)) / 1e3, 2),
        "ours_within_30m_of_official": share(ours_in, near_official),
        "official_within_30m_of_ours": share(official_in, near_ours),
        "random_line_baseline": round(float(shapely.area(shapely.intersection(
            near_official, land)) / shapely.area(land)), 4),
        "note": "boundary inside communities only; the baseline is the share of the "
                "communities' area within 30 m of an official grid boundary (what a "
                "line drawn at random would score)",
    }


def line_shape(ours: gpd.GeoDataFrame, official: gpd.GeoDataFrame,
               villages: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame]
               ) -> dict[str, Any]:
    """Median best IoU per official grid, and turns per km of both partitions' internal
    lines (all, and those not within 12 m of a given line)."""
    iou = best_iou(official.geometry.to_numpy(), ours.geometry.to_numpy())
    community = shapely.union_all(shapely.boundary(villages.geometry.to_numpy()))
    given = given_lines_of(layers)
    out: dict[str, Any] = {
        "official_grids": len(iou),
        "best_iou_median": round(float(np.median(iou)), 4),
        "best_iou_mean": round(float(np.mean(iou)), 4),
        "best_iou_quartiles": [round(float(q), 4) for q in np.quantile(iou, [0.25, 0.75])],
        "official_grids_best_iou_over_0_5": round(float((iou > 0.5).mean()), 4),
    }
    for who, gdf in (("ours", ours), ("official", official)):
        parts = classify_boundaries(gdf.geometry.to_numpy(), community, given)
        internal = shapely.union_all([parts["given"], parts["free"]])
        out[f"{who}_internal_turns"] = turns_per_km(merge_lines(internal))
        out[f"{who}_free_turns"] = turns_per_km(merge_lines(parts["free"]))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, path = data_args(__doc__, DEFAULT_PATH, "xiacheng_grid.geojson", "Xiacheng", argv,
                           lambda p: p.add_argument("--seed", type=int, default=7,
                                                    help="household point pattern seed"))
    with timed("layers from the Xiacheng files") as t_build:
        b = read(path, "district_boundary").total_bounds
        bounds = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        metric = metric_crs_for(bounds)
        admin, mapping = admin_layer(path, metric)
        roads, water, line_counts = line_layers(path, metric)
        official = official_grids(path, metric)
        points = household_points(official, args.seed)
        outside = official[official["community"] == OUTSIDE_GRID]
        dedicated = gpd.GeoDataFrame({
            "name": outside["所属组织"].str.replace("文晖街道", "").str.replace(
                r"外网格区域\d*$", "", regex=True).to_numpy(),
            "kind": ["campus" if "大学" in n else "transport" for n in outside["所属组织"]],
        }, geometry=outside.geometry.to_numpy(), crs=metric)
        layers = {"admin_areas": admin, "roads": roads, "water": water,
                  "buildings": points.drop(columns="official_grid"),
                  "dedicated_areas": dedicated}
    with timed("layer contract (read_territory)") as t_read:
        territory = territory_via_contract("hangzhou_xiacheng", layers)
    with timed("partition") as t_part:
        result = run_engine(territory)
    figs = figures(result)
    checks = geometry_checks(result, PartitionParams().sliver_area_m2)
    metric_layers = territory.to_metric()
    villages = metric_layers["admin_areas"][metric_layers["admin_areas"]["level"] == "village"]
    grids = result.grids.to_crs(metric)
    table, stats = compare_counts(grids, official, mapping)
    with timed("boundary agreement"):
        agreement = boundary_agreement(grids, official, villages.to_crs(metric))
        agreement.update(line_shape(grids, official, villages.to_crs(metric),
                                    {k: v.to_crs(metric) for k, v in metric_layers.items()}))
    print_table("Hangzhou Xiacheng: engine figures", {
        k: v for k, v in figs.items() if k != "barrier_share_by_kind"})
    print_table("geometry checks", checks)
    print_table("grids per community: ours vs official", stats)
    print_table("boundary agreement", agreement)
    detail = Table(title="grids per community (official → ours)")
    for col in ("code", "community", "official", "ours"):
        detail.add_column(col, justify="right" if col in ("official", "ours") else "left")
    for row in table.itertuples(index=False):
        style = "" if row.official == row.ours else "yellow"
        detail.add_row(row.code, row.community, str(row.official), str(row.ours), style=style)
    console.print(detail)
    payload = {
        "data": "hangzhou_xiacheng (official grids 2018–2019; households synthetic)",
        "params": "PartitionParams() defaults",
        "household_seed": args.seed,
        "seconds": {"build_layers": t_build.seconds, "contract": t_read.seconds,
                    "partition": t_part.seconds},
        "contract": {"repairs": len(territory.repairs), "notes": territory.notes},
        "figures": figs, "geometry_checks": checks,
        "grid_counts": stats, "boundary_agreement": agreement,
        "per_community": table.to_dict(orient="records"),
        "data_built": {**line_counts, "household_points": len(points),
                       "households": int(points["households"].sum()),
                       "official_grids": len(official),
                       "dedicated_areas": dedicated["name"].tolist()},
        "code_mapping": mapping.to_dict(orient="records"),
    }
    write_results("real_hangzhou", payload)
    if args.out:
        write_geometry(args.out, {"grids": result.grids, "blocks": result.blocks,
                                  "official_grids": official, "villages": villages,
                                  **metric_layers})
    if args.png:
        render_png(args.png, result.grids, villages, barrier_lines(metric_layers, result.params),
                   metric_layers["buildings"], reference=official.to_crs(result.grids.crs),
                   title=f"Xiacheng: {len(result.grids)} grids (black) vs {len(official)} "
                         "official (red dashed)")
    return payload


if __name__ == "__main__":
    main()
