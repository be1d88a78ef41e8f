"""A published demo plan in a store of each backend, shared by the export and OGC API tests.

The store holds two territories, uploaded through the API: the small demo district
(partitioned as a partition job does it, then published, with grid workers on a few
grids) and the hand-written tiny territory, which has no plan (so it has admin areas
but no published grids). Tests only read the store, so it is built once per module
and backend.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import fresh_store, tiny_layers, write_layers
from fastapi.testclient import TestClient
from signin import client_for
from sqlalchemy import Engine, insert

from api.app import create_app
from data.demo import DemoTerritory, generate
from gis.models.base import SRID
from gis.models.staff import Staff, StaffGrid
from gis.plans import read_grids, write_plan
from gis.settings import Settings
from gis.store import load_territory, read_layer
from partitioning.engine import partition_territory
from partitioning.output import grid_table

#: WGS84 longitude/latitude as files (EPSG) and the OGC API (CRS84) name it.
LON_LAT = ("EPSG:4326", "OGC:CRS84")
DEMO_HOUSEHOLDS = 10_000
DEMO_SEED = 5
DEMO_NAME = "白云示范区"
#: Page size of the OGC API in these tests: small, so that paging is exercised.
PAGE_LIMIT, PAGE_LIMIT_MAX = 7, 10


@dataclass
class DemoStore:
    """Where the demo plan is and what it should contain."""

    backend: str
    url: str
    engine: Engine
    settings: Settings
    territory_id: int
    tiny_territory_id: int
    plan_id: int
    version: int
    metric_epsg: int
    #: The stored grids (WGS84, by code) as gis.plans reads them.
    grids: gpd.GeoDataFrame
    #: The demo's admin areas as uploaded (code → name, code → parent code).
    area_names: dict[str, str]
    area_parents: dict[str, str]
    #: Grid code → the grid workers' names as the exports should list them.
    workers: dict[str, str]

    def village_of(self, code: str) -> tuple[str, str, str, str]:
        """(village name, village code, town name, town code) of a grid, from the upload."""
        village = str(self.grids.set_index("code").loc[code, "village_code"])
        town = self.area_parents[village]
        return self.area_names[village], village, self.area_names[town], town


def _upload(client: TestClient, path: Path, name: str) -> int:
    with path.open("rb") as fh:
        response = client.post("/territories", files={"files": (path.name, fh)},
                               data={"name": name})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _add_staff(engine: Engine, territory_id: int, codes: list[str]) -> dict[str, str]:
    """Two workers on the first grid, one on the second, a grid head (not a worker) on the
    third; returns what the exports should show per grid."""
    people = [("王芳", "grid_worker", [codes[0]]), ("李强", "grid_worker", [codes[0], codes[1]]),
              ("张伟", "grid_head", [codes[2]])]
    with engine.begin() as conn:
        for name, role, grids in people:
            staff_id = conn.execute(insert(Staff).values(
                territory_id=territory_id, name=name, role=role, phone="13800000000",
                area_code=codes[0][:12]).returning(Staff.id)).scalar_one()
            for code in grids:
                conn.execute(insert(StaffGrid).values(staff_id=staff_id, grid_code=code))
    return {codes[0]: "李强、王芳", codes[1]: "李强"}


@functools.cache
def _demo() -> DemoTerritory:
    return generate(DEMO_HOUSEHOLDS, DEMO_SEED)


#: The backends each test module runs on (the ``params`` of its store fixture).
BACKENDS = ["postgis", "spatialite"]


@contextmanager
def demo_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[DemoStore]:
    """A fresh store of backend ``request.param`` with the published demo plan (see the
    module doc); for a module-scoped fixture parametrized over :data:`BACKENDS`."""
    with fresh_store(request, tmp_path_factory, "store", page_limit=PAGE_LIMIT,
                     page_limit_max=PAGE_LIMIT_MAX) as (backend, tmp, engine, settings):
        with client_for(create_app(settings, engine)) as client:
            territory_id = _upload(client, _demo().write(tmp / "demo.gpkg"), DEMO_NAME)
            tiny_id = _upload(client, write_layers(tiny_layers(), tmp / "tiny", "GPKG"),
                              "小区域")
            territory = load_territory(engine, territory_id)
            result = partition_territory(territory)
            blocks = result.blocks[["village_code", "households", "population", "grid_code",
                                    "geometry"]].to_crs(SRID)
            plan_id = write_plan(engine, territory_id, grid_table(result), blocks,
                                 result.report, {"seed": 0}, note="test plan",
                                 lines=result.streets)
            published = client.post(f"/plans/{plan_id}/publish")
            assert published.status_code == 200, published.text
            metric_epsg = int(client.get(f"/territories/{territory_id}").json()["metric_epsg"])
        grids = read_grids(engine, plan_id)
        assert len(grids) > PAGE_LIMIT_MAX * 2, "the demo must need several pages"
        assert any(len(f) > 1 for f in grids["flags"]), "some grid must carry several flags"
        assert set(grids["kind"]) == {"comprehensive", "dedicated"}
        assert any("crosses_barrier" in f for f in grids["flags"]), \
            "some grid must cross a river"
        assert (grids["barrier_inside_m"] > 0).any()
        admin = read_layer(engine, territory_id, "admin_areas")
        yield DemoStore(
            backend=backend, url=settings.database_url, engine=engine, settings=settings,
            territory_id=territory_id, tiny_territory_id=tiny_id, plan_id=plan_id,
            version=int(published.json()["version"]), metric_epsg=metric_epsg, grids=grids,
            area_names=dict(zip(admin["code"], admin["name"], strict=True)),
            area_parents={c: p for c, p in zip(admin["code"], admin["parent_code"],
                                               strict=True) if p},
            workers=_add_staff(engine, territory_id, list(grids["code"])))


def _text(value: Any) -> str:
    """A text cell as a string: missing (Shapefile, CSV) reads back as empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def assert_matches_plan(frame: gpd.GeoDataFrame, store: DemoStore, *,
                        tolerance: float = 1e-9, columns: dict[str, str] | None = None,
                        workers: bool = True) -> None:
    """``frame`` (read back from an export or the OGC API) holds exactly the plan's grids.

    Same codes, households and population; names, 四至, village and town (name and
    code, from the upload) and grid workers intact; flags as comma text; each outline
    the stored one to within ``tolerance`` (symmetric difference over area, in the
    territory's metric CRS). ``columns`` renames the frame's columns first.
    """
    frame = frame.rename(columns=columns or {})
    assert frame.crs is not None and frame.crs.to_string() in LON_LAT
    assert len(frame) == len(store.grids)
    got = frame.set_index("code").sort_index()
    want = store.grids.set_index("code").sort_index()
    assert list(got.index) == list(want.index)
    assert (got["households"].astype(int) == want["households"]).all()
    assert (got["population"].astype(int) == want["population"]).all()
    assert (got["name"] == want["name"]).all()
    assert (got["boundary_text"] == want["boundary_text"]).all()
    assert got["boundary_text"].str.contains("东至").all()
    assert [_text(v) for v in got["flags"]] == [",".join(f) for f in want["flags"]]
    if "flag_reason" in got:     # (the sheets say it in 标记说明, with the flags in Chinese)
        assert [_text(v) for v in got["flag_reason"]] == [
            (r or "") if f else "" for f, r in zip(want["flags"], want["flag_reason"],
                                                   strict=True)]
    if "barrier_inside_m" in got:
        have = pd.to_numeric(got["barrier_inside_m"], errors="coerce").fillna(-1).to_numpy()
        assert np.allclose(have, want["barrier_inside_m"].astype(float).fillna(-1).to_numpy())
    for code in got.index:
        village, village_code, town, town_code = store.village_of(code)
        row = got.loc[code]
        assert (row["village_name"], row["village_code"]) == (village, village_code)
        assert (row["town_name"], row["town_code"]) == (town, town_code)
        if workers:
            assert _text(row["grid_worker"]) == store.workers.get(code, "")
    a = gpd.GeoSeries(got.geometry.to_numpy(), crs=4326).to_crs(store.metric_epsg).to_numpy()
    b = gpd.GeoSeries(want.geometry.to_numpy(), crs=4326).to_crs(store.metric_epsg).to_numpy()
    moved = shapely.area(shapely.symmetric_difference(a, b)) / shapely.area(b)
    assert float(np.max(moved)) < tolerance, pd.Series(moved, index=got.index).nlargest(3)
