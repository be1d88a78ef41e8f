"""Shared fixtures: a throwaway PostGIS, fresh databases on both backends, a tiny territory."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import Engine, create_engine, text

sys.path.insert(0, str(Path(__file__).parent))

from browser import chromium_path
from pgcluster import ThrowawayCluster

from gis.database import make_engine, upgrade
from gis.settings import Settings

ARTIFACTS = Path(__file__).parent / "artifacts"
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgis_server() -> Iterator[str]:
    """URL (without database) of a PostGIS server: ``GRIDMAP_TEST_POSTGRES_URL`` or a throwaway
    cluster started for this test session and removed after it."""
    given = os.environ.get("GRIDMAP_TEST_POSTGRES_URL")
    if given:
        yield given.rstrip("/")
        return
    cluster = ThrowawayCluster().start()
    try:
        yield cluster.url("").rstrip("/")
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's, see tests/browser.py) shared by the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def postgis_template(postgis_server: str) -> str:
    """A migrated database used as the template of each test's database."""
    admin = create_engine(f"{postgis_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS gridmap_template"))
        conn.execute(text("CREATE DATABASE gridmap_template"))
    engine = make_engine(f"{postgis_server}/gridmap_template")
    upgrade(engine)
    engine.dispose()
    admin.dispose()
    return "gridmap_template"


@pytest.fixture(scope="session")
def spatialite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spatialite") / "template.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def new_postgis_database(server: str, template: str) -> str:
    """The URL of a new database on ``server``, a copy of the database ``template``."""
    name = f"gridmap_test_{os.getpid()}_{next(_counter)}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return f"{server}/{name}"


def fresh_database(request: pytest.FixtureRequest, backend: str, folder: Path) -> str:
    """The URL of a fresh, migrated database of ``backend`` (``"postgis"``, or
    ``"spatialite"``: a file in ``folder``), for a fixture wider than one test."""
    if backend == "postgis":
        return new_postgis_database(request.getfixturevalue("postgis_server"),
                                    request.getfixturevalue("postgis_template"))
    path = folder / "gridmap.sqlite"
    shutil.copy(request.getfixturevalue("spatialite_template"), path)
    return f"sqlite:///{path}"


@dataclass
class PublishedStore:
    """A store of one backend with a territory and its published plan (the start of the
    page modules' worlds)."""

    backend: str
    engine: Engine
    settings: Settings
    territory_id: int
    published: int


class FreshStore(NamedTuple):
    """A fresh database of one backend, a folder beside it, its engine and settings."""

    backend: str
    tmp: Path
    engine: Engine
    settings: Settings


@contextmanager
def fresh_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                name: str, **settings: Any) -> Iterator[FreshStore]:
    """A fresh database of backend ``request.param`` (and a folder ``<name>-<backend>``), with
    its engine (disposed when the block ends) and ``Settings(**settings)`` naming it; for a
    module-scoped fixture parametrized over the backends."""
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"{name}-{backend}")
    url = fresh_database(request, backend, tmp)
    engine = make_engine(url)
    try:
        yield FreshStore(backend, tmp, engine, Settings(database_url=url, **settings))
    finally:
        engine.dispose()


@pytest.fixture
def postgis_url(postgis_server: str, postgis_template: str) -> str:
    """A fresh, migrated PostGIS database for one test."""
    return new_postgis_database(postgis_server, postgis_template)


@pytest.fixture
def spatialite_url(spatialite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SpatiaLite file for one test."""
    path = tmp_path / "gridmap.sqlite"
    shutil.copy(spatialite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["postgis", "spatialite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend in turn."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def link_targets(header: str) -> dict[str, str]:
    """An RFC 8288 ``Link`` header of a paged list as relation → target (next, prev, first)."""
    out = {}
    for part in header.split(","):
        target, rel = part.split(";")
        out[rel.strip().removeprefix('rel="').removesuffix('"')] = target.strip()[1:-1]
    return out


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


# --- a tiny territory, written by hand so every field is known -------------------------------

ORIGIN = (113.30, 23.20)   # near Guangzhou, in the CGCS2000 zone of 114°E


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    """A box in degrees offset from ORIGIN by metres-ish units of 1e-3 degree."""
    ox, oy = ORIGIN
    return shapely.box(ox + x0 * 1e-3, oy + y0 * 1e-3, ox + x1 * 1e-3, oy + y1 * 1e-3)


def _line(*pts: tuple[float, float]) -> shapely.LineString:
    ox, oy = ORIGIN
    return shapely.LineString([(ox + x * 1e-3, oy + y * 1e-3) for x, y in pts])


def _pt(x: float, y: float) -> shapely.Point:
    ox, oy = ORIGIN
    return shapely.Point(ox + x * 1e-3, oy + y * 1e-3)


def tiny_layers() -> dict[str, gpd.GeoDataFrame]:
    """Two villages in one town in one district, with a road, a river and a few buildings."""
    crs = "EPSG:4326"
    admin = gpd.GeoDataFrame(
        {
            "code": ["440111", "440111001", "440111001001", "440111001201"],
            "name": ["白云示范区", "景泰街道", "景泰社区", "石马村"],
            "level": ["district", "town", "village", "village"],
            "parent_code": [None, "440111", "440111001", "440111001"],
            "kind": [None, None, "urban", "rural"],
        },
        geometry=[_box(0, 0, 20, 10), _box(0, 0, 20, 10), _box(0, 0, 10, 10),
                  _box(10, 0, 20, 10)],
        crs=crs,
    )
    roads = gpd.GeoDataFrame(
        {"class": ["primary", "主干路", "巷"], "name": ["白云大道", "机场路", None]},
        geometry=[_line((0, 5), (20, 5)), _line((5, 0), (5, 10)), _line((12, 0), (12, 5))],
        crs=crs,
    )
    water = gpd.GeoDataFrame({"name": ["白沙河", "石马湖"]},
                             geometry=[_line((15, 0), (15, 10)), _box(16, 6, 18, 8)], crs=crs)
    ridges = gpd.GeoDataFrame({"name": ["凤凰山脊"]}, geometry=[_line((18, 0), (19, 10))],
                              crs=crs)
    railways = gpd.GeoDataFrame({"name": ["京广铁路"]}, geometry=[_line((0, 9), (20, 9))],
                                crs=crs)
    buildings = gpd.GeoDataFrame(
        {"households": [120, 80, None, 1, 0], "population": [300, 200, None, 3, 0],
         "floors": [18, 11, 6, 2, 3], "use": ["residential", "住宅", "residential",
                                               "residential", "commercial"]},
        geometry=[_box(1, 1, 2, 2), _box(6, 1, 7, 2), _box(1, 6, 2, 7), _pt(13, 2),
                  _box(6, 6, 7, 7)],
        crs=crs,
    )
    facilities = gpd.GeoDataFrame({"kind": ["school", "hospital"],
                                   "name": ["景泰小学", "区人民医院"]},
                                  geometry=[_pt(3, 3), _box(7, 7, 8, 8)], crs=crs)
    dedicated = gpd.GeoDataFrame({"name": ["白云工业园"], "kind": ["industrial"]},
                                 geometry=[_box(11, 6, 14, 8)], crs=crs)
    return {"admin_areas": admin, "roads": roads, "water": water, "ridges": ridges,
            "railways": railways, "buildings": buildings, "facilities": facilities,
            "dedicated_areas": dedicated}


def write_layers(layers: dict[str, gpd.GeoDataFrame], folder: Path, driver: str) -> Path:
    """Write each layer as its own file (GeoJSON, ESRI Shapefile) or all in one GeoPackage."""
    folder.mkdir(parents=True, exist_ok=True)
    if driver == "GPKG":
        path = folder / "territory.gpkg"
        for name, gdf in layers.items():
            gdf.to_file(path, layer=name, driver="GPKG", engine="pyogrio")
        return path
    suffix = {"GeoJSON": ".geojson", "ESRI Shapefile": ".shp"}[driver]
    for name, gdf in layers.items():
        if driver == "ESRI Shapefile":  # one geometry type per Shapefile
            first = gdf.geometry.iloc[0].geom_type.removeprefix("Multi")
            gdf = gdf[gdf.geometry.geom_type.str.removeprefix("Multi") == first]
        gdf.to_file(folder / f"{name}{suffix}", driver=driver, engine="pyogrio")
    return folder


@pytest.fixture
def tiny() -> dict[str, gpd.GeoDataFrame]:
    return tiny_layers()


# ------------------------------------------------------------------------------------------
# The published demo plan (tests/demo_plan.py), for the modules that read it; imported
# here, below what demo_plan takes from this module.

from demo_plan import BACKENDS, DemoStore, demo_store  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from signin import client_for  # noqa: E402

from api.app import create_app  # noqa: E402


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[DemoStore]:
    """A store of each backend with the published demo plan, built once per module."""
    with demo_store(request, tmp_path_factory) as built:
        yield built


@pytest.fixture(scope="module")
def client(store: DemoStore) -> Iterator[TestClient]:
    """The service over that store."""
    with client_for(create_app(store.settings, store.engine)) as c:
        yield c
