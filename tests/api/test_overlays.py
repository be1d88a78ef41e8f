"""Department grids as overlays (多网融合) on both backends: import with known misalignment
(shifted, coarser, another CRS, GBK names), the cross-walk conserves area and households,
the aligned proposal is contiguous, covers the plan and moves the fewest households."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely
from browser import live_server, open_page, screenshot, wait_for
from demo_plan import DemoStore
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from gis.overlays import read_units

#: Files in the tests' known misalignments.
CASES = ("exact", "shifted", "coarse")


def _metric(store: DemoStore) -> gpd.GeoDataFrame:
    return store.grids.to_crs(store.metric_epsg)


def exact_units(store: DemoStore) -> gpd.GeoDataFrame:
    """Units made of whole grids: the grids of each village, in the metric CRS."""
    units = _metric(store).dissolve("village_code").reset_index()
    return gpd.GeoDataFrame({"警格编号": "JG" + units["village_code"],
                             "警格名称": [f"第{i + 1}警格" for i in range(len(units))]},
                            geometry=units.geometry, crs=store.metric_epsg)


def shifted_units(store: DemoStore, dx: float = 150.0, dy: float = -100.0
                  ) -> gpd.GeoDataFrame:
    """The exact units moved by (dx, dy) metres: slivers and split grids along every edge."""
    units = exact_units(store)
    return units.set_geometry(units.geometry.translate(dx, dy))


def coarse_units(store: DemoStore) -> gpd.GeoDataFrame:
    """A coarser lattice (about four grids a unit), rotated so that no edge follows a grid."""
    grids = _metric(store)
    x0, y0, x1, y1 = grids.total_bounds
    n = max(2, round(np.sqrt(len(grids) / 4)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    size = max(x1 - x0, y1 - y0) * 1.5 / n
    cells = [shapely.box(cx - n * size / 2 + i * size, cy - n * size / 2 + j * size,
                         cx - n * size / 2 + (i + 1) * size, cy - n * size / 2 + (j + 1) * size)
             for i in range(n) for j in range(n)]
    cells = [shapely.affinity.rotate(c, 17, origin=(cx, cy)) for c in cells]
    frame = gpd.GeoDataFrame({"警格编号": [f"CG{i:03d}" for i in range(len(cells))],
                              "警格名称": [f"城管网格{i}" for i in range(len(cells))]},
                             geometry=cells, crs=store.metric_epsg)
    inside = frame.intersects(shapely.union_all(grids.geometry.to_numpy()))
    return frame[inside.to_numpy()].reset_index(drop=True)


BUILD = {"exact": exact_units, "shifted": shifted_units, "coarse": coarse_units}


def _upload(client: TestClient, territory_id: int, path: Path, department: str,
            **data: str) -> Any:
    files = [("files", (p.name, p.read_bytes())) for p in
             ([path] if path.is_file() else sorted(path.iterdir()))]
    return client.post(f"/territories/{territory_id}/overlays", files=files,
                       data={"department": department,
                             "field_map": "警格编号=code, 警格名称=name", **data})


def _write(case: str, store: DemoStore, tmp: Path) -> tuple[Path, dict[str, str]]:
    """The case's units as a department would send them: exact as GeoJSON in WGS84,
    shifted as a Shapefile in CGCS2000 (EPSG:4490) with GBK names and no .cpg, coarse as
    a GeoPackage in a Gauss–Krüger zone (the territory's EPSG:45xx)."""
    units = BUILD[case](store)
    if case == "exact":
        path = tmp / "jingge.geojson"
        units.to_crs(4326).to_file(path, driver="GeoJSON", engine="pyogrio")
        return path, {}
    if case == "shifted":
        folder = tmp / "shifted"
        folder.mkdir(exist_ok=True)
        frame = units.to_crs(4490).rename(columns={"警格编号": "JGBH", "警格名称": "JGMC"})
        pyogrio.write_dataframe(frame, folder / "jingge.shp", encoding="GBK")
        (folder / "jingge.cpg").unlink(missing_ok=True)
        return folder, {"encoding": "GBK", "field_map": "JGBH=code, JGMC=name"}
    path = tmp / "chengguan.gpkg"
    units.to_file(path, layer="units", driver="GPKG", engine="pyogrio")
    return path, {}


@pytest.fixture(scope="module")
def uploaded(store: DemoStore, client: TestClient,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each case uploaded as its own department."""
    tmp = tmp_path_factory.mktemp("overlays")
    out: dict[str, dict[str, Any]] = {}
    for case in CASES:
        path, data = _write(case, store, tmp)
        answer = _upload(client, store.territory_id, path, case, **data)
        assert answer.status_code == 201, answer.text
        out[case] = {"info": answer.json(), "path": path,
                     "units": BUILD[case](store)}
    return out


def _crosswalk(client: TestClient, store: DemoStore, case: str, **params: Any) -> Any:
    answer = client.get(f"/plans/{store.plan_id}/overlays/{case}/crosswalk", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_overlays_are_listed_with_their_source_crs(store: DemoStore, client: TestClient,
                                                   uploaded: dict[str, Any]) -> None:
    listed = {o["department"]: o for o in client.get(
        f"/territories/{store.territory_id}/overlays").json()}
    assert set(CASES) <= set(listed)
    assert listed["exact"]["source_crs"] == "EPSG:4326"
    assert listed["shifted"]["source_crs"] == "EPSG:4490"
    assert listed["coarse"]["source_crs"] == f"EPSG:{store.metric_epsg}"
    assert listed["shifted"]["field_map"] == {"code": "JGBH", "name": "JGMC"}
    for case in CASES:
        assert listed[case]["units"] == len(uploaded[case]["units"])


def test_gbk_names_and_source_geometry_kept(store: DemoStore, client: TestClient,
                                            uploaded: dict[str, Any]) -> None:
    answer = client.get(f"/territories/{store.territory_id}/overlays/shifted")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/geo+json")
    body = answer.json()
    names = {f["id"]: f["properties"]["name"] for f in body["features"]}
    want = uploaded["shifted"]["units"]
    assert names == dict(zip(want["警格编号"], want["警格名称"], strict=True))
    assert body["overlay"]["source_crs"] == "EPSG:4490"
    # The stored source geometry is the file's, vertex for vertex (in EPSG:4490).
    stored = read_units(store.engine, uploaded["shifted"]["info"]["id"], source=True)
    read = pyogrio.read_dataframe(uploaded["shifted"]["path"] / "jingge.shp",
                                  encoding="GBK").set_index("JGBH")
    for code, geom in zip(stored["code"], stored["source_geometry"], strict=True):
        assert shapely.equals_exact(geom, read.loc[code, "geometry"], tolerance=0)
    # The WGS84 geometry is the same place: within a few centimetres of the metric units.
    metric = stored.set_geometry(stored.geometry).to_crs(store.metric_epsg).set_index("code")
    for code, geom in zip(want["警格编号"], want.geometry, strict=True):
        assert metric.loc[code, "geometry"].symmetric_difference(geom).area < 1.0


@pytest.mark.parametrize("case", CASES)
def test_crosswalk_conserves_area_and_households(store: DemoStore, client: TestClient,
                                                 uploaded: dict[str, Any], case: str) -> None:
    cw = _crosswalk(client, store, case)
    grids = {g["code"]: g for g in cw["grids"]}
    assert set(grids) == set(store.grids["code"])
    want_hh = dict(zip(store.grids["code"], store.grids["households"], strict=True))
    assert {c: round(g["households"]) for c, g in grids.items()} == want_hh
    held_hh: dict[str, float] = dict.fromkeys(grids, 0.0)
    held_area: dict[str, float] = dict.fromkeys(grids, 0.0)
    for unit in cw["units"]:
        for piece in unit["grids"]:
            held_hh[piece["code"]] += piece["households"]
            held_area[piece["code"]] += piece["area_share"]
    for code, g in grids.items():
        assert held_hh[code] + g["uncovered_households"] == pytest.approx(
            g["households"], abs=0.01)
        assert held_area[code] + g["uncovered_area_share"] == pytest.approx(1.0, abs=2e-3)
    s = cw["summary"]
    assert s["households"] == pytest.approx(sum(want_hh.values()))
    assert s["households_in_split_grids"] == pytest.approx(
        sum(g["households"] for g in grids.values() if g["split"]), abs=0.01)
    assert s["grids_split"] == sum(g["split"] for g in grids.values())
    assert s["share_units_whole"] == pytest.approx(
        sum(u["whole"] for u in cw["units"]) / len(cw["units"]), abs=1e-4)
    if case == "exact":
        assert s["share_units_whole"] == 1.0 and s["grids_split"] == 0
        assert s["households_uncovered"] == pytest.approx(0, abs=0.01)
    if case == "shifted":
        assert s["slivers"] > 0 and s["share_units_whole"] < 1.0
    if case == "coarse":
        assert s["grids_split"] > 0 and s["share_units_whole"] < 0.5


def _proposal(client: TestClient, store: DemoStore, case: str, by: str) -> Any:
    answer = client.get(f"/plans/{store.plan_id}/overlays/{case}/proposal",
                        params={"by": by})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("case", CASES)
def test_proposal_contiguous_covering_and_fewest_moved(
        store: DemoStore, client: TestClient, uploaded: dict[str, Any], case: str) -> None:
    cw = _crosswalk(client, store, case)
    held: dict[tuple[str, str], float] = {}
    for unit in cw["units"]:
        for piece in unit["grids"]:
            held[piece["code"], unit["code"]] = piece["households"]
    moved: dict[str, float] = {}
    units_kept: dict[str, int] = {}
    for by in ("households", "area", "centroid"):
        p = _proposal(client, store, case, by)
        assignment = p["assignment"]
        assert set(assignment) == set(store.grids["code"])  # every grid in one unit
        # Contiguous: the union of each unit's grids is one polygon.
        grids = _metric(store).set_index("code")
        for unit in {u for u in assignment.values()}:
            members = [g for g, u in assignment.items() if u == unit]
            union = shapely.union_all(grids.loc[members].geometry.to_numpy())
            assert union.geom_type == "Polygon", (case, by, unit)
        # Households moved, recounted from the cross-walk: what leaves its unit.
        recount = sum(hh for (g, u), hh in held.items() if assignment[g] != u)
        assert p["summary"]["households_moved"] == pytest.approx(recount, abs=0.01)
        moved[by] = recount
        units_kept[by] = len(set(assignment.values()))
        assert p["summary"]["units_kept"] == units_kept[by]
        # No unit vanishes: with no more units than grids, every unit gets a grid.
        every = {u["code"] for u in cw["units"]}
        if len(every) <= len(store.grids):
            assert set(assignment.values()) == every, every - set(assignment.values())
            assert p["summary"]["units_vanished"] == []
    # Ours keeps at least the units each simple alternative keeps, and among those that
    # keep as many, moves the fewest households.
    for other in ("area", "centroid"):
        assert units_kept["households"] >= units_kept[other]
        if units_kept[other] == units_kept["households"]:
            assert moved["households"] <= moved[other] + 1e-6, (other, moved)
    if case == "shifted":  # a shift of 150 m, 100 m: strictly fewer than either
        assert units_kept == dict.fromkeys(units_kept, units_kept["households"])
        assert moved["households"] < min(moved["area"], moved["centroid"]) - 50, moved
    if case == "exact":
        assert moved["households"] == pytest.approx(0, abs=0.01)


def test_proposal_layer_downloads(store: DemoStore, client: TestClient,
                                  uploaded: dict[str, Any], tmp_path: Path) -> None:
    answer = client.get(f"/plans/{store.plan_id}/overlays/shifted/proposal",
                        params={"format": "geojson"})
    assert answer.status_code == 200
    layer = gpd.read_file(io.BytesIO(answer.content))
    total = shapely.union_all(store.grids.geometry.to_numpy())
    # Covers the plan (to the GeoJSON's 7 decimals: a centimetre along every edge).
    assert shapely.union_all(layer.geometry.to_numpy()).symmetric_difference(total).area \
        < 1e-5 * total.area
    assert layer["households"].sum() == pytest.approx(store.grids["households"].sum())
    answer = client.get(f"/plans/{store.plan_id}/overlays/shifted/proposal",
                        params={"format": "gpkg"})
    assert answer.status_code == 200
    assert "attachment" in answer.headers["content-disposition"]
    (tmp_path / "a.gpkg").write_bytes(answer.content)
    back = pyogrio.read_dataframe(tmp_path / "a.gpkg", layer="aligned_units")
    assert sorted(back["code"]) == sorted(layer["code"])


def test_crosswalk_sheets(store: DemoStore, client: TestClient,
                          uploaded: dict[str, Any]) -> None:
    cw = _crosswalk(client, store, "shifted")
    pieces = sum(len(u["grids"]) for u in cw["units"])
    answer = client.get(f"/plans/{store.plan_id}/overlays/shifted/crosswalk",
                        params={"format": "csv"})
    assert answer.status_code == 200 and answer.content.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(io.BytesIO(answer.content), encoding="utf-8-sig", dtype=str)
    assert len(frame) == pieces and frame.columns[0] == "网格编码 Grid code"
    assert set(frame["网格编码 Grid code"]) <= set(store.grids["code"])
    answer = client.get(f"/plans/{store.plan_id}/overlays/shifted/crosswalk",
                        params={"format": "xlsx"})
    assert answer.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert len(rows) == pieces + 1 and rows[0][1] == "部门单元编码 Unit code"


def test_bad_uploads_are_clear_4xx(store: DemoStore, client: TestClient,
                                   uploaded: dict[str, Any], tmp_path: Path) -> None:
    path = uploaded["exact"]["path"]
    again = _upload(client, store.territory_id, path, "exact")
    assert again.status_code == 409
    wrong_field = _upload(client, store.territory_id, path, "wrong",
                          field_map="没有这列=code")
    assert wrong_field.status_code == 422 and "没有这列" in wrong_field.json()["detail"]
    bad_dept = _upload(client, store.territory_id, path, "a/b")
    assert bad_dept.status_code == 422
    nocrs = tmp_path / "nocrs.geojson"
    nocrs.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": "X1"},
        "geometry": {"type": "Point", "coordinates": [113.3, 23.2]}}]}))
    points = _upload(client, store.territory_id, nocrs, "points", field_map="")
    assert points.status_code == 422 and "Point" in points.json()["detail"]
    assert client.get(f"/plans/{store.plan_id}/overlays/nobody/crosswalk").status_code == 404
    listed = {o["department"] for o in client.get(
        f"/territories/{store.territory_id}/overlays").json()}
    assert not {"wrong", "a/b", "points"} & listed  # nothing half-stored


def test_replace_and_delete(store: DemoStore, client: TestClient, uploaded: dict[str, Any]
                            ) -> None:
    path = uploaded["exact"]["path"]
    assert _upload(client, store.territory_id, path, "temp").status_code == 201
    assert _upload(client, store.territory_id, path, "temp",
                   replace="true").status_code == 201
    assert client.delete(f"/territories/{store.territory_id}/overlays/temp").status_code == 204
    assert client.get(f"/territories/{store.territory_id}/overlays/temp").status_code == 404
    assert client.delete(f"/territories/{store.territory_id}/overlays/temp").status_code == 404


def test_cli_overlay_add(store: DemoStore, uploaded: dict[str, Any]) -> None:
    runner = CliRunner()
    folder = uploaded["shifted"]["path"]
    result = runner.invoke(cli, ["overlay", "add", str(store.territory_id),
                                 str(folder / "jingge.shp"), "--department", "cli公安",
                                 "--database-url", store.url, "--encoding", "GBK",
                                 "--field-map", "JGBH=code", "--field-map", "JGMC=name"])
    assert result.exit_code == 0, result.output
    assert "EPSG:4490" in result.output
    listed = runner.invoke(cli, ["overlay", "list", str(store.territory_id),
                                 "--database-url", store.url])
    assert listed.exit_code == 0 and "cli公安" in listed.output
    wrong = runner.invoke(cli, ["overlay", "add", str(store.territory_id),
                                str(folder / "jingge.shp"), "--department", "cli公安",
                                "--database-url", store.url])
    assert wrong.exit_code == 1  # already there: a one-line error, not a traceback


def test_events_routed_to_department_units(store: DemoStore, client: TestClient,
                                           uploaded: dict[str, Any]) -> None:
    """An event of a category the settings give to 城管 gets the 城管 unit: the one drawn
    around its point until an alignment is adopted, then the unit its grid is aligned to."""
    folder = uploaded["shifted"]["path"]
    added = _upload(client, store.territory_id, folder, "城管", encoding="GBK",
                    field_map="JGBH=code, JGMC=name")
    assert added.status_code == 201, added.text
    assert store.settings.event_departments["sanitation"] == "城管"
    proposal = _proposal(client, store, "城管", "households")["assignment"]
    units = read_units(store.engine, added.json()["id"])
    grids = store.grids.set_index("code")
    # A point of a grid that lies in another unit than the one the grid is aligned to.
    found = None
    for code, geom in zip(units["code"], units.geometry, strict=True):
        for grid_code, grid in grids.geometry.items():
            if proposal[grid_code] == code:
                continue
            piece = grid.buffer(-2e-5).intersection(geom.buffer(-2e-5))
            if piece.area > 1e-8:
                found = (piece.representative_point(), code, grid_code)
                break
        if found:
            break
    assert found is not None, "the shifted units must split some grid"
    point, drawn_unit, in_grid = found
    made = client.post("/events", json={"x": point.x, "y": point.y, "coord_sys": "wgs84",
                                        "category": "sanitation", "source": "citizen",
                                        "description": "垃圾堆放"})
    assert made.status_code == 201, made.text
    event = made.json()
    got = client.get(f"/events/{event['id']}").json()["department_unit"]
    names = dict(zip(units["code"], units["name"], strict=True))
    assert got == {"department": "城管", "unit_code": drawn_unit,
                   "unit_name": names[drawn_unit], "via": "overlay"}
    adopted = client.post(f"/plans/{store.plan_id}/overlays/城管/alignment", json={})
    assert adopted.status_code == 200, adopted.text
    assert adopted.json()["grids"] == len(store.grids)
    got = client.get(f"/events/{event['id']}").json()["department_unit"]
    aligned = proposal[event["grid_code"]]
    assert got == {"department": "城管", "unit_code": aligned, "unit_name": names[aligned],
                   "via": "aligned"}
    assert event["grid_code"] == in_grid and aligned != drawn_unit
    # A category no department is mapped to: no unit.
    other = client.post("/events", json={"x": point.x, "y": point.y, "coord_sys": "wgs84",
                                         "category": "other", "source": "citizen"})
    assert other.status_code == 201
    assert client.get(f"/events/{other.json()['id']}").json()["department_unit"] is None
    # A department without an overlay: named, no unit.
    hazard = client.post("/events", json={"x": point.x, "y": point.y, "coord_sys": "wgs84",
                                          "category": "safety_hazard", "source": "citizen"})
    assert client.get(f"/events/{hazard.json()['id']}").json()["department_unit"] == {
        "department": "应急", "unit_code": None, "unit_name": None, "via": None}
    # The command-centre screen's urgent list says the same, for the events it lists.
    screen = client.get("/screen/data", params={"territory": store.territory_id,
                                                "area": in_grid}).json()
    listed = {r[0] for r in screen["points"]["rows"]}
    assert {event["id"], other.json()["id"], hazard.json()["id"]} <= listed
    units_on_screen = screen["department_units"]
    assert units_on_screen[str(event["id"])] == got
    assert str(other.json()["id"]) not in units_on_screen
    assert units_on_screen[str(hazard.json()["id"])]["unit_code"] is None
    # Deleting the overlay deletes the alignment with it.
    assert client.delete(f"/territories/{store.territory_id}/overlays/城管").status_code == 204
    assert client.get(f"/events/{event['id']}").json()["department_unit"]["unit_code"] is None


# --- the planner map (Chromium, PostGIS) ----------------------------------------------------


def test_overlay_map_layer_counts_units_and_slivers(store: DemoStore, client: TestClient,
                                                    uploaded: dict[str, Any]) -> None:
    cw = _crosswalk(client, store, "shifted")
    answer = client.get(f"/plans/{store.plan_id}/overlays/shifted/map")
    assert answer.status_code == 200
    features = answer.json()["features"]
    kinds = [f["properties"]["kind"] for f in features]
    assert kinds.count("unit") == len(cw["units"])
    assert kinds.count("sliver") == cw["summary"]["slivers"] > 0
    sliver_area = sum(f["properties"]["area_m2"] for f in features
                      if f["properties"]["kind"] == "sliver")
    assert sliver_area == pytest.approx(cw["summary"]["sliver_area_m2"], abs=1.0)


@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_overlays_switch_on_the_planner_map(browser: Any, store: DemoStore,
                                            uploaded: dict[str, Any]) -> None:
    with live_server(create_app(store.settings, store.engine)) as server:
        page, errors = open_page(browser, "about:blank")
        try:
            page.goto(f"{server.url}/plans/{store.plan_id}/map", wait_until="networkidle")
            wait_for(page, "window.gridmap && window.gridmap.ready", timeout=30_000)
            specs = {s["key"]: s for s in page.evaluate("gridmap.config.layers")}
            assert {f"overlay:{c}" for c in CASES} <= set(specs)
            assert not server.paths("/overlays/")  # nothing before it is switched on
            key = "overlay:shifted"
            label = page.locator(".leaflet-control-layers-overlays label").filter(
                has_text="部门网格 · shifted")
            label.locator("input").check()
            wait_for(page, f"gridmap.layers['{key}'].loaded", timeout=15_000)
            want = len(client_features(server.url, specs[key]["url"]))
            assert page.evaluate(f"gridmap.layers['{key}'].features") == want
            # Slivers are drawn filled red, units dashed.
            fills = page.evaluate(f"""gridmap.layers['{key}'].layer.getLayers()
                .filter(function (l) {{ return l.feature.properties.kind === 'sliver'; }})
                .map(function (l) {{ return l.options.fillColor; }})""")
            assert fills and set(fills) == {"#ff6b6b"}
            assert want > len(fills)
            screenshot(page, "planner_overlay_slivers")
            assert not errors, errors
        finally:
            page.close()


def client_features(url: str, path: str) -> list[Any]:
    """The features the page's layer URL answers (the live server signs the request in)."""
    answer = httpx.get(url + path, timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["features"])


@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_the_desk_shows_the_department_unit(browser: Any, store: DemoStore,
                                            client: TestClient,
                                            uploaded: dict[str, Any]) -> None:
    added = _upload(client, store.territory_id, uploaded["exact"]["path"], "城管")
    assert added.status_code == 201, added.text
    try:
        units = read_units(store.engine, added.json()["id"])
        point = units.geometry.iloc[0].representative_point()
        made = client.post("/events", json={"x": point.x, "y": point.y, "coord_sys": "wgs84",
                                            "category": "municipal", "source": "citizen"})
        assert made.status_code == 201, made.text
        event = made.json()["id"]
        want = f"城管：{units['name'].iloc[0]}（{units['code'].iloc[0]}）"
        with live_server(create_app(store.settings, store.engine)) as server:
            page, errors = open_page(browser, "about:blank")
            try:
                page.goto(f"{server.url}/desk?territory={store.territory_id}&event={event}",
                          wait_until="networkidle")
                wait_for(page, f"window.gridmapDesk && gridmapDesk.event && "
                               f"gridmapDesk.event.id === {event}", timeout=60_000)
                fields = page.locator("#detail-fields").inner_text()
                assert "职能部门" in fields and want in fields, fields
                screenshot(page, "desk_department_unit")
                assert not errors, errors
            finally:
                page.close()
    finally:
        assert client.delete(
            f"/territories/{store.territory_id}/overlays/城管").status_code == 204


@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_the_compare_page_shows_the_aligned_proposal(browser: Any, store: DemoStore,
                                                     client: TestClient,
                                                     uploaded: dict[str, Any]) -> None:
    """On the compare page each overlay's aligned proposal switches on over both maps, its
    units drawn and the households that change unit under either plan written out."""
    copied = client.post(f"/plans/{store.plan_id}/copy", json={"note": "对比"})
    assert copied.status_code == 201, copied.text
    other = int(copied.json()["id"])
    a_summary = _proposal(client, store, "shifted", "households")["summary"]
    b_summary = client.get(f"/plans/{other}/overlays/shifted/proposal").json()["summary"]
    layer = client.get(f"/plans/{store.plan_id}/overlays/shifted/proposal",
                       params={"format": "geojson"}).json()
    with live_server(create_app(store.settings, store.engine)) as server:
        page, errors = open_page(browser, "about:blank")
        try:
            page.goto(f"{server.url}/plans/{store.plan_id}/compare/{other}",
                      wait_until="networkidle")
            wait_for(page, "window.gridcompare && gridcompare.ready", timeout=30_000)
            boxes = page.locator(".gm-align input")
            assert boxes.count() == len(
                client.get(f"/territories/{store.territory_id}/overlays").json())
            assert not server.paths("/proposal")   # nothing before it is switched on
            label = page.locator(".gm-align label").filter(has_text="shifted")
            label.locator("input").check()
            wait_for(page, "gridcompare.align['shifted'] && gridcompare.align['shifted'].loaded"
                           " && gridcompare.align['shifted'].shown", timeout=60_000)
            align = page.evaluate("""(() => { const e = gridcompare.align['shifted'];
                return {moved: e.moved, features: e.features,
                        onA: gridcompare.maps.a.hasLayer(e.layers.a),
                        onB: gridcompare.maps.b.hasLayer(e.layers.b)}; })()""")
            assert align["moved"]["a"] == pytest.approx(a_summary["households_moved"])
            assert align["moved"]["b"] == pytest.approx(b_summary["households_moved"])
            assert align["features"]["a"] == len(layer["features"]) > 0
            assert align["onA"] and align["onB"]
            text = page.locator(".gm-align").inner_text()
            shown = f"{round(a_summary['households_moved']):,}"
            assert "换单元" in text and shown in text, (text, shown)
            screenshot(page, "compare_aligned_proposal")
            label.locator("input").uncheck()
            wait_for(page, "!gridcompare.align['shifted'].shown")
            assert not page.evaluate("gridcompare.maps.b.hasLayer("
                                     "gridcompare.align['shifted'].layers.b)")
            assert not errors, errors
        finally:
            page.close()


def test_crosswalks_are_kept_until_the_plan_or_the_overlay_changes(
        store: DemoStore, client: TestClient, uploaded: dict[str, Any]) -> None:
    """The cross-walk and the proposal are computed once per plan generation and overlay
    (X-Crosswalk-Cache: miss, then hit, the same answer); a replaced overlay, another
    tolerance or another plan is computed anew, and a deleted overlay is forgotten."""
    header = "x-crosswalk-cache"
    assert _upload(client, store.territory_id, uploaded["exact"]["path"], "缓存"
                   ).status_code == 201
    url = f"/plans/{store.plan_id}/overlays/缓存/crosswalk"
    first, again = client.get(url), client.get(url)
    assert (first.headers[header], again.headers[header]) == ("miss", "hit")
    assert first.json() == again.json() and first.json()["summary"]["share_units_whole"] == 1.0
    assert client.get(url, params={"tolerance": 0.1}).headers[header] == "miss"
    proposal = f"/plans/{store.plan_id}/overlays/缓存/proposal"
    made, kept = client.get(proposal), client.get(proposal)
    assert (made.headers[header], kept.headers[header]) == ("miss", "hit")
    assert made.json() == kept.json()
    # Replaced by the shifted units: a new overlay, a new cross-walk.
    folder = uploaded["shifted"]["path"]
    replaced = _upload(client, store.territory_id, folder, "缓存", encoding="GBK",
                       field_map="JGBH=code, JGMC=name", replace="true")
    assert replaced.status_code == 201, replaced.text
    after = client.get(url)
    assert after.headers[header] == "miss"
    assert after.json()["summary"]["share_units_whole"] < 1.0
    assert after.json()["summary"] == _crosswalk(client, store, "shifted")["summary"]
    copied = client.post(f"/plans/{store.plan_id}/copy", json={})
    assert copied.status_code == 201
    other = client.get(f"/plans/{copied.json()['id']}/overlays/缓存/crosswalk")
    assert other.headers[header] == "miss"
    assert other.json()["summary"] == after.json()["summary"]
    overlay_id = replaced.json()["id"]
    cache = client.app.state.crosswalk_cache  # type: ignore[attr-defined]
    assert any(k[3] == overlay_id for k in cache._items)
    assert client.delete(f"/territories/{store.territory_id}/overlays/缓存").status_code == 204
    assert not any(k[3] == overlay_id for k in cache._items)
    assert client.get(url).status_code == 404
