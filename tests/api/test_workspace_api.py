"""The API pieces the workspace pages stand on, on both backends: the upload preview and its
suggested field map, event photos (type, size, pixels, count), patrols and
the 日双巡 coverage, the roster, API keys, audit and event filters."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from conftest import fresh_store, tiny_layers, write_layers
from demo_plan import BACKENDS
from fastapi.testclient import TestClient
from signin import account_key, client_for

from api.app import create_app


def _png(width: int, height: int, fmt: str = "PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(out, fmt)
    return out.getvalue()


def _done(client: TestClient, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        body = client.get(f"/jobs/{job}").json()
        if body["state"] not in ("queued", "running"):
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    with fresh_store(request, tmp_path_factory, "wsapi", photo_max_kb=200, photos_per_event=2,
                     photo_max_pixels=4_000_000) as (_, tmp, engine, settings):
        layers = tiny_layers()
        layers["buildings"]["households"] = [320, 300, 150, 350, 0]
        path = write_layers(layers, tmp / "t", "GPKG")
        with client_for(create_app(settings, engine)) as client:
            with path.open("rb") as fh:
                territory = client.post("/territories",
                                        files={"files": (path.name, fh)}).json()
            job = client.post(f"/territories/{territory['id']}/plans",
                              json={"seed": 1}).json()
            plan = _done(client, job["id"])["plan_id"]
            assert client.post(f"/plans/{plan}/publish").status_code == 200
            grids = {f["properties"]["code"]: shapely.geometry.shape(f["geometry"])
                     .representative_point()
                     for f in client.get(f"/plans/{plan}/grids").json()["features"]}
            yield client, {"territory": territory["id"], "plan": plan, "grids": grids,
                           "engine": engine, "tmp": tmp}


def _event(client: TestClient, w: dict[str, Any], code: str, **extra: Any) -> dict[str, Any]:
    p = w["grids"][code]
    r = client.post("/events", json={"x": p.x, "y": p.y, "coord_sys": "wgs84",
                                     "category": "sanitation", "source": "citizen",
                                     "territory_id": w["territory"], **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_preview_suggests_a_field_map_and_asks_for_the_encoding(site: Any) -> None:
    client, w = site
    layers = tiny_layers()
    folder = w["tmp"] / "shp"
    folder.mkdir()
    admin = layers["admin_areas"].rename(columns={"code": "XZQDM", "name": "名称",
                                                  "level": "级别", "parent_code": "上级编码"})
    admin.to_file(folder / "admin_areas.shp", engine="pyogrio", encoding="GBK")
    (folder / "admin_areas.cpg").unlink(missing_ok=True)
    buildings = layers["buildings"].rename(columns={"households": "住户数"})
    buildings.to_file(folder / "buildings.geojson", driver="GeoJSON", engine="pyogrio")
    archive = w["tmp"] / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in folder.iterdir():
            z.write(f, f"data/{f.name}")
    with archive.open("rb") as fh:
        r = client.post("/territories/preview", files={"files": (archive.name, fh)},
                        data={"encoding": "GBK"})
    assert r.status_code == 200, r.text
    body = r.json()
    by = {entry["layer"]: entry for entry in body["layers"]}
    assert set(by) == {"admin_areas", "buildings"} and body["missing_layers"] == []
    admin_p = by["admin_areas"]
    assert admin_p["needs_encoding"] and admin_p["features"] == 4
    assert admin_p["file"] == "data/admin_areas.shp"
    assert admin_p["suggested"] == {"code": "XZQDM", "name": "名称", "level": "级别",
                                    "parent_code": "上级编码"}
    assert "景泰街道" in admin_p["samples"]["名称"]          # read as GBK
    assert set(admin_p["missing"]) == {"code", "name", "level"}
    assert by["buildings"]["suggested"] == {"households": "住户数"}
    # The suggestions are a field map the import takes as it is.
    field_map = {f"{e['layer']}.{c}": f for e in body["layers"]
                 for f, c in e["suggested"].items()}
    with archive.open("rb") as fh:
        r = client.post("/territories", files={"files": (archive.name, fh)},
                        data={"encoding": "GBK", "field_map": json.dumps(
                            field_map, ensure_ascii=False)})
    assert r.status_code == 201, r.text
    # Nothing readable: the problem names the file and layer; nothing stored.
    r = client.post("/territories/preview", files={"files": ("roads.geojson", b"{oops")})
    assert r.status_code == 422 and r.json()["file"] == "roads.geojson"


def test_photos_are_checked_stored_and_listed(site: Any) -> None:
    client, w = site
    code = next(iter(w["grids"]))
    event = _event(client, w, code)["id"]
    r = client.post(f"/events/{event}/photos", files={"photo": ("a.jpg", _png(800, 600,
                                                                                "JPEG"))})
    assert r.status_code == 201, r.text
    photo = r.json()
    assert (photo["content_type"], photo["width"], photo["height"]) == ("image/jpeg", 800, 600)
    got = client.get(photo["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert got.content[:3] == b"\xff\xd8\xff"
    # Not an image, whatever its name says; over the size; over the pixels (a bomb).
    for data, status in ((b"<svg onload=alert(1)>", 415), (b"GIF89a" + b"\0" * 50, 415),
                         (_png(400, 300, "GIF"), 415), (b"\0" * 300_000, 413),
                         (_png(3000, 2000), 413)):
        r = client.post(f"/events/{event}/photos", files={"photo": ("x.png", data)})
        assert r.status_code == status, (status, r.text)
    assert client.post(f"/events/{event}/photos",
                       files={"photo": ("b.webp", _png(50, 40, "WEBP"))}).status_code == 201
    r = client.post(f"/events/{event}/photos", files={"photo": ("c.png", _png(50, 40))})
    assert r.status_code == 413                        # photos_per_event = 2
    detail = client.get(f"/events/{event}").json()
    assert [p["content_type"] for p in detail["photos"]] == ["image/jpeg", "image/webp"]
    assert sum("photo" in (h["reason"] or "") for h in detail["history"]) == 2
    assert client.get(f"/events/{event}/photos/{photo['id'] + 999}").status_code == 404
    other = _event(client, w, code)["id"]
    assert client.get(f"/events/{other}/photos/{photo['id']}").status_code == 404
    # An account of another area sees neither the event nor its photo.
    away = {"X-API-Key": account_key(w["engine"], "ws-away", "operator", "110101")}
    assert client.get(photo["url"], headers=away).status_code == 404


def test_patrols_make_the_two_a_day(site: Any) -> None:
    client, w = site
    code, point = next(iter(w["grids"].items()))
    worker = {"X-API-Key": account_key(w["engine"], "ws-worker", "grid_worker", code,
                                       display_name="周网格")}
    other = {"X-API-Key": account_key(w["engine"], "ws-worker2", "grid_worker", code)}
    # Today in Beijing: from 16:00 UTC yesterday.
    now = datetime.now(UTC)
    body = {"lon": point.x, "lat": point.y, "territory_id": w["territory"],
            "idempotency_key": "start-1"}
    r = client.post("/patrols", json=body, headers=worker)
    assert r.status_code == 201, r.text
    patrol = r.json()
    assert patrol["grid_code"] == code and patrol["walker"] == "周网格"
    again = client.post("/patrols", json=body, headers=worker)
    assert again.status_code == 200 and again.json()["id"] == patrol["id"]
    assert client.post("/patrols", json=body, headers=other).status_code == 409
    pts = [{"lon": point.x + i * 1e-4, "lat": point.y, "kind": "track"} for i in range(3)]
    pts.append({"lon": point.x, "lat": point.y, "kind": "checkin", "note": "东门"})
    r = client.post(f"/patrols/{patrol['id']}/points", json={"points": pts}, headers=worker)
    assert r.status_code == 200 and r.json()["added"] == 4
    assert client.post(f"/patrols/{patrol['id']}/points", json={"points": pts},
                       headers=other).status_code == 409
    assert client.get("/patrols/coverage", params={"territory": w["territory"]}).json()[
        "twice"] == 0
    end = client.post(f"/patrols/{patrol['id']}/end", headers=worker).json()
    assert end["ended_at"] and end["track_points"] == 4 and end["checkins"] == 1
    late = [{"lon": point.x, "lat": point.y,
             "at": (now + timedelta(hours=1)).isoformat()}]
    assert client.post(f"/patrols/{patrol['id']}/points", json={"points": late},
                       headers=worker).status_code == 409
    second = client.post("/patrols", json={**body, "idempotency_key": "start-2"},
                         headers=worker).json()
    client.post(f"/patrols/{second['id']}/end", headers=worker)
    cov = client.get("/patrols/coverage", params={"territory": w["territory"]}).json()
    row = next(g for g in cov["grids"] if g["code"] == code)
    assert row == {"code": code, "name": row["name"], "patrols": 2, "ended": 2, "twice": True}
    assert cov["twice"] == 1 and cov["total"] == len(w["grids"])
    # Another day has none; the worker's own list; a grid outside the worker's areas.
    yesterday = (now - timedelta(days=2)).date().isoformat()
    assert client.get("/patrols/coverage", params={"territory": w["territory"],
                                                   "day": yesterday}).json()["twice"] == 0
    mine = client.get("/patrols", params={"mine": "true"}, headers=worker).json()
    assert {p["id"] for p in mine} == {patrol["id"], second["id"]}
    others = [c for c in w["grids"] if c != code]
    if others:
        r = client.post("/patrols", json={**body, "grid_code": others[0],
                                          "idempotency_key": "x"}, headers=worker)
        assert r.status_code == 403
    assert client.get("/patrols/coverage", params={"area": "12%"}).status_code == 422


def test_roster_keys_audit_and_event_filters(site: Any) -> None:
    client, w = site
    codes = sorted(w["grids"])
    staff = [{"name": "甲", "phone": "13900000001", "grids": codes[:1]},
             {"name": "乙", "phone": "13900000002", "grids": codes}]
    assert client.put(f"/territories/{w['territory']}/staff", json=staff).status_code == 200
    roster = client.get(f"/territories/{w['territory']}/staff",
                        params={"grid": codes[-1]}).json()
    assert [s["name"] for s in roster] == ["乙"] and roster[0]["phone"] == "13900000002"
    planner = {"X-API-Key": account_key(w["engine"], "ws-planner", "planner", "*")}
    assert client.get(f"/territories/{w['territory']}/staff", headers=planner
                      ).status_code == 403
    # Keys: listed without the key, revoked one by one.
    account_key(w["engine"], "ws-keys", "viewer", "*")
    made = client.post("/accounts/ws-keys/keys", json={"name": "第二把"}).json()
    keys = client.get("/accounts/ws-keys/keys").json()
    assert {k["name"] for k in keys} == {"tests", "第二把"}
    assert all("key" not in k and "key_hash" not in k for k in keys)
    second = next(k for k in keys if k["name"] == "第二把")
    assert client.delete(f"/accounts/ws-keys/keys/{second['id']}").status_code == 204
    assert client.delete(f"/accounts/ws-keys/keys/{keys[0]['id'] + 10_000}").status_code == 404
    time.sleep(5.2)
    assert client.get("/me", headers={"X-API-Key": made["key"]}).status_code == 401
    audit = client.get("/audit", params={"path": "/accounts/ws-keys", "action": "change"}).json()
    assert audit and all(a["path"].startswith("/accounts/ws-keys") and a["action"] == "change"
                         for a in audit)
    assert client.get("/audit", params={"until": "2000-01-01T00:00:00Z"}).json() == []
    # Events: by category, deadline first, by light, by time.
    a = _event(client, w, codes[0])
    b = _event(client, w, codes[0], category="safety_hazard")
    got = client.get("/events", params={"category": "safety_hazard", "limit": 1000}).json()
    assert b["id"] in {e["id"] for e in got} and a["id"] not in {e["id"] for e in got}
    ordered = client.get("/events", params={"order": "deadline", "open": "true"}).json()
    deadlines = [e["deadline_at"] for e in ordered]
    assert deadlines == sorted(deadlines)
    assert all(e["light"] == "green" for e in client.get(
        "/events", params={"light": "green"}).json())
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert client.get("/events", params={"since": future}).json() == []
    assert {"lon", "lat"} <= set(got[0])
