"""The `gridmap` command line: import territories, manage the database, run the demo."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli_accounts import DatabaseOption, db_app, messages, user_app
from api.cli_overlays import barrier_lines, overlay_app
from api.console import EXIT_CODES_HELP, JsonOption, Output, QuietOption, one_line, user_errors
from api.demo_setup import MAX_HOUSEHOLDS as DEMO_MAX
from api.demo_setup import MIN_HOUSEHOLDS as DEMO_MIN
from api.importing import counts_table
from gis.band import MAX_HOUSEHOLDS, MIN_HOUSEHOLDS, TARGET_HOUSEHOLDS
from gis.errors import ComputeUnavailable, GridmapError

app = typer.Typer(
    help="gridmap: 网格化服务管理 — partition territory into grids, store plans, route events.",
    epilog=EXIT_CODES_HELP + " Shell completion: gridmap --install-completion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(overlay_app, name="overlay")
#: The files-in commands' (partition, redraw) short --field-map and --crs.
FieldMapOption = Annotated[list[str] | None, typer.Option(
    "--field-map", help="Rename a column: SOURCE=TARGET. Repeatable.")]
CrsOption = Annotated[list[str] | None, typer.Option(
    "--crs", help="Coordinate system of the input (see `gridmap import --help`).")]


def _figures_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


@app.command("import")
def import_command(
    territory: Annotated[Path, typer.Argument(
        help="A GeoPackage, a folder or .zip of layer files, or an .osm.pbf.")],
    database_url: DatabaseOption = None,
    name: Annotated[str | None, typer.Option(help="Name of the territory.")] = None,
    field_map: Annotated[list[str] | None, typer.Option(
        "--field-map", help="Rename a column: SOURCE=TARGET, e.g. 社区编码=code or "
                            "buildings.户数=households. Repeatable.")] = None,
    crs: Annotated[list[str] | None, typer.Option(
        "--crs", help="Coordinate system of the input where the files declare none or "
                      "declare it wrongly: wgs84, cgcs2000, gcj02, bd09, 2000sz, EPSG:4547, "
                      "or LAYER=CRS for one layer. Repeatable.")] = None,
    encoding: Annotated[str | None, typer.Option(
        help="Attribute encoding of Shapefiles without a .cpg, e.g. GBK.")] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import a territory's layers into the database in one transaction."""
    from api.importing import import_file

    out = Output(quiet=quiet, as_json=as_json)
    with user_errors():
        started = time.perf_counter()
        territory_id, counts = import_file(out, territory, database_url, name=name,
                                           field_map=field_map, crs=crs, encoding=encoding)
        seconds = time.perf_counter() - started
        out.result({"territory_id": territory_id, "layers": counts,
                    "seconds": round(seconds, 1)},
                   counts_table(f"territory {territory_id} imported 导入完成", counts))
        out.say(f"took {seconds:.1f} s")


@app.command()
def partition(
    territory: Annotated[Path, typer.Argument(
        help="A GeoPackage, a folder or .zip of layer files, or an .osm.pbf.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for grids.gpkg, blocks.gpkg, "
                                                    "report.json.")],
    min_households: Annotated[int, typer.Option("--min", help="Fewest households per grid.")]
    = MIN_HOUSEHOLDS,
    max_households: Annotated[int, typer.Option("--max", help="Most households per grid.")]
    = MAX_HOUSEHOLDS,
    target: Annotated[int, typer.Option(help="Households a grid should have.")]
    = TARGET_HOUSEHOLDS,
    seed: Annotated[int, typer.Option(help="Random seed: same input and seed, same grids.")]
    = 0,
    workers: Annotated[int, typer.Option(
        help="Worker processes of the LocalCluster started for the run (0: one per CPU); "
             "the grids do not depend on it.")] = 0,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", envvar="GRIDMAP_DASK_SCHEDULER",
        help="Address of a running Dask scheduler (tcp://host:8786) to compute on, instead "
             "of a LocalCluster on this machine (docs/scale.md).")] = None,
    field_map: FieldMapOption = None,
    crs: CrsOption = None,
    estimate: Annotated[str, typer.Option(
        "--estimate", help="Footprints without a household count: residential (estimate "
                           "those residential by tag, land use or the rule for untagged "
                           "buildings), all (every one not tagged otherwise), off (count 0).")]
    = "residential",
    min_dwelling: Annotated[float, typer.Option(
        "--min-dwelling", help="Smallest dwelling (m²): an estimate never exceeds floor "
                               "area ÷ this.")] = 50.0,
    barrier_overlay: Annotated[list[str] | None, typer.Option(
        "--barrier-overlay", help="DEPARTMENT=FILE: a department's units (a polygon layer "
                                  "as `gridmap overlay add` takes) whose boundaries grids "
                                  "must not cross, like a river. Repeatable.")] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Cut a territory into grids of MIN–MAX households (files in, files out; no database).

    The territory is cut into towns (a big town into groups of its villages), partitioned
    side by side on a Dask cluster (a LocalCluster of worker processes on this machine, or
    the one at --scheduler), and joined."""
    from gis.io.options import parse_crs_option, parse_field_map
    from gis.io.territory import read_territory
    from gis.overlays import BARRIER_LAYER
    from partitioning.cluster import partition_on_cluster, shared_compute
    from partitioning.output import write_partition
    from partitioning.params import PartitionParams
    from partitioning.towns import split_territory

    view = Output(quiet=quiet, as_json=as_json)
    with user_errors():
        if workers < 0:
            raise GridmapError("--workers must be 0 (one per CPU) or more")
        try:
            params = PartitionParams(min_households=min_households,
                                     max_households=max_households,
                                     target_households=target, seed=seed,
                                     estimate=estimate, min_dwelling_m2=min_dwelling)
        except ValueError as exc:
            raise GridmapError(str(exc)) from exc
        barriers = barrier_lines(barrier_overlay) if barrier_overlay else None
        compute = shared_compute(scheduler or "", workers)
        # The cluster starts (or is reached) while the territory is read.
        reached: list[BaseException] = []

        def start() -> None:
            try:
                compute.client()
            except Exception as exc:
                reached.append(exc)

        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        with view.status(f"读取 reading {territory} ..."):
            terr = read_territory(territory, field_map=parse_field_map(field_map),
                                  crs=parse_crs_option(crs))
            if barriers is not None:
                terr.layers[BARRIER_LAYER] = barriers
            # Only planned here: each piece is cut as it is sent to a worker.
            split = split_territory(terr, lazy=True)
        starter.join()
        if reached and isinstance(reached[0], GridmapError):
            raise reached[0]            # already says which cluster and what to do
        if reached:
            raise ComputeUnavailable(
                f"计算集群不可用 the Dask cluster ({scheduler or 'LocalCluster'}) could not be "
                f"reached: {one_line(str(reached[0]) or type(reached[0]).__name__)}")
        client = compute.client()
        n_workers = len(client.scheduler_info().get("workers", {}))
        with view.bar() as bar:
            task = bar.add_task(f"划分 partitioning on {n_workers} workers",
                                total=len(split))
            result = partition_on_cluster(
                client, split, params,
                progress=lambda key, _share, done, _total: bar.update(
                    task, completed=done, description=f"划分 town {key}"))
        # The cluster is not needed any more: it stops while the files are written.
        closing = threading.Thread(target=compute.close, daemon=True)
        closing.start()
        paths = write_partition(result, out)
        closing.join()
        r = result.report
        rows = [
            ("grids 网格", f"{r['n_grids']:,} ({r['n_dedicated']} dedicated 专属)"),
            ("households 户数", f"{r['households']:,}"),
            ("estimated 估算户数", _estimate_line(r)),
            (f"in {min_households}–{max_households} 在范围内",
             f"{r['in_range_share']:.1%} (forced, excluded: {r['n_forced']})"),
            ("boundary on barriers 沿道路河流", f"{r['barrier_boundary_share']:.1%}"),
            ("compactness (Polsby–Popper)", f"{r['compactness_mean']:.2f}"),
            ("coverage 覆盖", f"{r['coverage_share']:.4%}, overlap {r['overlap_m2']} m²"),
            ("flagged 标记", f"{len(r['flagged'])}"),
            ("towns 街道/镇", f"{len(split)} pieces on {n_workers} workers "
                              f"(longest {max(p['seconds'] for p in r['pieces']):.1f} s)"),
            ("runtime", f"{r['runtime_s']:.1f} s"),
        ]
        figures: dict[str, Any] = {k: r[k] for k in (
            "n_grids", "n_dedicated", "households", "households_estimated", "in_range_share",
            "n_forced", "barrier_boundary_share", "compactness_mean", "coverage_share",
            "overlap_m2", "runtime_s") if k in r}
        figures.update(flagged=len(r["flagged"]), towns=len(split), workers=n_workers,
                       min_households=min_households, max_households=max_households,
                       files={k: str(v) for k, v in paths.items()})
        view.result(figures, _figures_table("网格划分 partition", rows),
                    *(f"  {key}: {path}" for key, path in paths.items()))


def _estimate_line(report: dict[str, Any]) -> str:
    """How many households are estimates, in Chinese and English."""
    est, total = int(report.get("households_estimated", 0)), int(report["households"])
    n = int(report.get("households_estimated_buildings", 0))
    if not est:
        how = "未估算 (none)" if report.get("estimate") == "off" else "0"
        return f"{how}: 户数均为数据给出 all households given"
    return (f"其中 {est:,} 户为估算（{n:,} 栋无户数的建筑，{est / total:.1%}，最大单栋 "
            f"{int(report.get('largest_estimate', 0)):,} 户）; {est:,} households estimated "
            f"from {n:,} footprints without a count ({est / total:.1%}; largest "
            f"{int(report.get('largest_estimate', 0)):,})")


@app.command()
def redraw(
    old: Annotated[Path, typer.Argument(
        help="The plan to redraw: the folder `gridmap partition --out` wrote (grids.gpkg, "
             "blocks.gpkg).")],
    territory: Annotated[Path, typer.Argument(
        help="The new data: the same territory's layers with the new buildings/households.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the redrawn grids.gpkg, "
                                                    "blocks.gpkg, report.json.")],
    field_map: FieldMapOption = None,
    crs: CrsOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Redraw a plan stably for new household data: keep the grids that still fit, redo
    only the neighbourhoods that break (files in, files out; no database)."""
    import json

    import geopandas as gpd
    import pyogrio

    from gis.io.options import parse_crs_option, parse_field_map
    from gis.io.territory import read_territory
    from partitioning.output import GRID_COLUMNS
    from partitioning.redraw import redraw_plan

    view = Output(quiet=quiet, as_json=as_json)
    with user_errors():
        for name in ("grids.gpkg", "blocks.gpkg"):
            if not (old / name).exists():
                raise GridmapError(f"{old / name} not found: give the folder `gridmap "
                                   "partition --out` wrote")
        grids = gpd.read_file(old / "grids.gpkg", engine="pyogrio")
        blocks = gpd.read_file(old / "blocks.gpkg", engine="pyogrio").rename(
            columns={"block_id": "block_no"})
        if "block_no" not in blocks:
            blocks["block_no"] = range(len(blocks))
        grids["flags"] = [[f for f in str(v or "").split(",") if f] for v in grids["flags"]]
        with view.status(f"读取 reading {territory} ..."):
            terr = read_territory(territory, field_map=parse_field_map(field_map),
                                  crs=parse_crs_option(crs))
        with view.status("重划 redrawing ..."):
            result = redraw_plan(blocks, grids, terr)
        admin = terr.layers["admin_areas"]
        names = dict(zip(admin["code"], admin["name"], strict=True))
        table = result.grids.assign(village_name=result.grids["village_code"].map(names))
        table["flags"] = [",".join(f) for f in table["flags"]]
        out.mkdir(parents=True, exist_ok=True)
        for name in ("grids.gpkg", "blocks.gpkg"):
            (out / name).unlink(missing_ok=True)
        table = table.reindex(columns=[*GRID_COLUMNS, "geometry"])   # (figures redraw keeps)
        table.to_file(out / "grids.gpkg", layer="grids", driver="GPKG", engine="pyogrio")
        result.blocks.rename(columns={"block_no": "block_id"}).to_file(
            out / "blocks.gpkg", layer="blocks", driver="GPKG", engine="pyogrio")
        # The blocks are the old plan's, so are the streets found between its buildings.
        if "inferred_streets" in {str(n) for n, _ in pyogrio.list_layers(old / "blocks.gpkg")}:
            gpd.read_file(old / "blocks.gpkg", layer="inferred_streets",
                          engine="pyogrio").to_file(out / "blocks.gpkg",
                                                    layer="inferred_streets", driver="GPKG",
                                                    engine="pyogrio")
        (out / "report.json").write_text(json.dumps(result.report, ensure_ascii=False,
                                                    indent=2), encoding="utf-8")
        r = result.report["redraw"]
        view.result(
            {**{k: r[k] for k in ("grids_before", "grids_after", "grids_kept", "kept_share",
                                  "households_moved", "in_range_share")},
             **{k: len(r[k]) for k in ("grids_changed", "grids_new", "grids_retired")},
             "out": str(out)},
            f"网格 grids: {r['grids_before']} → {r['grids_after']}; 保留 kept {r['grids_kept']} "
            f"({r['kept_share']:.1%}), 改变 changed {len(r['grids_changed'])}, 新增 new "
            f"{len(r['grids_new'])}, 撤销 retired {len(r['grids_retired'])}; 换网格户数 "
            f"households moved {r['households_moved']:,}; in range {r['in_range_share']:.1%}",
            f"  {out}")


@app.command()
def route(
    events: Annotated[Path, typer.Argument(
        help="Events: a CSV with longitude/latitude columns (every other column is kept), or "
             "GeoJSON (any vector file) of points.")],
    grids: Annotated[Path, typer.Option(
        "--grids", help="The grids: grids.gpkg from `gridmap partition`, or any polygon layer "
                        "with a grid code (GeoPackage, GeoJSON, Shapefile).")],
    out: Annotated[Path, typer.Option("--out", help="Output: .csv or .geojson, or - for CSV "
                                                    "on stdout (the summary then goes to "
                                                    "stderr).")],
    coord_sys: Annotated[str | None, typer.Option(
        "--coord-sys", help="Coordinate system of the events (required): wgs84, cgcs2000, "
                            "gcj02 (AMap/Tencent), bd09 (Baidu), 2000sz, EPSG:4547, ...")]
    = None,
    layer: Annotated[str | None, typer.Option(
        help="Layer of the grids file (when it has several).")] = None,
    code_field: Annotated[str, typer.Option(
        "--code-field", help="Field of the grids holding the grid code, e.g. 网格编号.")]
    = "code",
    field_map: Annotated[list[str] | None, typer.Option(
        "--field-map", help="Rename a field of the grids: SOURCE=TARGET, e.g. 所属组织=name "
                            "(targets used: name, village_code, village_name, town_code, "
                            "town_name). Repeatable.")] = None,
    grids_crs: Annotated[str | None, typer.Option(
        "--grids-crs", help="Coordinate system of the grids when the file declares none.")]
    = None,
    lon: Annotated[str | None, typer.Option(
        "--lon", help="CSV column of the longitude / x (default: lon, lng, longitude, x, "
                      "经度).")] = None,
    lat: Annotated[str | None, typer.Option(
        "--lat", help="CSV column of the latitude / y (default: lat, latitude, y, 纬度).")]
    = None,
    encoding: Annotated[str | None, typer.Option(
        help="Encoding of the CSV (default: UTF-8 or GBK, detected).")] = None,
    near_m: Annotated[float, typer.Option(
        "--near-m", help="Report a second candidate grid within this many metres.")] = 10.0,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Route located events to the grid that owns each point (files in, files out)."""
    from events.files import output_kind, read_events, read_grids, routed_table, write_routed
    from events.route_input import points_to_wgs84
    from events.router import GridRouter, Routed
    from gis.errors import CoordinateError
    from gis.io.options import parse_field_map

    view = Output(quiet=quiet, as_json=as_json)
    with user_errors():
        if coord_sys is None:
            raise GridmapError(
                "--coord-sys is required: say which coordinate system the events are in, e.g. "
                "--coord-sys gcj02 for AMap/Tencent coordinates, bd09 for Baidu, wgs84 for "
                "GPS (also cgcs2000, 2000sz, EPSG:4547). There is no default: an unconverted "
                "GCJ-02 point lies about 500 m off, in the wrong grid.")
        if not near_m >= 0:
            raise GridmapError("--near-m must be 0 or more metres")
        to_stdout = str(out) == "-"
        if to_stdout and as_json:
            raise GridmapError("--out - and --json both write to stdout: choose one")
        if not to_stdout:
            output_kind(out)
        started = time.perf_counter()
        with view.status(f"读取 reading {events} and {grids} ..."):
            table = read_events(events, lon=lon, lat=lat, encoding=encoding)
            grid_frame = read_grids(grids, layer=layer, code_field=code_field,
                                    field_map=parse_field_map(field_map), crs=grids_crs)
            try:
                x, y = points_to_wgs84(table.x, table.y, coord_sys,
                                       row_numbers=table.row_numbers)
            except CoordinateError as exc:
                raise GridmapError(f"{events}: {exc.message} (rows are {table.row_label})"
                                   ) from exc
        with view.status(f"建立索引 indexing {len(grid_frame):,} grids ..."):
            router = GridRouter.from_grids(grid_frame, near_m=near_m)
        n = len(x)
        parts = []
        with view.bar() as bar:
            task = bar.add_task("落格 routing", total=n)
            step = 100_000
            for start in range(0, n, step):
                parts.append(router.route(x[start:start + step], y[start:start + step]))
                bar.advance(task, min(step, n - start))
        routed = Routed.concat(parts) if parts else router.route([], [])
        if to_stdout:     # UTF-8 without a BOM: the next command of the pipe reads it
            routed_table(table, router, routed).to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        else:
            with view.status(f"写入 writing {out} ..."):
                write_routed(routed_table(table, router, routed), x, y, out)
        outside = int((routed.index < 0).sum())
        near = int((routed.other >= 0).sum())
        on_edge = sum(1 for f in routed.flags if "on_edge" in f)
        summary = Table(title=f"事件落格 routed to {len(grid_frame):,} grids")
        summary.add_column("events 事件")
        summary.add_column("count", justify="right")
        summary.add_column("share", justify="right")
        for label, count in (("routed 已落格", n - outside), ("outside 格外", outside),
                             ("near boundary 临界", near), ("on an edge 压线", on_edge),
                             ("total 合计", n)):
            summary.add_row(label, f"{count:,}", f"{count / n:.1%}" if n else "–")
        seconds = time.perf_counter() - started
        if to_stdout:     # stdout holds the events: the summary is a message
            view.say(summary)
            view.say(f"took {seconds:.1f} s")
            return
        view.result({"events": n, "routed": n - outside, "outside": outside,
                     "near_boundary": near, "on_edge": on_edge, "grids": len(grid_frame),
                     "out": str(out), "seconds": round(seconds, 1)},
                    summary, f"  {out}  (took {seconds:.1f} s)")


@app.command()
def geocode(
    addresses: Annotated[Path, typer.Argument(
        help="A CSV (UTF-8 or GBK) with an address column; every other column is kept.")],
    territory: Annotated[Path, typer.Option(
        "--territory", help="The territory whose address points, roads and areas place the "
                            "addresses (as for `gridmap import`: GeoPackage, folder, zip, "
                            "OSM PBF).")],
    out: Annotated[Path, typer.Option("--out", help="Output CSV: the input's columns and "
                                                    "level, confidence, x, y, area.")],
    column: Annotated[str | None, typer.Option(
        "--column", help="The address column (default: address, 地址, addr, 详细地址).")]
    = None,
    coord_sys: Annotated[str, typer.Option(
        "--coord-sys", help="Coordinate system of the output points: wgs84, cgcs2000, gcj02, "
                            "bd09, 2000sz, EPSG:xxxx.")] = "wgs84",
    encoding: Annotated[str | None, typer.Option(
        help="Encoding of the CSV (default: UTF-8 or GBK, detected).")] = None,
    crs: Annotated[list[str] | None, typer.Option(
        "--crs", help="Coordinate system of the territory's files (see `gridmap import`).")]
    = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Geocode a file of addresses against a territory's own data (nothing leaves the
    machine)."""
    import pandas as pd

    from events.files import event_frame
    from events.geocode import LEVELS, AddressIndex
    from gis import crs as crsmod
    from gis.io.options import parse_crs_option
    from gis.io.territory import read_territory

    view = Output(quiet=quiet, as_json=as_json)
    with user_errors():
        if not out.name.lower().endswith(".csv"):
            raise GridmapError(f"--out {out}: write a .csv")
        crsmod.parse_coord_sys(coord_sys)
        started = time.perf_counter()
        with view.status(f"读取 reading {addresses} and {territory} ..."):
            table = event_frame(addresses.read_bytes(), addresses.name, encoding=encoding)
            names = [column] if column else ["address", "地址", "addr", "详细地址"]
            found = next((c for c in names if c in table.columns), None)
            if found is None:
                raise GridmapError(f"{addresses}: no address column (looked for "
                                   f"{', '.join(names)}; found {', '.join(table.columns)}): "
                                   "name it with --column")
            terr = read_territory(territory, crs=parse_crs_option(crs))
        with view.status("建立地址索引 indexing the addresses ..."):
            index = AddressIndex(terr.layers, terr.metric_crs)
        with view.status(f"地址匹配 geocoding {len(table):,} addresses ..."):
            texts = table[found].fillna("").astype(str).tolist()
            answers = index.to(index.geocode_many(texts), coord_sys)
        result = table.assign(
            level=[a["level"] for a in answers], confidence=[a["confidence"] for a in answers],
            x=[a["x"] for a in answers], y=[a["y"] for a in answers],
            coord_sys=coord_sys, area_code=[a["area_code"] for a in answers],
            area_name=[a["area_name"] for a in answers])
        out.parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(out, index=False, encoding="utf-8-sig")
        counts = pd.Series([a["level"] for a in answers]).value_counts()
        summary = Table(title=f"地址匹配 geocoded against {index.size:,} address points")
        summary.add_column("level 精度")
        summary.add_column("count", justify="right")
        for level in LEVELS:
            summary.add_row(level, f"{int(counts.get(level, 0)):,}")
        seconds = time.perf_counter() - started
        view.result({"addresses": len(table), "address_points": index.size,
                     "levels": {level: int(counts.get(level, 0)) for level in LEVELS},
                     "out": str(out), "seconds": round(seconds, 1)},
                    summary, f"  {out}  (took {seconds:.1f} s)")


@app.command()
def poster(
    plan_id: Annotated[int, typer.Argument(help="The plan's id.")],
    area_code: Annotated[str, typer.Argument(
        help="Code of a town/street (街道/镇) or village/community (社区/村) with grids.")],
    size: Annotated[str, typer.Option(help="Paper: A3 or A0.")] = "A3",
    format: Annotated[str, typer.Option(
        "--format", help="pdf (vector, every page) or png (the first page).")] = "pdf",
    out: Annotated[Path | None, typer.Option(
        help="Output file (default: the poster's Chinese name, in this folder).")] = None,
    overlay: Annotated[str | None, typer.Option(
        "--overlay", help="Draw this department's units too (公安, 城管, …).")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Render the partition poster (网格划分图) of a town or community as PDF or PNG."""
    from gis.database import make_engine
    from gis.settings import get_settings
    from maps.poster import PaperSize, PosterFormat, make_poster

    with user_errors():
        if size.upper() not in PaperSize.__members__:
            raise GridmapError(f"unknown paper size {size!r}; use A3 or A0")
        if format.lower() not in PosterFormat.__members__:
            raise GridmapError(f"unknown format {format!r}; use pdf or png")
        started = time.perf_counter()
        made = make_poster(make_engine(database_url), plan_id, area_code,
                           PaperSize(size.upper()), PosterFormat(format.lower()),
                           zone=get_settings().timezone, overlay=overlay)
        path = out or Path(made.filename)
        path.write_bytes(made.content)
        messages.result({}, f"{path}  ({len(made.content) / 1e6:.1f} MB, "
                            f"took {time.perf_counter() - started:.1f} s)")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for all).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        help="Server processes (each drives its own jobs; the cluster computes them).")] = 1,
    database_url: DatabaseOption = None,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log",
        help="Log every request (off: less CPU per request under heavy load).")] = True,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", envvar="GRIDMAP_DASK_SCHEDULER",
        help="Address of a running Dask scheduler (tcp://host:8786) the jobs compute on; "
             "default: a LocalCluster of worker processes sized to this machine "
             "(GRIDMAP_DASK_WORKERS).")] = None,
) -> None:
    """Run the HTTP service (FastAPI on uvicorn); the schema is migrated first."""
    from api.serving import serve_http

    with user_errors():
        if not 1 <= workers <= 64:
            raise GridmapError("--workers must be between 1 and 64")
        serve_http(messages, host, port, workers, database_url, access_log, scheduler)


@app.command()
def demo(
    households: Annotated[int, typer.Option(
        help=f"Households in the demo district ({DEMO_MIN:,} to {DEMO_MAX:,}; per district "
             "with --districts).")] = 60_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same district.")] = 7,
    out: Annotated[Path, typer.Option(help="Folder for the demo's files.")] = Path("demo"),
    serve_after: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="Serve the published plan over HTTP afterwards.")] = True,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    events: Annotated[int, typer.Option(
        help="Events of the last three days for the command centre (0: none).")] = 400,
    districts: Annotated[int, typer.Option(
        help="Districts in the territory: more than 1 makes a multi-district territory "
             "(a city or province), each district of --households households, partitioned "
             "as one territory.")] = 1,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Generate the demo district, import and partition it, publish the plan, report some
    events and serve it."""
    from api.demo_setup import make_demo
    from api.serving import serve_http

    view = Output(quiet=quiet, as_json=as_json)
    with user_errors():
        made = make_demo(view, out, households=households, seed=seed, events=events,
                         districts=districts)
    base = f"http://{host}:{port}"
    lines = made.lines(base if serve_after else None)
    view.result({**made.figures(), "url": base if serve_after else None}, *lines)
    if serve_after:
        with user_errors():
            serve_http(view, host, port, 1, made.database_url)


if __name__ == "__main__":  # pragma: no cover (the console script is api/script.py)
    app()
