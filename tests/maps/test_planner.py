"""The planner's map: its layer endpoints on both backends, and the page in headless Chromium."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
import shapely
import shapely.geometry
from browser import LiveServer, live_server, open_page, screenshot, wait_for
from demo_plan import DEMO_NAME, DemoStore
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from gis.obfuscation import gcj02_from_wgs84
from gis.plans import read_blocks, read_lines
from gis.store import read_layer
from maps.overlays import LAYERS

PROBLEM = "application/problem+json"
#: Anything a page could fetch from another host.
EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost)[a-z0-9.-]+\.[a-z]{2,}""",
                      re.IGNORECASE)
#: The bands of the legend, as the page names them (the demo uses the 300–500 default).
BANDS = ("低于 300 户", "300–500 户", "超过 500 户")
#: The browser tests run on PostGIS only; the endpoints on both backends.
POSTGIS_ONLY = pytest.mark.parametrize("store", ["postgis"], indirect=True)


@pytest.fixture(scope="module")
def server(store: DemoStore) -> Iterator[LiveServer]:
    with live_server(create_app(store.settings, store.engine)) as running:
        yield running


def coords(feature: dict[str, Any]) -> np.ndarray:
    return shapely.get_coordinates(shapely.geometry.shape(feature["geometry"]))


# --- the endpoints (both backends) ------------------------------------------------------------


def test_every_territory_layer_is_served_whole_as_stored(client: TestClient,
                                                         store: DemoStore) -> None:
    for layer in LAYERS:
        response = client.get(f"/territories/{store.territory_id}/layers/{layer}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/geo+json")
        body = response.json()
        stored = read_layer(store.engine, store.territory_id, layer)
        assert len(stored) > 0, layer
        assert (body["layer"], body["display"]) == (layer, "wgs84")
        assert len(body["features"]) == len(stored), layer
        got = shapely.from_geojson([json.dumps(f["geometry"]) for f in body["features"]])
        assert np.all(shapely.equals_exact(got, stored.geometry.to_numpy(), tolerance=1e-6))
    roads = client.get(f"/territories/{store.territory_id}/layers/roads").json()
    assert {f["properties"]["class"] for f in roads["features"]} >= {"primary", "residential"}


def test_a_bbox_selects_exactly_the_features_it_touches(client: TestClient,
                                                        store: DemoStore) -> None:
    buildings = read_layer(store.engine, store.territory_id, "buildings")
    box = store.grids.geometry.iloc[len(store.grids) // 2].bounds
    want = int(shapely.intersects(buildings.geometry.to_numpy(), shapely.box(*box)).sum())
    assert 0 < want < len(buildings)
    response = client.get(f"/territories/{store.territory_id}/layers/buildings",
                          params={"bbox": ",".join(f"{v:.7f}" for v in box)})
    assert response.status_code == 200, response.text
    assert len(response.json()["features"]) == want


def test_over_the_cap_is_a_clear_400_asking_to_zoom_in(client: TestClient,
                                                        store: DemoStore) -> None:
    url = f"/territories/{store.territory_id}/layers/buildings"
    response = client.get(url, params={"limit": 5})
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert "放大地图" in response.json()["detail"] and "zoom in" in response.json()["detail"]
    blocks = client.get(f"/plans/{store.plan_id}/blocks", params={"limit": 3})
    assert blocks.status_code == 400 and "zoom in" in blocks.json()["detail"]


def test_bad_layer_requests_are_problems(client: TestClient, store: DemoStore) -> None:
    t = store.territory_id
    assert client.get(f"/territories/{t}/layers/parcels").status_code == 422
    assert client.get("/territories/99999/layers/roads").status_code == 404
    assert client.get("/plans/99999/blocks").status_code == 404
    bad = client.get(f"/territories/{t}/layers/roads", params={"bbox": "1,2,3"})
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM
    assert client.get(f"/territories/{t}/layers/roads",
                      params={"display": "mercator"}).status_code == 422


def test_a_plans_blocks_carry_their_grid(client: TestClient, store: DemoStore) -> None:
    body = client.get(f"/plans/{store.plan_id}/blocks").json()
    stored = read_blocks(store.engine, store.plan_id)
    assert len(body["features"]) == len(stored) > len(store.grids)
    codes = {f["properties"]["grid_code"] for f in body["features"]}
    assert codes == set(store.grids["code"])
    assert sum(f["properties"]["households"] for f in body["features"]) == \
        int(store.grids["households"].sum())


def test_a_plans_inferred_streets_are_served_with_their_width(client: TestClient,
                                                              store: DemoStore) -> None:
    stored = read_lines(store.engine, store.plan_id, kind="inferred_street")
    assert len(stored) > 1
    url = f"/plans/{store.plan_id}/lines"
    response = client.get(url, params={"kind": "inferred_street"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert (body["plan_id"], body["display"]) == (store.plan_id, "wgs84")
    assert [f["id"] for f in body["features"]] == [int(n) for n in stored["line_no"]]
    assert [f["properties"]["width_m"] for f in body["features"]] == \
        [float(w) for w in stored["width_m"]]
    assert [f["properties"]["name"] for f in body["features"]] == list(stored["name"])
    assert {f["geometry"]["type"] for f in body["features"]} == {"MultiLineString"}
    got = shapely.from_geojson([json.dumps(f["geometry"]) for f in body["features"]])
    assert np.all(shapely.equals_exact(got, stored.geometry.to_numpy(), tolerance=1e-6))
    assert client.get(url).json()["features"] == body["features"]   # every kind: the same
    # A bbox around one street selects it and not the streets far away.
    one = stored.geometry.iloc[0]
    box = one.buffer(1e-4).bounds
    near = client.get(url, params={"bbox": ",".join(f"{v:.7f}" for v in box)}).json()
    want = stored["line_no"][shapely.intersects(stored.geometry.to_numpy(), shapely.box(*box))]
    assert sorted(f["id"] for f in near["features"]) == sorted(int(n) for n in want)
    assert 0 < len(near["features"]) < len(stored)
    # Too many for the limit: 400 asking to zoom in; bad requests are problems.
    capped = client.get(url, params={"limit": 1})
    assert capped.status_code == 400 and "zoom in" in capped.json()["detail"]
    assert "推测巷道" in client.get(url, params={"limit": 1, "kind": "inferred_street"}
                                 ).json()["detail"]
    assert client.get(url, params={"kind": "river"}).status_code == 422
    assert client.get(url, params={"bbox": "1,2,3"}).status_code == 400
    assert client.get("/plans/99999/lines").status_code == 404


def test_display_gcj02_shifts_every_overlay_as_gis_crs_does(client: TestClient,
                                                            store: DemoStore) -> None:
    for url in (f"/territories/{store.territory_id}/layers/facilities",
                f"/territories/{store.territory_id}/layers/admin_areas",
                f"/plans/{store.plan_id}/blocks", f"/plans/{store.plan_id}/grids?simplify=2",
                f"/plans/{store.plan_id}/lines"):
        plain = client.get(url, params={"display": "wgs84"}).json()["features"]
        shifted = client.get(url, params={"display": "gcj02"}).json()["features"]
        assert len(plain) == len(shifted) > 0
        for a, b in zip(plain[:5], shifted[:5], strict=True):
            xy = coords(a)
            lon, lat = gcj02_from_wgs84(xy[:, 0], xy[:, 1])
            assert np.allclose(coords(b), np.column_stack([lon, lat]), atol=2e-7)
            assert np.abs(coords(b) - xy).max() > 1e-3   # hundreds of metres in Guangzhou
    # A bbox drawn on a GCJ-02 map selects what the same place selects in WGS84.
    buildings = read_layer(store.engine, store.territory_id, "buildings")
    x0, y0, x1, y1 = buildings.total_bounds
    box = np.array([x0, y0, (x0 + x1) / 2, (y0 + y1) / 2])
    gx, gy = gcj02_from_wgs84(box[[0, 2]], box[[1, 3]])
    url = f"/territories/{store.territory_id}/layers/buildings"
    plain = client.get(url, params={"bbox": ",".join(map(str, box))}).json()["features"]
    shifted = client.get(url, params={"display": "gcj02", "bbox": f"{gx[0]},{gy[0]},{gx[1]},"
                                                                   f"{gy[1]}"}).json()["features"]
    assert 0 < len(plain) <= len(shifted) <= len(plain) * 1.05


def test_the_map_page_is_light_and_local(client: TestClient, store: DemoStore) -> None:
    response = client.get(f"/plans/{store.plan_id}/map")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f"<title>{DEMO_NAME} 网格划分方案 第{store.version}版</title>" in html
    assert not EXTERNAL.findall(html), EXTERNAL.findall(html)
    assert "/static/vendor/leaflet/leaflet.js" in html and "/static/planner.js" in html
    assert "jquery" not in html.lower() and "bootstrap" not in html.lower()
    # No geometry: only URLs to fetch it from, whatever the size of the plan.
    assert len(response.content) < 12_000
    assert '"coordinates"' not in html and "Polygon" not in html
    assert f"/plans/{store.plan_id}/grids?simplify=" in html
    assert client.get("/plans/99999/map").status_code == 404
    schema = client.get("/openapi.json").json()["paths"]
    assert "/plans/{plan_id}/map" in schema and "/" not in schema
    assert "/territories/{territory_id}/layers/{layer}" in schema


def test_the_index_lists_territories_and_plans_with_links(client: TestClient,
                                                          store: DemoStore) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/html")
    html = response.text
    p, t = store.plan_id, store.territory_id
    assert DEMO_NAME in html and "小区域" in html and "已发布" in html
    for link in (f"/plans/{p}/map", f"/plans/{p}/grids", f"/plans/{p}/export.xlsx",
                 f"/plans/{p}/export.gpkg", f"/screen?territory={t}", "/docs"):
        assert f'href="{link}"' in html, link
    towns = {c for c, parent in store.area_parents.items() if len(c) == 9}
    assert towns
    for code in towns:
        assert f'href="/plans/{p}/posters/{code}.pdf?size=A3"' in html
    assert not EXTERNAL.findall(html)
    # The links the index gives to existing routes work.
    for link in (f"/plans/{p}/map", f"/plans/{p}/grids", f"/plans/{p}/export.csv", "/docs"):
        assert client.get(link).status_code == 200, link


# --- the page in headless Chromium (PostGIS) --------------------------------------------------


@contextmanager
def plan_map(browser: Any, server: LiveServer, store: DemoStore
             ) -> Iterator[tuple[Any, Any, list[str]]]:
    """The published plan's map page loaded and its grids drawn, the errors it reports and
    the URLs it requested; closed when the block ends."""
    requested: list[str] = []
    page, errors = open_page(browser, f"{server.url}/plans/{store.plan_id}/map",
                             requests=requested)
    try:
        wait_for(page, "window.gridmap && window.gridmap.ready", timeout=30_000)
        yield page, errors, requested
    finally:
        page.close()


def local_only(urls: list[str]) -> None:
    hosts = {urlparse(u).hostname for u in urls if urlparse(u).scheme in ("http", "https")}
    assert hosts <= {"127.0.0.1"}, hosts


def set_view(page: Any, lat: float, lon: float, zoom: int) -> None:
    page.evaluate(f"window.gridmap.map.setView([{lat}, {lon}], {zoom}, {{animate: false}})")
    page.wait_for_timeout(200)


def overlay_box(page: Any, name: str) -> Any:
    label = page.locator(".leaflet-control-layers-overlays label").filter(
        has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))
    return label.locator("input")


@POSTGIS_ONLY
def test_page_draws_every_grid_with_a_legend_offline(browser: Any, server: LiveServer,
                                                     store: DemoStore) -> None:
    with plan_map(browser, server, store) as (page, errors, requested):
        assert not errors, errors
        local_only(requested)
        state = page.evaluate("({n: gridmap.gridsDrawn, counts: gridmap.counts, "
                              "errors: gridmap.errors})")
        assert state["n"] == len(store.grids)
        assert not state["errors"]
        hh = store.grids["households"]
        ded = store.grids["kind"] == "dedicated"
        assert state["counts"] == {"below": int(((hh < 300) & ~ded).sum()),
                                   "within": int(((hh >= 300) & (hh <= 500) & ~ded).sum()),
                                   "above": int(((hh > 500) & ~ded).sum()),
                                   "dedicated": int(ded.sum())}
        legend = page.locator(".gm-legend").inner_text()
        for band in (*BANDS, "专属网格"):
            assert band in legend
        assert page.title() == f"{DEMO_NAME} 网格划分方案 第{store.version}版"
        assert f"{int(hh.sum()):,}" in page.locator(".gm-title").inner_text()
        # The grids came by URL, simplified, and only once; no overlay was fetched.
        grids = server.paths(rf"^/plans/{store.plan_id}/grids$")
        assert len(grids) == 1
        assert not server.paths("/layers/|/blocks")
        screenshot(page, "planner_overview")
        # Every grid is drawn on the canvas: with the labels off, the pixel under each
        # grid's label point is not the map's background.
        overlay_box(page, "网格编号").uncheck()
        points = page.evaluate("""Object.keys(gridmap.labelAt).map(c => {
            const p = gridmap.map.latLngToContainerPoint(gridmap.labelAt[c]);
            return [Math.round(p.x), Math.round(p.y)]; })""")
        image = np.asarray(Image.open(io.BytesIO(page.locator("#gm-map").screenshot()))
                           .convert("RGB")).astype(int)
        css = page.evaluate("getComputedStyle(gridmap.map.getContainer()).backgroundColor")
        background = np.array([int(v) for v in re.findall(r"\d+", css)[:3]])
        assert list(background) == [0xEE, 0xF1, 0xF4]   # planner.css, not Leaflet's grey
        corner = image[-60, 60]    # outside the grids: the background (bottom left)
        assert np.abs(corner - background).sum() < 6, corner
        h, w, _ = image.shape
        assert all(0 <= x < w and 0 <= y < h for x, y in points)
        plain = [(x, y) for x, y in points if np.abs(image[y, x] - background).sum() < 6]
        assert not plain, plain


@POSTGIS_ONLY
def test_labels_appear_only_once_zoomed_in(browser: Any, server: LiveServer,
                                           store: DemoStore) -> None:
    with plan_map(browser, server, store) as (page, errors, _):
        centre = store.grids.geometry.union_all().centroid
        set_view(page, centre.y, centre.x, 9)
        assert page.evaluate("gridmap.labelsShown") == 0
        assert page.locator(".gm-label span").count() == 0
        set_view(page, centre.y, centre.x, 16)
        shown = page.evaluate("gridmap.labelsShown")
        assert shown > 0
        labels = page.locator(".gm-label span")
        assert labels.count() == shown
        texts = set(labels.all_inner_texts())
        assert texts <= {c[-3:] for c in store.grids["code"]}
        assert labels.first.is_visible()
        screenshot(page, "planner_labels")
        assert not errors, errors


def click_grid(page: Any, code: str) -> None:
    """Frame the grid, then click the map at its label point like a person would."""
    page.evaluate(f"""() => {{
        const g = window.gridmap, layer = g.byCode["{code}"];
        g.map.fitBounds(layer.getBounds(), {{animate: false}});
    }}""")
    page.wait_for_timeout(200)
    point = page.evaluate(f"""() => {{
        const g = window.gridmap, p = g.map.latLngToContainerPoint(g.labelAt["{code}"]);
        const r = g.map.getContainer().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y];
    }}""")
    # Under a label point is the grid: the label itself does not take the click.
    page.mouse.click(point[0], point[1] + 8)


@POSTGIS_ONLY
def test_clicking_a_grid_opens_its_popup(browser: Any, server: LiveServer,
                                         store: DemoStore) -> None:
    with plan_map(browser, server, store) as (page, errors, _):
        flagged = store.grids[[len(f) > 0 for f in store.grids["flags"]]].iloc[0]
        click_grid(page, flagged["code"])
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5_000)
        text = popup.inner_text()
        assert flagged["code"] in text
        assert f"{int(flagged['households']):,}" in text
        assert flagged["boundary_text"] in text and "四至" in text
        assert f"{int(flagged['population']):,}" in text
        assert "紧凑度" in text and f"{flagged['compactness']:.2f}" in text
        # Flags in Chinese, not their English names.
        assert not any(f in text for f in flagged["flags"])
        names = page.evaluate("GridmapPlanner.FLAG_NAMES")
        assert all(names[f] in text for f in flagged["flags"])
        page.wait_for_timeout(400)    # the popup's fade-in
        screenshot(page, "planner_popup")
        assert not errors, errors


@POSTGIS_ONLY
def test_a_grid_crossing_a_river_says_so_in_chinese_with_its_reason(
        browser: Any, server: LiveServer, store: DemoStore) -> None:
    with plan_map(browser, server, store) as (page, errors, _):
        crossing = store.grids[store.grids["flags"].map(lambda f: "crosses_barrier" in f)]
        grid = crossing.sort_values("barrier_inside_m").iloc[-1]
        assert grid["barrier_inside_m"] > 0 and grid["flag_reason"]
        click_grid(page, grid["code"])
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5_000)
        text = popup.inner_text()
        assert grid["code"] in text and "跨越河流/山脊/铁路" in text
        assert "crosses_barrier" not in text
        assert page.locator(".leaflet-popup-content .gm-reason").inner_text() == \
            grid["flag_reason"]
        assert "网格内河流/山脊/铁路" in text
        assert f"{grid['barrier_inside_m']:,.0f} 米" in text
        page.wait_for_timeout(400)
        screenshot(page, "planner_crossing_popup")
        # A river or lake made a grid of its own is coloured as water, not as a dedicated
        # grid; the legend has it.
        # (band_class as the server classes a grid: gis.band.classify.)
        fill = page.evaluate("""[GridmapPlanner.gridStyle({properties: {kind: "dedicated",
            name: "白云湖水域专属网格", households: 0, band_class: "dedicated"}}).fillColor,
            GridmapPlanner.gridStyle({properties: {kind: "dedicated", name: "白云工业园专属网格",
            households: 0, band_class: "dedicated"}}).fillColor, GridmapPlanner.COLORS]""")
        assert fill[0] == fill[2]["water"] != fill[1] == fill[2]["dedicated"]
        assert "水域专属网格" in page.locator(".gm-legend").inner_text()
        assert not errors, errors


@POSTGIS_ONLY
def test_the_inferred_streets_layer_shows_each_streets_width(
        browser: Any, server: LiveServer, store: DemoStore) -> None:
    stored = read_lines(store.engine, store.plan_id, kind="inferred_street")
    with plan_map(browser, server, store) as (page, errors, _):
        assert not server.paths("/lines")     # fetched only once switched on
        overlay_box(page, "推测巷道").check()
        wait_for(page, "gridmap.layers.inferred_streets.loaded", timeout=10_000)
        assert server.paths(rf"^/plans/{store.plan_id}/lines$")
        assert page.evaluate("gridmap.layers.inferred_streets.features") == len(stored)
        # Thin and dashed, unlike the given roads.
        style = page.evaluate("""gridmap.layers.inferred_streets.layer.getLayers()
            .filter(l => l.options.opacity > 0).map(l => [l.options.dashArray,
            l.options.weight])""")
        assert len(style) == len(stored) and all(dash and weight < 2 for dash, weight in style)
        street = stored.sort_values("width_m").iloc[-1]
        xy = shapely.get_coordinates(street.geometry)
        lon, lat = xy[len(xy) // 2]
        x0, y0, x1, y1 = street.geometry.bounds
        page.evaluate(f"gridmap.map.fitBounds([[{y0}, {x0}], [{y1}, {x1}]], "
                      "{animate: false, maxZoom: 17})")
        page.wait_for_timeout(300)
        point = page.evaluate(f"""() => {{
            const m = gridmap.map, p = m.latLngToContainerPoint([{lat}, {lon}]).round();
            const r = m.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }}""")
        page.mouse.click(point[0], point[1])
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5_000)
        text = popup.inner_text()
        assert "推测巷道" in text and str(street["name"]) in text
        assert f"宽度\t{street['width_m']:.1f} 米" in text
        assert "道路数据中无此路" in text
        page.wait_for_timeout(400)
        screenshot(page, "planner_inferred_street")
        assert not errors, errors


@POSTGIS_ONLY
def test_search_by_code_zooms_to_the_grid_and_opens_it(browser: Any, server: LiveServer,
                                                       store: DemoStore) -> None:
    with plan_map(browser, server, store) as (page, errors, _):
        grid = store.grids.iloc[len(store.grids) // 2]
        box = page.locator(".gm-search input")
        box.fill(grid["code"])
        box.press("Enter")
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5_000)
        assert grid["code"] in popup.inner_text()
        view = page.evaluate("(() => { const b = gridmap.map.getBounds(); "
                             "return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()")
        assert shapely.box(*view).contains(grid.geometry.representative_point())
        # A partial code matching several grids lists them; choosing one opens it.
        village = grid["village_code"]
        matches = [c for c in store.grids["code"] if village[-6:] in c]
        assert len(matches) > 1
        page.locator(".leaflet-popup-close-button").click()
        box.fill(village[-6:])
        page.locator(".gm-search button[type=submit]").click()
        options = page.locator(".gm-results button")
        assert options.count() == min(len(matches), 30)
        options.nth(1).click()
        page.wait_for_timeout(200)
        assert options.nth(1).get_attribute("data-code") in \
            page.locator(".leaflet-popup-content").inner_text()
        page.wait_for_timeout(400)
        screenshot(page, "planner_search")
        box.fill("987654321")
        box.press("Enter")
        assert "未找到" in page.locator(".gm-results").inner_text()
        assert not errors, errors


@POSTGIS_ONLY
def test_each_overlay_is_fetched_when_switched_on_and_drawn(browser: Any, server: LiveServer,
                                                            store: DemoStore) -> None:
    with plan_map(browser, server, store) as (page, errors, requested):
        svg_paths = "document.querySelectorAll('.leaflet-gm-overlays-pane path').length"
        specs = {s["key"]: s for s in page.evaluate("gridmap.config.layers")}
        # The plan's inferred streets come as a layer when it has any (their own test).
        lines = {"inferred_streets"} if len(read_lines(store.engine, store.plan_id)) else set()
        assert set(specs) == {"blocks", *LAYERS, *lines}
        specs = {k: s for k, s in specs.items() if k not in lines}
        assert not server.paths("/layers/|/blocks")     # nothing before it is switched on
        for key, spec in specs.items():
            if key == "buildings":
                continue
            before = page.evaluate(svg_paths)
            overlay_box(page, spec["name"]).check()
            wait_for(page, f"gridmap.layers['{key}'].loaded", timeout=15_000)
            path = urlparse(spec["url"]).path
            assert len(server.paths(f"^{re.escape(path)}$")) == 1, key
            n = page.evaluate(f"gridmap.layers['{key}'].features")
            stored = (len(read_blocks(store.engine, store.plan_id)) if key == "blocks"
                      else len(read_layer(store.engine, store.territory_id, key)))
            assert n == stored, key
            drawn = page.evaluate(svg_paths) - before
            assert drawn >= (n if key != "water" else 1), key
        screenshot(page, "planner_overlays")
        # Buildings: not at this zoom (a notice says to zoom in); by bbox once zoomed in.
        buildings = urlparse(specs["buildings"]["url"]).path
        overlay_box(page, specs["buildings"]["name"]).check()
        page.wait_for_timeout(300)
        assert not server.paths(f"^{re.escape(buildings)}$")
        assert "放大" in page.locator(".gm-notice").inner_text()
        grid = store.grids.iloc[0].geometry.representative_point()
        set_view(page, grid.y, grid.x, 17)
        wait_for(page, "gridmap.layers.buildings.loaded", timeout=15_000)
        queries = [q for p, q in server.requests if p == buildings]
        assert len(queries) == 1 and "bbox" in queries[0]
        x0, y0, x1, y1 = (float(v) for v in queries[0]["bbox"][0].split(","))
        assert x1 - x0 < 0.05 and y1 - y0 < 0.05
        assert page.evaluate("gridmap.layers.buildings.features") > 0
        screenshot(page, "planner_buildings")
        local_only(requested)
        assert not errors, errors


@POSTGIS_ONLY
def test_a_gcj02_basemap_shifts_what_the_page_receives(browser: Any, store: DemoStore) -> None:
    # A "basemap" served locally (any PNG will do): the page stays offline.
    settings = store.settings.model_copy(update={
        "basemap_url": "/static/vendor/leaflet/images/layers.png?z={z}&x={x}&y={y}",
        "basemap_attribution": "测试底图 GCJ-02", "basemap_crs": "gcj02"})
    with live_server(create_app(settings, store.engine)) as running:
        bodies: dict[str, Any] = {}
        page, errors = open_page(browser, "about:blank")
        page.on("response", lambda r: bodies.__setitem__(r.url, r) if "/grids" in r.url
                or "/layers/" in r.url else None)
        try:
            page.goto(f"{running.url}/plans/{store.plan_id}/map", wait_until="networkidle")
            wait_for(page, "window.gridmap && window.gridmap.ready", timeout=30_000)
            (url, response), = ((u, r) for u, r in bodies.items() if "/grids" in u)
            assert parse_qs(urlparse(url).query)["display"] == ["gcj02"]
            received = response.json()["features"]
            plain = httpx.get(url.replace("display=gcj02", "display=wgs84")).json()["features"]
            assert len(received) == len(plain) == len(store.grids)
            for a, b in zip(plain[::7], received[::7], strict=True):
                xy = coords(a)
                lon, lat = gcj02_from_wgs84(xy[:, 0], xy[:, 1])
                assert np.allclose(coords(b), np.column_stack([lon, lat]), atol=2e-7)
            # The grid layer sits on the shifted coordinates.
            code = received[0]["id"]
            bounds = page.evaluate(f"(() => {{ const b = gridmap.bounds['{code}']; "
                                   "return [b.getWest(), b.getSouth()]; })()")
            assert np.allclose(bounds, coords(received[0]).min(axis=0), atol=1e-6)
            # Overlays come shifted too.
            overlay_box(page, "公共设施").check()
            wait_for(page, "gridmap.layers.facilities.loaded", timeout=15_000)
            (url, response), = ((u, r) for u, r in bodies.items() if "/layers/" in u)
            assert parse_qs(urlparse(url).query)["display"] == ["gcj02"]
            facilities = read_layer(store.engine, store.territory_id, "facilities")
            lon, lat = gcj02_from_wgs84(facilities.geometry.x.to_numpy(),
                                        facilities.geometry.y.to_numpy())
            got = np.array([f["geometry"]["coordinates"] for f in response.json()["features"]])
            assert np.allclose(got, np.column_stack([lon, lat]), atol=2e-7)
            assert "测试底图 GCJ-02" in page.locator(".leaflet-control-attribution").inner_text()
            assert page.locator(".leaflet-tile-pane img").count() > 0
            screenshot(page, "planner_gcj02")
            assert not errors, errors
        finally:
            page.close()


def test_the_map_names_every_flag_as_the_rest_of_the_product_does() -> None:
    """planner.js FLAG_NAMES = gis/names.py FLAG_NAMES (posters, exports, index), and every
    flag the engine and the edits set has a Chinese name."""
    from pathlib import Path

    from gis.names import FLAG_NAMES
    from partitioning.flags import FORCED

    script = (Path(__file__).parents[2] / "maps/static/planner.js").read_text(encoding="utf-8")
    block = re.search(r"var FLAG_NAMES = \{(.*?)\};", script, re.S)
    assert block is not None
    in_js = dict(re.findall(r'(\w+): "([^"]+)"', block.group(1)))
    assert in_js == FLAG_NAMES
    assert set(FORCED) | {"below_min", "above_max", "noncontiguous", "crosses_barrier"} \
        <= set(FLAG_NAMES)


def test_no_page_script_holds_a_copy_of_the_band_rule() -> None:
    """The pages colour grids by the band_class the server sends (gis.band.classify):
    no script compares households with the band's ends itself."""
    from pathlib import Path

    static = Path(__file__).parents[2] / "maps/static"
    rule = re.compile(r"households\s*[<>]|[<>]=?\s*\w*band\[[01]\]|band\[[01]\]\s*[<>]")
    copies = [f"{path.name}: {line.strip()}" for path in sorted(static.glob("*.js"))
              for line in path.read_text(encoding="utf-8").splitlines() if rule.search(line)]
    assert not copies, copies
    assert "band_class" in (static / "planner.js").read_text(encoding="utf-8")
    assert "band_class" in (static / "compare.js").read_text(encoding="utf-8")


def test_the_index_counts_flagged_grids_in_chinese(client: TestClient, store: DemoStore
                                                  ) -> None:
    html = client.get("/").text
    row = next(r for r in html.split("<tr")[1:] if f'href="/plans/{store.plan_id}/map"' in r)
    crossing = sum("crosses_barrier" in f for f in store.grids["flags"])
    assert crossing > 0 and f"跨越河流/山脊/铁路 {crossing}" in row
    assert "crosses_barrier" not in html
