"""The editor page of a draft and the compare page, driven in headless Chromium on PostGIS:
select a block, move it, see the counts change (checked against the store), undo/redo, a
stale version, refusals, lock, the drawn line, history, copy a published plan, compare."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import quote, urlparse

import httpx
import numpy as np
import pytest
import shapely
from browser import LiveServer, live_server, open_page, screenshot, wait_for
from demo_plan import DemoStore

from api.app import create_app
from gis.edits import read_plan_blocks
from gis.plans import read_grids

COLORS = {"below": "#f0b429", "within": "#3f9a5b", "above": "#d64545", "dedicated": "#7c5cc4"}


#: The page runs on PostGIS only (conftest's store, with just that backend).
pytestmark = pytest.mark.parametrize("store", ["postgis"], indirect=True)


@pytest.fixture(scope="module")
def server(store: DemoStore) -> Iterator[LiveServer]:
    with live_server(create_app(store.settings, store.engine)) as running:
        yield running


def new_draft(server: LiveServer, store: DemoStore) -> int:
    r = httpx.post(f"{server.url}/plans/{store.plan_id}/copy", json={"note": "编辑页测试"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def version_of(server: LiveServer, plan_id: int) -> int:
    return int(httpx.get(f"{server.url}/plans/{plan_id}").json()["edit_version"])


def api_edit(server: LiveServer, plan_id: int, body: dict[str, Any],
             version: int | None = None) -> httpx.Response:
    v = version_of(server, plan_id) if version is None else version
    return httpx.post(f"{server.url}/plans/{plan_id}/edits", json=body,
                      headers={"If-Match": f'"{v}"', "X-Gridmap-User": quote("接口")})


def api_grids(server: LiveServer, plan_id: int) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{server.url}/plans/{plan_id}/grids").json()
    return {f["properties"]["code"]: f["properties"] for f in body["features"]}


def band_of(p: dict[str, Any]) -> str:
    if p["kind"] == "dedicated":
        return "dedicated"
    return "below" if p["households"] < 300 else "above" if p["households"] > 500 else "within"


@pytest.fixture(scope="module")
def movable(server: LiveServer, store: DemoStore) -> tuple[int, str, str]:
    """(block, its grid, a neighbour) whose move the service accepts, found on a throwaway
    draft (every copy of the demo plan is the same, so it moves on any other copy too)."""
    probe = new_draft(server, store)
    grids = read_grids(store.engine, probe).to_crs(store.metric_epsg)
    grids = grids[grids["kind"] == "comprehensive"].reset_index(drop=True)
    blocks = read_plan_blocks(store.engine, probe).to_crs(store.metric_epsg)
    tree = shapely.STRtree(grids.geometry.to_numpy())
    bi, gi = tree.query(blocks.geometry.to_numpy(), predicate="intersects")
    tried = 0
    for b, g in zip(bi, gi, strict=True):
        block, grid = blocks.iloc[b], grids.iloc[g]
        if block.grid_code == grid.code or block.village_code != grid.village_code or \
                block.households <= 0 or block.grid_code not in set(grids["code"]):
            continue
        if shapely.length(shapely.intersection(block.geometry.boundary,
                                               grid.geometry.boundary)) < 20:
            continue
        tried += 1
        r = api_edit(server, probe, {"op": "move", "blocks": [int(block.block_no)],
                                     "to": str(grid.code)}, version=0)
        if r.status_code == 200:
            return int(block.block_no), str(block.grid_code), str(grid.code)
        assert r.status_code == 422, r.text
    raise AssertionError(f"none of {tried} candidate moves was accepted")


# --- driving the page -------------------------------------------------------------------------


class Draft(NamedTuple):
    """A new copy of the demo plan open in the editor: its id, the page, what the page
    reported and requested, and the draft's grids (by code) and blocks (by number) as
    stored when it was opened."""

    id: int
    page: Any
    errors: Any
    requested: list[str]
    grids: Any
    blocks: Any


@contextmanager
def editing(browser: Any, server: LiveServer, store: DemoStore) -> Iterator[Draft]:
    """A new draft in the editor, ready; the page is closed when the block ends."""
    draft = new_draft(server, store)
    requested: list[str] = []
    page, errors = open_page(browser, f"{server.url}/plans/{draft}/edit", requests=requested)
    try:
        wait_for(page, "window.gridmap && gridmap.editor && gridmap.editor.ready",
                 timeout=30_000)
        yield Draft(draft, page, errors, requested,
                    read_grids(store.engine, draft).set_index("code"),
                    read_plan_blocks(store.engine, draft).set_index("block_no"))
    finally:
        page.close()


def no_errors(errors: Any, expected: tuple[int, ...] = ()) -> None:
    """No console error or exception, except Chromium's network log line for a refusal the
    test provoked (every non-2xx fetch is logged as a console error by the browser itself)."""
    allowed = tuple(f"Failed to load resource: the server responded with a status of {s} "
                    for s in expected)
    assert not errors.exceptions, errors.exceptions
    unexpected = [m for m in errors.console if not m.startswith(allowed)]
    assert not unexpected, unexpected


def local_only(urls: list[str]) -> None:
    hosts = {urlparse(u).hostname for u in urls if urlparse(u).scheme in ("http", "https")}
    assert hosts <= {"127.0.0.1"}, hosts


def frame(page: Any, geometry: shapely.Geometry) -> None:
    """Fit the map to a WGS84 geometry and wait for the view's blocks."""
    x0, y0, x1, y1 = geometry.bounds
    loads = page.evaluate("gridmap.editor.blocksLoads")
    page.evaluate(f"gridmap.map.fitBounds([[{y0}, {x0}], [{y1}, {x1}]], {{animate: false}})")
    wait_for(page, f"gridmap.editor.blocksLoads > {loads} || "
                           "gridmap.editor.blocksFetched && gridmap.editor.blocksFetched"
                           ".contains(gridmap.map.getBounds())", timeout=15_000)
    wait_for(page, "!gridmap.editor.blocksController", timeout=15_000)


def screen_xy(page: Any, point: shapely.Point) -> tuple[float, float]:
    x, y = page.evaluate(f"""(() => {{
        const p = gridmap.map.latLngToContainerPoint([{point.y}, {point.x}]);
        const r = gridmap.map.getContainer().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; }})()""")
    return float(x), float(y)


def click_at(page: Any, point: shapely.Point, *, shift: bool = False) -> None:
    x, y = screen_xy(page, point)
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(x, y)
    if shift:
        page.keyboard.up("Shift")


def largest(blocks: Any) -> int:
    """The block number of the largest of these blocks (indexed by block number)."""
    return int(blocks.index[int(np.argmax(shapely.area(blocks.geometry.to_numpy())))])


def inside(geometry: shapely.Geometry) -> shapely.Point:
    """A point well inside a polygon (its widest part)."""
    polygon = max(getattr(geometry, "geoms", [geometry]), key=lambda g: g.area)
    shrunk = polygon.buffer(-0.3 * (polygon.area ** 0.5) / 4)
    return (shrunk if not shrunk.is_empty else polygon).representative_point()


def select(page: Any, grids: Any, blocks: Any, block: int, grid: str, *others: str) -> None:
    """Fit the map to ``grid`` (and ``others``), click ``block`` and wait until the editor
    has ``grid`` as its current grid."""
    frame(page, shapely.union_all([grids.loc[c].geometry for c in (grid, *others)]))
    click_at(page, inside(blocks.loc[block].geometry))
    wait_for(page, f"gridmap.editor.current === '{grid}'")


def wait_version(page: Any, version: int) -> None:
    wait_for(page, f"gridmap.editor.version === {version} && !gridmap.editor.busy",
                           timeout=30_000)
    wait_for(page, "!gridmap.editor.blocksController", timeout=15_000)


def page_grid(page: Any, code: str) -> dict[str, Any]:
    return dict(page.evaluate(f"""(() => {{ const l = gridmap.byCode["{code}"];
        return Object.assign({{}}, l.feature.properties, {{fill: l.options.fillColor}}); }})()"""))


def panel_households(page: Any, code: str) -> int:
    text = page.locator(f'.gm-ed-grids tr[data-code="{code}"] .gm-hh').inner_text()
    return int(text.replace(",", ""))


def assert_page_matches_store(page: Any, server: LiveServer, plan_id: int,
                              codes: list[str]) -> dict[str, dict[str, Any]]:
    """The touched grids' households and colours on the map and in the panel, the legend's
    counts and the total: as the API reads them from the store now."""
    stored = api_grids(server, plan_id)
    for code in codes:
        shown = page_grid(page, code)
        assert shown["households"] == stored[code]["households"], code
        assert shown["fill"] == COLORS[band_of(stored[code])], code
        assert panel_households(page, code) == stored[code]["households"], code
    counts = {b: 0 for b in COLORS}
    for p in stored.values():
        counts[band_of(p)] += 1
    assert page.evaluate("gridmap.counts") == counts
    assert page.evaluate("gridmap.gridsDrawn") == len(stored)
    total = sum(p["households"] for p in stored.values())
    assert f"{total:,}" in page.locator(".gm-title").inner_text()
    return stored


# --- tests ------------------------------------------------------------------------------------


def test_select_move_see_counts_undo_redo(browser: Any, server: LiveServer, store: DemoStore,
                                          movable: tuple[int, str, str]) -> None:
    block, src, dst = movable
    with editing(browser, server, store) as (draft, page, errors, requested, grids, blocks):
        before = api_grids(server, draft)
        assert page.evaluate("gridmap.editor.version") == 0
        # The user's name, kept in localStorage, becomes the author in the history.
        page.locator(".gm-ed-user input").fill("王芳")
        page.locator(".gm-ed-user input").press("Tab")
        assert page.evaluate("localStorage.getItem('gridmap.user')") == "王芳"
        frame(page, shapely.union(grids.loc[src].geometry, grids.loc[dst].geometry))
        assert page.evaluate("gridmap.editor.blocks") > 0
        # Select the block: the panel shows it and its grid.
        click_at(page, inside(blocks.loc[block].geometry))
        wait_for(page, "Object.keys(gridmap.editor.selected).length === 1")
        assert page.evaluate("Object.keys(gridmap.editor.selected)") == [str(block)]
        hh = int(blocks.loc[block, "households"])
        assert page.locator("#gm-sel-n").inner_text() == "1"
        assert page.locator("#gm-sel-hh").inner_text().replace(",", "") == str(hh)
        assert panel_households(page, src) == before[src]["households"]
        # Shift-click adds a block, shift-click again takes it out.
        other = blocks[(blocks["grid_code"] == src) & (blocks.index != block)]
        other_no = largest(other)
        click_at(page, inside(other.loc[other_no].geometry), shift=True)
        wait_for(page, "Object.keys(gridmap.editor.selected).length === 2")
        both = hh + int(blocks.loc[other_no, "households"])
        assert page.locator("#gm-sel-hh").inner_text().replace(",", "") == str(both)
        screenshot(page, "editor_selected")
        click_at(page, inside(other.loc[other_no].geometry), shift=True)
        wait_for(page, "Object.keys(gridmap.editor.selected).length === 1")
        # Move it: the move tool, then a click in the target grid (on another of its blocks).
        page.locator(".gm-tool[data-tool=move]").click()
        target = blocks[(blocks["grid_code"] == dst)]
        target_block = largest(target)
        click_at(page, inside(target.loc[target_block].geometry))
        wait_version(page, 1)
        assert "已完成" in page.locator(".gm-ed-msg").inner_text()
        after = assert_page_matches_store(page, server, draft, [src, dst])
        assert after[dst]["households"] == before[dst]["households"] + hh
        assert after[src]["households"] == before[src]["households"] - hh
        assert page.evaluate("gridmap.editor.selected") == {}
        # The blocks were fetched again: the moved block now belongs to dst.
        assert page.evaluate(f"gridmap.editor.blockByNo[{block}].feature.properties"
                             ".grid_code") == dst
        # Only the touched grids came back, not the whole plan again.
        page_loads = [q for path, q in server.requests
                      if path == f"/plans/{draft}/grids" and "simplify" in q]
        assert len(page_loads) == 1
        screenshot(page, "editor_moved")
        # Undo (Ctrl+Z): the counts as they were.
        page.locator(".gm-tool[data-tool=select]").click()
        page.keyboard.press("Control+z")
        wait_version(page, 2)
        restored = assert_page_matches_store(page, server, draft, [src, dst])
        assert restored[src]["households"] == before[src]["households"]
        assert restored[dst]["households"] == before[dst]["households"]
        # Redo (Ctrl+Y) and undo with the button.
        page.keyboard.press("Control+y")
        wait_version(page, 3)
        assert assert_page_matches_store(page, server, draft, [src, dst])[dst]["households"] \
            == after[dst]["households"]
        page.locator(".gm-undo").click()
        wait_version(page, 4)
        assert_page_matches_store(page, server, draft, [src, dst])
        # The history panel lists what the API lists, newest first, with the author.
        history = httpx.get(f"{server.url}/plans/{draft}/edits").json()
        assert [h["op"] for h in history] == ["move", "undo", "redo", "undo"]
        assert {h["author"] for h in history} == {"王芳"}
        items = page.locator(".gm-h-list li")
        assert items.count() == len(history)
        assert items.first.get_attribute("data-seq") == str(history[-1]["seq"])
        assert "王芳" in items.first.inner_text() and "撤销" in items.first.inner_text()
        assert "移动地块" in items.last.inner_text() and "已撤销" in items.last.inner_text()
        assert page.locator(".gm-redo").is_enabled()
        screenshot(page, "editor_undone")
        local_only(requested)
        no_errors(errors)
        assert not page.evaluate("gridmap.errors")


def test_a_stale_version_gives_the_409_message_and_the_page_recovers(
        browser: Any, server: LiveServer, store: DemoStore,
        movable: tuple[int, str, str]) -> None:
    block, src, dst = movable
    with editing(browser, server, store) as (draft, page, errors, _, grids, blocks):
        select(page, grids, blocks, block, src)
        # Another planner renames dst through the API, behind the page's back.
        r = api_edit(server, draft, {"op": "rename", "grid": dst, "name": "他人改的名"}, 0)
        assert r.status_code == 200, r.text
        page.locator(".gm-name").fill("本页改的名")
        page.locator(".gm-rename").click()
        wait_for(page, "gridmap.editor.reloads === 1 && !gridmap.editor.busy",
                               timeout=30_000)
        message = page.locator(".gm-ed-msg").inner_text()
        assert "方案已被他人修改" in message and "当前版本 1" in message
        assert page.evaluate("gridmap.editor.version") == version_of(server, draft) == 1
        # The page now shows the other planner's edit, and nothing of its own was written.
        assert page_grid(page, dst)["name"] == "他人改的名"
        assert api_grids(server, draft)[src]["name"] == grids.loc[src, "name"]
        screenshot(page, "editor_stale")
        # Done again on the current version, it goes through.
        page.locator(".gm-rename").click()
        wait_version(page, 2)
        assert api_grids(server, draft)[src]["name"] == "本页改的名"
        assert page_grid(page, src)["name"] == "本页改的名"
        no_errors(errors, (409,))


def test_refusals_and_locks_show_their_reason(browser: Any, server: LiveServer,
                                              store: DemoStore,
                                              movable: tuple[int, str, str]) -> None:
    block, src, dst = movable
    with editing(browser, server, store) as (draft, page, errors, _, grids, blocks):
        # A dedicated grid cannot be split: 422, the API's reason on the page.
        dedicated = grids[grids["kind"] == "dedicated"].index[0]
        ded_blocks = blocks[blocks["grid_code"] == dedicated]
        assert len(ded_blocks)
        select(page, grids, blocks, largest(ded_blocks), dedicated)
        page.locator(".gm-k").fill("2")
        page.locator(".gm-split").click()
        wait_for(page, "gridmap.editor.lastRefusal && !gridmap.editor.busy")
        refused = api_edit(server, draft, {"op": "split", "grid": dedicated, "k": 2})
        assert refused.status_code == 422
        message = page.locator(".gm-ed-msg").inner_text()
        assert refused.json()["detail"] in message and "无法执行" in message
        assert page.evaluate("gridmap.editor.version") == 0 == version_of(server, draft)
        screenshot(page, "editor_refused")
        # Lock the source grid: it shows as locked; moving its block out is refused (409).
        select(page, grids, blocks, block, src, dst)
        page.locator(".gm-lock").click()
        wait_version(page, 1)
        assert page.evaluate(f"gridmap.editor.locked['{src}']") is True
        assert page.locator(".gm-lock").inner_text() == "解锁"
        assert page.evaluate(f"gridmap.byCode['{src}'].options.dashArray") == "6 4"
        assert httpx.get(f"{server.url}/plans/{draft}/locked").json()["locked"] == [src]
        page.locator(".gm-tool[data-tool=move]").click()
        target = blocks[blocks["grid_code"] == dst]
        click_at(page, inside(target.loc[largest(target)].geometry))
        wait_for(page, "gridmap.editor.lastRefusal.status === 409 && "
                               "!gridmap.editor.busy")
        assert "锁定" in page.locator(".gm-ed-msg").inner_text()
        assert page.evaluate("gridmap.editor.version") == 1 == version_of(server, draft)
        screenshot(page, "editor_locked")
        # Unlock it again.
        page.locator(".gm-tool[data-tool=select]").click()
        page.locator(".gm-lock").click()
        wait_version(page, 2)
        assert httpx.get(f"{server.url}/plans/{draft}/locked").json()["locked"] == []
        assert not page.evaluate(f"gridmap.byCode['{src}'].options.dashArray")
        no_errors(errors, (422, 409))


def test_merge_then_split_from_the_toolbar(browser: Any, server: LiveServer,
                                          store: DemoStore,
                                          movable: tuple[int, str, str]) -> None:
    block, src, dst = movable
    with editing(browser, server, store) as (draft, page, errors, _, grids, blocks):
        before = api_grids(server, draft)
        select(page, grids, blocks, block, src, dst)
        page.locator(".gm-tool[data-tool=merge]").click()
        click_at(page, inside(blocks.loc[largest(blocks[blocks["grid_code"] == dst])].geometry))
        wait_version(page, 1)
        merged = api_grids(server, draft)
        (kept,) = {src, dst} & set(merged)
        assert merged[kept]["households"] == before[src]["households"] + \
            before[dst]["households"]
        assert page.evaluate("gridmap.gridsDrawn") == len(before) - 1
        assert page.evaluate("gridmap.editor.current") == kept
        assert_page_matches_store(page, server, draft, [kept])
        # Split the merged grid in two again.
        page.locator(".gm-tool[data-tool=select]").click()
        page.locator(".gm-k").fill("2")
        page.locator(".gm-split").click()
        wait_version(page, 2)
        split = api_grids(server, draft)
        assert len(split) == len(before)
        new = sorted(set(split) - set(merged))
        assert len(new) == 1
        assert split[kept]["households"] + split[new[0]]["households"] == \
            merged[kept]["households"]
        assert_page_matches_store(page, server, draft, [kept, new[0]])
        screenshot(page, "editor_split")
        no_errors(errors)


@pytest.fixture(scope="module")
def reshape_line(server: LiveServer, store: DemoStore, movable: tuple[int, str, str]
                ) -> tuple[list[tuple[float, float]], str]:
    """A line of a few points that moves a block from one grid to its neighbour, drawn edge
    to edge (its ends stray into other grids), accepted by the service on a throwaway
    draft; the grid that gains the block."""
    probe = new_draft(server, store)
    grids = read_grids(store.engine, probe).set_index("code")
    blocks = read_plan_blocks(store.engine, probe).set_index("block_no")
    block, src, dst = movable
    union = shapely.union(grids.loc[src].geometry, grids.loc[dst].geometry)
    tried = []
    # Around dst and the block, a few metres into src: a line that follows no edge, so a
    # click a pixel off does not change what it cuts.
    for offset in (3e-5, 5e-5, 1e-5):
        side = shapely.union(grids.loc[dst].geometry, blocks.loc[block].geometry).buffer(
            offset, join_style="mitre")
        line = shapely.line_merge(shapely.intersection(side.boundary, union))
        if not isinstance(line, shapely.LineString):
            continue
        for tolerance in (0.0, 1e-6, 3e-6):
            xy = np.asarray(line.simplify(tolerance).coords)
            # Clicks a few pixels apart would read as a double click (which ends the line).
            spaced = [xy[0]]
            for p in xy[1:-1]:
                if np.hypot(*(p - spaced[-1])) >= 8e-5:
                    spaced.append(p)
            xy = np.asarray([*spaced, xy[-1]])
            if len(xy) > 20 or len(xy) < 2:
                continue
            # (The ends 10 m beyond: a click a few pixels from the next reads as a
            # double click, which ends the line.)
            ends = [xy[0] + (xy[0] - xy[1]) / np.hypot(*(xy[0] - xy[1])) * 1e-4,
                    xy[-1] + (xy[-1] - xy[-2]) / np.hypot(*(xy[-1] - xy[-2])) * 1e-4]
            coords = [tuple(ends[0]), *map(tuple, xy), tuple(ends[1])]
            r = api_edit(server, probe, {"op": "reshape", "line": [list(c) for c in coords],
                                         "grids": [src, dst]}, 0)
            tried.append((offset, tolerance, len(coords), r.status_code))
            if r.status_code == 200:
                return [(float(x), float(y)) for x, y in coords], dst
            assert r.status_code == 422, r.text
    raise AssertionError(f"no drawn line was accepted: {tried}")


def test_a_drawn_line_reshapes_the_boundary(browser: Any, server: LiveServer,
                                           store: DemoStore, movable: tuple[int, str, str],
                                           reshape_line: tuple[list[tuple[float, float]], str]
                                           ) -> None:
    _, src, dst = movable
    points, gains = reshape_line
    with editing(browser, server, store) as (draft, page, errors, _, grids, _):
        before = api_grids(server, draft)
        sent: list[dict[str, Any]] = []
        page.on("request", lambda r: sent.append(json.loads(r.post_data or "{}"))
                if r.method == "POST" and r.url.endswith("/edits") else None)
        frame(page, shapely.union(grids.loc[src].geometry, grids.loc[dst].geometry)
              .buffer(2e-4))
        page.locator(".gm-tool[data-tool=reshape]").click()
        assert page.evaluate("gridmap.map.doubleClickZoom.enabled()") is False
        for x, y in points[:-1]:
            click_at(page, shapely.Point(x, y))
        assert page.evaluate("gridmap.editor.line.length") == len(points) - 1
        screen = screen_xy(page, shapely.Point(*points[-1]))
        page.mouse.dblclick(*screen)
        wait_for(page, "(gridmap.editor.lastEdit || gridmap.editor.lastRefusal) && "
                               "!gridmap.editor.busy", timeout=30_000)
        assert page.evaluate("gridmap.editor.version") == 1, (
            page.locator(".gm-ed-msg").inner_text(), sent)
        wait_version(page, 1)
        # The line went in WGS84, the points as clicked (to a pixel: well under a metre).
        (body,) = sent
        assert body["op"] == "reshape" and len(body["line"]) == len(points)
        # The page named the two grids the line mostly lies in.
        assert sorted(body["grids"]) == sorted([src, dst])
        for (lon, lat), (x, y) in zip(body["line"], points, strict=True):
            assert abs(lon - x) < 1e-5 and abs(lat - y) < 1e-5
        assert "已完成" in page.locator(".gm-ed-msg").inner_text()
        after = assert_page_matches_store(page, server, draft, [src, dst])
        moved = after[gains]["households"] - before[gains]["households"]
        assert moved > 0
        assert after[src]["households"] + after[dst]["households"] == \
            before[src]["households"] + before[dst]["households"]
        assert page.evaluate("gridmap.editor.line.length") == 0
        assert httpx.get(f"{server.url}/plans/{draft}/edits").json()[-1]["op"] == "reshape"
        screenshot(page, "editor_reshape")
        page.locator(".gm-tool[data-tool=select]").click()
        assert page.evaluate("gridmap.map.doubleClickZoom.enabled()") is True
        no_errors(errors)


def test_a_published_plan_is_copied_to_a_draft_and_edited(browser: Any, server: LiveServer,
                                                          store: DemoStore) -> None:
    r = httpx.get(f"{server.url}/plans/{store.plan_id}/edit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/plans/{store.plan_id}/map"
    page, errors = open_page(browser, f"{server.url}/plans/{store.plan_id}/map")
    try:
        wait_for(page, "window.gridmap && gridmap.ready", timeout=30_000)
        page.evaluate("localStorage.setItem('gridmap.user', '李强')")
        page.locator(".gm-copy").click()
        page.wait_for_url(re.compile(r"/plans/\d+/edit$"), timeout=30_000)
        wait_for(page, "window.gridmap && gridmap.editor && gridmap.editor.ready",
                               timeout=30_000)
        new_id = int(page.url.rstrip("/").split("/")[-2])
        plan = httpx.get(f"{server.url}/plans/{new_id}").json()
        assert plan["status"] == "draft" and plan["parent_id"] == store.plan_id
        assert plan["created_by"] == "李强"
        assert page.evaluate("gridmap.gridsDrawn") == len(store.grids)
        assert "编辑" in page.title()
        # A draft's map links to its editor.
        page.goto(f"{server.url}/plans/{new_id}/map", wait_until="networkidle")
        assert page.locator(".gm-edit-link").get_attribute("href") == f"/plans/{new_id}/edit"
        no_errors(errors)
    finally:
        page.close()


def test_compare_page_shows_the_diff_after_an_edit(browser: Any, server: LiveServer,
                                                   store: DemoStore,
                                                   movable: tuple[int, str, str]) -> None:
    block, src, dst = movable
    draft = new_draft(server, store)
    assert api_edit(server, draft, {"op": "move", "blocks": [block], "to": dst}).status_code \
        == 200
    diff = httpx.get(f"{server.url}/plans/{store.plan_id}/diff/{draft}").json()
    changed = {g["code"] for g in diff["grids_changed"]}
    assert changed == {src, dst} and diff["households_moved"] > 0
    requested: list[str] = []
    page, errors = open_page(browser, f"{server.url}/plans/{store.plan_id}/compare/{draft}",
                             requests=requested)
    try:
        wait_for(page, "window.gridcompare && gridcompare.ready", timeout=30_000)
        listed = set(page.locator(".gm-diff-changed button").all_inner_texts())
        assert listed == changed
        assert page.locator("#gm-moved").inner_text().replace(",", "") == \
            str(diff["households_moved"])
        moves = page.locator(".gm-diff-moves").inner_text()
        assert f"{src} → {dst}" in moves
        # Changed grids are marked on both maps; the others are not.
        for side in ("a", "b"):
            marked = page.evaluate(f"gridcompare.marked.{side}")
            assert marked == {c: "changed" for c in changed}
            weight = page.evaluate(f"gridcompare.byCode.{side}['{dst}'].options.weight")
            assert weight == 3
        assert page.evaluate("Object.keys(gridcompare.byCode.b).length") == len(store.grids)
        # The two maps move together.
        page.evaluate("gridcompare.maps.a.setView([23.2, 113.3], 15, {animate: false})")
        centre = page.evaluate("(() => { const c = gridcompare.maps.b.getCenter(); "
                               "return [c.lat, c.lng, gridcompare.maps.b.getZoom()]; })()")
        assert centre[2] == 15 and abs(centre[0] - 23.2) < 1e-6 and abs(centre[1] - 113.3) < 1e-6
        page.locator(".gm-diff-changed button").first.click()
        page.wait_for_timeout(300)
        screenshot(page, "editor_compare")
        local_only(requested)
        no_errors(errors)
    finally:
        page.close()
    assert httpx.get(f"{server.url}/plans/99999/compare/{draft}").status_code == 404


def test_locked_route_and_unknown_plans(server: LiveServer, store: DemoStore) -> None:
    r = httpx.get(f"{server.url}/plans/{store.plan_id}/locked")
    assert r.status_code == 200 and r.json() == {
        "plan_id": store.plan_id, "edit_version": 0, "locked": []}
    assert r.headers["etag"] == '"0"'
    for url in ("/plans/99999/locked", "/plans/99999/edit"):
        assert httpx.get(f"{server.url}{url}").status_code == 404


def test_editor_html_is_light_and_local(server: LiveServer, store: DemoStore) -> None:
    draft = new_draft(server, store)
    html = httpx.get(f"{server.url}/plans/{draft}/edit").text
    assert "/static/editor.js" in html and "/static/editor.css" in html
    assert f'"lockedUrl": "/plans/{draft}/locked"' in html
    assert "simplify=0" in html and '"coordinates"' not in html
    assert not re.findall(r"//(?!127\.0\.0\.1)[a-z0-9.-]+\.[a-z]{2,}/", html)


def test_the_index_links_a_draft_to_its_editor_and_to_the_comparison(
        server: LiveServer, store: DemoStore) -> None:
    draft = new_draft(server, store)
    html = httpx.get(f"{server.url}/").text
    for link in (f"/plans/{draft}/edit", f"/plans/{store.plan_id}/compare/{draft}"):
        assert f'href="{link}"' in html, link
        assert httpx.get(f"{server.url}{link}").status_code == 200, link
    assert f'href="/plans/{store.plan_id}/edit"' not in html   # the published plan: no editor


def test_paint_blocks_by_dragging_then_rebalance(browser: Any, server: LiveServer,
                                                 store: DemoStore,
                                                 movable: tuple[int, str, str]) -> None:
    """The paint tool selects every block the pointer is dragged over (the map does not pan);
    the rebalance button re-partitions the current grid with the painted blocks' grids."""
    block, src, dst = movable
    with editing(browser, server, store) as (draft, page, errors, _, grids, blocks):
        # A hand move first (from another desk): the engine's split is no longer the plan's.
        assert api_edit(server, draft, {"op": "move", "blocks": [block], "to": dst},
                        version=0).status_code == 200
        page.evaluate("gridmap.editor.api.reload()")
        wait_version(page, 1)
        frame(page, shapely.union(grids.loc[src].geometry, grids.loc[dst].geometry))
        page.locator(".gm-tool[data-tool=paint]").click()
        start = inside(blocks.loc[block].geometry)
        target = blocks[blocks["grid_code"] == dst]
        end = inside(target.loc[largest(target)].geometry)
        center = page.evaluate("(() => { const c = gridmap.map.getCenter(); "
                               "return [c.lat, c.lng]; })()")
        (x0, y0), (x1, y1) = screen_xy(page, start), screen_xy(page, end)
        page.mouse.move(x0, y0)
        page.mouse.down()
        for i in range(1, 21):
            page.mouse.move(x0 + (x1 - x0) * i / 20, y0 + (y1 - y0) * i / 20)
        page.mouse.up()
        painted = page.evaluate("Object.values(gridmap.editor.selected).map(p => p.block_no)")
        painted_grids = set(page.evaluate(
            "Object.values(gridmap.editor.selected).map(p => p.grid_code)"))
        assert block in painted and len(painted) >= 2 and {src, dst} <= painted_grids
        assert page.evaluate("(() => { const c = gridmap.map.getCenter(); "
                             "return [c.lat, c.lng]; })()") == center   # no pan
        screenshot(page, "editor_painted")
        # Rebalance the grids the painted blocks lie in (a click on the button).
        before = api_grids(server, draft)
        page.locator(".gm-rebalance").click()
        wait_for(page, "!gridmap.editor.busy && (gridmap.editor.version === 2 || "
                       "gridmap.editor.messageKind === 'error')", timeout=60_000)
        assert page.evaluate("gridmap.editor.version") == 2, page.locator(
            ".gm-ed-msg").inner_text()
        last = httpx.get(f"{server.url}/plans/{draft}/edits").json()[-1]
        assert last["op"] == "rebalance" and set(last["params"]["grids"]) == painted_grids
        after = api_grids(server, draft)
        village = src[:12]
        assert sum(g["households"] for c, g in after.items() if c[:12] == village) == sum(
            g["households"] for c, g in before.items() if c[:12] == village)
        assert "已完成" in page.locator(".gm-ed-msg").inner_text()
        no_errors(errors)


def test_the_editor_shows_crossings_and_the_inferred_streets(browser: Any, server: LiveServer,
                                                             store: DemoStore) -> None:
    """The editor is the planner map: a grid crossing a river says so in its panel row (in
    Chinese, the metres inside it, the reason on hover), and the 推测巷道 layer is there."""
    from gis.plans import read_lines

    with editing(browser, server, store) as (draft, page, errors, _, grids, blocks):
        crossing = grids[grids["flags"].map(lambda f: "crosses_barrier" in f)]
        code = str(crossing["barrier_inside_m"].idxmax())
        select(page, grids, blocks, largest(blocks[blocks["grid_code"] == code]), code)
        row = page.locator(f'.gm-ed-grids tr[data-code="{code}"] .gm-ed-flags')
        assert "跨越河流/山脊/铁路" in row.inner_text()
        assert f"内含河流/山脊/铁路 {grids.loc[code, 'barrier_inside_m']:.0f} 米" in \
            row.inner_text()
        assert row.get_attribute("title") == grids.loc[code, "flag_reason"]
        screenshot(page, "editor_crossing")
        page.locator(".leaflet-control-layers").hover()
        label = page.locator(".leaflet-control-layers-overlays label").filter(
            has_text=re.compile(r"^\s*推测巷道\s*$"))
        label.locator("input").check()
        wait_for(page, "gridmap.layers.inferred_streets.loaded", timeout=10_000)
        assert page.evaluate("gridmap.layers.inferred_streets.features") == \
            len(read_lines(store.engine, draft)) > 0
        no_errors(errors)


def test_the_editor_shares_the_basemap_coordinate_systems(browser: Any, server: LiveServer,
                                                          store: DemoStore) -> None:
    """The editor draws in the basemap's system with common.js's GCJ-02/BD-09 (one copy for
    every page): a point there and back is the same WGS84 point, shifted on the way."""
    from gis.obfuscation import gcj02_from_wgs84

    with editing(browser, server, store) as (_, page, errors, *_):
        lon, lat = 113.30, 23.20
        there = page.evaluate(f"gridmapCommon.toDisplay({lon}, {lat}, 'gcj02')")
        ex, ey = (float(v[0]) for v in gcj02_from_wgs84([lon], [lat]))
        assert abs(there[0] - ex) < 1e-7 and abs(there[1] - ey) < 1e-7
        back = page.evaluate(f"gridmapCommon.toWgs84({there[0]}, {there[1]}, 'gcj02')")
        assert abs(back[0] - lon) < 1e-8 and abs(back[1] - lat) < 1e-8
        bd = page.evaluate(f"gridmapCommon.toWgs84(...gridmapCommon.toDisplay({lon}, {lat}, "
                           "'bd09'), 'bd09')")
        assert abs(bd[0] - lon) < 1e-8 and abs(bd[1] - lat) < 1e-8
        no_errors(errors)
