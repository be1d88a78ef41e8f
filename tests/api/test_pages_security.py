"""Pages and filters that cannot be turned against their users: sign-in returns only to this
site (with the query kept), /docs works with no internet, area-code filters take no
wildcards, times say their zone, and free text hides the names of an event's people from
the roles that see masked events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from browser import LiveServer, live_server, open_page, wait_for
from demo_plan import DemoStore
from fastapi.testclient import TestClient
from signin import account_key

from api.app import create_app
from api.routes.accounts import safe_next
from events.dashboard import screen_data
from gis.accounts import add_account
from gis.plans import read_grids
from gis.settings import Settings

PASSWORD = "correct horse battery"

#: Return paths that lead elsewhere, as an attacker would write them (decoded once by the
#: server, as a query parameter is).
ELSEWHERE = ["/\\evil.example/x", "/%5Cevil.example/x", "/%255Cevil.example", "//evil.example",
             "/\t/evil.example", "/%09/evil.example", "/\n/evil.example", "https://evil.example",
             "javascript:alert(1)", "/%2F/evil.example", "%2F%2Fevil.example", "\\\\evil.example",
             "\\/evil.example", "/\\/evil.example", " //evil.example", "http:/evil.example",
             "/..//evil.example", "///evil.example", "/%5C%5Cevil.example"]
#: Paths of this site, which are kept as they are.
HERE = ["/", "/screen?territory=1", "/screen?territory=1&area=440111001",
        "/plans/3/map", "/plans/1/compare/2?x=%2F", "/docs#/events"]


@pytest.mark.parametrize("target", ELSEWHERE)
def test_a_return_path_to_another_host_becomes_home(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", HERE)
def test_a_return_path_of_this_site_is_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.fixture()
def signed_out(spatialite_url: str) -> Any:
    app = create_app(Settings(database_url=spatialite_url, escalation_interval_s=0))
    add_account(app.state.engine, "zhao", PASSWORD, "admin", "*")
    return app


def _sign_in(page: Any) -> None:
    page.fill("input[name=username]", "zhao")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_sign_in_comes_back_to_the_page_with_its_query(browser: Any, signed_out: Any) -> None:
    with live_server(signed_out, sign_in=False) as running:
        bare = TestClient(signed_out)
        r = bare.get("/screen?territory=1&area=440111001", headers={"Accept": "text/html"},
                     follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == \
            "/login?next=/screen%3Fterritory%3D1%26area%3D440111001"
        page, errors = open_page(browser, f"{running.url}/screen?territory=1")
        try:
            assert "/login?next=" in page.url
            _sign_in(page)
            page.wait_for_url(re.compile(r"/screen\?territory=1$"))
            assert not errors.exceptions, errors.exceptions
        finally:
            page.close()


@contextmanager
def this_host_only(browser: Any, running: LiveServer) -> Iterator[tuple[Any, list[str]]]:
    """A browser context in which every request for another host than ``running``'s is
    aborted: the context, and the URLs it refused (the context closes when the block ends)."""
    host = urlsplit(running.url).netloc
    context = browser.new_context()
    elsewhere: list[str] = []

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).netloc != host:
            elsewhere.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    try:
        yield context, elsewhere
    finally:
        context.close()


def test_sign_in_never_leaves_this_host(browser: Any, signed_out: Any) -> None:
    """Chromium signs in from /login?next=<each attacker's path> and ends on this host; no
    request for another host is even attempted."""
    with live_server(signed_out, sign_in=False) as running, \
            this_host_only(browser, running) as (context, elsewhere):
        host = urlsplit(running.url).netloc
        for target in ELSEWHERE:
            page = context.new_page()
            page.goto(f"{running.url}/login?next={quote(target, safe='')}")
            _sign_in(page)
            page.wait_for_url(lambda u: urlsplit(u).path != "/login", timeout=10_000)
            page.wait_for_load_state("networkidle")
            assert urlsplit(page.url).netloc == host, (target, page.url)
            assert urlsplit(page.url).path == "/", (target, page.url)
            page.close()
            context.clear_cookies()
        assert not elsewhere, elsewhere


def test_docs_work_offline(browser: Any, spatialite_url: str) -> None:
    """/docs draws every operation from the server's own files: every request for another
    host is aborted and none is attempted; ReDoc is not offered."""
    app = create_app(Settings(database_url=spatialite_url, escalation_interval_s=0))
    with live_server(app) as running, this_host_only(browser, running) as (context, elsewhere):
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(f"{running.url}/docs", wait_until="networkidle")
        page.wait_for_selector(".opblock", timeout=30_000)
        spec = TestClient(app).get("/openapi.json").json()
        operations = {f"{m.upper()} {path}" for path, ops in spec["paths"].items()
                      for m in ops}
        wait_for(page, f"document.querySelectorAll('.opblock').length >= {len(operations)}")
        shown = set(page.evaluate(
            "() => Array.from(document.querySelectorAll('.opblock')).map(o => "
            "o.querySelector('.opblock-summary-method').textContent + ' ' + "
            "o.querySelector('.opblock-summary-path').getAttribute('data-path'))"))
        assert shown == operations, shown ^ operations
        assert not elsewhere, elsewhere
        assert not console, console
        assert TestClient(app).get("/redoc").status_code == 404


# --- area codes: validated, and literal in every prefix filter ---------------------------------

MALFORMED = ["%", "%25", "_________", "4401%", "44011100_", "4401", "440111001001001001",
             "44011100a", " 440111001", "*"]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_codes_are_422(client: TestClient, store: DemoStore, bad: str) -> None:
    p = store.plan_id
    for url, param in ((f"/plans/{p}/grids", "town"), (f"/plans/{p}/grids", "village"),
                       (f"/plans/{p}/blocks", "village"), (f"/plans/{p}/blocks", "grid"),
                       ("/events", "town"), ("/events", "village"), ("/events", "grid"),
                       ("/screen/data", "area")):
        r = client.get(url, params={param: bad})
        assert r.status_code == 422, (url, param, bad, r.text)
        assert "digits" in r.json()["detail"] and "位数字" in r.json()["detail"], r.text


def test_a_town_filter_keeps_its_town_only(client: TestClient, store: DemoStore) -> None:
    town = next(iter(store.area_parents[v] for v in store.grids["village_code"]))
    body = client.get(f"/plans/{store.plan_id}/grids", params={"town": town}).json()
    got = sorted(f["properties"]["code"] for f in body["features"])
    want = sorted(c for c, v in zip(store.grids["code"], store.grids["village_code"],
                                    strict=True) if store.area_parents[v] == town)
    assert got == want and 0 < len(got) < len(store.grids)


@pytest.mark.parametrize("prefix", ["%", "_", "4401%", "44011_", "440111___", "!", "!%"])
def test_prefix_filters_read_wildcards_literally(store: DemoStore, prefix: str) -> None:
    """In the store's own readers (below the API's check), % and _ match themselves."""
    assert len(read_grids(store.engine, store.plan_id, town=prefix)) == 0
    assert len(read_grids(store.engine, store.plan_id, areas=(prefix,))) == 0
    district = str(store.grids["village_code"].iloc[0])[:6]
    assert len(read_grids(store.engine, store.plan_id, areas=(district,))) == len(store.grids)


def test_screen_of_a_district_is_not_widened(store: DemoStore, client: TestClient) -> None:
    from events.rules import Rules
    from gis.models.base import utcnow

    district = str(store.grids["village_code"].iloc[0])[:6]
    body = screen_data(store.engine, Rules.load(None, 0.2), utcnow(), store.territory_id,
                       district)
    assert body["area"]["code"] == district


# --- times: in the configured zone on pages, UTC with offset in the API -----------------------


def test_index_shows_times_in_the_configured_zone(store: DemoStore) -> None:
    created = read_plan_created(store)
    for zone, label, shift in (("Asia/Shanghai", "北京时间（UTC+8）", 8),
                               ("UTC", "UTC", 0), ("Asia/Kolkata", "Asia/Kolkata（UTC+5:30）",
                                                   5.5)):
        settings = store.settings.model_copy(update={"timezone": zone})
        with TestClient(create_app(settings, store.engine),
                        headers={"X-API-Key": account_key(store.engine)}) as c:
            html = c.get("/").text
            api = c.get(f"/plans/{store.plan_id}").json()["created_at"]
        from datetime import timedelta

        local = (created + timedelta(hours=shift)).strftime("%Y-%m-%d %H:%M")
        assert f"创建时间（{label}）" in html, zone
        assert f"<td>{local}</td>" in html, (zone, local)
        assert re.search(r"(\+00:00|Z)$", api), api


def read_plan_created(store: DemoStore) -> Any:
    from datetime import UTC

    from gis.plans import get_plan

    created = get_plan(store.engine, store.plan_id).created_at
    return created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="GRIDMAP_TIMEZONE"):
        Settings(timezone="Mars/Olympus")


def test_screen_and_editor_say_their_zone(browser: Any, store: DemoStore) -> None:
    """In a browser set to New York, the screen's clock and the editor's history show the
    server's zone (Beijing time) and say so."""
    app = create_app(store.settings, store.engine)
    with live_server(app) as running:
        api = TestClient(app, headers={"X-API-Key": account_key(store.engine)})
        r = api.post(f"/plans/{store.plan_id}/copy", json={"note": "时区"})
        assert r.status_code == 201, r.text
        draft = r.json()["id"]
        locked = api.post(f"/plans/{draft}/edits", headers={"If-Match": '"0"'}, json={
            "op": "lock", "grids": [str(store.grids["code"].iloc[0])]})
        assert locked.status_code == 200, locked.text
        context = browser.new_context(timezone_id="America/New_York")
        try:
            page = context.new_page()
            page.goto(f"{running.url}/screen", wait_until="networkidle")
            beijing_hour = ("new Intl.DateTimeFormat('en-GB', {timeZone: 'Asia/Shanghai', "
                            "hour: '2-digit', hourCycle: 'h23'}).format(new Date())")
            before = page.evaluate(beijing_hour)
            clock = page.inner_text("#clock")
            after = page.evaluate(beijing_hour)
            assert clock.endswith("北京时间（UTC+8）"), clock
            assert f" {before}:" in clock or f" {after}:" in clock, (clock, before)
            page.goto(f"{running.url}/plans/{draft}/edit", wait_until="networkidle")
            wait_for(page, "window.gridmap && gridmap.editor && gridmap.editor.ready")
            assert "北京时间" in page.inner_text(".gm-history")
            history = page.evaluate("gridmap.editor.history")
            at = history[-1]["at"]
            shown = page.evaluate(
                "(at) => { const p = {}; new Intl.DateTimeFormat('en-GB', {timeZone: "
                "'Asia/Shanghai', month: '2-digit', day: '2-digit', hour: '2-digit', "
                "minute: '2-digit', hourCycle: 'h23'}).formatToParts(new Date(at))"
                ".forEach(x => p[x.type] = x.value); return p.month + '-' + p.day + ' ' + "
                "p.hour + ':' + p.minute; }", at)
            assert shown in page.inner_text(".gm-h-list"), (shown, at)
        finally:
            context.close()


# --- names in free text, masked for the roles that see masked events --------------------------


def test_description_hides_the_names_of_the_events_people(client: TestClient,
                                                          store: DemoStore) -> None:
    """A reporter (who sees events masked) gets its event back with the names of the event's
    people masked in the description too, phone numbers as well; an operator sees them."""
    grid = store.grids.iloc[0]
    p = grid.geometry.representative_point()
    district = str(store.grids["village_code"].iloc[0])[:6]
    key = account_key(store.engine, "mask-reporter", "reporter", district)
    made = client.post("/events", headers={"X-API-Key": key}, json={
        "x": p.x, "y": p.y, "coord_sys": "wgs84", "category": "dispute", "source": "citizen",
        "reporter": "欧阳明", "description": "欧阳明反映邻居噪音，联系人李四电话13812345678，"
                                             "当事人：王小红"})
    assert made.status_code == 201, made.text
    seen = made.json()
    text = str(seen)
    assert not [n for n in ("欧阳明", "李四", "王小红", "13812345678") if n in text], text
    assert seen["description"].startswith("欧**反映邻居噪音，联系人李*电话138****5678"), seen
    assert seen["description"].endswith("当事人：王**"), seen
    operator = account_key(store.engine, "mask-operator", "operator", district)
    full = client.get(f"/events/{seen['id']}", headers={"X-API-Key": operator}).json()
    assert full["description"].startswith("欧阳明反映") and "王小红" in full["description"]


def test_security_headers_on_errors_too(spatialite_url: str) -> None:
    """A 500 (answered by Starlette's outermost error middleware), a 404 and a 413 carry
    the headers as every other answer does."""
    app = create_app(Settings(database_url=spatialite_url, escalation_interval_s=0,
                              max_upload_mb=1))

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    client = TestClient(app, raise_server_exceptions=False)
    for response in (client.get("/boom"), client.get("/nowhere"),
                     client.post("/events", content=b"x" * (2 * 2**20))):
        assert response.status_code in (500, 404, 413), response.status_code
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
