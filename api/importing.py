"""Import a territory's file into the store with its progress shown (`gridmap import`, the demo)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from api.console import Output

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


def counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("layer 图层")
    table.add_column("features 要素数", justify="right")
    for layer, label in LAYER_LABELS.items():
        if layer in counts:
            table.add_row(label, f"{counts[layer]:,}")
    return table


def import_file(out: Output, path: Path, database_url: str | None, *, name: str | None = None,
                field_map: list[str] | None = None, crs: list[str] | None = None,
                encoding: str | None = None) -> tuple[int, dict[str, int]]:
    """Read and check ``path``, migrate the store, write the territory in one transaction;
    its id and the features stored per layer."""
    from gis.database import make_engine, upgrade
    from gis.io.options import parse_crs_option, parse_field_map
    from gis.io.territory import read_territory
    from gis.store import import_territory, layer_counts

    with out.status(f"读取 reading {path} ..."):
        territory = read_territory(path, field_map=parse_field_map(field_map),
                                   crs=parse_crs_option(crs), encoding=encoding)
    for note in territory.notes:
        out.say(f"[yellow]note:[/] {note}")
    if territory.repairs:
        out.say(f"[yellow]repaired {len(territory.repairs)} invalid geometries[/] "
                "(make_valid), e.g. " + "; ".join(
                    f"{r.layer} row {r.row}: {r.reason}" for r in territory.repairs[:3]))
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        counts = territory.counts()
        with out.bar() as bar:
            task = bar.add_task("写入 writing", total=sum(counts.values()))
            territory_id = import_territory(
                engine, territory, name=name, source=str(path),
                progress=lambda _layer, n: bar.advance(task, n))
        return territory_id, layer_counts(engine, territory_id)
    finally:
        engine.dispose()
