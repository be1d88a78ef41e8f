"""A department's overlay as a barrier class when partitioning (多网融合 the other way round):
through a partition job (API) and `gridmap partition --barrier-overlay`, no grid crosses a
unit boundary unless it is flagged for it, and the cross-walk of that plan against that
overlay finds the units made of whole grids where the plan made without it does not."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from demo_plan import DemoStore, _demo
from fastapi.testclient import TestClient
from signin import client_for
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from gis.plans import read_blocks, read_grids
from gis.settings import Settings
from gis.store import load_territory
from partitioning.crosswalk import Crosswalk, crosswalk
from partitioning.engine import partition_territory
from partitioning.output import grid_table
from partitioning.params import PartitionParams

DEPARTMENT = "公安"


def police_beats(store: DemoStore) -> gpd.GeoDataFrame:
    """Police beats as a department draws them: units of 600–1,000 households that follow
    roads and nest in villages, but cut elsewhere than the plan's grids (another band and
    seed), in the metric CRS."""
    territory = load_territory(store.engine, store.territory_id)
    beats = grid_table(partition_territory(territory, PartitionParams(
        min_households=600, max_households=1_000, target_households=800, seed=3)))
    return gpd.GeoDataFrame({"code": [f"JW{i:03d}" for i in range(len(beats))],
                             "name": [f"第{i + 1}警务区" for i in range(len(beats))]},
                            geometry=beats.geometry.to_numpy(), crs=beats.crs)


@pytest.fixture(scope="module")
def beats_file(store: DemoStore, client: TestClient,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The beats uploaded as the territory's 公安 overlay; the file."""
    path = tmp_path_factory.mktemp("beats") / "jingwuqu.gpkg"
    police_beats(store).to_file(path, layer="beats", driver="GPKG", engine="pyogrio")
    with path.open("rb") as fh:
        answer = client.post(f"/territories/{store.territory_id}/overlays",
                             files=[("files", (path.name, fh.read()))],
                             data={"department": DEPARTMENT})
    assert answer.status_code == 201, answer.text
    return path


def _beats_wgs84(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(path, engine="pyogrio").to_crs(4326)


def assert_respects(grids: gpd.GeoDataFrame, cw: Crosswalk) -> None:
    """Every grid split between units crosses a unit boundary and says so; every unit not
    made of whole grids holds such a flagged grid."""
    flags = dict(zip(grids["code"], grids["flags"], strict=True))
    reasons = dict(zip(grids["code"], grids["flag_reason"], strict=True))
    split = cw.grids.loc[cw.grids["split"], "code"].tolist()
    for code in split:
        assert "crosses_barrier" in flags[code], (code, flags[code], reasons[code])
        assert f"{DEPARTMENT}单元界" in (reasons[code] or "") or "crosses " in reasons[code]
    real = cw.pieces[~cw.pieces["sliver"]]
    for unit in cw.units.loc[~cw.units["whole"], "code"]:
        mine = real[real["unit_code"] == unit]
        partial = mine[mine["area_share"] < 1 - cw.tolerance]["grid_code"]
        assert any("crosses_barrier" in flags[g] for g in partial), unit


def _wait(client: TestClient, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_a_partition_job_takes_an_overlay_as_barrier(store: DemoStore, beats_file: Path
                                                     ) -> None:
    settings = Settings(database_url=store.url, dask_workers=1)
    with client_for(create_app(settings, store.engine)) as client:
        answer = client.post(f"/territories/{store.territory_id}/plans",
                             json={"seed": 0, "barrier_overlays": [DEPARTMENT, DEPARTMENT]})
        assert answer.status_code == 202, answer.text
        job = _wait(client, answer.json()["id"])
        assert job["state"] == "done", job
        assert job["parameters"]["barrier_overlays"] == [DEPARTMENT]
        plan_id = int(job["plan_id"])
        ours = client.get(f"/plans/{plan_id}/overlays/{DEPARTMENT}/crosswalk").json()
        before = client.get(f"/plans/{store.plan_id}/overlays/{DEPARTMENT}/crosswalk").json()
        report = client.get(f"/plans/{plan_id}/report").json()
    units = _beats_wgs84(beats_file)
    grids = read_grids(store.engine, plan_id)
    cw = crosswalk(grids, read_blocks(store.engine, plan_id), units, store.metric_epsg)
    assert cw.summary["share_units_whole"] == ours["summary"]["share_units_whole"]
    assert_respects(grids, cw)
    assert "overlay" in report["barrier_inside_by_kind"]
    # Without the overlay as barrier, the same plan engine splits grids nobody flagged,
    # and far fewer units are whole.
    old = read_grids(store.engine, store.plan_id)
    old_cw = crosswalk(old, read_blocks(store.engine, store.plan_id), units, store.metric_epsg)
    unflagged = [c for c, f in zip(old["code"], old["flags"], strict=True)
                 if c in set(old_cw.grids.loc[old_cw.grids["split"], "code"])
                 and "crosses_barrier" not in f]
    assert len(unflagged) >= 3, unflagged
    assert ours["summary"]["share_units_whole"] >= 0.7
    assert ours["summary"]["share_units_whole"] >= \
        before["summary"]["share_units_whole"] + 0.25, (ours["summary"], before["summary"])
    assert ours["summary"]["grids_split"] < before["summary"]["grids_split"]


def test_an_unknown_barrier_overlay_is_a_clear_422(store: DemoStore, client: TestClient
                                                   ) -> None:
    url = f"/territories/{store.territory_id}/plans"
    jobs = client.get("/jobs", params={"territory": store.territory_id}).json()
    for bad in (["没有这个部门"], ["a/b"], [""]):
        answer = client.post(url, json={"barrier_overlays": bad})
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    missing = client.post(url, json={"barrier_overlays": ["没有这个部门"]}).json()
    assert "没有这个部门" in missing["detail"] and "overlay" in missing["detail"]
    assert client.get("/jobs", params={"territory": store.territory_id}).json() == jobs


@pytest.mark.parametrize("store", ["spatialite"], indirect=True)
def test_partition_cli_takes_a_barrier_overlay(store: DemoStore, beats_file: Path,
                                               tmp_path: Path) -> None:
    territory = _demo().write(tmp_path / "demo.gpkg")
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(cli, ["partition", str(territory), "--out", str(out),
                                 "--workers", "1",
                                 "--barrier-overlay", f"{DEPARTMENT}={beats_file}"])
    assert result.exit_code == 0, result.output
    grids = gpd.read_file(out / "grids.gpkg", engine="pyogrio").to_crs(4326)
    grids["flags"] = [[f for f in str(v or "").split(",") if f] for v in grids["flags"]]
    blocks = gpd.read_file(out / "blocks.gpkg", engine="pyogrio").to_crs(4326)
    cw = crosswalk(grids, blocks, _beats_wgs84(beats_file), store.metric_epsg)
    assert_respects(grids, cw)
    assert cw.summary["share_units_whole"] >= 0.7
    wrong = runner.invoke(cli, ["partition", str(territory), "--out", str(out),
                                "--workers", "1", "--barrier-overlay", str(beats_file)])
    assert wrong.exit_code != 0 and "DEPARTMENT=FILE" in wrong.output
