"""The `gridmap` command line: import territories, manage the database, run the demo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis.errors import GridmapError

app = typer.Typer(
    help="gridmap: 网格化服务管理 — partition territory into grids, store plans, route events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: create or upgrade its schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="GRIDMAP_DATABASE_URL",
                 help="SQLAlchemy URL: sqlite:///file.sqlite (SpatiaLite) or "
                      "postgresql+psycopg://user@host/db (PostGIS)."),
]

LAYER_LABELS = {
    "admin_areas": "行政区划 admin areas",
    "roads": "道路 roads",
    "water": "水系 water",
    "ridges": "山脊 ridges",
    "railways": "铁路 railways",
    "buildings": "建筑/地址 buildings",
    "facilities": "设施 facilities",
    "dedicated_areas": "专属区域 dedicated areas",
}


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a GridmapError into a clear message and exit code 2, not a traceback."""
    try:
        yield
    except GridmapError as exc:
        err_console.print(f"[bold red]错误 error:[/] {exc.message}")
        raise typer.Exit(2) from exc


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("layer 图层")
    table.add_column("features 要素数", justify="right")
    for layer, label in LAYER_LABELS.items():
        if layer in counts:
            table.add_row(label, f"{counts[layer]:,}")
    return table


def _import(path: Path, database_url: str | None, *, name: str | None,
            field_map: list[str] | None, crs: list[str] | None,
            encoding: str | None) -> tuple[int, dict[str, int]]:
    from gis.database import make_engine, upgrade
    from gis.layers import parse_crs_option, parse_field_map, read_territory
    from gis.store import import_territory, layer_counts

    with console.status(f"读取 reading {path} ..."):
        territory = read_territory(path, field_map=parse_field_map(field_map),
                                   crs=parse_crs_option(crs), encoding=encoding)
    for note in territory.notes:
        console.print(f"[yellow]note:[/] {note}")
    if territory.repairs:
        console.print(f"[yellow]repaired {len(territory.repairs)} invalid geometries[/] "
                      "(make_valid), e.g. " + "; ".join(
                          f"{r.layer} row {r.row}: {r.reason}" for r in territory.repairs[:3]))
    engine = make_engine(database_url)
    upgrade(engine)
    counts = territory.counts()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("写入 writing", total=sum(counts.values()))
        territory_id = import_territory(
            engine, territory, name=name, source=str(path),
            progress=lambda _layer, n: bar.advance(task, n))
    return territory_id, layer_counts(engine, territory_id)


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
) -> None:
    """Import a territory's layers into the database in one transaction."""
    with user_errors():
        started = time.perf_counter()
        territory_id, counts = _import(territory, database_url, name=name, field_map=field_map,
                                       crs=crs, encoding=encoding)
        console.print(_counts_table(f"territory {territory_id} imported 导入完成", counts))
        console.print(f"took {time.perf_counter() - started:.1f} s")


@app.command()
def partition(
    territory: Annotated[Path, typer.Argument(
        help="A GeoPackage, a folder or .zip of layer files, or an .osm.pbf.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for grids.gpkg, blocks.gpkg, "
                                                    "report.json.")],
    min_households: Annotated[int, typer.Option("--min", help="Fewest households per grid.")]
    = 300,
    max_households: Annotated[int, typer.Option("--max", help="Most households per grid.")]
    = 500,
    target: Annotated[int, typer.Option(help="Households a grid should have.")] = 400,
    seed: Annotated[int, typer.Option(help="Random seed: same input and seed, same grids.")]
    = 0,
    workers: Annotated[int, typer.Option(
        help="Processes for the villages (0: the CPUs available, at most 2); the grids do "
             "not depend on it.")] = 1,
    field_map: Annotated[list[str] | None, typer.Option(
        "--field-map", help="Rename a column: SOURCE=TARGET. Repeatable.")] = None,
    crs: Annotated[list[str] | None, typer.Option(
        "--crs", help="Coordinate system of the input (see `gridmap import --help`).")]
    = None,
) -> None:
    """Cut a territory into grids of MIN–MAX households (files in, files out; no database)."""
    from gis.layers import parse_crs_option, parse_field_map, read_territory
    from partitioning.engine import partition_territory
    from partitioning.output import write_partition
    from partitioning.params import PartitionParams

    with user_errors():
        try:
            params = PartitionParams(min_households=min_households,
                                     max_households=max_households,
                                     target_households=target, seed=seed,
                                     workers=workers)
        except ValueError as exc:
            raise GridmapError(str(exc)) from exc
        with console.status(f"读取 reading {territory} ..."):
            terr = read_territory(territory, field_map=parse_field_map(field_map),
                                  crs=parse_crs_option(crs))
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("划分 partitioning", total=1.0)
            result = partition_territory(
                terr, params,
                progress=lambda stage, done: bar.update(task, completed=done,
                                                        description=f"划分 {stage}"))
        paths = write_partition(result, out)
        r = result.report
        table = Table(title="网格划分 partition")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for label, value in (
            ("grids 网格", f"{r['n_grids']:,} ({r['n_dedicated']} dedicated 专属)"),
            ("households 户数", f"{r['households']:,}"),
            (f"in {min_households}–{max_households} 在范围内",
             f"{r['in_range_share']:.1%} (forced, excluded: {r['n_forced']})"),
            ("boundary on barriers 沿道路河流", f"{r['barrier_boundary_share']:.1%}"),
            ("compactness (Polsby–Popper)", f"{r['compactness_mean']:.2f}"),
            ("coverage 覆盖", f"{r['coverage_share']:.4%}, overlap {r['overlap_m2']} m²"),
            ("flagged 标记", f"{len(r['flagged'])}"),
            ("runtime", f"{r['runtime_s']:.1f} s"),
        ):
            table.add_row(label, value)
        console.print(table)
        for key, path in paths.items():
            console.print(f"  {key}: {path}")


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Create the tables, or bring them up to date (Alembic migrations)."""
    from gis.database import make_engine, upgrade

    with user_errors():
        engine = make_engine(database_url)
        upgrade(engine)
        console.print(f"schema up to date: {engine.url.render_as_string(hide_password=True)}")


@app.command()
def demo(
    households: Annotated[int, typer.Option(
        help="Households in the demo district (10,000 to 1,500,000).")] = 60_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same district.")] = 7,
    out: Annotated[Path, typer.Option(help="Folder for the demo's files.")] = Path("demo"),
) -> None:
    """Generate the demo district, import it into the embedded database, say what to open."""
    from data.demo import generate

    with user_errors():
        if not 1_000 <= households <= 2_000_000:
            raise GridmapError("--households must be between 1,000 and 2,000,000")
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        territory = generate(households, seed, progress=True)
        gpkg = territory.write(out / "territory.gpkg")
        console.print(f"生成 generated {territory.households:,} households → {gpkg}")
        db_path = out / "gridmap.sqlite"
        for stale in out.glob("gridmap.sqlite*"):
            stale.unlink()
        url = f"sqlite:///{db_path}"
        territory_id, counts = _import(gpkg, url, name="白云示范区 demo", field_map=None,
                                       crs=None, encoding=None)
        console.print(_counts_table(f"territory {territory_id} in {db_path}", counts))
        from gis.layers import read_territory
        from partitioning.engine import partition_territory
        from partitioning.output import write_partition

        with console.status("划分网格 partitioning ..."):
            result = partition_territory(read_territory(gpkg))
            paths = write_partition(result, out / "plan")
        r = result.report
        console.print(f"划分 partitioned into {r['n_grids']} grids 网格: "
                      f"{r['in_range_share']:.1%} in {r['params']['min_households']}–"
                      f"{r['params']['max_households']} households (forced excluded: "
                      f"{r['n_forced']}), {r['barrier_boundary_share']:.0%} of boundaries "
                      f"on roads, rivers and admin lines")
        console.print(f"took {time.perf_counter() - started:.1f} s\n")
        console.print("[bold]What to open 打开:[/]")
        console.print(f"  • {gpkg}  — the demo district's layers (QGIS: drag the file in)")
        console.print(f"  • {paths['grids']}  — the grids with codes and 四至; "
                      f"{paths['report']} — the quality report")
        console.print(f"  • {db_path}  — the embedded SpatiaLite database (QGIS: "
                      "Layer ▸ Add SpatiaLite layer)")
        console.print(f"  • export GRIDMAP_DATABASE_URL={url}  — to use it with other "
                      "gridmap commands")


if __name__ == "__main__":  # pragma: no cover
    app()
