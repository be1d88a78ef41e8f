"""Events over HTTP: intake routed against the published plan, bulk import, workflow, lights."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from signin import client_for

from api.app import create_app
from data.demo import generate
from gis.database import make_engine
from gis.io.territory import read_territory
from gis.obfuscation import bd09_from_wgs84, gcj02_from_wgs84
from gis.plans import publish_plan, write_plan
from gis.settings import Settings
from gis.store import import_territory
from partitioning.engine import partition_territory
from partitioning.output import grid_table

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def publish(engine: Any, territory_id: int, seed: int, territory: Any) -> int:
    from partitioning.params import PartitionParams

    result = partition_territory(territory, PartitionParams(seed=seed))
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(4326)
    plan = write_plan(engine, territory_id, grid_table(result), blocks, result.report,
                      {"seed": seed})
    publish_plan(engine, plan)
    return plan


@pytest.fixture(scope="module")
def demo_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(10_000, 3).write(tmp_path_factory.mktemp("ev") / "territory.gpkg")


@pytest.fixture
def setup(db_url: str, demo_gpkg: Path) -> Iterator[tuple[TestClient, Clock, int, Any]]:
    engine = make_engine(db_url)
    territory = read_territory(demo_gpkg)
    tid = import_territory(engine, territory)
    publish(engine, tid, 1, territory)
    app = create_app(Settings(database_url=db_url, escalation_interval_s=0), engine)
    clock = Clock()
    app.state.clock = clock
    with client_for(app) as client:
        yield client, clock, tid, territory
    engine.dispose()


def grids_of(client: TestClient) -> gpd.GeoDataFrame:
    plan = client.get("/plans").json()[-1]["id"]
    return gpd.GeoDataFrame.from_features(
        client.get(f"/plans/{plan}/grids").json()["features"], crs=4326)


def report(client: TestClient, x: float, y: float, coord_sys: str = "wgs84",
           **extra: Any) -> Any:
    body = {"x": x, "y": y, "coord_sys": coord_sys, "category": "sanitation",
            "source": "patrol", "reporter": "张三", **extra}
    return client.post("/events", json=body)


def test_intake_routes_and_walks_the_loop(setup: Any) -> None:
    client, clock, tid, _ = setup
    grids = grids_of(client)
    g = grids.iloc[3]
    p = shapely.point_on_surface(g.geometry)
    client.put(f"/territories/{tid}/staff", json=[
        {"name": "李四", "grids": [g.code]}, {"name": "站长", "role": "station_head"}])
    r = report(client, p.x, p.y)
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["grid_code"] == g.code and event["village_code"] == g.village_code
    assert event["town_code"] == g.village_code[:9] and event["district_code"] == "440111"
    assert event["routing"]["grid_worker"] == "李四" and event["light"] == "green"
    assert event["status"] == "reported" and event["distance_m"] == 0
    # The same place in GCJ-02 and BD-09 routes to the same grid.
    for conv, name in ((gcj02_from_wgs84, "gcj02"), (bd09_from_wgs84, "bd09")):
        lon, lat = conv(p.x, p.y)
        answer = client.get("/route", params={"x": float(lon[0]), "y": float(lat[0]),
                                              "coord_sys": name}).json()
        assert answer["grid_code"] == g.code, name
    # Walk the loop; lights over time with the test's clock.
    eid = event["id"]
    clock.now = T0 + timedelta(hours=20)
    assert client.get(f"/events/{eid}").json()["light"] == "yellow"
    for action, actor, extra in (("accept", "站长", {}), ("dispatch", "站长", {"handler": "李四"}),
                                 ("start", "李四", {}), ("resolve", "李四", {})):
        r = client.post(f"/events/{eid}/actions", json={"action": action, "actor": actor,
                                                          **extra})
        assert r.status_code == 200, r.text
    assert_rule = client.post(f"/events/{eid}/actions",
                              json={"action": "verify", "actor": "李四"})
    assert assert_rule.status_code == 400
    assert "may not verify" in assert_rule.json()["detail"]
    done = client.post(f"/events/{eid}/actions", json={
        "action": "verify", "actor": "站长"}).json()
    assert done["status"] == "verified" and done["light"] == "green"
    stats = client.get("/events/stats", params={"by": "village"}).json()
    assert stats["total"]["resolved"] == 1 and stats["total"]["on_time_rate"] == 1.0


def test_idempotent_retries_and_bad_input_store_nothing(setup: Any) -> None:
    client, _, _, _ = setup
    p = shapely.point_on_surface(grids_of(client).geometry.iloc[0])
    first = report(client, p.x, p.y, idempotency_key="k-1")
    again = report(client, p.x, p.y, idempotency_key="k-1")
    header = client.post("/events", headers={"Idempotency-Key": "k-1"}, json={
        "x": p.x, "y": p.y, "coord_sys": "wgs84", "category": "sanitation",
        "source": "patrol"})
    assert first.status_code == 201 and again.status_code == 200
    assert header.status_code == 200
    assert first.json()["id"] == again.json()["id"] == header.json()["id"]
    bad = [
        ({"coord_sys": None}, 422, "coord_sys"),
        ({"x": float("nan")}, 422, ""),
        ({"x": 200.0}, 422, ""),
        ({"x": p.y, "y": p.x}, 422, "swap"),
        ({"category": "fire"}, 400, "unknown category"),
        ({"coord_sys": "EPSG:999999"}, 422, ""),
        ({"source": "rumour"}, 422, "source"),
    ]
    for change, status, word in bad:
        body = {"x": p.x, "y": p.y, "coord_sys": "wgs84", "category": "sanitation",
                "source": "patrol", **change}
        body = {k: v for k, v in body.items() if v is not None}
        r = client.post("/events", content=json.dumps(body),
                        headers={"content-type": "application/json"})
        assert r.status_code == status, (change, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert word.lower() in r.text.lower(), (change, r.text)
    assert len(client.get("/events").json()) == 1


def test_outside_and_near_boundary(setup: Any) -> None:
    client, _, _, territory = setup
    admin = territory.layers["admin_areas"]
    _, lat0, lon1, lat1 = admin.total_bounds
    r = report(client, lon1 + 0.01, (lat0 + lat1) / 2)   # ~1 km east of the district
    assert r.status_code == 201
    event = r.json()
    assert "outside" in event["flags"] and event["grid_code"] is not None
    assert 500 < event["distance_m"] < 2_000
    # A point 2 m from a shared edge: flagged, both candidates given.
    grids = grids_of(client).to_crs(4547)
    a, b = None, None
    for i in range(len(grids)):
        for j in range(i + 1, len(grids)):
            shared = grids.geometry.iloc[i].intersection(grids.geometry.iloc[j])
            if shared.length > 50:
                a, b = i, j
                break
        if a is not None:
            break
    assert a is not None and b is not None
    edge = grids.geometry.iloc[a].intersection(grids.geometry.iloc[b])
    # (Two grids may also touch at a corner: the shared edge is the longest line of it.)
    lines = [p for p in shapely.get_parts(shapely.line_merge(shapely.union_all(
        [p for p in shapely.get_parts(edge) if p.geom_type == "LineString"])))]
    edge = max(lines, key=lambda p: p.length)
    mid = edge.interpolate(0.5, normalized=True)
    inner = grids.geometry.iloc[a].buffer(-2).boundary
    near = inner.interpolate(inner.project(mid))
    lonlat = gpd.GeoSeries([near], crs=4547).to_crs(4326).iloc[0]
    answer = client.get("/route", params={"x": lonlat.x, "y": lonlat.y,
                                          "coord_sys": "wgs84"}).json()
    assert answer["grid_code"] == grids["code"].iloc[a]
    assert "near_boundary" in answer["flags"]
    assert answer["other_grid_code"] == grids["code"].iloc[b]


def test_republish_does_not_reroute_history_but_reroute_does(setup: Any, db_url: str) -> None:
    client, _, tid, territory = setup
    plan1 = client.get("/plans").json()[-1]["id"]
    grids = grids_of(client)
    p = shapely.point_on_surface(grids.geometry.iloc[5])
    event = report(client, p.x, p.y).json()
    assert event["plan_id"] == plan1
    engine = make_engine(db_url)
    plan2 = publish(engine, tid, 2, territory)   # published by another process
    engine.dispose()
    client.app.state.routers.invalidate()  # type: ignore[attr-defined]
    assert client.get(f"/events/{event['id']}").json()["plan_id"] == plan1
    moved = client.post(f"/events/{event['id']}/reroute",
                        json={"actor": "管理员", "reason": "新方案"}).json()
    assert moved["plan_id"] == plan2
    assert "re-routed" in moved["history"][-1]["reason"]
    assert report(client, p.x, p.y).json()["plan_id"] == plan2


def test_bulk_import_csv_and_escalation(setup: Any) -> None:
    client, clock, _, _ = setup
    grids = grids_of(client)
    pts = shapely.point_on_surface(grids.geometry.to_numpy()[:20])
    lon, lat = gcj02_from_wgs84(shapely.get_x(pts), shapely.get_y(pts))
    csv = "lon,lat,category,description\n" + "".join(
        f"{x},{y},safety_hazard,井盖缺失{i}\n" for i, (x, y) in enumerate(zip(lon, lat,
                                                                          strict=True)))
    r = client.post("/events/import", data={"coord_sys": "gcj02"},
                    files={"file": ("events.csv", io.BytesIO(csv.encode("utf-8")), "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 20 and r.json()["outside"] == 0
    stored = client.get("/events", params={"limit": 100}).json()
    assert sorted(e["grid_code"] for e in stored) == sorted(grids["code"].iloc[:20])
    # Bad rows: nothing stored.
    bad = csv + "abc,23.2,safety_hazard,x\n"
    r = client.post("/events/import", data={"coord_sys": "gcj02"},
                    files={"file": ("events.csv", io.BytesIO(bad.encode()), "text/csv")})
    assert r.status_code == 422 and "row 21" in r.json()["detail"]
    assert len(client.get("/events", params={"limit": 100}).json()) == 20
    # Time runs out at the grid (4 h for a safety hazard): all 20 go up to the station.
    clock.now = T0 + timedelta(hours=5)
    assert client.get("/events/stats").json()["total"]["red"] == 20
    escalated = client.post("/events/escalate-overdue").json()["escalated"]
    assert len(escalated) == 20
    assert {e["level"] for e in client.get("/events").json()} == {"station"}


def test_a_new_event_answers_as_it_is_read_back(setup: Any) -> None:
    client, _, _, _ = setup
    p = shapely.point_on_surface(grids_of(client).geometry.iloc[2])
    created = report(client, p.x, p.y, idempotency_key="k-read-back").json()
    read = client.get(f"/events/{created['id']}").json()
    assert {k: v for k, v in created.items() if k != "routing"} == read
    again = report(client, p.x, p.y, idempotency_key="k-read-back").json()
    assert {k: v for k, v in again.items() if k != "routing"} == read


def test_bulk_columns_store_what_row_by_row_stores(setup: Any) -> None:
    """The bulk path (columns; COPY on PostGIS) writes the rows the row-by-row path writes."""
    from sqlalchemy import func, select

    from events.store import EVENT, HISTORY, create_events, create_events_columns, get_event

    client, _, tid, territory = setup
    app: Any = client.app
    engine, rules = app.state.engine, app.state.rules
    published = app.state.routers.get(tid)
    grids = grids_of(client)
    inside = shapely.point_on_surface(grids.geometry.to_numpy()[:12])
    _, lat0, lon1, lat1 = territory.layers["admin_areas"].total_bounds
    lon = np.concatenate([shapely.get_x(inside), [lon1 + 0.01, lon1 + 0.001]])
    lat = np.concatenate([shapely.get_y(inside), [(lat0 + lat1) / 2] * 2])
    x, y = gcj02_from_wgs84(lon, lat)
    n = len(x)
    answers = published.route(x, y, "gcj02")
    cols = published.route_columns(x, y, "gcj02")
    for k in ("lon", "lat", "grid_id", "grid_code", "village_code", "town_code",
              "district_code", "distance_m", "other_grid_code", "flags"):
        assert [a[k] for a in answers] == list(cols[k]), k
    assert any("outside" in a["flags"] for a in answers)
    texts = ["tab\there", "new\nline\r\n", "back\\slash \\N", "井盖缺失", "", "'quote\""] * 3
    cats = np.array(["sanitation", "safety_hazard"] * n, dtype=object)[:n]
    srcs = np.array(["hotline", "citizen", "patrol"] * n, dtype=object)[:n]
    reporters = np.array([None, "张三"] * n, dtype=object)[:n]
    fields = {k: cols[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                   "village_code", "town_code", "district_code",
                                   "distance_m", "other_grid_code", "flags")}
    fields.update(category=cats, source=srcs, coord_sys="gcj02", x=x, y=y, reported_at=T0,
                  description=np.array(texts[:n], dtype=object), reporter=reporters)
    rows = []
    for i, a in enumerate(answers):
        row = {k: a[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                 "village_code", "town_code", "district_code", "distance_m",
                                 "other_grid_code", "flags")}
        row.update(category=str(cats[i]), source=str(srcs[i]), coord_sys="gcj02",
                   x=float(x[i]), y=float(y[i]), reported_at=T0, description=texts[i],
                   reporter=reporters[i])
        rows.append((row, a["lon"], a["lat"]))
    assert create_events(engine, rows, rules) == n
    assert create_events_columns(engine, fields, cols["lon"], cols["lat"], rules) == n
    with engine.connect() as conn:
        events = conn.execute(select(EVENT).order_by(EVENT.c.id)).mappings().all()
        stored_history = conn.execute(select(func.count()).select_from(HISTORY)).scalar_one()
    assert len(events) == 2 * n
    assert stored_history == 0  # a report is the event's own row; history holds what follows
    # ``import_id``: the SpatiaLite bulk path's bookkeeping (the import that stored the row).
    for one, other in zip(events[:n], events[n:], strict=True):
        assert {k: v for k, v in one.items() if k not in ("id", "import_id")} == \
               {k: v for k, v in other.items() if k not in ("id", "import_id")}
    first = [get_event(engine, e["id"])["history"] for e in (events[0], events[1], events[n + 1])]
    assert all(len(h) == 1 and h[0]["to_status"] == "reported" for h in first)
    assert first[1][0]["actor"] == first[2][0]["actor"] == "张三"
    assert first[0][0]["actor"] == "hotline"


def test_concurrent_requests_build_one_router(setup: Any) -> None:
    """Requests arriving while a router is built wait for it instead of building their own."""
    from concurrent.futures import ThreadPoolExecutor

    from events.router_cache import RouterCache

    client, _, tid, _ = setup
    cache = RouterCache(client.app.state.engine)  # type: ignore[attr-defined]
    builds = []
    build = cache._build

    def counted(territory_id: int, plan_id: int) -> Any:
        builds.append(territory_id)
        return build(territory_id, plan_id)

    cache._build = counted  # type: ignore[method-assign]
    assert cache.fresh(tid) is None
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: cache.get(tid), range(16)))
    assert builds == [tid] and all(g is got[0] for g in got)
    assert cache.fresh(tid) is got[0] and cache.fresh() is None
    assert cache.get() is got[0] and cache.fresh() is got[0]   # the default is cached too


def test_a_time_with_an_offset_is_stored_as_the_same_instant(setup: Any) -> None:
    """08:30 Beijing time is 00:30 UTC on both backends (SpatiaLite keeps wall times)."""
    client, _, _, _ = setup
    p = shapely.point_on_surface(grids_of(client).geometry.iloc[1])
    for sent in ("2026-05-01T08:30:00+08:00", "2026-05-01T00:30:00Z", "2026-05-01T00:30:00"):
        created = report(client, p.x, p.y, reported_at=sent).json()
        read = client.get(f"/events/{created['id']}").json()
        assert datetime.fromisoformat(read["reported_at"]) == datetime(
            2026, 5, 1, 0, 30, tzinfo=UTC), sent
