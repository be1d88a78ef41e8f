"""Script in every name a user can write never runs, on any page.

A territory is uploaded with script payloads in every name (territory, district, town,
village, road, river, ridge, railway, facility, dedicated area), partitioned, published,
copied to a draft, its grid renamed by an account whose display name is a payload, edited
under a payload author with payload notes, its staff roster and events written with payloads
in every field. Then every HTML page the app serves — found by walking the app's GET routes,
not listed here — is opened in Chromium, with every popup and panel that shows those names
opened too, and it is checked that no dialog fired, no injected element or handler exists,
no Content-Security-Policy violation was reported and the console has no error. A new page
is covered without touching this module; a route whose path parameter this module cannot
fill makes it fail (add the parameter to ``PATH_VALUES``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from browser import LiveServer, PageErrors, live_server, screenshot, wait_for
from conftest import PublishedStore, fresh_store, tiny_layers, write_layers
from demo_plan import BACKENDS
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from signin import account_key, client_for
from sqlalchemy import Engine
from starlette.routing import Mount, Route

from api.app import create_app
from gis.settings import Settings

#: Each payload makes an element carrying ``data-xss`` (or a handler) if it ever reaches the
#: DOM as markup; the ``alert`` fires a dialog if it ever runs. They break out of text
#: (<script>, <img onerror>), of a <title> (</title>), of double- and single-quoted
#: attributes, of an inline script's JSON (</script>), and try a javascript: URL and
#: template syntax.
PAYLOADS = (
    "</title><img src=x data-xss onerror=alert(0)>",
    "<script data-xss>alert(1)</script>",
    "<img src=x data-xss onerror=alert(2)>",
    '"><svg data-xss onload=alert(3)>',
    "'><svg data-xss onload=alert(4)>",
    "</script><script data-xss>alert(5)</script>",
    '" autofocus onfocus="alert(6)" data-xss="',
    "' autofocus onfocus='alert(7)' data-xss='",
    "javascript:alert(8)//",
    "{{7*7}}${alert(9)}<b data-xss>",
)


def payload(label: str, limit: int = 10_000, start: int = 0,
            size: Callable[[str], int] = len) -> str:
    """``label`` followed by as many payloads as fit in ``limit`` (``size`` of the text,
    characters by default), from the ``start``-th on (fields with short limits start at
    different ones, so that between them every payload meets every kind of field)."""
    text = label
    for i in range(len(PAYLOADS)):
        p = PAYLOADS[(start + i) % len(PAYLOADS)]
        if size(text + p) > limit:
            continue
        text += p
    assert len(text) > len(label), f"no payload fits {label!r} in {limit}"
    return text


def every_payload(label: str) -> str:
    return label + "".join(PAYLOADS)


# --- the world: a territory written with payloads -------------------------------------------


@dataclass
class World(PublishedStore):
    other_territory_id: int
    draft: int
    town: str
    village: str
    grids: list[str]
    events: list[int]
    usernames: list[str] = field(default_factory=list)
    patrol: int = 0


def _payload_layers() -> dict[str, Any]:
    layers = tiny_layers()
    admin = layers["admin_areas"]
    # Names are stored in 200 characters (gis/models/): each feature starts at another
    # payload, so that between them every payload is in every layer.
    admin["name"] = [payload(f"区{i}", 200, 3 * i) for i in range(len(admin))]
    # More households: the villages make grids of their own.
    layers["buildings"]["households"] = [320, 300, 150, 350, 0]
    for key in ("roads", "water", "ridges", "railways", "facilities", "dedicated_areas"):
        frame = layers[key]
        frame["name"] = [payload(f"{key}{i}", 200, 4 * i + len(key)) for i in range(len(frame))]
    return layers


def _job_done(client: TestClient, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        body = client.get(f"/jobs/{job}").json()
        if body["state"] in ("done", "failed"):
            assert body["state"] == "done", body
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def _upload(client: TestClient, path: Path, name: str) -> int:
    with path.open("rb") as fh:
        r = client.post("/territories", files={"files": (path.name, fh)}, data={"name": name})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _build(client: TestClient, engine: Engine, tmp: Path, backend: str,
           settings: Settings) -> World:
    territory = _upload(client, write_layers(_payload_layers(), tmp / "t", "GPKG"),
                        payload("区域", 200, 0))
    other = _upload(client, write_layers(_payload_layers(), tmp / "u", "GPKG"),
                    payload("另一区域", 200, 4))
    job = client.post(f"/territories/{territory}/plans", json={"seed": 1})
    assert job.status_code == 202, job.text
    plan = _job_done(client, job.json()["id"])["plan_id"]
    r = client.post(f"/plans/{plan}/publish", json={"note": every_payload("发布说明")})
    assert r.status_code == 200, r.text
    grids = [f["properties"] for f in client.get(f"/plans/{plan}/grids").json()["features"]]
    # Inferred streets are named after a place nearby (a facility's name: a payload), so
    # the plan (and the copy below) holds streets named with every payload.
    _payload_streets(engine, plan, grids)
    codes = [g["code"] for g in grids]
    town, village = codes[0][:9], codes[0][:12]
    # A planner whose display name is a payload copies and edits (the history's author).
    planner = "xss-planner"
    account_key(engine, planner, "planner", "*",
                display_name=payload("规划员", 100, 2))
    usernames = [planner]
    as_planner = {"X-API-Key": account_key(engine, planner, "planner", "*")}
    r = client.post(f"/plans/{plan}/copy", json={"note": every_payload("复制说明")},
                    headers=as_planner)
    assert r.status_code == 201, r.text
    draft = int(r.json()["id"])
    version = int(client.get(f"/plans/{draft}").json()["edit_version"])
    for i, code in enumerate(codes):
        author = quote(payload("编", 100, i + 3, lambda t: len(quote(t))))
        for j, headers in enumerate((as_planner, {"X-Gridmap-User": author})):
            r = client.post(f"/plans/{draft}/edits", headers={
                **headers, "If-Match": f'"{version}"'}, json={
                "op": "rename", "grid": code, "name": payload(f"网格{i}", 200, i + 4 * j),
                "note": every_payload("重命名说明")})
            assert r.status_code == 200, r.text
            version = int(r.json()["version"])
    r = client.post(f"/plans/{draft}/edits", headers={"If-Match": f'"{version}"'},
                    json={"op": "lock", "grids": codes[:1], "note": every_payload("锁定")})
    assert r.status_code == 200, r.text
    assert client.post(f"/plans/{draft}/undo", headers={"If-Match": f'"{version + 1}"'},
                       json={"note": every_payload("撤销")}).status_code == 200
    # The published plan's grids carry payload names too (the screen shows them).
    staff = [{"name": payload(f"网格员{i}", 100, i), "phone": "13812345678",
              "area_code": village, "grids": codes} for i in range(3)]
    r = client.put(f"/territories/{territory}/staff", json=staff)
    assert r.status_code == 200, r.text
    # Department overlays (多网融合) whose unit names, and one's department, are payloads:
    # the planner map lists them as layers, the desk names an event's unit.
    _payload_overlays(client, plan, territory, tmp)
    events = []
    for i, g in enumerate(grids):
        x, y = _inside(client, plan, g["code"])
        r = client.post("/events", json={
            "x": x, "y": y, "coord_sys": "wgs84", "category": "sanitation", "source": "citizen",
            "territory_id": territory, "reporter": payload(f"报告人{i}", 100, i),
            "description": every_payload("描述"),
            "idempotency_key": payload(f"k{i}", 100, i + 1)})
        assert r.status_code == 201, r.text
        event = int(r.json()["id"])
        events.append(event)
        handler = payload("处理人", 100, i + 2)
        for action, actor, extra in (
                ("accept", payload("受理人", 100, i + 5), {}),
                ("dispatch", payload("派遣人", 100, i + 6), {"handler": handler}),
                ("start", handler, {}), ("resolve", handler, {})):
            r = client.post(f"/events/{event}/actions", json={
                "action": action, "actor": actor, "reason": every_payload(f"原因{action}"),
                **extra})
            assert r.status_code == 200, r.text
    # An event whose address cannot be placed: the desk lists it (needs_location).
    r = client.post("/events", json={
        "address": payload("地址", 300, 3), "category": "sanitation", "source": "hotline",
        "territory_id": territory, "reporter": payload("来电人", 100, 4),
        "description": every_payload("待定位")})
    assert r.status_code == 202, r.text
    # A photo of the first event, and a patrol walked by a grid worker whose name is a
    # payload (the desk and the phone page show both).
    r = client.post(f"/events/{events[0]}/photos", files={"photo": ("p.png", _png())})
    assert r.status_code == 201, r.text
    walker = "xss-walker"
    as_walker = {"X-API-Key": account_key(engine, walker, "grid_worker", "*",
                                          display_name=payload("网格员", 100, 5))}
    usernames.append(walker)
    x, y = _inside(client, plan, codes[0])
    r = client.post("/patrols", json={"lon": x, "lat": y, "territory_id": territory},
                    headers=as_walker)
    assert r.status_code == 201, r.text
    patrol = int(r.json()["id"])
    r = client.post(f"/patrols/{patrol}/points", headers=as_walker, json={"points": [
        {"lon": x, "lat": y, "kind": "checkin", "note": every_payload("打卡")[:500]}]})
    assert r.status_code == 200, r.text
    return World(backend, engine, settings, territory, plan, other_territory_id=other,
                 draft=draft, town=town, village=village, grids=codes, events=events,
                 usernames=usernames, patrol=patrol)


#: A payload without "/" (a department name may not hold one: it is a path segment).
DEPARTMENT_PAYLOAD = "<img src=x data-xss onerror=alert(2)>"


def _payload_overlays(client: TestClient, plan: int, territory: int, tmp: Path) -> None:
    import json

    body = client.get(f"/plans/{plan}/grids").json()
    features = [{"type": "Feature", "geometry": f["geometry"],
                 "properties": {"code": f"U{i}", "name": payload(f"单元{i}", 200, i)}}
                for i, f in enumerate(body["features"])]
    path = tmp / "units.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    for department in ("城管", DEPARTMENT_PAYLOAD):
        r = client.post(f"/territories/{territory}/overlays",
                        files={"files": (path.name, path.read_bytes())},
                        data={"department": department, "name": every_payload("图层")[:200]})
        assert r.status_code == 201, r.text


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


def _payload_streets(engine: Engine, plan: int, grids: list[dict[str, Any]]) -> None:
    import geopandas as gpd
    import shapely

    from gis.plans import add_lines, read_grids

    stored = read_grids(engine, plan)
    lines = [shapely.LineString(shapely.get_coordinates(g.exterior if g.geom_type == "Polygon"
                                                        else g.geoms[0].exterior)[:2])
             for g in stored.geometry]
    names = [payload(f"巷道{i}", 200, i) + "旁巷道" for i in range(len(lines))]
    added = add_lines(engine, plan, gpd.GeoDataFrame(
        {"name": names, "width_m": [12.5] * len(lines), "likeness": [0.8] * len(lines),
         "village_code": [g["village_code"] for g in grids][:len(lines)]},
        geometry=lines, crs=4326))
    assert added == len(lines) > 0


def _inside(client: TestClient, plan: int, code: str) -> tuple[float, float]:
    import shapely

    body = client.get(f"/plans/{plan}/grids").json()
    shape = next(shapely.geometry.shape(f["geometry"]) for f in body["features"]
                 if f["properties"]["code"] == code)
    p = shape.representative_point()
    return p.x, p.y


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with fresh_store(request, tmp_path_factory, "xss") as (backend, tmp, engine, settings):
        with client_for(create_app(settings, engine)) as client:
            built = _build(client, engine, tmp, backend, settings)
        yield built


# --- walking the routes -----------------------------------------------------------------------


def path_values(w: World) -> dict[str, list[str]]:
    """Values for every path parameter a GET route of the app has (by name): the pages are
    opened with each. Every id names something written with payloads."""
    plans = [str(w.published), str(w.draft)]
    return {
        "plan_id": plans, "a": [str(w.published)], "b": [str(w.draft)],
        "territory_id": [str(w.territory_id)], "layer": ["roads"],
        "code": [w.village], "area_code": [w.town], "fmt": ["geojson"],
        "event_id": [str(w.events[0])], "job_id": ["0"], "username": w.usernames,
        "z": ["0"], "x": ["0"], "y": ["0"], "collectionId": ["grids"],
        "featureId": [w.grids[0]], "path": ["planner.js"],
        "photo_id": ["1"], "patrol_id": [str(w.patrol)], "key_id": ["1"],
        "department": ["城管", DEPARTMENT_PAYLOAD],
        "request_id": [str(w.events[0])],
    }


def query_values(w: World) -> dict[str, list[str]]:
    """Values for query parameters of pages (each is tried alone, besides no query)."""
    return {
        "territory": [str(w.territory_id), str(w.other_territory_id)],
        "event": [str(w.events[0])],
        "area": [w.town, w.village, w.grids[0]],
        "next": ["/screen?" + urlencode({"territory": w.territory_id}),
                 "/" + every_payload(""), "javascript:alert(10)", "/\\evil.example/",
                 '/"><script data-xss>alert(11)</script>'],
    }


def get_routes(app: Any) -> list[tuple[str, list[str]]]:
    """Every GET route of the app (path, names of its query parameters), API routes and
    plain ones alike (the documentation's), included routers too; not /static."""
    out: list[tuple[str, list[str]]] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, Mount):
                continue
            if hasattr(route, "original_router"):
                walk(route.original_router.routes)
            elif isinstance(route, APIRoute | Route) and "GET" in (route.methods or ()):
                query = ([p.alias for p in route.dependant.query_params]
                         if isinstance(route, APIRoute) else [])
                out.append((route.path, query))

    walk(app.routes)
    return out


def fill(path: str, values: dict[str, list[str]]) -> list[str]:
    """Every concrete URL of a route path, one per value of each parameter; fails for a
    parameter it has no value for."""
    names = re.findall(r"{(\w+)(?::\w+)?}", path)
    missing = [n for n in names if n not in values]
    assert not missing, (f"route {path}: no test value for path parameter(s) {missing}; "
                         "add them to PATH_VALUES in tests/maps/test_xss.py")
    urls = [path]
    for name in names:
        pattern = "{" + name + r"(?::\w+)?}"
        urls = [re.sub(pattern, quote(v, safe=""), u, count=1)
                for u in urls for v in values[name]]
    return urls


def html_pages(client: TestClient, w: World) -> list[str]:
    """The URLs of every HTML page: each GET route with its path filled, alone and with each
    known query parameter, kept when the app answers it with text/html."""
    pages = []
    for path, query in get_routes(client.app):
        for url in fill(path, path_values(w)):
            variants = [url] + [f"{url}?{urlencode({q: v})}" for q in query
                                for v in query_values(w).get(q, [])]
            for u in variants:
                r = client.get(u, headers={"Accept": "text/html"}, follow_redirects=False)
                if r.headers.get("content-type", "").startswith("text/html"):
                    assert r.status_code == 200, (u, r.status_code, r.text[:300])
                    pages.append(u)
    return pages


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[LiveServer]:
    with live_server(create_app(world.settings, world.engine)) as running:
        yield running


@pytest.fixture(scope="module")
def pages(world: World, server: LiveServer) -> list[str]:
    with client_for(create_app(world.settings, world.engine)) as client:
        return html_pages(client, world)


def test_the_page_list_is_the_routes_answering_html(pages: list[str], world: World) -> None:
    found = {p.split("?")[0] for p in pages}
    for page in ("/", "/login", "/docs", "/screen", "/admin", "/desk", "/m",
                 f"/plans/{world.published}/map", f"/plans/{world.draft}/map",
                 f"/plans/{world.draft}/edit", f"/plans/{world.published}/compare/{world.draft}"):
        assert page in found, (page, sorted(found))
    assert f"/screen?territory={world.other_territory_id}" in pages   # the no-plan page
    assert not any("/grids" in p or "/events" in p for p in pages)    # JSON is not a page


# --- in Chromium --------------------------------------------------------------------------------

#: After each step: nothing injected (an element a payload makes, an inline handler, a
#: javascript: link), and what the page recorded.
INJECTED = """() => {
  const handlers = [];
  for (const el of document.querySelectorAll("*")) {
    for (const a of el.attributes) {
      if (/^on/i.test(a.name)) { handlers.push(el.tagName + " " + a.name); }
    }
  }
  return {
    marked: Array.from(document.querySelectorAll("[data-xss]")).map(e => e.outerHTML),
    handlers: handlers,
    links: Array.from(document.querySelectorAll("[href], [src], [action]"))
      .map(e => e.getAttribute("href") || e.getAttribute("src") || e.getAttribute("action"))
      .filter(v => /^\\s*javascript:/i.test(v)),
    inlineScripts: Array.from(document.querySelectorAll("script:not([src])"))
      .filter(s => s.type !== "application/json").map(s => s.outerHTML.slice(0, 200)),
    csp: window.__csp || []
  };
}"""

#: Recorded before any script of the page runs (CSP violations are events on the document).
RECORD_CSP = """window.__csp = [];
document.addEventListener("securitypolicyviolation", e => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || ""));
});"""

#: Every popup and panel that shows names, by page kind.
OPEN_PLANNER_POPUPS = """async () => {
  const gm = window.gridmap, opened = [];
  for (const code of Object.keys(gm.byCode)) {
    gm.select(code);
    opened.push(document.querySelector(".leaflet-popup-content").innerHTML.length);
  }
  const search = document.querySelector(".gm-search input");
  search.value = "0";
  search.form.requestSubmit();
  gm.map.closePopup();
  // Every overlay layer on, and the popup of every feature in it.
  const inputs = Array.from(document.querySelectorAll(".leaflet-control-layers-selector"));
  for (const input of inputs) { if (!input.checked) { input.click(); } }
  await new Promise(r => setTimeout(r, 1500));
  for (const key of Object.keys(gm.layers)) {
    gm.layers[key].layer.eachLayer(l => {
      if (l.getPopup && l.getPopup()) { l.openPopup(); opened.push(key); }
    });
  }
  return opened.length;
}"""

OPEN_SCREEN = """async () => {
  const s = window.gridmapScreen;
  const codes = [];
  const walk = async (code) => {
    s.go(code);
    await new Promise(r => setTimeout(r, 700));
    for (const tr of document.querySelectorAll("#children tbody tr")) {
      if (tr.dataset.code && !codes.includes(tr.dataset.code)) { codes.push(tr.dataset.code); }
    }
  };
  await walk(null);
  for (let i = 0; i < codes.length && i < 30; i++) { await walk(codes[i]); }
  s.map.eachLayer(l => { if (l.getPopup && l.getPopup()) { l.openPopup(); } });
  for (const tr of document.querySelectorAll("#urgent tbody tr")) { tr.click(); }
  return codes.length;
}"""

OPEN_COMPARE = """() => {
  const c = window.gridcompare;
  let n = 0;
  for (const side of ["a", "b"]) {
    for (const code of Object.keys(c.byCode[side])) { c.byCode[side][code].openPopup(); n++; }
  }
  for (const b of document.querySelectorAll("#gm-diff button")) { b.click(); }
  return n;
}"""


OPEN_ADMIN = """async () => {
  const a = window.gridmapAdmin;
  let n = 0;
  for (const row of document.querySelectorAll("#accounts tbody tr")) {
    row.querySelectorAll("button")[2].click();
    await new Promise(r => setTimeout(r, 300));
    row.querySelectorAll("button")[0].click();
    n++;
  }
  for (const node of Array.from(document.querySelectorAll(".area-node")).slice(0, 12)) {
    node.click();
  }
  a.mapLayer.eachLayer(l => l.getTooltip && l.getTooltip() && l.openTooltip());
  document.getElementById("tab-audit").click();
  await new Promise(r => setTimeout(r, 700));
  document.getElementById("tab-accounts").click();   // the names, shown as text
  return n;
}"""

OPEN_DESK = """async () => {
  const d = window.gridmapDesk;
  document.querySelector("#filters select[name=status]").value = "";   // every event
  document.getElementById("filters").requestSubmit();
  await new Promise(r => setTimeout(r, 1500));
  let n = 0;
  for (const e of d.events) { await d.open(e.id); n++; }
  Object.values(d.markers).forEach(m => m.openTooltip());
  return n;
}"""

OPEN_PHONE = """async () => {
  const p = window.gridmapPhone;
  for (const tab of ["tab-events", "tab-report", "tab-patrol", "tab-map"]) {
    p.showTab(tab);
    await new Promise(r => setTimeout(r, 500));
  }
  p.map.eachLayer(l => l.getTooltip && l.getTooltip() && l.openTooltip());
  return document.querySelectorAll("#my-events li, #my-patrols li").length;
}"""


def _check(page: Any, url: str, dialogs: list[str], errors: Any, step: str) -> None:
    found = page.evaluate(INJECTED)
    where = f"{url} ({step})"
    assert not dialogs, (where, dialogs)
    assert not found["marked"], (where, found["marked"])
    assert not found["handlers"], (where, found["handlers"])
    assert not found["links"], (where, found["links"])
    assert not found["inlineScripts"], (where, found["inlineScripts"])
    assert not found["csp"], (where, found["csp"])
    assert not errors.exceptions, (where, errors.exceptions)
    assert not errors.console, (where, errors.console)


def new_page(context: Any) -> tuple[Any, PageErrors]:
    """A new page of a browser context, recording its console errors and exceptions."""
    page, errors = context.new_page(), PageErrors()
    page.on("console", lambda m: errors.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda x: errors.exceptions.append(str(x)))
    return page, errors


def test_no_script_runs_on_any_page(browser: Any, server: LiveServer, pages: list[str],
                                    world: World) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(RECORD_CSP)
    try:
        for i, url in enumerate(pages):
            page, errors = new_page(context)
            dialogs: list[str] = []
            page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
            page.goto(server.url + url, wait_until="networkidle")
            _check(page, url, dialogs, errors, "loaded")
            if "/docs" in url and "oauth2" not in url:
                page.wait_for_selector(".opblock", timeout=30_000)
            if re.search(r"/plans/\d+/(map|edit)", url):
                wait_for(page, "window.gridmap && gridmap.ready", timeout=30_000)
                if url.endswith("/edit"):
                    wait_for(page, "gridmap.editor && gridmap.editor.ready",
                                           timeout=30_000)
                    history = page.locator(".gm-h-list").inner_text()
                    assert "编" in history and "规划员" in history, history
                assert page.evaluate(OPEN_PLANNER_POPUPS) >= len(world.grids)
                # The inferred streets (named with payloads) were drawn and opened too.
                assert page.evaluate("gridmap.layers.inferred_streets.features") == \
                    len(world.grids)
                text = page.locator(".leaflet-popup-content").last.inner_text()
                assert text, url
            elif "/compare/" in url:
                wait_for(page, "window.gridcompare && gridcompare.ready",
                                       timeout=30_000)
                assert page.evaluate(OPEN_COMPARE) >= len(world.grids)
            elif url.startswith("/admin"):
                wait_for(page, "window.gridmapAdmin && gridmapAdmin.ready", timeout=30_000)
                assert page.evaluate(OPEN_ADMIN) >= len(world.usernames)
            elif url.startswith("/desk"):
                wait_for(page, "window.gridmapDesk && gridmapDesk.ready", timeout=30_000)
                other = f"territory={world.other_territory_id}" in url   # no events there
                assert page.evaluate(OPEN_DESK) >= (0 if other else len(world.events))
            elif url.startswith("/m"):
                wait_for(page, "window.gridmapPhone && gridmapPhone.ready", timeout=30_000)
                assert page.evaluate(OPEN_PHONE) >= 1
            elif url.startswith("/screen") and page.locator("#map").count():
                wait_for(page, "window.gridmapScreen && gridmapScreen.data()",
                                       timeout=30_000)
                assert page.evaluate(OPEN_SCREEN) >= 1
            page.wait_for_timeout(200)
            _check(page, url, dialogs, errors, "after opening its popups and panels")
            # The payloads are shown, as text: the page did get the names.
            if re.search(r"/plans/\d+/(map|edit)|/compare/|^/$|/screen|^/(admin|desk|m)\b",
                         url):
                assert "<img src=x data-xss" in page.locator("body").inner_text() \
                    or "<script data-xss>" in page.locator("body").inner_text() \
                    or "data-xss" in page.title(), url
            if i < 12:
                screenshot(page, f"xss_{world.backend}_{i}")
            page.close()
    finally:
        context.close()


def test_every_answer_carries_the_security_headers(world: World, pages: list[str]) -> None:
    """Pages get the CSP that forbids inline script; every answer (JSON, files, errors)
    gets nosniff, no framing and a same-origin referrer."""
    with client_for(create_app(world.settings, world.engine),
                    raise_server_exceptions=False) as client:
        urls = [*pages, "/healthz", "/openapi.json", f"/plans/{world.published}/grids",
                "/static/planner.js", "/no/such/route", f"/plans/{world.published}/grids?"
                "town=%25", f"/events/{world.events[0]}"]
        for url in urls:
            r = client.get(url, headers={"Accept": "text/html"}, follow_redirects=False)
            assert r.headers["x-content-type-options"] == "nosniff", url
            assert r.headers["x-frame-options"] == "DENY", url
            assert r.headers["referrer-policy"] in ("same-origin", "no-referrer"), url
            csp = dict(d.strip().split(" ", 1) for d in
                       r.headers["content-security-policy"].split(";"))
            assert csp["frame-ancestors"] == "'none'", url
            if r.headers["content-type"].startswith("text/html"):
                assert csp["script-src"] == "'self'", url
                assert csp["object-src"] == "'none'" and csp["base-uri"] == "'self'", url
                assert csp["form-action"] == "'self'", url
                assert {"data:", "blob:", "'self'"} <= set(csp["img-src"].split()), url
                assert "unsafe" not in r.headers["content-security-policy"], url
            else:
                assert csp["default-src"] == "'none'", url
        # A sign-in redirect and a refusal carry them too.
        bare = TestClient(client.app, raise_server_exceptions=False)
        for url in ("/screen", "/events"):
            r = bare.get(url, headers={"Accept": "text/html"}, follow_redirects=False)
            assert r.status_code in (303, 401), url
            assert r.headers["x-frame-options"] == "DENY", url


@contextmanager
def basemap_site(browser: Any, world: World, settings: Settings, tile_hosts: str
                 ) -> Iterator[tuple[Callable[[str], tuple[Any, PageErrors, Any]], list[str]]]:
    """The service with ``settings`` live, seen from a browser context that records CSP
    violations (``window.__csp``) and answers every basemap tile (a URL matching the regular
    expression ``tile_hosts``) with a PNG, off the network. Yields a function that opens a
    path (the page, its errors, the response) and the tile URLs asked for."""
    png = (Path(__file__).parents[2] / "maps/static/vendor/leaflet/images/layers.png"
           ).read_bytes()
    with live_server(create_app(settings, world.engine)) as running:
        context = browser.new_context()
        context.add_init_script(RECORD_CSP)
        tiles: list[str] = []

        def tile(route: Any) -> None:
            tiles.append(route.request.url)
            route.fulfill(status=200, body=png, content_type="image/png")

        def visit(url: str) -> tuple[Any, PageErrors, Any]:
            page, errors = new_page(context)
            return page, errors, page.goto(running.url + url, wait_until="networkidle")

        context.route(re.compile(tile_hosts), tile)
        try:
            yield visit, tiles
        finally:
            context.close()


def test_the_basemaps_host_is_allowed_and_nothing_else(browser: Any, world: World) -> None:
    """With a basemap on another host (its {s} subdomains), the pages load its tiles under
    the CSP (img-src names the host), with no violation; a script from that host would
    still be refused."""
    settings = world.settings.model_copy(update={
        "basemap_url": "https://{s}.tile.example.cn/{z}/{x}/{y}.png",
        "basemap_attribution": "示例底图"})
    with basemap_site(browser, world, settings,
                      r"https://[abc]\.tile\.example\.cn/.*") as (visit, tiles):
        for url in (f"/plans/{world.published}/map", "/screen"):
            page, errors, _ = visit(url)
            assert page.locator(".leaflet-tile-pane img").count() > 0, url
            assert page.evaluate("window.__csp") == [], url
            assert not errors.console, (url, errors.console)
            blocked = page.evaluate("""() => new Promise(done => {
                const s = document.createElement("script");
                s.src = "https://a.tile.example.cn/x.js";
                s.onerror = () => done("refused"); s.onload = () => done("ran");
                document.head.appendChild(s); })""")
            assert blocked == "refused", url
            page.close()
        assert tiles and all(".tile.example.cn/" in t for t in tiles)


TIANDITU_KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("layers", ["vec", "img"])
def test_tianditu_basemap_and_its_labels_load_under_the_csp(browser: Any, world: World,
                                                            layers: str) -> None:
    """GRIDMAP_BASEMAP=tianditu: the page config carries the 天地图 map and annotation layers
    with the key, the CSP allows *.tianditu.gov.cn (and only then), and the pages fetch
    both layers' tiles from t0–t7 (answered here: no network), with the attribution shown."""
    plain = create_app(world.settings, world.engine)
    with TestClient(plain) as bare:
        assert "tianditu" not in bare.get("/login").headers["content-security-policy"]
    settings = Settings(**{**world.settings.model_dump(), "basemap": "tianditu",
                           "tianditu_key": TIANDITU_KEY, "tianditu_layers": layers})
    base, labels = {"vec": ("vec", "cva"), "img": ("img", "cia")}[layers]
    with basemap_site(browser, world, settings,
                      r"https://t[0-7]\.tianditu\.gov\.cn/.*") as (visit, tiles):
        for url in (f"/plans/{world.published}/map", "/screen"):
            page, errors, response = visit(url)
            assert response is not None
            csp = response.headers["content-security-policy"]
            assert "img-src 'self' data: blob: https://*.tianditu.gov.cn;" in csp, url
            config = json.loads(page.locator(
                "script[type='application/json']").first.text_content() or "{}")
            text = json.dumps(config, ensure_ascii=False)
            assert f"/{base}_w/wmts?" in text and f"/{labels}_w/wmts?" in text, url
            assert f"tk={TIANDITU_KEY}" in text and "天地图" in text, url
            assert page.locator(".leaflet-tile-pane img").count() > 0, url
            assert "天地图" in page.locator(".leaflet-control-attribution").inner_text()
            assert page.evaluate("window.__csp") == [], url
            assert not errors.console, (url, errors.console)
            page.close()
        assert {t.split("/")[3] for t in tiles} == {f"{base}_w", f"{labels}_w"}
        assert all(f"tk={TIANDITU_KEY}" in t for t in tiles)


def test_tianditu_needs_a_key_and_keeps_its_own_url() -> None:
    with pytest.raises(ValueError, match="GRIDMAP_TIANDITU_KEY"):
        Settings(basemap="tianditu")
    with pytest.raises(ValueError, match="GRIDMAP_BASEMAP_URL"):
        Settings(basemap="tianditu", tianditu_key=TIANDITU_KEY,
                 basemap_url="https://{s}.tile.example.cn/{z}/{x}/{y}.png")
    with pytest.raises(ValueError, match="GRIDMAP_TIANDITU_KEY"):
        Settings(basemap="tianditu", tianditu_key="abc&evil=1")
