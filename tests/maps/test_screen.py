"""The command-centre big screen: /screen/data on both backends, the page in headless Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pytest
import shapely
from browser import LiveServer, PageErrors, live_server, open_page, screenshot, wait_for
from conftest import fresh_database, new_postgis_database
from fastapi.testclient import TestClient
from signin import client_for
from sqlalchemy import text

from api.app import create_app
from data.demo import generate
from events.dashboard import screen_data
from gis.database import make_engine
from gis.io.territory import read_territory
from gis.obfuscation import gcj02_from_wgs84
from gis.plans import publish_plan, write_plan
from gis.settings import Settings
from gis.store import import_territory
from partitioning.engine import partition_territory
from partitioning.output import grid_table
from partitioning.params import PartitionParams

#: 09:00 UTC is 17:00 in China Standard Time: the CST day ends at 16:00 UTC.
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
COUNTS = ("open", "green", "yellow", "red", "resolved", "resolved_on_time", "on_time_rate")


class Clock:
    """A clock the test moves by hand (the app's ``state.clock``)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Built:
    """A store with the published demo plan, copied for each test."""

    backend: str
    url: str
    name: str   # PostGIS database name or SpatiaLite path


@pytest.fixture(scope="module")
def demo_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(10_000, 3).write(tmp_path_factory.mktemp("screen") / "territory.gpkg")


@pytest.fixture(scope="module", params=["postgis", "spatialite"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          demo_gpkg: Path) -> Built:
    """The demo district imported and partitioned, its plan published, once per module."""
    backend = str(request.param)
    url = fresh_database(request, backend, tmp_path_factory.mktemp("screen-built"))
    name = url.rsplit("/", 1)[1] if backend == "postgis" else url.removeprefix("sqlite:///")
    engine = make_engine(url)
    territory = read_territory(demo_gpkg)
    tid = import_territory(engine, territory, name="白云示范区")
    result = partition_territory(territory, PartitionParams(seed=1))
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(4326)
    publish_plan(engine, write_plan(engine, tid, grid_table(result), blocks, result.report,
                                    {"seed": 1}))
    engine.dispose()
    return Built(backend, url, name)


def _copy(built: Built, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if built.backend == "spatialite":
        path = tmp_path / "gridmap.sqlite"
        shutil.copy(built.name, path)
        return f"sqlite:///{path}"
    return new_postgis_database(request.getfixturevalue("postgis_server"), built.name)


@dataclass
class Screen:
    client: TestClient
    clock: Clock
    territory_id: int
    grids: gpd.GeoDataFrame
    settings: Settings


@pytest.fixture
def screen(built: Built, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Screen]:
    url = _copy(built, request, tmp_path)
    engine = make_engine(url)
    settings = Settings(database_url=url, escalation_interval_s=0)
    app = create_app(settings, engine)
    clock = Clock()
    app.state.clock = clock
    with client_for(app) as client:
        plan = client.get("/plans").json()[-1]
        grids = gpd.GeoDataFrame.from_features(
            client.get(f"/plans/{plan['id']}/grids").json()["features"], crs=4326)
        yield Screen(client, clock, int(plan["territory_id"]), grids, settings)
    engine.dispose()


def report(client: TestClient, point: shapely.Point, category: str = "sanitation",
           **extra: Any) -> dict[str, Any]:
    r = client.post("/events", json={"x": point.x, "y": point.y, "coord_sys": "wgs84",
                                     "category": category, "source": "patrol",
                                     "reporter": "张三", **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def resolve(client: TestClient, event_id: int) -> None:
    for action, actor, extra in (("accept", "站长", {}), ("dispatch", "站长", {"handler": "李四"}),
                                 ("start", "李四", {}), ("resolve", "李四", {})):
        r = client.post(f"/events/{event_id}/actions",
                        json={"action": action, "actor": actor, **extra})
        assert r.status_code == 200, r.text


def populate(s: Screen) -> list[dict[str, Any]]:
    """Events in grids of several towns and villages, in every light, some resolved on time
    and some late; returns them as reported."""
    grids = s.grids.sort_values("code").reset_index(drop=True)
    towns = sorted({c[:9] for c in grids["village_code"]})
    assert len(towns) >= 2, "the demo must have several towns"
    picks = [grids[grids["village_code"].str[:9] == t].index[:3] for t in towns]
    chosen = grids.loc[np.concatenate(picks)]
    inside = shapely.point_on_surface(chosen.geometry.to_numpy())
    categories = ["safety_hazard", "sanitation", "dispute", "livelihood"]
    events = []
    for i, p in enumerate(inside):
        for k in range(1 + i % 3):
            events.append(report(s.client, p, categories[(i + k) % len(categories)]))
    resolve(s.client, events[0]["id"])                      # on time
    s.clock.now = T0 + timedelta(hours=5)                    # safety hazards (4 h) are red
    resolve(s.client, events[1]["id"])                       # late if a safety hazard
    s.clock.now = T0 + timedelta(hours=20)                   # sanitation (24 h) is yellow
    resolve(s.client, events[2]["id"])
    return events


def stats(client: TestClient, by: str) -> dict[str, Any]:
    return dict(client.get("/events/stats", params={"by": by}).json())


def data(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/screen/data", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return dict(r.json())


def same(counts: dict[str, Any], want: dict[str, Any] | None) -> None:
    want = want or {k: (None if k == "on_time_rate" else 0) for k in COUNTS}
    assert {k: counts[k] for k in COUNTS} == {k: want[k] for k in COUNTS}


def adds_up(d: dict[str, Any]) -> None:
    for k in ("open", "green", "yellow", "red", "resolved", "resolved_on_time", "today"):
        assert sum(c[k] for c in d["children"]) == d["counts"][k], k


def children_agree(view: dict[str, Any], groups: dict[str, Any]) -> None:
    """Each child area's counts are the event statistics' ``groups`` entry for it (none: all
    zero), and the children add up to the area."""
    for child in view["children"]:
        same(child, groups.get(child["code"]))
    adds_up(view)


def busiest(s: Screen, view: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The child area of ``view`` with the most open events, and the screen's data for it."""
    child = max(view["children"], key=lambda ch: ch["open"])
    return child, data(s.client, territory=s.territory_id, area=child["code"])


def test_counts_agree_with_event_stats_at_every_level(screen: Screen) -> None:
    s = screen
    populate(s)
    c = s.client
    top = data(c, territory=s.territory_id)
    total = stats(c, "district")["total"]
    same(top["counts"], total)
    assert 0 < top["counts"]["red"] < top["counts"]["open"]
    assert top["counts"]["yellow"] > 0 and top["counts"]["resolved"] == 3
    assert top["counts"]["today"] == 0   # reported 17:00 CST on 1 May; now 13:00 on 2 May
    assert top["area"]["level"] == "district" and top["children_level"] == "town"
    assert [a["code"] for a in top["path"]] == [top["area"]["code"]]
    by_town = stats(c, "town")["groups"]
    assert {ch["code"] for ch in top["children"]} >= set(by_town)
    children_agree(top, by_town)

    town, t = busiest(s, top)
    same(t["counts"], by_town[town["code"]])
    assert [a["code"] for a in t["path"]] == [top["area"]["code"], town["code"]]
    by_village = stats(c, "village")["groups"]
    for child in t["children"]:
        assert child["level"] == "village" and child["code"].startswith(town["code"])
    children_agree(t, by_village)

    village, v = busiest(s, t)
    by_grid = stats(c, "grid")["groups"]
    assert {ch["code"] for ch in v["children"]} == set(
        s.grids.loc[s.grids["village_code"] == village["code"], "code"])
    children_agree(v, by_grid)

    grid, g = busiest(s, v)
    same(g["counts"], by_grid[grid["code"]])
    assert g["area"]["level"] == "grid" and g["children"] == [] and g["children_level"] is None
    assert [a["level"] for a in g["path"]] == ["district", "town", "village", "grid"]
    assert {r[5] for r in g["points"]["rows"]} == {grid["code"]}

    # The map's colours: every grid with open events, its worst light and open count.
    want = {code: grp for code, grp in by_grid.items() if grp["open"]}
    assert set(top["grids"]) == set(want)
    for code, grp in want.items():
        light = "red" if grp["red"] else "yellow" if grp["yellow"] else "green"
        assert top["grids"][code] == {"open": grp["open"], "light": light}
    assert set(t["grids"]) == {k for k in want if k.startswith(town["code"])}

    # The points: every open event (fewer than the cap), with the light /events gives.
    listed = {e["id"]: e for e in c.get("/events", params={"open": "true", "limit": 1000}
                                        ).json()}
    rows = top["points"]["rows"]
    assert top["points"]["fields"] == ["id", "lon", "lat", "light", "category", "grid_code"]
    assert {r[0] for r in rows} == set(listed) and not top["points"]["truncated"]
    for r in rows:
        assert (r[3], r[4], r[5]) == (listed[r[0]]["light"], listed[r[0]]["category"],
                                      listed[r[0]]["grid_code"])
    ranks = [{"red": 3, "yellow": 2, "green": 1}[r[3]] for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    minx, miny, maxx, maxy = t["bbox"]
    town_grids = s.grids[s.grids["village_code"].str.startswith(town["code"])]
    assert np.allclose([minx, miny, maxx, maxy], town_grids.total_bounds, atol=1e-5)


def test_points_are_capped_most_urgent_first(screen: Screen) -> None:
    s = screen
    populate(s)
    app: Any = s.client.app
    full = screen_data(app.state.engine, app.state.rules, s.clock(), s.territory_id)
    capped = screen_data(app.state.engine, app.state.rules, s.clock(), s.territory_id,
                         max_points=4)
    assert capped["points"]["truncated"] and capped["points"]["limit"] == 4
    assert capped["points"]["total_open"] == full["counts"]["open"] > 4
    assert capped["points"]["rows"] == full["points"]["rows"][:4]
    assert capped["points"]["rows"][0][3] == "red"
    assert capped["counts"] == full["counts"]


def test_today_follows_the_app_clock_in_china_standard_time(screen: Screen) -> None:
    s = screen
    p = shapely.point_on_surface(s.grids.geometry.iloc[0])
    report(s.client, p)                                          # 17:00 CST, 1 May
    report(s.client, p, reported_at="2026-04-30T15:59:00+00:00")  # 23:59 CST, 30 April
    assert data(s.client)["counts"]["today"] == 1
    assert data(s.client)["today"] == "2026-05-01"
    s.clock.now = datetime(2026, 5, 1, 15, 59, tzinfo=UTC)       # 23:59 CST: still 1 May
    assert data(s.client)["counts"]["today"] == 1
    s.clock.now = datetime(2026, 5, 1, 16, 0, tzinfo=UTC)        # midnight CST: 2 May
    d = data(s.client)
    assert d["today"] == "2026-05-02" and d["counts"]["today"] == 0
    report(s.client, p)
    assert data(s.client)["counts"]["today"] == 1
    s.clock.now = datetime(2026, 4, 30, 17, 0, tzinfo=UTC)       # 1 am CST, 1 May
    assert data(s.client)["counts"]["today"] == 1
    assert data(s.client)["counts"]["open"] == 3


def test_unknown_territory_or_area_is_404_and_unchanged_is_304(screen: Screen) -> None:
    c = screen.client
    for params in ({"territory": 999}, {"territory": screen.territory_id, "area": "999999"},
                   {"territory": screen.territory_id, "area": "440111999999999"}):
        r = c.get("/screen/data", params=params)
        assert r.status_code == 404, params
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "no " in r.json()["detail"]
    assert c.get("/screen", params={"territory": 999}).status_code == 404
    first = c.get("/screen/data")
    etag = first.headers["etag"]
    again = c.get("/screen/data", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    report(c, shapely.point_on_surface(screen.grids.geometry.iloc[1]))
    changed = c.get("/screen/data", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["counts"]["open"] == first.json()["counts"]["open"] + 1
    # Lights change with time alone: a new answer once the event turns yellow.
    tag = changed.headers["etag"]
    screen.clock.now = T0 + timedelta(hours=20)
    later = c.get("/screen/data", headers={"If-None-Match": tag})
    assert later.status_code == 200 and later.json()["counts"]["yellow"] == 1


def test_page_without_a_published_plan_says_to_publish_one(built: Built, tmp_path: Path,
                                                           request: pytest.FixtureRequest
                                                           ) -> None:
    url = _copy(built, request, tmp_path)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE plans SET status = 'archived'"))
    with client_for(create_app(Settings(database_url=url, escalation_interval_s=0),
                               engine)) as client:
        page = client.get("/screen")
        assert page.status_code == 200 and "请先发布" in page.text
        tid = client.get("/territories").json()[0]["id"]
        assert "尚无已发布的网格方案" in client.get("/screen", params={"territory": tid}).text
        assert client.get("/screen/data").status_code == 404
        quiet = client.get("/screen/data", params={"territory": tid}).json()
        assert quiet["plan_id"] is None and quiet["counts"]["open"] == 0
    engine.dispose()


def test_points_follow_a_gcj02_basemap(screen: Screen) -> None:
    s = screen
    p = shapely.point_on_surface(s.grids.geometry.iloc[2])
    report(s.client, p)
    app: Any = s.client.app
    plain = screen_data(app.state.engine, app.state.rules, s.clock(), s.territory_id)
    shifted = screen_data(app.state.engine, app.state.rules, s.clock(), s.territory_id,
                          basemap_crs="gcj02")
    lon, lat = gcj02_from_wgs84(np.array([p.x]), np.array([p.y]))
    row = shifted["points"]["rows"][0]
    assert shifted["display_crs"] == "gcj02"
    assert abs(row[1] - lon[0]) < 2e-6 and abs(row[2] - lat[0]) < 2e-6
    assert abs(plain["points"]["rows"][0][1] - p.x) < 2e-6
    assert shifted["bbox"] != plain["bbox"]


# --- the page in a real headless Chromium (PostGIS) ------------------------------------------

def _number(page: Any, element_id: str) -> int:
    return int(page.inner_text(f"#{element_id}").replace(",", ""))


def assert_fits_the_wall(page: Any, open_px: float) -> None:
    """Wall checks: no scrollbars, and the open count in figures at least ``open_px`` high."""
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth && "
                         "document.documentElement.scrollHeight <= innerHeight")
    size = page.evaluate("parseFloat(getComputedStyle(document.getElementById('n-open'))"
                         ".fontSize)")
    assert size >= open_px


@contextmanager
def screen_page(s: Screen, browser: Any, query: str = "",
                viewport: tuple[int, int] = (1600, 900), requests: list[str] | None = None
                ) -> Iterator[tuple[Any, PageErrors, LiveServer]]:
    """The screen page (``/screen`` + ``query``) served live over this store, its data
    loaded: the page, the errors it reports and the server; closed when the block ends.
    Every URL the page requests, from the first, is added to ``requests``."""
    with live_server(s.client.app) as server:
        page, errors = open_page(browser, f"{server.url}/screen{query}", viewport=viewport,
                                 requests=requests)
        try:
            wait_for(page, "window.gridmapScreen && window.gridmapScreen.data() !== null")
            yield page, errors, server
        finally:
            page.close()


@pytest.mark.parametrize("built", ["postgis"], indirect=True)
def test_page_updates_live_without_a_reload(screen: Screen, browser: Any) -> None:
    s = screen
    populate(s)
    requests: list[str] = []   # every request the page makes, from the start
    with screen_page(s, browser, f"?territory={s.territory_id}", (1920, 1080),
                     requests) as (page, errors, server):
        api = httpx.get(f"{server.url}/screen/data", params={"territory": s.territory_id}
                        ).json()["counts"]
        assert _number(page, "n-open") == api["open"] > 0
        assert _number(page, "n-red") == api["red"] > 0
        assert _number(page, "n-today") == api["today"]
        assert page.inner_text("#n-rate") == f"{api['on_time_rate'] * 100:.1f}%"
        assert page.locator("#children tbody tr").count() > 0
        assert_fits_the_wall(page, 60)
        screenshot(page, "screen_1920x1080")

        # An event posted through the API shows up without a reload.
        page.evaluate("window.__notReloaded = 'yes'")
        quiet = s.grids[~s.grids["code"].isin(api_grids(server.url, s.territory_id))]
        target = quiet.iloc[0]
        before_style = page.evaluate("c => window.gridmapScreen.gridStyle(c)", target.code)
        markers = page.evaluate("window.gridmapScreen.markerCount()")
        p = shapely.point_on_surface(target.geometry)
        r = httpx.post(f"{server.url}/events", json={
            "x": p.x, "y": p.y, "coord_sys": "wgs84", "category": "dispute",
            "source": "citizen"})
        assert r.status_code == 201
        wait_for(page,
            f"document.getElementById('n-open').textContent.replace(/,/g, '') == "
            f"'{api['open'] + 1}'", timeout=12_000)
        assert page.evaluate("window.__notReloaded") == "yes"
        assert page.evaluate("window.gridmapScreen.markerCount()") == markers + 1
        after_style = page.evaluate("c => window.gridmapScreen.gridStyle(c)", target.code)
        assert before_style["fillColor"] != after_style["fillColor"] == "#3ddc84"
        assert _number(page, "n-today") == api["today"] + 1

        # Time passes: the dispute (24 h at the grid) runs out and turns red on screen.
        red_before = _number(page, "n-red")
        s.clock.now = T0 + timedelta(hours=50)   # reported at T0 + 20 h
        want = httpx.get(f"{server.url}/screen/data").json()["counts"]["red"]
        assert want > red_before
        wait_for(page,
            f"document.getElementById('n-red').textContent.replace(/,/g, '') == '{want}'",
            timeout=12_000)
        assert page.evaluate("window.__notReloaded") == "yes"
        assert page.evaluate("c => window.gridmapScreen.gridStyle(c)", target.code
                             )["fillColor"] == "#ff4d4f"
        assert not errors, errors
        local = [u for u in requests if not u.startswith((server.url, "data:"))]
        assert not local, local
        assert server.paths(r"^/screen/data$") and server.paths(r"^/static/vendor/leaflet/")


def api_grids(url: str, territory_id: int) -> list[str]:
    return list(httpx.get(f"{url}/screen/data", params={"territory": territory_id}
                          ).json()["grids"])


@pytest.mark.parametrize("built", ["postgis"], indirect=True)
def test_drill_down_and_back_by_breadcrumb(screen: Screen, browser: Any) -> None:
    s = screen
    populate(s)
    with screen_page(s, browser, viewport=(1920, 1080)) as (page, errors, _):
        page.evaluate("window.__notReloaded = 'yes'")
        top = page.evaluate("window.gridmapScreen.data()")
        zoom0 = page.evaluate("window.gridmapScreen.map.getZoom()")

        def drilled(code: str, level: str) -> dict[str, Any]:
            wait_for(page,
                f"window.gridmapScreen.data().area.code === '{code}'", timeout=10_000)
            d: dict[str, Any] = page.evaluate("window.gridmapScreen.data()")
            assert d["area"]["level"] == level
            assert page.inner_text("#area-name") == d["area"]["name"]
            assert page.locator("#crumbs a").count() == len(d["path"]) - 1
            assert _number(page, "n-open") == d["counts"]["open"]
            assert f"area={code}" in page.url
            return d

        town = max(top["children"], key=lambda ch: ch["open"])
        page.click(f"#children tr[data-code='{town['code']}']")
        t = drilled(town["code"], "town")
        village = max(t["children"], key=lambda ch: ch["open"])
        page.click(f"#children tr[data-code='{village['code']}']")
        v = drilled(village["code"], "village")
        page.wait_for_timeout(500)   # the zoom animation
        # The map zoomed to the village: all of it in view, closer than the district.
        assert page.evaluate("b => window.gridmapScreen.map.getBounds().contains("
                             "[[b[1], b[0]], [b[3], b[2]]])", v["bbox"])
        assert page.evaluate("window.gridmapScreen.map.getZoom()") > zoom0
        screenshot(page, "screen_village")

        # A grid is picked on the map itself.
        grid = s.grids.set_index("code").loc[max(v["children"], key=lambda ch: ch["open"])
                                             ["code"]]
        # Away from the events' markers (at the grid's point on surface), which take clicks.
        minx, miny, maxx, maxy = grid.geometry.bounds
        marker = shapely.point_on_surface(grid.geometry)
        p = shapely.point_on_surface(grid.geometry.difference(
            marker.buffer(0.3 * min(maxx - minx, maxy - miny))))
        xy = page.evaluate("([lat, lon]) => window.gridmapScreen.map.latLngToContainerPoint("
                           "[lat, lon])", [p.y, p.x])
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + xy["x"], box["y"] + xy["y"])
        g = drilled(str(grid.name), "grid")
        assert page.locator("#urgent tbody tr").count() == len(g["points"]["rows"]) > 0
        assert not page.locator("#children-box").is_visible()

        # Back up by the breadcrumb: to the town, then to the top.
        page.click(f"#crumbs a[data-code='{town['code']}']")
        drilled(town["code"], "town")
        page.click("#crumbs a >> nth=0")
        drilled(top["area"]["code"], "district")
        assert page.evaluate("window.__notReloaded") == "yes"
        assert not errors, errors


@pytest.mark.parametrize("built", ["postgis"], indirect=True)
def test_a_4k_wall_reads_alike(screen: Screen, browser: Any) -> None:
    s = screen
    populate(s)
    with screen_page(s, browser, viewport=(3840, 2160)) as (page, errors, _):
        assert_fits_the_wall(page, 120)
        screenshot(page, "screen_3840x2160")
        assert not errors, errors


@pytest.mark.parametrize("built", ["postgis"], indirect=True)
def test_department_grids_switch_on_the_screen(screen: Screen, browser: Any,
                                               tmp_path: Path) -> None:
    """Each overlay of the territory is a switchable layer of the screen (多网融合), fetched
    only when switched on, drawn in the basemap's system; the units' popups say their name."""
    s = screen
    metric = s.grids.to_crs(4547).dissolve("village_code").reset_index()
    units = gpd.GeoDataFrame({"code": "JW" + metric["village_code"],
                              "name": [f"第{i + 1}警务区" for i in range(len(metric))]},
                             geometry=metric.geometry.translate(90, -60), crs=4547).to_crs(4326)
    path = tmp_path / "jingwu.geojson"
    units.to_file(path, driver="GeoJSON", engine="pyogrio")
    for department in ("公安", "城管"):
        r = s.client.post(f"/territories/{s.territory_id}/overlays",
                          files=[("files", (path.name, path.read_bytes()))],
                          data={"department": department})
        assert r.status_code == 201, r.text
    with screen_page(s, browser, f"?territory={s.territory_id}") as (page, errors, server):
        labels = page.locator(".leaflet-control-layers-overlays label")
        assert sorted(t.strip() for t in labels.all_inner_texts()) == sorted(
            ["部门网格 · 公安", "部门网格 · 城管"])
        assert not server.paths("/overlays/")   # nothing before it is switched on
        labels.filter(has_text="公安").locator("input").check()
        wait_for(page, "window.gridmapScreen.overlays['公安'].loaded", timeout=15_000)
        assert page.evaluate("window.gridmapScreen.overlays['公安'].features") == len(units)
        assert not page.evaluate("window.gridmapScreen.overlays['城管'].loaded")
        asked = [(p, q) for p, q in server.requests if "/overlays/" in p]
        assert len(asked) == 1 and asked[0][1].get("display") == ["wgs84"], asked
        first = page.evaluate("""() => {
            const l = window.gridmapScreen.overlays['公安'].layer.getLayers()[0];
            l.openPopup(); return document.querySelector('.leaflet-popup-content')
                .textContent; }""")
        assert "公安" in first and "警务区" in first
        screenshot(page, "screen_overlay")
        assert not errors, errors

