"""Geocoding over HTTP and events reported by address (routed, or kept as needs_location),
on both backends, against the demo district's own address points."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from signin import account_key
from sqlalchemy import func, select

from api.app import create_app
from gis.models.events import Event, UnlocatedEvent
from gis.store import read_layer


@pytest.fixture(scope="module")
def env(store: Any) -> Iterator[dict[str, Any]]:
    buildings = read_layer(store.engine, store.territory_id, "buildings")
    app = create_app(store.settings, store.engine)
    key = account_key(store.engine, "g-operator", "operator", "*")
    with TestClient(app, headers={"X-API-Key": key}) as client:
        yield {"client": client, "buildings": buildings, "store": store, "app": app}


def _door(buildings: Any, compound: bool) -> Any:
    rows = buildings[buildings["road"].notna() & (buildings["compound"].notna() == compound)]
    return rows.iloc[len(rows) // 2]


def test_addresses_are_stored_with_the_territory(env: dict[str, Any]) -> None:
    b = env["buildings"]
    assert b["address"].notna().mean() > 0.9
    assert b["road"].notna().any() and b["compound"].notna().any()


def test_get_geocode_places_a_door_and_answers_in_the_asked_system(env: dict[str, Any]
                                                                   ) -> None:
    client, b = env["client"], env["buildings"]
    row = _door(b, compound=True)
    q = f"{row['road']}{row['house_number']}号{row['compound']}{row['building_no']}栋"
    r = client.get("/geocode", params={"q": q, "territory": env["store"].territory_id})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["level"] == "door" and a["confidence"] >= 0.9
    pt = row.geometry.representative_point()
    assert abs(a["lon"] - pt.x) < 1e-4 and abs(a["lat"] - pt.y) < 1e-4
    gcj = client.get("/geocode", params={"q": q, "coord_sys": "gcj02"}).json()
    # GCJ-02 is offset from WGS84 by a few hundred metres in Guangzhou.
    assert 0.001 < abs(gcj["x"] - a["x"]) < 0.01
    assert gcj["lon"] == pytest.approx(a["lon"])
    bad = client.get("/geocode", params={"q": q, "coord_sys": "EPSG:99999"})
    assert bad.status_code == 422
    missing = client.get("/geocode", params={"q": q, "territory": 999_999})
    assert missing.status_code == 404


def test_batch_geocode_levels(env: dict[str, Any]) -> None:
    client, b = env["client"], env["buildings"]
    row = _door(b, compound=True)
    single = _door(b, compound=False)
    addresses = [
        f"{row['road']}{row['house_number']}号",                       # the compound's door
        f"{row['compound']}{row['building_no']}栋",                   # compound + building
        f"{row['compound']}",                                          # compound only
        f"{single['road']}{int(single['house_number']) + 1000}号",    # interpolated/extrapolated
        "完全不存在的地方",
    ]
    r = client.post("/geocode", json={"addresses": addresses})
    assert r.status_code == 200, r.text
    levels = [a["level"] for a in r.json()["results"]]
    assert levels == ["door", "building", "compound", "road", "none"]
    too_many = client.post("/geocode", json={"addresses": ["x"] * 10_001})
    assert too_many.status_code == 400 and "GRIDMAP_GEOCODE_BATCH_MAX" in too_many.text


def test_event_by_address_is_routed(env: dict[str, Any]) -> None:
    client, b = env["client"], env["buildings"]
    row = _door(b, compound=False)
    r = client.post("/events", json={"address": row["address"], "category": "sanitation",
                                     "source": "hotline"})
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["address"] == row["address"] and event["geocode_level"] == "door"
    assert event["coord_sys"] == "wgs84" and event["grid_code"]
    neither = client.post("/events", json={"category": "sanitation", "source": "hotline"})
    assert neither.status_code == 422
    half = client.post("/events", json={"x": 113.3, "category": "sanitation",
                                        "source": "hotline"})
    assert half.status_code == 422


def test_needs_location_then_placed(env: dict[str, Any]) -> None:
    client, store = env["client"], env["store"]
    body = {"address": "某某大厦后面的小卖部", "category": "sanitation", "source": "hotline",
            "reporter": "李四", "idempotency_key": "hotline-77"}
    r = client.post("/events", json=body)
    assert r.status_code == 202, r.text
    waiting = r.json()
    assert waiting["status"] == "needs_location" and waiting["geocode"]["level"] == "none"
    again = client.post("/events", json=body)
    assert again.status_code == 200 and again.json()["id"] == waiting["id"]
    listed = client.get("/events/unlocated").json()
    assert waiting["id"] in [e["id"] for e in listed["events"]]
    with store.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(Event)).scalar_one()
    grid = store.grids.iloc[0]
    p = grid.geometry.representative_point()
    placed = client.post(f"/events/unlocated/{waiting['id']}/place",
                         json={"x": p.x, "y": p.y, "coord_sys": "wgs84"})
    assert placed.status_code == 201, placed.text
    event = placed.json()
    assert event["grid_code"] == grid["code"] and event["address"] == body["address"]
    assert event["geocode_level"] == "placed" and event["reporter"] == "李四"
    twice = client.post(f"/events/unlocated/{waiting['id']}/place",
                        json={"x": p.x, "y": p.y, "coord_sys": "wgs84"})
    assert twice.status_code == 409
    with store.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(Event)).scalar_one()
    assert after == before + 1
    assert waiting["id"] not in [e["id"] for e in client.get("/events/unlocated").json()
                                 ["events"]]
    assert client.post("/events/unlocated/999999/place",
                       json={"x": p.x, "y": p.y, "coord_sys": "wgs84"}).status_code == 404


def test_min_level_setting_keeps_coarse_answers_waiting(env: dict[str, Any]) -> None:
    store, b = env["store"], env["buildings"]
    settings = store.settings.model_copy(update={"geocode_min_level": "door"})
    key = account_key(store.engine, "g-operator2", "operator", "*")
    row = _door(b, compound=True)
    with TestClient(create_app(settings, store.engine), headers={"X-API-Key": key}) as c:
        coarse = c.post("/events", json={"address": str(row["compound"]),
                                         "category": "sanitation", "source": "hotline"})
        assert coarse.status_code == 202, coarse.text
        assert coarse.json()["geocode"]["level"] == "compound"
        fine = c.post("/events", json={"address": row["address"], "category": "sanitation",
                                       "source": "hotline"})
        assert fine.status_code == 201 and fine.json()["geocode_level"] == "door"


def _counts(store: Any) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(Event)).scalar_one(),
                conn.execute(select(func.count()).select_from(UnlocatedEvent))
                .scalar_one())


def test_import_with_an_address_column(env: dict[str, Any]) -> None:
    client, store, b = env["client"], env["store"], env["buildings"]
    rows = b[b["road"].notna()]
    a, c = rows.iloc[5], rows.iloc[40]
    events0, waiting0 = _counts(store)
    csv = (f"地址,category,description\n{a['address']},sanitation,甲\n"
           f"查无此地,dispute,乙\n{c['road']}{c['house_number']}号,municipal,丙\n")
    r = client.post("/events/import", files={"file": ("hotline.csv", csv.encode("gbk"))},
                    data={"source": "hotline"})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 2 and r.json()["needs_location"] == 1
    events1, waiting1 = _counts(store)
    assert (events1, waiting1) == (events0 + 2, waiting0 + 1)
    stored = client.get("/events", params={"limit": 2}).json()
    stored = stored["events"] if isinstance(stored, dict) else stored
    assert {e["address"] for e in stored} == {a["address"], f"{c['road']}{c['house_number']}号"}
    assert {e["geocode_level"] for e in stored} == {"door"}
    assert all(e["coord_sys"] == "wgs84" for e in stored)
    waiting = client.get("/events/unlocated").json()["events"]
    assert any(w["address"] == "查无此地" and w["category"] == "dispute" for w in waiting)
    # Mixed: coordinates where known, the address where not; in the file's system.
    p = store.grids.iloc[2].geometry.representative_point()
    mixed = f"lon,lat,address,category\n{p.x},{p.y},,sanitation\n,,{a['address']},sanitation\n"
    r = client.post("/events/import", files={"file": ("m.csv", mixed.encode())},
                    data={"coord_sys": "gcj02", "source": "hotline"})
    assert r.status_code == 200 and r.json()["imported"] == 2, r.text
    # A row with neither: refused, naming it; nothing stored.
    before = _counts(store)
    broken = f"lon,lat,address,category\n{p.x},{p.y},,sanitation\n,,,sanitation\n"
    r = client.post("/events/import", files={"file": ("b.csv", broken.encode())},
                    data={"coord_sys": "wgs84"})
    assert r.status_code == 422 and "row 2" in r.text
    coords_no_sys = client.post("/events/import",
                                files={"file": ("c.csv", f"lon,lat,category\n{p.x},{p.y},"
                                                         "sanitation\n".encode())})
    assert coords_no_sys.status_code == 422 and "coord_sys" in coords_no_sys.text
    assert _counts(store) == before
