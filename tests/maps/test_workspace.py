"""The workspace of every role in headless Chromium: the planner's upload (a field map from the
reader's suggestions), partition with progress and cancel, the report, publish with a note and
compare; accounts with areas picked on the tree and the map, keys and the audit log; the
operator's desk (dispatch, close, new events without a reload, the big screen's click); the grid
worker's phone page under mobile emulation (report with a photo and the position, offline and
back, a patrol). Screenshots in tests/artifacts/; every page passes axe-core with no serious
or critical violation."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from browser import LiveServer, PageErrors, live_server, screenshot, wait_for
from conftest import PublishedStore, fresh_store, tiny_layers, write_layers
from demo_plan import BACKENDS
from signin import account_key, client_for

from api.app import create_app

AXE = Path(__file__).parents[1] / "vendor" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1366, "height": 768}
#: A phone: 390 px wide (within 360–414), touch, geolocation granted.
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True,
         "user_agent": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 "
                       "(KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"}


@dataclass
class World(PublishedStore):
    grids: list[dict[str, Any]]
    tmp: Path


def _layers() -> dict[str, gpd.GeoDataFrame]:
    layers = tiny_layers()
    layers["buildings"]["households"] = [320, 300, 150, 350, 0]
    return layers


def _job_done(client: Any, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        body = client.get(f"/jobs/{job}").json()
        if body["state"] not in ("queued", "running"):
            assert body["state"] == "done", body
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with fresh_store(request, tmp_path_factory, "ws") as (backend, tmp, engine, settings):
        with client_for(create_app(settings, engine)) as client:
            path = write_layers(_layers(), tmp / "t", "GPKG")
            with path.open("rb") as fh:
                r = client.post("/territories", files={"files": (path.name, fh)},
                                data={"name": "白云示范区"})
            assert r.status_code == 201, r.text
            territory = int(r.json()["id"])
            job = client.post(f"/territories/{territory}/plans", json={"seed": 1}).json()
            plan = _job_done(client, job["id"])["plan_id"]
            assert client.post(f"/plans/{plan}/publish",
                               json={"note": "首版"}).status_code == 200
            grids = [f["properties"] | {"point": shapely.geometry.shape(f["geometry"])
                                        .representative_point()}
                     for f in client.get(f"/plans/{plan}/grids").json()["features"]]
            staff = [{"name": "王网格", "phone": "13800000001",
                      "grids": [g["code"] for g in grids]},
                     {"name": "李网格", "phone": "13800000002", "grids": [grids[0]["code"]]}]
            assert client.put(f"/territories/{territory}/staff",
                              json=staff).status_code == 200
        yield World(backend, engine, settings, territory, plan, grids, tmp)


@pytest.fixture(scope="module")
def app(world: World) -> Any:
    return create_app(world.settings, world.engine)


@pytest.fixture(scope="module")
def server(app: Any) -> Iterator[LiveServer]:
    with live_server(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[Any]:
    with client_for(app) as c:
        yield c


def new_page(browser: Any, url: str, **context: Any) -> tuple[Any, Any, PageErrors]:
    ctx = browser.new_context(**({"viewport": DESKTOP} | context))
    page = ctx.new_page()
    errors = PageErrors()
    page.on("console", lambda m: errors.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.exceptions.append(str(e)))
    page.goto(url, wait_until="networkidle")
    return ctx, page, errors


def axe_check(page: Any, name: str) -> None:
    """No serious or critical accessibility violation (axe-core, run through the DevTools
    protocol: the page's CSP forbids injected scripts, rightly)."""
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate("""async () => {
      const r = await axe.run(document, {resultTypes: ["violations"]});
      return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
    }""")
    assert result == [], (name, json.dumps(result, ensure_ascii=False, indent=1))


def no_errors(errors: PageErrors, where: str) -> None:
    """No exception and no console error but the refusals the flows provoke on purpose
    (a 4xx answer, which Chromium logs as a failed resource)."""
    assert not errors.exceptions, (where, errors.exceptions)
    refused = "Failed to load resource: the server responded with a status of 4"
    assert not [m for m in errors.console if not m.startswith(refused)], (where, errors.console)


# --- the planner ----------------------------------------------------------------------------


def _renamed_layers(folder: Path) -> Path:
    """The territory as layer files whose columns have the names a Chinese office gives
    them: the contract's names only after a field map."""
    layers = _layers()
    admin = layers["admin_areas"].rename(columns={
        "code": "行政区划代码", "name": "名称", "level": "级别", "parent_code": "上级编码"})
    buildings = layers["buildings"].rename(columns={"households": "户数", "population": "人口"})
    folder.mkdir(parents=True, exist_ok=True)
    admin.to_file(folder / "admin_areas.geojson", driver="GeoJSON", engine="pyogrio")
    buildings.to_file(folder / "buildings.geojson", driver="GeoJSON", engine="pyogrio")
    layers["roads"].to_file(folder / "roads.geojson", driver="GeoJSON", engine="pyogrio")
    return folder


def test_upload_with_a_field_map(browser: Any, server: LiveServer, world: World,
                                 client: Any) -> None:
    folder = _renamed_layers(world.tmp / "renamed")
    ctx, page, errors = new_page(browser, server.url + "/")
    try:
        wait_for(page, "window.gridmapWorkspace && gridmapWorkspace.ready")
        axe_check(page, "/")
        # A file the reader cannot open, dropped: the problem names the file and layer.
        page.evaluate("""() => {
          const dt = new DataTransfer();
          dt.items.add(new File(['{"type": "FeatureCollection", "features": [oops'],
                                "buildings.geojson", {type: "application/geo+json"}));
          document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""")
        wait_for(page, "document.getElementById('upload-msg').textContent"
                       ".includes('buildings.geojson')")
        assert "msg-error" in page.get_attribute("#upload-msg", "class")
        assert "图层 buildings" in page.inner_text("#upload-msg")
        # The real files: the preview lists the layers and suggests the field map.
        page.set_input_files("#upload-files", [str(p) for p in sorted(folder.iterdir())])
        wait_for(page, "window.gridmapWorkspace.preview !== null")
        rows = page.locator(".preview-layers tbody tr")
        assert rows.count() == 3
        text = page.locator(".preview-layers").inner_text()
        assert "admin_areas" in text and "EPSG:4326" in text and "4" in text
        assert page.input_value("#fm-admin_areas-code") == "行政区划代码"
        assert page.input_value("#fm-admin_areas-name") == "名称"
        assert page.input_value("#fm-admin_areas-level") == "级别"
        assert page.input_value("#fm-admin_areas-parent_code") == "上级编码"
        assert page.input_value("#fm-buildings-households") == "户数"
        assert page.input_value("#fm-buildings-population") == "人口"
        screenshot(page, f"workspace_upload_preview_{world.backend}")
        page.fill("#upload-form input[name=name]", "字段映射区")
        page.click("#upload-submit")
        wait_for(page, "window.gridmapWorkspace.uploaded", timeout=60_000)
        uploaded = page.evaluate("gridmapWorkspace.uploaded")
        assert uploaded["name"] == "字段映射区" and uploaded["layers"]["admin_areas"] == 4
        stored = client.get(f"/territories/{uploaded['id']}").json()
        assert stored["layers"]["buildings"] == 5
        page.wait_for_selector(f"#territory-{uploaded['id']}", timeout=15_000)  # reloaded
        no_errors(errors, "upload")
    finally:
        ctx.close()


def test_partition_with_progress_cancel_and_report(browser: Any, server: LiveServer,
                                                   world: World, app: Any, client: Any) -> None:
    ctx, page, errors = new_page(browser, server.url + "/")
    section = f"#territory-{world.territory_id}"
    try:
        wait_for(page, "window.gridmapWorkspace && gridmapWorkspace.ready")
        # The only worker is busy for a while: the job waits queued, and is cancelled.
        app.state.jobs._pool.submit(time.sleep, 4)
        page.click(f"{section} .partition summary")
        page.click(f"{section} .partition-form button[type=submit]")
        wait_for(page, "Object.keys(gridmapWorkspace.jobs).length === 1")
        page.click(f"{section} .job-cancel")
        wait_for(page, "Object.values(gridmapWorkspace.jobs).some(j => j.state === 'cancelled')")
        job = next(iter(page.evaluate("gridmapWorkspace.jobs").values()))
        stored = client.get(f"/jobs/{job['id']}").json()
        assert stored["state"] == "cancelled" and stored["plan_id"] is None
        assert "已取消" in page.locator(f"{section} .job-msg").inner_text()
        # Again, to the end: the bar moves by stage and the report comes with its map.
        time.sleep(4)
        page.fill(f"{section} .partition-form input[name=seed]", "2")
        page.fill(f"{section} .partition-form input[name=note]", "第二稿")
        page.click(f"{section} .partition-form button[type=submit]")
        wait_for(page, "Object.values(gridmapWorkspace.jobs).some(j => j.state === 'done')",
                 timeout=120_000)
        assert page.evaluate(f"document.querySelector('{section} .job-bar').value") == 1
        wait_for(page, "gridmapWorkspace.reportGrids > 0")
        figures = page.locator(f"{section} .report-figures").inner_text()
        assert "户数在范围内" in figures and "紧凑度" in figures and "需关注的网格" in figures
        screenshot(page, f"workspace_partition_{world.backend}")
        axe_check(page, "/ (report)")
        no_errors(errors, "partition")
    finally:
        ctx.close()


def test_publish_with_a_note_and_compare(browser: Any, server: LiveServer, world: World,
                                         client: Any) -> None:
    drafts = [p for p in client.get(f"/plans?territory={world.territory_id}").json()
              if p["status"] == "draft"]
    assert drafts
    draft = drafts[-1]["id"]
    ctx, page, errors = new_page(browser, server.url + "/")
    try:
        wait_for(page, "window.gridmapWorkspace && gridmapWorkspace.ready")
        page.fill(f"#note-{draft}", "按新户数调整")
        with page.expect_navigation():
            page.click(f".publish-form[data-plan='{draft}'] button")
        page.wait_for_load_state("networkidle")
        plan = client.get(f"/plans/{draft}").json()
        assert plan["status"] == "published" and plan["publish_note"] == "按新户数调整"
        assert client.get(f"/plans/{world.published}").json()["status"] == "archived"
        row = page.locator(f"tr[data-plan='{world.published}']").inner_text()
        assert "已归档" in row
        assert "按新户数调整" in page.locator(f"tr[data-plan='{draft}']").inner_text()
        form = page.locator(f"#territory-{world.territory_id} .compare-form")
        form.locator("select[name=a]").select_option(str(world.published))
        form.locator("select[name=b]").select_option(str(draft))
        with page.expect_navigation():
            form.locator("button").click()
        assert page.url.endswith(f"/plans/{world.published}/compare/{draft}")
        wait_for(page, "window.gridcompare && gridcompare.ready")
        no_errors(errors, "publish")
        # Back to the first plan for the other tests.
        assert client.post(f"/plans/{world.published}/publish").status_code == 200
    finally:
        ctx.close()


# --- accounts ---------------------------------------------------------------------------------


def test_accounts_with_areas_keys_and_audit(browser: Any, server: LiveServer, world: World,
                                            client: Any) -> None:
    ctx, page, errors = new_page(browser, server.url + "/admin")
    village = world.grids[0]["code"][:12]
    grid = world.grids[0]["code"]
    try:
        wait_for(page, "window.gridmapAdmin && gridmapAdmin.ready", timeout=60_000)
        axe_check(page, "/admin")
        assert page.evaluate("gridmapAdmin.treeNodes") >= 4 + len(world.grids)
        page.fill("#account-form input[name=username]", "wang")
        page.fill("#account-form input[name=display_name]", "王网格")
        page.fill("#account-form input[name=password]", "secret-pass-1")
        page.select_option("#account-form select[name=role]", "grid_worker")
        page.click(f".area-node[data-code='{village}']")          # the area tree
        # ...and a grid picked on the map (its polygon's click).
        page.evaluate(f"""() => gridmapAdmin.mapLayer.eachLayer(l => {{
            if (l.feature.properties.code === "{grid}") {{ l.fire("click"); }} }})""")
        chips = page.locator("#area-chips .chip")
        assert sorted(chips.evaluate_all("cs => cs.map(c => c.dataset.code)")) == [village, grid]
        page.click(f"#area-chips .chip[data-code='{village}'] button")   # take one back
        page.click("#account-submit")
        wait_for(page, "document.querySelector(\"#accounts tr[data-username='wang']\")")
        wang = next(a for a in client.get("/accounts").json() if a["username"] == "wang")
        assert wang["role"] == "grid_worker" and wang["areas"] == [grid]
        assert wang["display_name"] == "王网格"
        # A key, shown once, then revoked.
        page.click("#accounts tr[data-username='wang'] button:has-text('API 密钥')")
        page.fill("#key-form input[name=name]", "手机")
        page.click("#key-form button")
        wait_for(page, "document.getElementById('key-once').textContent.includes('gm_')")
        key = page.inner_text("#key-once").split("：", 1)[1].strip()
        assert client.get("/me", headers={"X-API-Key": key}).json()["username"] == "wang"
        page.click("#keys-table button.revoke")
        wait_for(page, "document.querySelector('#keys-table tbody').textContent.includes('已吊销')")
        time.sleep(5.2)   # the accounts' cache (api.auth.ACCOUNT_TTL_S)
        assert client.get("/me", headers={"X-API-Key": key}).status_code == 401
        # Disabled, then enabled again.
        page.click("#accounts tr[data-username='wang'] button.toggle")
        wait_for(page, "document.querySelector(\"#accounts tr[data-username='wang']\")"
                       ".classList.contains('disabled')")
        page.click("#accounts tr[data-username='wang'] button.toggle")
        wait_for(page, "!document.querySelector(\"#accounts tr[data-username='wang']\")"
                       ".classList.contains('disabled')")
        screenshot(page, f"workspace_admin_{world.backend}")
        # The audit log, filtered by account and kind.
        page.click("#tab-audit")
        page.fill("#audit-form input[name=path]", "/accounts/wang")
        page.select_option("#audit-form select[name=action]", "change")
        page.click("#audit-form button")
        wait_for(page, "(gridmapAdmin.auditQuery || '').includes('action=change') && "
                       "document.querySelectorAll('#audit tbody tr').length >= 2")
        rows = page.locator("#audit tbody").inner_text()
        assert "PATCH /accounts/wang" in rows and "GET" not in rows
        axe_check(page, "/admin (audit)")
        screenshot(page, f"workspace_audit_{world.backend}")
        no_errors(errors, "admin")
    finally:
        ctx.close()


# --- the operator's desk ----------------------------------------------------------------------


def _event(client: Any, world: World, i: int = 0, reporter: str = "市民张") -> int:
    p = world.grids[i % len(world.grids)]["point"]
    r = client.post("/events", json={"x": p.x, "y": p.y, "coord_sys": "wgs84",
                                     "category": "sanitation", "source": "citizen",
                                     "territory_id": world.territory_id, "reporter": reporter,
                                     "description": f"垃圾堆放 {i}"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_desk_dispatches_and_closes_an_event(browser: Any, server: LiveServer, world: World,
                                             client: Any) -> None:
    event = _event(client, world)
    url = f"{server.url}/desk?territory={world.territory_id}&event={event}"
    ctx, page, errors = new_page(browser, url)
    try:
        wait_for(page, "window.gridmapDesk && gridmapDesk.ready", timeout=60_000)
        assert page.inner_text("#detail-title") == f"事件 #{event}"
        axe_check(page, "/desk")
        page.click("#actions [data-action=accept]")
        wait_for(page, "gridmapDesk.event.status === 'accepted'")
        # (The event shows before the grid's roster has come: wait for the roster too.)
        wait_for(page, "document.querySelectorAll('#handler option').length > 0")
        handlers = page.locator("#handler option").all_inner_texts()
        assert any("王网格" in h for h in handlers), handlers
        page.select_option("#handler", "王网格")
        page.click("#dispatch-form button")
        wait_for(page, "gridmapDesk.event.status === 'dispatched'")
        # The handler starts and resolves (from the phone); the desk verifies and closes.
        for action in ("start", "resolve"):
            r = client.post(f"/events/{event}/actions", json={"action": action, "actor": "王网格"})
            assert r.status_code == 200, r.text
        page.click(f"#events tbody tr[data-id='{event}']")
        wait_for(page, "gridmapDesk.event.status === 'resolved'")
        page.click("#actions [data-action=verify]")
        wait_for(page, "gridmapDesk.event.status === 'verified'")
        page.select_option("#close-form select[name=rating]", "5")
        page.fill("#close-form input[name=feedback]", "处理及时")
        page.click("#close-form button")
        wait_for(page, "gridmapDesk.event.status === 'closed'")
        history = page.inner_text("#history")
        for word in ("已受理", "已派遣", "处置中", "已办结", "已核查", "已结案", "王网格"):
            assert word in history, (word, history)
        stored = client.get(f"/events/{event}").json()
        assert stored["status"] == "closed" and stored["rating"] == 5
        # 采办分离: the reporter may not be the handler — the API's refusal is shown.
        other = _event(client, world, 1, reporter="王网格")
        page.evaluate(f"gridmapDesk.open({other})")
        wait_for(page, f"gridmapDesk.event.id === {other}")
        page.click("#actions [data-action=accept]")
        wait_for(page, "gridmapDesk.event.status === 'accepted'")
        page.fill("#dispatch-form input[name=other]", "王网格")
        page.click("#dispatch-form button")
        wait_for(page, "document.getElementById('action-msg').textContent.includes('采办分离')")
        # New events appear without a reload.
        polls = page.evaluate("gridmapDesk.polls")
        fresh = _event(client, world, 0)
        wait_for(page, f"gridmapDesk.newIds.includes({fresh})", timeout=20_000)
        assert page.locator(f"#events tbody tr.new[data-id='{fresh}']").count() == 1
        assert page.evaluate("gridmapDesk.polls") > polls
        screenshot(page, f"workspace_desk_{world.backend}")
        no_errors(errors, "desk")
    finally:
        ctx.close()


def test_desk_places_an_event_that_needs_a_location(browser: Any, server: LiveServer,
                                                   world: World, client: Any) -> None:
    """An event reported by an address the territory's data cannot place waits in the desk's
    list; the operator picks it and clicks the map: it becomes a routed event there."""
    r = client.post("/events", json={"address": "城隍庙后街拐角的<b>小卖部</b>",
                                     "category": "sanitation", "source": "hotline",
                                     "territory_id": world.territory_id})
    assert r.status_code == 202, r.text
    uid = int(r.json()["id"])
    ctx, page, errors = new_page(browser, f"{server.url}/desk?territory={world.territory_id}")
    try:
        wait_for(page, "window.gridmapDesk && gridmapDesk.ready", timeout=60_000)
        row = f"#unlocated tbody tr[data-id='{uid}']"
        wait_for(page, f"document.querySelector(\"{row}\") !== null")
        assert "<b>小卖部</b>" in page.inner_text(row)      # text, never markup
        axe_check(page, "/desk (needs location)")
        page.click(row)
        assert "placing" in page.get_attribute(".desk-map", "class")
        grid = world.grids[1]
        # Away from the other tests' events (at the grids' representative points).
        x, y = grid["point"].x + 0.0002, grid["point"].y
        page.evaluate(f"gridmapDesk.map.setView([{y}, {x}], 18, {{animate: false}})")
        box = page.locator("#desk-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        wait_for(page, "gridmapDesk.event && gridmapDesk.event.geocode_level === 'placed'",
                 timeout=20_000)
        event = page.evaluate("gridmapDesk.event")
        assert event["address"] == "城隍庙后街拐角的<b>小卖部</b>"
        assert abs(event["lon"] - x) < 2e-5 and abs(event["lat"] - y) < 2e-5
        wait_for(page, f"document.querySelector(\"{row}\") === null")
        assert client.get("/events/unlocated").json()["count"] == 0
        no_errors(errors, "desk placing")
    finally:
        ctx.close()


def test_a_click_on_the_big_screen_opens_the_event_on_the_desk(
        browser: Any, server: LiveServer, world: World, client: Any) -> None:
    event = _event(client, world, 1)
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        desk = ctx.new_page()
        desk.goto(f"{server.url}/desk?territory={world.territory_id}", wait_until="networkidle")
        wait_for(desk, "window.gridmapDesk && gridmapDesk.ready", timeout=60_000)
        screen = ctx.new_page()
        screen.goto(f"{server.url}/screen?territory={world.territory_id}",
                    wait_until="networkidle")
        wait_for(screen, f"document.querySelector('#urgent a.to-desk[href$=\"event={event}\"]')",
                 timeout=30_000)
        screen.click(f"#urgent a.to-desk[href$='event={event}']")
        wait_for(desk, f"gridmapDesk.event && gridmapDesk.event.id === {event}")
        assert len(ctx.pages) == 2          # the open desk took it: no new window
        assert screen.inner_text("#n-patrols").strip() not in ("", "—")
    finally:
        ctx.close()


# --- the grid worker's phone ------------------------------------------------------------------


def _photo(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def test_phone_reports_offline_and_patrols(browser: Any, server: LiveServer, world: World,
                                           client: Any) -> None:
    grid = world.grids[0]
    worker = f"zhao-{world.backend}"
    key = account_key(world.engine, worker, "grid_worker", grid["code"],
                      display_name="赵网格")
    start = grid["point"]
    ctx = browser.new_context(**PHONE, geolocation={"longitude": start.x, "latitude": start.y,
                                                    "accuracy": 8},
                              permissions=["geolocation"],
                              extra_http_headers={"X-API-Key": key})
    page = ctx.new_page()
    errors = PageErrors()
    page.on("console", lambda m: errors.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.exceptions.append(str(e)))
    photo = world.tmp / "photo.png"
    photo.write_bytes(_photo(3000, 2000))
    try:
        page.goto(server.url + "/m", wait_until="networkidle")
        wait_for(page, "window.gridmapPhone && gridmapPhone.ready", timeout=60_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("gridmapPhone.grids.map(g => g.code)") == [grid["code"]]
        axe_check(page, "/m")
        screenshot(page, f"workspace_phone_map_{world.backend}")
        # Report with the phone's position and a photo (resized in the browser).
        page.tap(".m-tabs button[data-tab=tab-report]")
        page.tap("#use-gps")
        wait_for(page, "gridmapPhone.picked !== null")
        page.select_option("#category", "municipal")
        page.fill("#description", "井盖破损")
        page.set_input_files("#photos", str(photo))
        wait_for(page, "gridmapPhone.photos.length === 1")
        page.tap("#report-submit")
        wait_for(page, "gridmapPhone.sent.length === 1 && gridmapPhone.queue().length === 0",
                 timeout=30_000)
        event = page.evaluate("gridmapPhone.sent[0]")
        stored = client.get(f"/events/{event}").json()
        assert stored["grid_code"] == grid["code"] and stored["reporter"] == "赵网格"
        assert stored["category"] == "municipal" and stored["coord_sys"] == "wgs84"
        assert abs(stored["x"] - start.x) < 1e-6 and abs(stored["y"] - start.y) < 1e-6
        [shot] = stored["photos"]
        assert shot["content_type"] == "image/jpeg" and (shot["width"], shot["height"]) == (
            1600, 1067)
        assert client.get(shot["url"]).headers["content-type"] == "image/jpeg"
        assert any("photo" in (h["reason"] or "") for h in stored["history"])
        screenshot(page, f"workspace_phone_report_{world.backend}")
        # Offline: the report waits in the queue, and goes once online — once.
        ctx.set_offline(True)
        wait_for(page, "document.getElementById('net').textContent === '离线'")
        page.fill("#description", "路灯不亮")
        page.tap("#pick-map")
        box = page.locator("#m-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        wait_for(page, "gridmapPhone.picked !== null && gridmapPhone.picked.how === 'map'")
        page.tap("#report-submit")
        wait_for(page, "gridmapPhone.queue().length === 1")
        assert "待发送" in page.inner_text("#queue-msg")
        screenshot(page, f"workspace_phone_offline_{world.backend}")
        queued = page.evaluate("gridmapPhone.queue()[0]")
        ctx.set_offline(False)
        wait_for(page, "gridmapPhone.sent.length === 2 && gridmapPhone.queue().length === 0",
                 timeout=30_000)
        second = page.evaluate("gridmapPhone.sent[1]")
        # The answer was lost, say: the same report sent again is the same event.
        page.evaluate("""q => { delete q.eventId;
            const k = 'gridmap-queue:' + JSON.parse(
              document.getElementById('gm-config').textContent).me.username;
            localStorage.setItem(k, JSON.stringify([q])); return gridmapPhone.flush(); }""",
                      queued)
        wait_for(page, "gridmapPhone.queue().length === 0")
        assert page.evaluate("gridmapPhone.sent") == [event, second]
        mine = client.get(f"/events?territory={world.territory_id}&grid={grid['code']}"
                          "&limit=1000").json()
        assert sum(e["idempotency_key"] == queued["key"] for e in mine) == 1
        # Two patrols of the grid today: the track, a check-in, the end.
        for round_ in range(2):
            page.tap(".m-tabs button[data-tab=tab-patrol]")
            page.tap("#patrol-start")
            wait_for(page, "gridmapPhone.patrol !== null")
            patrol = page.evaluate("gridmapPhone.patrol.id")
            for dx in (0.0001, 0.0002, 0.0003):
                ctx.set_geolocation({"longitude": start.x + dx, "latitude": start.y,
                                     "accuracy": 5})
                page.evaluate("gridmapPhone.trackPoint('track')")
            page.fill("#checkin-note", f"东门 {round_}")
            page.tap("#checkin")
            wait_for(page, "document.getElementById('patrol-state').textContent.includes('已打卡')")
            page.tap("#patrol-end")
            wait_for(page, "gridmapPhone.patrol === null && gridmapPhone.queue().length === 0",
                     timeout=30_000)
            walked = client.get(f"/patrols/{patrol}").json()
            assert walked["ended_at"] and walked["grid_code"] == grid["code"]
            assert walked["walker"] == "赵网格" and walked["checkins"] == 1
            assert walked["track_points"] >= 4
            # The phone's positions as walked (a fix may be reused for up to 5 s:
            # maximumAge), the track moving east of the start.
            lons = [p["lon"] - start.x for p in walked["points"]]
            assert all(min(abs(d - dx) for dx in (0.0, 0.0001, 0.0002, 0.0003)) < 1e-6
                       for d in lons), lons
            assert max(lons) > 0.00005, lons
        screenshot(page, f"workspace_phone_patrol_{world.backend}")
        coverage = client.get(f"/patrols/coverage?territory={world.territory_id}").json()
        row = next(g for g in coverage["grids"] if g["code"] == grid["code"])
        assert row["twice"] and row["ended"] == 2
        assert all(not g["twice"] for g in coverage["grids"] if g["code"] != grid["code"])
        no_errors(errors, "phone")
    finally:
        ctx.close()
    # The desk shows it per grid.
    dctx, desk, _ = new_page(browser, f"{server.url}/desk?territory={world.territory_id}")
    try:
        wait_for(desk, "window.gridmapDesk && gridmapDesk.ready", timeout=60_000)
        wait_for(desk, "gridmapDesk.coverage")
        cell = desk.locator(f"#patrols tr[data-code='{grid['code']}']").inner_text()
        assert "已双巡" in cell
    finally:
        dctx.close()
