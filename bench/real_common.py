"""Shared parts of the real-data evaluations (bench/real_shanghai.py, bench/real_hangzhou.py).

Not run on its own. It turns built layers into a checked ``Territory`` through the
layer contract, runs the engine with a progress bar, checks the output geometry,
prints the figures as a table and writes them (never geometry) to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis.contract import Territory
from gis.io.territory import read_territory
from partitioning.engine import PartitionResult, partition_territory
from partitioning.params import PartitionParams

RESULTS = Path(__file__).parent / "results"
console = Console()

#: The figures of the issue, in the order they are printed.
FIGURES = ("runtime_s", "n_grids", "n_comprehensive", "n_dedicated", "n_forced",
           "in_range_share", "in_range_share_all", "barrier_boundary_share",
           "compactness_mean", "compactness_median", "coverage_share", "overlap_m2", "gap_m2",
           "noncontiguous", "households", "households_min", "households_max",
           "households_mean", "n_blocks", "blocks_cut_between_buildings", "relaxed_cuts",
           "n_villages", "barrier_inside_m", "barrier_inside_by_kind", "crossings_flagged",
           "crossings_unflagged", "inferred_streets", "inferred_streets_km")


def data_args(doc: str, default: Path, marker: str, place: str, argv: list[str] | None,
              more: Callable[[argparse.ArgumentParser], None] | None = None
              ) -> tuple[argparse.Namespace, Path]:
    """An evaluation's command line: the data folder (``default`` when not given; it must
    hold ``marker``), ``more`` arguments, ``--out`` and ``--png``; the arguments and the
    folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=default)
    if more is not None:
        more(parser)
    parser.add_argument("--out", type=Path, help="folder for grids.gpkg (not committed)")
    parser.add_argument("--png", type=Path, help="a picture of the grids (needs matplotlib)")
    args = parser.parse_args(argv)
    path = args.path.resolve()
    if not (path / marker).is_file():
        raise SystemExit(f"no {place} data at {path}: give the {default.name} folder "
                         "(see ../shared/data/real/README.md)")
    return args, path


def read_geojson(path: Path) -> gpd.GeoDataFrame:
    """A GeoJSON file of the extract, quietly: GDAL warns of repeated ids (tile pieces)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return gpd.read_file(path)


def territory_via_contract(name: str, layers: dict[str, gpd.GeoDataFrame]) -> Territory:
    """Write the layers to a GeoPackage in a temporary folder and read it back with
    ``read_territory``, so the data goes through the same checks as a user's."""
    with tempfile.TemporaryDirectory(prefix="gridmap-real-") as tmp:
        path = Path(tmp) / f"{name}.gpkg"
        for layer, gdf in layers.items():
            gdf.to_file(path, layer=layer, driver="GPKG")
        territory = read_territory(path)
    territory.name = name
    return territory


def run_engine(territory: Territory, params: PartitionParams | None = None) -> PartitionResult:
    """Partition with a rich progress bar."""
    with Progress(TextColumn("{task.description:<18}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("partition", total=1.0)

        def progress(stage: str, done: float) -> None:
            bar.update(task, description=stage, completed=done)

        return partition_territory(territory, params or PartitionParams(), progress=progress)


def geometry_checks(result: PartitionResult, sliver_m2: float) -> dict[str, Any]:
    """What would show an engine fault on real geometry: invalid, empty or
    non-polygonal grids, tiny parts, grids out of their village."""
    geoms = result.grids.geometry.to_numpy()
    parts, owner = shapely.get_parts(geoms, return_index=True)
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
    part_area = shapely.area(parts)
    tiny = part_area < sliver_m2
    return {
        "invalid": int((~shapely.is_valid(geoms)).sum()),
        "empty": int(shapely.is_empty(geoms).sum()),
        "not_polygonal": int((~polygonal).sum()),
        "grid_area_min_m2": round(float(shapely.area(geoms).min()), 1),
        "grid_area_median_m2": round(float(np.median(shapely.area(geoms))), 1),
        "parts_under_sliver_area": int(tiny.sum()),
        "grids_with_parts_under_sliver_area": int(np.unique(owner[tiny]).size),
        "holes": int(shapely.get_num_interior_rings(parts).sum()),
    }


def figures(result: PartitionResult) -> dict[str, Any]:
    report = result.report
    out = {key: report[key] for key in FIGURES if key in report}
    out["barrier_share_by_kind"] = report["barrier_share_by_kind"]
    flags = pd.Series([f for fl in result.grids["flags"] for f in fl], dtype=object)
    out["flags"] = {str(k): int(v) for k, v in flags.value_counts().items()}
    return out


#: How far (m) outward across a side the next grid is looked for (a district strip, a
#: road gap or a river bank between two grids is narrower than this).
PROBE_M = (3.0, 15.0)


def territory_edge_sides(grids: gpd.GeoDataFrame) -> dict[str, int]:
    """Sides of the 四至 that say 辖区边界: all, and the inner ones, whose edges (those
    facing that way; for a grid with none, those facing partly that way) all have another
    grid within PROBE_M outward: a side wrongly said to be on the territory's edge.
    Grids in a metric CRS."""
    from partitioning import boundaries

    geoms = grids.geometry.to_numpy()
    seg = boundaries.boundary_segments(geoms)
    outside = np.ones(len(seg), dtype=bool)
    tree = shapely.STRtree(geoms)
    owner = seg["grid"].to_numpy()
    for d in PROBE_M:
        pts = shapely.points(seg["mx"].to_numpy() + seg["nx"].to_numpy() * d,
                             seg["my"].to_numpy() + seg["ny"].to_numpy() * d)
        pi, gi = tree.query(pts, predicate="within")
        other = gi != owner[pi]
        outside[pi[other]] = False
    by_grid = seg.groupby("grid").indices
    total = inner = 0
    grids_inner = set()
    for g, text in enumerate(grids["boundary_text"].to_numpy()):
        for d, name in enumerate(boundaries.DIRECTIONS):
            if f"{name}至辖区边界" not in str(text):
                continue
            total += 1
            rows = by_grid.get(g, np.array([], dtype=int))
            side = rows[seg["direction"].to_numpy()[rows] == d]
            if not side.size:
                facing = np.cos(np.radians(seg["angle"].to_numpy()[rows]
                                           - boundaries.CENTRES[d]))
                side = rows[facing > 1e-9]
            if not outside[side].any():
                inner += 1
                grids_inner.add(g)
    return {"sides_territory_edge": total, "sides_territory_edge_inner": inner,
            "grids_with_an_inner_territory_edge_side": len(grids_inner)}


def print_table(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        table.add_row(key, json.dumps(value, ensure_ascii=False)
                      if isinstance(value, dict | list) else str(value))
    console.print(table)


def timed(label: str) -> _Timer:
    return _Timer(label)


class _Timer:
    def __init__(self, label: str) -> None:
        self.label = label
        self.seconds = 0.0

    def __enter__(self) -> _Timer:
        self.started = time.perf_counter()
        console.log(f"{self.label} …")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = round(time.perf_counter() - self.started, 2)
        console.log(f"{self.label}: {self.seconds} s")


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": f"{platform.machine()}, {platform.python_version()}", **payload}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    console.log(f"figures written to {path}")
    return path


def write_geometry(out: Path, layers: dict[str, gpd.GeoDataFrame]) -> Path:
    """Grids, blocks and inputs for looking at (``--out``); never committed."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "grids.gpkg"
    path.unlink(missing_ok=True)
    for layer, gdf in layers.items():
        gdf = gdf.copy()
        for col in gdf.columns:
            if col != gdf.geometry.name and gdf[col].map(lambda v: isinstance(v, list)).any():
                gdf[col] = gdf[col].map(lambda v: ",".join(map(str, v)))
        gdf.to_file(path, layer=layer, driver="GPKG")
    console.log(f"geometry written to {path}")
    return path


def render_png(path: Path, grids: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
               barriers: gpd.GeoDataFrame, points: gpd.GeoDataFrame,
               reference: gpd.GeoDataFrame | None = None, title: str = "") -> None:
    """A quick look at the grids (``--png``); needs matplotlib, which is not a
    dependency of the project."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        console.log("[yellow]--png needs matplotlib (pip install matplotlib); skipped")
        return
    fig, ax = plt.subplots(figsize=(14, 14))
    colours = np.random.default_rng(0).uniform(0.35, 0.95, size=(len(grids), 3))
    grids.plot(ax=ax, color=colours, edgecolor="none", alpha=0.8)
    if len(barriers):
        barriers.plot(ax=ax, color="dimgray", linewidth=0.4)
    if reference is not None:
        reference.boundary.plot(ax=ax, color="red", linewidth=0.9, linestyle="--")
    grids.boundary.plot(ax=ax, color="black", linewidth=1.0)
    villages.boundary.plot(ax=ax, color="blue", linewidth=2.2)
    if len(points):
        points.plot(ax=ax, color="black", markersize=1.5)
    ax.set_title(title)
    ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    console.log(f"picture written to {path}")
