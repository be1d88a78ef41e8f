"""Importing a territory: one transaction, equal counts on PostGIS and SpatiaLite, read-back."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from conftest import write_layers
from sqlalchemy import Engine, func, select

from gis.errors import GridmapError
from gis.io.territory import read_territory
from gis.models.base import Base
from gis.models.territories import Territory
from gis.store import delete_territory, import_territory, layer_counts, read_layer


def _table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables}


def test_import_stores_every_layer(engine: Engine, tiny: dict[str, gpd.GeoDataFrame],
                                   tmp_path: Path) -> None:
    territory = read_territory(write_layers(tiny, tmp_path, "GPKG"))
    tid = import_territory(engine, territory, name="小区域")
    assert layer_counts(engine, tid) == territory.counts() == {k: len(v) for k, v in tiny.items()}
    with engine.connect() as conn:
        row = conn.execute(select(Territory.name, Territory.metric_epsg)).one()
    assert tuple(row) == ("小区域", 4547)
    for layer, original in territory.layers.items():
        back = read_layer(engine, tid, layer)
        assert len(back) == len(original)
        assert all(shapely.equals_exact(back.geometry.to_numpy(), original.geometry.to_numpy(),
                                        tolerance=1e-9)), layer
    admin = read_layer(engine, tid, "admin_areas")
    assert list(admin["code"]) == ["440111", "440111001", "440111001001", "440111001201"]
    assert list(admin["kind"]) == [None, None, "urban", "rural"]
    buildings = read_layer(engine, tid, "buildings")
    assert buildings["households"].tolist()[:2] == [120, 80]
    assert buildings["households"].iloc[2] is None  # kept missing, to be estimated later
    roads = read_layer(engine, tid, "roads")
    assert roads["class"].tolist() == ["primary", "primary", "service"]


def test_a_failed_import_leaves_the_database_as_it_was(
        engine: Engine, tiny: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    territory = read_territory(write_layers(tiny, tmp_path, "GPKG"))
    import_territory(engine, territory)
    before = _table_counts(engine)
    # Break the last layer written after the checks, so the database itself refuses it
    # (households >= 0) once admin areas, barriers and the territory row are already sent.
    buildings = territory.layers["buildings"].copy()
    buildings.loc[buildings.index[-1], "households"] = -5
    territory.layers = {**{k: v for k, v in territory.layers.items() if k != "buildings"},
                        "buildings": buildings}
    with pytest.raises(Exception, match="households"):
        import_territory(engine, territory)
    assert _table_counts(engine) == before


def test_delete_territory(engine: Engine, tiny: dict[str, gpd.GeoDataFrame],
                          tmp_path: Path) -> None:
    territory = read_territory(write_layers(tiny, tmp_path, "GPKG"))
    keep = import_territory(engine, territory)
    gone = import_territory(engine, territory)
    delete_territory(engine, gone)
    assert layer_counts(engine, gone) == {}
    assert layer_counts(engine, keep) == territory.counts()
    with pytest.raises(GridmapError, match="no territory"):
        delete_territory(engine, gone)


def test_postgis_and_spatialite_agree(postgis_url: str, spatialite_url: str,
                                      tiny: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    from gis.database import make_engine

    territory = read_territory(write_layers(tiny, tmp_path, "GeoJSON"))
    results = []
    for url in (postgis_url, spatialite_url):
        eng = make_engine(url)
        tid = import_territory(eng, territory)
        results.append((layer_counts(eng, tid),
                        np.round(read_layer(eng, tid, "admin_areas").total_bounds, 9).tolist()))
        eng.dispose()
    assert results[0] == results[1]
