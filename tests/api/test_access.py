"""Who may see and change what: every route refuses strangers, each role gets what its
permissions say (a role × route matrix), and accounts bound to an area see nothing of the
others — in lists, maps, tiles, exports, the OGC API, counts and the screen."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from signin import account_key
from sqlalchemy import func, select

from api.app import create_app
from api.auth import PERMISSIONS, api_routes
from gis.models.events import Event
from maps.tiles import tile_at

#: Routes anyone may call: health, the API's description, sign-in, static files.
PUBLIC = {"/healthz", "/readyz", "/problems", "/token", "/login", "/logout", "/roles",
          "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

#: The permission each route needs ("any": any signed-in account). Written out by hand, so
#: that a route given the wrong guard fails here.
NEEDS: dict[tuple[str, str], str] = {
    ("GET", "/me"): "any",
    ("GET", "/accounts"): "accounts",
    ("POST", "/accounts"): "accounts",
    ("PATCH", "/accounts/{username}"): "accounts",
    ("POST", "/accounts/{username}/keys"): "accounts",
    ("GET", "/audit"): "accounts",
    ("POST", "/territories"): "plans:write",
    ("GET", "/territories"): "plans:read",
    ("GET", "/territories/{territory_id}"): "plans:read",
    ("DELETE", "/territories/{territory_id}"): "plans:write",
    ("POST", "/territories/{territory_id}/plans"): "plans:write",
    ("POST", "/territories/{territory_id}/redraw"): "plans:write",
    ("GET", "/territories/{territory_id}/layers/{layer}"): "plans:read",
    ("PUT", "/territories/{territory_id}/staff"): "staff:write",
    ("POST", "/territories/{territory_id}/overlays"): "plans:write",
    ("GET", "/territories/{territory_id}/overlays"): "plans:read",
    ("GET", "/territories/{territory_id}/overlays/{department}"): "plans:read",
    ("DELETE", "/territories/{territory_id}/overlays/{department}"): "plans:write",
    ("GET", "/plans/{plan_id}/overlays/{department}/crosswalk"): "plans:read",
    ("GET", "/plans/{plan_id}/overlays/{department}/proposal"): "plans:read",
    ("GET", "/plans/{plan_id}/overlays/{department}/map"): "plans:read",
    ("POST", "/plans/{plan_id}/overlays/{department}/alignment"): "plans:write",
    ("GET", "/jobs/{job_id}"): "plans:read",
    ("DELETE", "/jobs/{job_id}"): "plans:write",
    ("GET", "/jobs"): "plans:read",
    ("GET", "/plans"): "plans:read",
    ("GET", "/plans/{plan_id}"): "plans:read",
    ("GET", "/plans/{plan_id}/grids"): "plans:read",
    ("GET", "/plans/{plan_id}/report"): "plans:read",
    ("POST", "/plans/{plan_id}/publish"): "plans:write",
    ("GET", "/plans/{a}/diff/{b}"): "plans:read",
    ("POST", "/plans/{plan_id}/edits"): "plans:write",
    ("POST", "/plans/{plan_id}/undo"): "plans:write",
    ("POST", "/plans/{plan_id}/redo"): "plans:write",
    ("GET", "/plans/{plan_id}/edits"): "plans:read",
    ("POST", "/plans/{plan_id}/copy"): "plans:write",
    ("GET", "/plans/{plan_id}/blocks"): "plans:read",
    ("GET", "/plans/{plan_id}/lines"): "plans:read",
    ("GET", "/plans/{plan_id}/map"): "plans:read",
    ("GET", "/plans/{plan_id}/edit"): "plans:write",
    ("GET", "/plans/{plan_id}/locked"): "plans:read",
    ("GET", "/plans/{a}/compare/{b}"): "plans:read",
    ("GET", "/plans/{plan_id}/export.{fmt}"): "plans:read",
    ("GET", "/plans/{plan_id}/posters/{area_code}.{fmt}"): "plans:read",
    ("GET", "/areas/{code}"): "plans:read",
    ("GET", "/tiles/{plan_id}/{z}/{x}/{y}.mvt"): "plans:read",
    ("GET", "/tiles/{plan_id}.json"): "plans:read",
    ("GET", "/ogc"): "plans:read",
    ("GET", "/ogc/conformance"): "plans:read",
    ("GET", "/ogc/collections"): "plans:read",
    ("GET", "/ogc/collections/{collectionId}"): "plans:read",
    ("GET", "/ogc/collections/{collectionId}/items"): "plans:read",
    ("GET", "/ogc/collections/{collectionId}/items/{featureId}"): "plans:read",
    ("GET", "/route"): "events:create",
    ("POST", "/events"): "events:create",
    ("POST", "/events/import"): "events:import",
    ("GET", "/open311/v2/services.json"): "any",
    ("GET", "/open311/v2/requests.json"): "events:read",
    ("POST", "/open311/v2/requests.json"): "events:create",
    ("GET", "/open311/v2/requests/{request_id}.json"): "events:read",
    ("GET", "/geocode"): "events:create",
    ("POST", "/geocode"): "events:create",
    ("GET", "/events/unlocated"): "events:read",
    ("POST", "/events/unlocated/{unlocated_id}/place"): "events:act",
    ("GET", "/events"): "events:read",
    ("GET", "/events/rules"): "any",
    ("GET", "/events/stats"): "events:read",
    ("GET", "/events/{event_id}"): "events:read",
    ("POST", "/events/{event_id}/actions"): "events:act",
    ("POST", "/events/{event_id}/reroute"): "events:act",
    ("POST", "/events/escalate-overdue"): "events:act",
    ("GET", "/screen/data"): "events:read",
    ("GET", "/screen"): "events:read",
    ("GET", "/"): "any",
    ("POST", "/territories/preview"): "plans:write",
    ("GET", "/accounts/{username}/keys"): "accounts",
    ("DELETE", "/accounts/{username}/keys/{key_id}"): "accounts",
    ("POST", "/events/{event_id}/photos"): "events:create",
    ("GET", "/events/{event_id}/photos"): "events:read",
    ("GET", "/events/{event_id}/photos/{photo_id}"): "events:read",
    ("GET", "/territories/{territory_id}/staff"): "events:read",
    ("POST", "/patrols"): "events:act",
    ("POST", "/patrols/{patrol_id}/points"): "events:act",
    ("POST", "/patrols/{patrol_id}/end"): "events:act",
    ("GET", "/patrols"): "events:read",
    ("GET", "/patrols/coverage"): "events:read",
    ("GET", "/patrols/{patrol_id}"): "events:read",
    ("GET", "/admin"): "accounts",
    ("GET", "/desk"): "events:act",
    ("GET", "/m"): "events:create",
}


def _routes(app: Any) -> list[tuple[str, str]]:
    return [(m, r.path) for r in api_routes(app.routes) if r.path not in PUBLIC
            for m in sorted(r.methods - {"HEAD"})]


@pytest.fixture(scope="module")
def world(store: Any) -> Iterator[dict[str, Any]]:
    """The demo store with one account of each role, events in two towns, and the codes."""
    engine = store.engine
    grids = store.grids
    towns = sorted({store.area_parents[v] for v in grids["village_code"]})
    town_a, town_b = towns[0], towns[1]
    in_a = grids[grids["village_code"].map(store.area_parents) == town_a]
    in_b = grids[grids["village_code"].map(store.area_parents) == town_b]
    grid_a = str(in_a["code"].iloc[0])
    district = store.area_parents[town_a]
    keys = {
        "admin": account_key(engine, "m-admin", "admin", "*"),
        "planner": account_key(engine, "m-planner", "planner", district),
        "operator": account_key(engine, "m-operator", "operator", district),
        "grid_worker": account_key(engine, "m-worker", "grid_worker", district),
        "reporter": account_key(engine, "m-reporter", "reporter", district),
        "viewer": account_key(engine, "m-viewer", "viewer", district),
        "town_a": account_key(engine, "a-operator", "operator", town_a),
        "town_b_viewer": account_key(engine, "b-viewer", "viewer", town_b),
        "grid_a": account_key(engine, "a-worker", "grid_worker", grid_a),
        "reporter_a": account_key(engine, "a-reporter", "reporter", town_a),
    }
    app = create_app(store.settings, engine)
    points = {}
    for name, frame in (("a", in_a), ("b", in_b)):
        p = frame.geometry.iloc[0].representative_point()
        points[name] = (p.x, p.y, str(frame["code"].iloc[0]))
    with TestClient(app, headers={"X-API-Key": keys["admin"]}) as admin:
        events = {}
        for name in ("a", "b"):
            x, y, _ = points[name]
            made = admin.post("/events", json={
                "x": x, "y": y, "coord_sys": "wgs84", "category": "sanitation",
                "source": "citizen", "reporter": "张三",
                "description": f"{name}: 垃圾堆放，联系电话 13812345678"})
            assert made.status_code == 201, made.text
            events[name] = made.json()
        yield {"app": app, "keys": keys, "store": store, "town_a": town_a,
               "town_b": town_b, "grid_a": grid_a, "district": district, "points": points,
               "events": events}


@contextmanager
def _as(world: dict[str, Any], who: str) -> Iterator[TestClient]:
    """A client of the account (the app is already started by the fixture)."""
    yield TestClient(world["app"], headers={"X-API-Key": world["keys"][who]})


def _path(template: str, world: dict[str, Any]) -> str:
    store = world["store"]
    none = world.get("nothing", False)   # ids that exist nowhere (for changes)
    plan = 999_999 if none else store.plan_id
    values = {"plan_id": plan, "a": plan, "b": plan,
              "territory_id": 999_999 if none else store.territory_id,
              "event_id": 999_999 if none else world["events"]["a"]["id"],
              "job_id": "nojob", "username": "nobody" if none else "m-viewer",
              "layer": "roads", "department": "公安",
              "code": world["town_a"], "area_code": world["town_a"],
              "z": 14, "x": 13000, "y": 7000, "collectionId": f"grids-{store.territory_id}",
              "featureId": world["grid_a"], "photo_id": 999_999, "patrol_id": 999_999,
              "key_id": 999_999, "unlocated_id": 999_999,
              "request_id": 999_999}
    fmt = "png" if "posters" in template else "geojson"
    return re.sub(r"\{(\w+)\}", lambda m: str(fmt if m.group(1) == "fmt"
                                              else values[m.group(1)]), template)


def test_every_route_is_guarded_and_listed(world: dict[str, Any]) -> None:
    """Every route outside PUBLIC answers 401 to a stranger, and the matrix names them all."""
    routes = _routes(world["app"])
    assert set(routes) == set(NEEDS), set(routes) ^ set(NEEDS)
    with TestClient(world["app"]) as stranger:
        for method, template in routes:
            response = stranger.request(method, _path(template, world))
            assert response.status_code == 401, (method, template, response.status_code)
            assert response.headers["WWW-Authenticate"] == "Bearer"
        # A page opened in a browser goes to the sign-in page instead.
        page = stranger.get("/screen", headers={"Accept": "text/html"},
                            follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/screen"
        for public in ("/healthz", "/login", "/roles", "/openapi.json"):
            assert stranger.get(public).status_code == 200, public


@pytest.mark.parametrize("role", list(PERMISSIONS))
def test_role_by_route_matrix(world: dict[str, Any], role: str) -> None:
    """Each role is refused (403) exactly the routes its permissions do not cover. Bodies are
    left empty on purpose: an allowed role gets past the guard to a 4xx about the
    request (or a 2xx for reads), never a 401 or 403, and nothing is changed."""
    refused, allowed = [], []
    with _as(world, role) as client:
        for (method, template), needs in NEEDS.items():
            kwargs: dict[str, Any] = {}
            path = _path(template, world)
            if method != "GET":  # nothing to change: no such territory, plan, event, user
                path = _path(template, {**world, "nothing": True})
            if method in ("POST", "PUT", "PATCH"):
                kwargs["content"] = b"{}"
                kwargs["headers"] = {"Content-Type": "application/json"}
            response = client.request(method, path, **kwargs)
            ok = needs == "any" or needs in PERMISSIONS[role]
            (allowed if ok else refused).append((method, template))
            if ok:
                assert response.status_code not in (401, 403), (role, method, template,
                                                                response.text[:200])
            else:
                assert response.status_code == 403, (role, method, template,
                                                     response.status_code)
                body = response.json()
                # Open311 routes answer errors as GeoReport v2 does: [{code, description}].
                detail = body[0]["description"] if isinstance(body, list) else body["detail"]
                assert role in detail or "may not" in detail
    assert allowed and (role == "admin" or refused)


def test_nothing_of_another_area_leaks(world: dict[str, Any]) -> None:
    """A town's operator sees its own town's grids, events and counts, and nothing of the
    next town: in lists, single reads, the map's GeoJSON, tiles, exports, the OGC API, the
    screen and the area lookup."""
    town_a, town_b, store = world["town_a"], world["town_b"], world["store"]
    ea, eb = world["events"]["a"], world["events"]["b"]
    with _as(world, "town_a") as a:
        listed = a.get("/events").json()
        assert ea["id"] in [e["id"] for e in listed] and eb["id"] not in [e["id"] for e in listed]
        assert a.get(f"/events/{eb['id']}").status_code == 404
        assert a.post(f"/events/{eb['id']}/actions",
                      json={"action": "accept", "actor": "站长"}).status_code == 404
        groups = a.get("/events/stats", params={"by": "town"}).json()["groups"]
        assert set(groups) == {town_a}
        codes = [f["id"] for f in a.get(f"/plans/{store.plan_id}/grids").json()["features"]]
        assert codes and all(c.startswith(town_a) for c in codes)
        exported = a.get(f"/plans/{store.plan_id}/export.geojson").json()["features"]
        assert {f["properties"]["code"][:9] for f in exported} == {town_a}
        items = a.get(f"/ogc/collections/grids-{store.territory_id}/items",
                      params={"limit": 10_000}).json()
        assert items["numberMatched"] == len(codes)
        x, y, grid_b = world["points"]["b"]
        assert a.get(f"/ogc/collections/grids-{store.territory_id}/items/{grid_b}"
                     ).status_code == 404
        tile = tile_at(x, y, 15)
        body = a.get(f"/tiles/{store.plan_id}/15/{tile.x}/{tile.y}.mvt").content
        seen = mapbox_vector_tile.decode(body).get("grids", {}).get("features", []) \
            if body else []
        assert all(f["properties"]["code"].startswith(town_a) for f in seen)
        with _as(world, "admin") as admin:  # the same tile shows town b to the admin
            whole = mapbox_vector_tile.decode(admin.get(
                f"/tiles/{store.plan_id}/15/{tile.x}/{tile.y}.mvt").content)
            assert any(f["properties"]["code"] == grid_b
                       for f in whole["grids"]["features"])
        screen = a.get("/screen/data", params={"territory": store.territory_id}).json()
        assert screen["area"]["code"] == town_a
        assert a.get("/screen/data", params={"territory": store.territory_id,
                                             "area": town_b}).status_code == 404
        assert a.get(f"/areas/{town_b}").status_code == 404
        assert a.get(f"/plans/{store.plan_id}/posters/{town_b}.png").status_code == 404
        # Whole-territory work is refused: the quality report, publishing, layers.
        assert a.get(f"/plans/{store.plan_id}/report").status_code == 403
        assert a.get(f"/territories/{store.territory_id}/layers/roads").status_code == 403
        # A report in the other town is refused and nothing is stored.
        before = _count_events(store)
        refused = a.post("/events", json={"x": x, "y": y, "coord_sys": "wgs84",
                                          "category": "sanitation", "source": "patrol"})
        assert refused.status_code == 403 and "outside your areas" in refused.json()["detail"]
        assert _count_events(store) == before
    with _as(world, "town_b_viewer") as b:
        assert b.get("/events").status_code == 403           # viewers see no events
        codes = [f["id"] for f in b.get(f"/plans/{store.plan_id}/grids").json()["features"]]
        assert codes and all(c.startswith(town_b) for c in codes)
    with _as(world, "grid_a") as worker:
        mine = worker.get("/events").json()
        assert [e["grid_code"] for e in mine] == [world["grid_a"]] * len(mine)
        assert ea["id"] in [e["id"] for e in mine] or ea["grid_code"] != world["grid_a"]


def test_an_import_with_rows_outside_the_area_stores_nothing(world: dict[str, Any]) -> None:
    store = world["store"]
    (xa, ya, _), (xb, yb, _) = world["points"]["a"], world["points"]["b"]
    csv = f"lon,lat,category\n{xa},{ya},sanitation\n{xb},{yb},sanitation\n".encode()
    before = _count_events(store)
    with _as(world, "town_a") as a:
        answer = a.post("/events/import", data={"coord_sys": "wgs84"},
                        files={"file": ("e.csv", io.BytesIO(csv), "text/csv")})
    assert answer.status_code == 403 and "1 rows lie outside" in answer.json()["detail"]
    assert _count_events(store) == before


def test_names_and_phones_are_masked_for_roles_without_need(world: dict[str, Any]) -> None:
    x, y, _ = world["points"]["a"]
    with _as(world, "reporter_a") as reporter:
        made = reporter.post("/events", json={
            "x": x, "y": y, "coord_sys": "wgs84", "category": "sanitation",
            "source": "citizen", "reporter": "王小明",
            "description": "电话 021-62345678 或 13912345678"})
        assert made.status_code == 201, made.text
        shown = made.json()
        assert shown["reporter"] == "王**"
        assert shown["description"] == "电话 021*****5678 或 139****5678"
        assert shown["history"][0]["actor"] == "王**"
    with _as(world, "town_a") as operator:   # the operator handles it: sees it whole
        whole = operator.get(f"/events/{shown['id']}").json()
        assert whole["reporter"] == "王小明" and "13912345678" in whole["description"]


def test_the_audit_log_says_who_read_or_changed_what(world: dict[str, Any]) -> None:
    event_id = world["events"]["a"]["id"]
    with _as(world, "town_a") as a:
        assert a.get(f"/events/{event_id}").status_code == 200
        assert a.post(f"/events/{event_id}/actions",
                      json={"action": "accept", "actor": "站长"}).status_code == 200
        assert a.get(f"/plans/{world['store'].plan_id}/report").status_code == 403
    with _as(world, "admin") as admin:
        log = admin.get("/audit", params={"username": "a-operator", "limit": 50}).json()
    seen = {(e["action"], e["method"], e["path"].split("?")[0], e["status"]) for e in log}
    assert ("read", "GET", f"/events/{event_id}", 200) in seen
    assert ("change", "POST", f"/events/{event_id}/actions", 200) in seen
    assert ("denied", "GET", f"/plans/{world['store'].plan_id}/report", 403) in seen
    assert all(e["role"] == "operator" for e in log)


def _count_events(store: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Event)).scalar_one())


def test_openapi_declares_the_sign_in_schemes(world: dict[str, Any]) -> None:
    schema = world["app"].openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/token"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    guarded = schema["paths"]["/events"]["get"]["security"]
    assert {"OAuth2PasswordBearer": []} in guarded and {"APIKeyHeader": []} in guarded
