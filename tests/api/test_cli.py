"""The `gridmap` command line: import, db upgrade and the demo, end to end."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import httpx
import pyogrio
from conftest import write_layers
from sqlalchemy import func, select
from typer.testing import CliRunner
from waiting import wait_until_up

from api.cli import app
from gis.database import make_engine
from gis.models.territories import Territory
from gis.store import layer_counts

runner = CliRunner()
GRIDMAP = str(Path(sys.executable).with_name("gridmap"))


def _territories(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Territory))
                       .scalar_one())
    finally:
        engine.dispose()


def test_import_reports_counts(db_url: str, tiny: dict[str, gpd.GeoDataFrame],
                               tmp_path: Path) -> None:
    path = write_layers(tiny, tmp_path, "GPKG")
    result = runner.invoke(app, ["import", str(path), "--database-url", db_url,
                                 "--name", "小区域"])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "建筑/地址 buildings" in result.output
    assert _territories(db_url) == 1


def test_bad_input_is_a_clear_error_and_nothing_is_stored(
        db_url: str, tiny: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    tiny["buildings"] = tiny["buildings"].drop(columns="households")
    tiny["buildings"] = tiny["buildings"][tiny["buildings"].geom_type == "Point"]
    path = write_layers(tiny, tmp_path, "GeoJSON")
    result = runner.invoke(app, ["import", str(path), "--database-url", db_url])
    assert result.exit_code == 1
    assert "buildings" in result.output and "households" in result.output
    assert "Traceback" not in result.output
    assert _territories(db_url) == 0


def test_field_map_and_crs_options(spatialite_url: str, tiny: dict[str, gpd.GeoDataFrame],
                                   tmp_path: Path) -> None:
    tiny["admin_areas"] = tiny["admin_areas"].rename(columns={"code": "社区编码"})
    path = write_layers(tiny, tmp_path, "GeoJSON")
    result = runner.invoke(app, ["import", str(path), "--database-url", spatialite_url])
    assert result.exit_code == 1 and "社区编码=code" in result.output
    result = runner.invoke(app, ["import", str(path), "--database-url", spatialite_url,
                                 "--field-map", "社区编码=code", "--crs", "wgs84"])
    assert result.exit_code == 0, result.output


def test_db_upgrade_on_a_new_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert _territories(url) == 0


def test_unreachable_database(tiny: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    path = write_layers(tiny, tmp_path, "GPKG")
    result = runner.invoke(app, ["import", str(path), "--database-url",
                                 "postgresql+psycopg://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 3 and "cannot be reached" in result.output


def test_demo_end_to_end_and_postgis_gets_the_same_counts(tmp_path: Path,
                                                          postgis_url: str) -> None:
    out = tmp_path / "demo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [GRIDMAP, "demo", "--households", "20000", "--out", str(out), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        # The demo generates, imports, partitions, publishes, then serves.
        state = wait_until_up(f"{base}/readyz", 300, 0.5, lambda: server.poll() is None,
                              timeout_s=2)
        assert state != "stopped", server.stdout.read() if server.stdout else ""
        assert state == "up", "the demo did not start serving"
        # The demo made an administrator; without signing in, nothing is served.
        assert httpx.get(f"{base}/plans").status_code == 401
        made = runner.invoke(app, ["user", "key", "admin", "--name", "test", "--database-url",
                                   f"sqlite:///{out / 'gridmap.sqlite'}"])
        assert made.exit_code == 0, made.output
        web = httpx.Client(base_url=base, headers={"X-API-Key": made.output.strip()})
        plans = web.get("/plans").json()
        assert [p["status"] for p in plans] == ["published"]
        served = web.get(f"/plans/{plans[0]['id']}/grids").json()["features"]
        # The command centre has the demo's 400 events to show, in every light, some
        # resolved (most in time), and the pages are there.
        screen = web.get("/screen/data", params={"territory": 1}).json()["counts"]
        assert screen["open"] + screen["resolved"] == 400
        assert min(screen["green"], screen["yellow"], screen["red"]) > 0
        assert 0.7 < screen["on_time_rate"] < 1.0
        for page in ("/", f"/plans/{plans[0]['id']}/map", "/screen"):
            assert web.get(page).headers["content-type"].startswith("text/html")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "What to open" in output and f"{base}/ogc" in output and "admin" in output
    assert f"{base}/screen" in output and f"{base}/plans/1/map" in output
    grids = pyogrio.read_dataframe(out / "plan" / "grids.gpkg", layer="grids")
    assert len(grids) > 10 and grids["code"].str.len().eq(15).all()
    assert sorted(f["id"] for f in served) == sorted(grids["code"])
    gpkg = out / "territory.gpkg"
    file_counts = {str(name): pyogrio.read_info(gpkg, layer=str(name))["features"]
                   for name, _ in pyogrio.list_layers(gpkg)}
    lite = make_engine(f"sqlite:///{out / 'gridmap.sqlite'}")
    lite_counts = layer_counts(lite, 1)
    lite.dispose()
    assert lite_counts == {k: v for k, v in file_counts.items() if v}
    assert len(lite_counts) == 8
    assert lite_counts["buildings"] > 100 and lite_counts["admin_areas"] > 5

    result = runner.invoke(app, ["import", str(gpkg), "--database-url", postgis_url])
    assert result.exit_code == 0, result.output
    pg = make_engine(postgis_url)
    assert layer_counts(pg, 1) == lite_counts
    pg.dispose()


def test_demo_households_out_of_range_is_a_clear_error(tmp_path: Path) -> None:
    # Below what the generator can lay out as towns and villages: a message, no traceback,
    # nothing written; the help says the same range.
    for households in ("4999", "2000001"):
        result = runner.invoke(app, ["demo", "--households", households, "--no-serve",
                                     "--out", str(tmp_path / "demo")])
        assert result.exit_code == 1, result.output
        assert "between 5,000 and 2,000,000" in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "demo").exists()
    text = runner.invoke(app, ["demo", "--help"], terminal_width=200).output
    assert "5,000 to 2,000,000" in " ".join(text.replace("│", " ").split())
