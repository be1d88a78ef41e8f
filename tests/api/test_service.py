"""The HTTP service: territories, partition jobs, plans as generations, areas, errors, health."""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient
from signin import client_for
from sqlalchemy import func, insert, select

from api.app import create_app
from api.jobs import RESTARTED
from data.demo import generate
from gis.database import make_engine
from gis.models.base import utcnow
from gis.models.jobs import Job
from gis.models.plans import PlanLine
from gis.models.territories import Territory
from gis.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def demo_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo district (10,000 households) as a GeoPackage, made once."""
    path = tmp_path_factory.mktemp("demo") / "territory.gpkg"
    generate(10_000, 3).write(path)
    return path


def make_client(db_url: str, **settings: Any) -> TestClient:
    return client_for(create_app(Settings(database_url=db_url, **settings)))


def unsigned_client(db_url: str) -> TestClient:
    """A client with a key no database can confirm (for stores that are away or empty)."""
    return TestClient(create_app(Settings(database_url=db_url)),
                      headers={"X-API-Key": "gm_unchecked"})


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with make_client(db_url) as c:
        yield c


def upload(client: TestClient, path: Path, **form: str) -> Any:
    with path.open("rb") as f:
        return client.post("/territories", files={"files": (path.name, f)}, data=form)


def wait(client: TestClient, job_id: str, timeout: float = 120) -> tuple[dict[str, Any],
                                                                         list[str]]:
    """Poll a job to its end; returns the last state and every state seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if not seen or seen[-1] != job["state"]:
            seen.append(job["state"])
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job, seen
        time.sleep(0.05)


def partition(client: TestClient, territory_id: int, **params: Any) -> int:
    r = client.post(f"/territories/{territory_id}/plans", json=params)
    assert r.status_code == 202, r.text
    job, _ = wait(client, r.json()["id"])
    assert job["state"] == "done", job
    return int(job["plan_id"])


def assert_problem(r: Any, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"].startswith("/problems/")
    for word in words:
        assert word in body["detail"], body
    assert "Traceback" not in r.text
    return body


def test_upload_partition_publish_diff(client: TestClient, demo_gpkg: Path) -> None:
    """The main path, on both backends."""
    r = upload(client, demo_gpkg, name="白云示范区")
    assert r.status_code == 201, r.text
    terr = r.json()
    tid = terr["id"]
    stored = gpd.read_file(demo_gpkg, layer="buildings", engine="pyogrio")
    assert terr["name"] == "白云示范区" and terr["layers"]["buildings"] == len(stored)
    assert terr["metric_epsg"] == 4547
    lon0, lat0, lon1, lat1 = terr["extent"]
    assert 113 < lon0 < lon1 < 114 and 23 < lat0 < lat1 < 24
    assert [t["id"] for t in client.get("/territories").json()] == [tid]

    # A partition job: 202 with a Location, then running with progress, then done.
    r = client.post(f"/territories/{tid}/plans", json={"seed": 1, "note": "第一版"})
    assert r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['id']}"
    job, states = wait(client, r.json()["id"])
    assert job["state"] == "done" and states[-1] == "done", job
    assert set(states) <= {"queued", "running", "done"}
    assert job["progress"] == 1.0 and job["error"] is None
    plan_id = job["plan_id"]
    plan = client.get(f"/plans/{plan_id}").json()
    assert plan["status"] == "draft" and plan["version"] == 1 and plan["note"] == "第一版"
    assert plan["parameters"]["seed"] == 1

    # Grids as GeoJSON: every household of the territory in exactly one grid.
    r = client.get(f"/plans/{plan_id}/grids")
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    grids = gpd.GeoDataFrame.from_features(fc["features"], crs=4326)
    assert len(grids) == plan["n_grids"] > 10
    report = client.get(f"/plans/{plan_id}/report").json()
    assert int(grids["households"].sum()) == report["households"]
    assert all(len(c) == 15 and c.isdigit() for c in grids["code"])
    assert {f["id"] for f in fc["features"]} == set(grids["code"])
    assert report["n_grids"] == len(grids) and report["coverage_share"] > 0.9999
    # The inferred streets the partition found are stored with the plan, and served.
    lines = client.get(f"/plans/{plan_id}/lines", params={"kind": "inferred_street"}).json()
    assert len(lines["features"]) == report["inferred_streets"] > 0
    assert sum(shapely.length(gpd.GeoDataFrame.from_features(
        lines["features"], crs=4326).to_crs(4547).geometry.to_numpy())) / 1000 == \
        pytest.approx(report["inferred_streets_km"], abs=0.01)
    assert all(f["properties"]["width_m"] >= 10 and f["properties"]["kind"] ==
               "inferred_street" for f in lines["features"])
    # Every grid says how much river, ridge or railway runs inside it, as the report does.
    assert sum(grids["barrier_inside_m"]) == pytest.approx(report["barrier_inside_m"],
                                                           abs=0.1 * len(grids))

    # Filters: village, town, flags, bbox.
    village = grids["village_code"].iloc[0]
    one = client.get(f"/plans/{plan_id}/grids", params={"village": village}).json()
    assert {f["properties"]["village_code"] for f in one["features"]} == {village}
    assert len(one["features"]) == int((grids["village_code"] == village).sum())
    town = village[:9]
    by_town = client.get(f"/plans/{plan_id}/grids", params={"town": town}).json()
    assert len(by_town["features"]) == int(grids["village_code"].str.startswith(town).sum())
    regular = client.get(f"/plans/{plan_id}/grids", params={"flags": "regular"}).json()
    assert all(not f["properties"]["flags"] for f in regular["features"])
    flagged = [f for f in grids["flags"] if f]
    assert len(regular["features"]) == len(grids) - len(flagged)
    g0 = grids.geometry.iloc[0]
    bbox = ",".join(str(v) for v in g0.centroid.buffer(1e-4).bounds)
    near = client.get(f"/plans/{plan_id}/grids", params={"bbox": bbox}).json()
    assert grids["code"].iloc[0] in {f["id"] for f in near["features"]}
    assert len(near["features"]) < len(grids)

    # Simplified for display: fewer vertices, still a gap- and overlap-free coverage.
    simple = gpd.GeoDataFrame.from_features(
        client.get(f"/plans/{plan_id}/grids", params={"simplify": 20}).json()["features"],
        crs=4326).to_crs(4547)
    full = grids.to_crs(4547)
    assert shapely.get_num_coordinates(simple.geometry.to_numpy()).sum() < \
        shapely.get_num_coordinates(full.geometry.to_numpy()).sum()
    union = shapely.union_all(simple.geometry.to_numpy()).area
    assert float(simple.area.sum()) - union < 1e-6 * union
    assert union == pytest.approx(shapely.union_all(full.geometry.to_numpy()).area, rel=1e-3)

    # Publish; a second plan; publish it: the first is archived, never deleted.
    assert client.post(f"/plans/{plan_id}/publish").json()["status"] == "published"
    assert_problem(client.post(f"/plans/{plan_id}/publish"), 409, "already")
    assert client.get(f"/territories/{tid}").json()["published_plan_id"] == plan_id
    second = partition(client, tid, seed=2)
    assert client.get(f"/plans/{second}").json()["version"] == 2
    # Who published it and why (发布说明) are kept with the plan; the header is UTF-8,
    # percent-encoded.
    published = client.post(f"/plans/{second}/publish", json={"note": "2026年户数更新"},
                            headers={"X-Gridmap-User": "%E7%8E%8B%E8%8A%B3"})
    assert published.status_code == 200, published.text
    again = client.get(f"/plans/{second}").json()
    assert (again["published_by"], again["publish_note"]) == ("王芳", "2026年户数更新")
    # Without the header, the signed-in account is who published.
    assert client.get(f"/plans/{plan_id}").json()["published_by"] == "test-admin"
    statuses = {p["id"]: p["status"] for p in client.get("/plans",
                                                         params={"territory": tid}).json()}
    assert statuses == {plan_id: "archived", second: "published"}
    assert client.get(f"/plans/{plan_id}/grids").json()["features"]

    # Diff: seed 2 cuts some villages differently; households that change grid.
    diff = client.get(f"/plans/{plan_id}/diff/{second}").json()
    assert diff["from_plan"] == plan_id and diff["to_plan"] == second
    assert diff["grids_unchanged"] + len(diff["grids_changed"]) + len(diff["grids_removed"]) \
        == len(grids)
    assert diff["households_moved"] == sum(m["households"] for m in diff["moves"])
    same = client.get(f"/plans/{second}/diff/{second}").json()
    assert same["households_moved"] == 0 and not same["grids_changed"]
    assert not same["grids_added"] and not same["grids_removed"]

    # The hierarchy: district → towns → villages, with the published plan's grids.
    district = client.get("/areas/440111").json()
    assert district["level"] == "district" and district["parent"] is None
    assert town in {c["code"] for c in district["children"]}
    vill = client.get(f"/areas/{village}", params={"geometry": True}).json()
    assert vill["parent"]["code"] == town and vill["plan_id"] == second
    assert vill["geometry"]["type"] in ("Polygon", "MultiPolygon")
    second_grids = client.get(f"/plans/{second}/grids", params={"village": village}).json()
    assert sorted(g["code"] for g in vill["grids"]) == sorted(
        f["id"] for f in second_grids["features"])
    assert vill["households"] == sum(f["properties"]["households"]
                                     for f in second_grids["features"])
    assert_problem(client.get("/areas/999999999999"), 404, "999999999999")

    # A copy takes the plan's lines with it.
    copied = client.post(f"/plans/{plan_id}/copy").json()["id"]
    assert client.get(f"/plans/{copied}/lines").json()["features"] == lines["features"]

    # Delete the territory: everything under it goes, the plans' lines too.
    assert client.delete(f"/territories/{tid}").status_code == 204
    assert_problem(client.get(f"/territories/{tid}"), 404)
    assert_problem(client.get(f"/plans/{plan_id}"), 404)
    assert_problem(client.get(f"/plans/{copied}/lines"), 404)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PlanLine)).scalar_one() == 0


@pytest.mark.postgis
def test_jobs_queue_and_report_progress(postgis_url: str, demo_gpkg: Path) -> None:
    """With one worker the second job waits (queued) while the first runs."""
    with make_client(postgis_url, job_workers=1) as client:
        tid = upload(client, demo_gpkg).json()["id"]
        first = client.post(f"/territories/{tid}/plans", json={"seed": 1}).json()
        second = client.post(f"/territories/{tid}/plans", json={"seed": 2}).json()
        assert second["state"] == "queued"
        progress: list[float] = []
        while (job := client.get(f"/jobs/{first['id']}").json())["state"] != "done":
            assert job["state"] in ("queued", "running")
            progress.append(job["progress"])
            time.sleep(0.02)
        assert progress == sorted(progress) and job["plan_id"]
        last, _ = wait(client, second["id"])
        assert last["state"] == "done" and last["plan_id"] != job["plan_id"]
        listed = client.get("/jobs", params={"territory": tid}).json()
        assert {j["id"] for j in listed} == {first["id"], second["id"]}


@pytest.mark.postgis
def test_failed_job_says_why(postgis_url: str) -> None:
    engine = make_engine(postgis_url)
    with engine.begin() as conn:   # a territory without villages: nothing to cut
        tid = conn.execute(insert(Territory).values(
            name="空", metric_epsg=4547, created_at=utcnow())
            .returning(Territory.id)).scalar_one()
    engine.dispose()
    with make_client(postgis_url) as client:
        r = client.post(f"/territories/{tid}/plans", json={})
        job, states = wait(client, r.json()["id"])
        assert job["state"] == "failed" and states[-1] == "failed"
        assert "village" in job["error"] and job["plan_id"] is None
        assert client.get("/plans", params={"territory": tid}).json() == []


@pytest.mark.postgis
def test_restart_marks_unfinished_jobs_failed(postgis_url: str) -> None:
    engine = make_engine(postgis_url)
    host = socket.gethostname()
    now = utcnow()
    with engine.begin() as conn:
        tid = conn.execute(insert(Territory).values(
            name="t", metric_epsg=4547, created_at=now).returning(Territory.id)
        ).scalar_one()
        rows = {   # a process that is gone, a silent one elsewhere, and one finished
            "dead": dict(state="running", worker=f"{host}:999999999", heartbeat_at=now),
            "stale": dict(state="queued", worker="elsewhere:1",
                          heartbeat_at=now.replace(year=now.year - 1)),
            "done": dict(state="done", worker=f"{host}:999999999", heartbeat_at=now),
        }
        ids = {}
        for name, values in rows.items():
            ids[name] = uuid.uuid4().hex
            conn.execute(insert(Job).values(
                id=ids[name], territory_id=tid, kind="partition", progress=0.5,
                parameters={}, created_at=now, **values))
    engine.dispose()
    with make_client(postgis_url) as client:   # starting the app is the restart
        dead = client.get(f"/jobs/{ids['dead']}").json()
        stale = client.get(f"/jobs/{ids['stale']}").json()
        done = client.get(f"/jobs/{ids['done']}").json()
    assert dead["state"] == "failed" and dead["error"] == RESTARTED
    assert stale["state"] == "failed" and done["state"] == "done"


def _territories(db_url: str) -> int:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(Territory)).scalar_one())
    engine.dispose()
    return n


def test_bad_uploads_say_what_to_fix_and_store_nothing(
        db_url: str, demo_gpkg: Path, tmp_path: Path) -> None:
    with make_client(db_url, max_upload_mb=1) as client:
        # A layer file with a missing required column: file, layer and field named.
        admin = gpd.read_file(demo_gpkg, layer="admin_areas", engine="pyogrio")
        buildings = gpd.read_file(demo_gpkg, layer="buildings", engine="pyogrio")
        files = []
        for name, gdf in (("admin_areas", admin.drop(columns="level")),
                          ("buildings", buildings.head(50))):
            files.append(("files", (f"{name}.geojson",
                                    gdf.to_json(ensure_ascii=False).encode(),
                                    "application/geo+json")))
        body = assert_problem(client.post("/territories", files=files), 422, "level")
        assert body["layer"] == "admin_areas" and "admin_areas.geojson" in body["file"]
        # Only buildings: the required admin_areas layer is missing.
        assert_problem(client.post("/territories", files=files[1:]), 422, "admin_areas")
        # Not a geodata file at all.
        assert_problem(client.post("/territories", files={
            "files": ("territory.gpkg", b"not a geopackage", "application/octet-stream")}),
            422)
        # A zip of nothing useful.
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("readme.txt", "hello")
        assert_problem(client.post("/territories", files={
            "files": ("t.zip", buf.getvalue(), "application/zip")}), 422, "admin_areas")
        # An unknown coordinate system.
        assert_problem(client.post("/territories", files=files,
                                   data={"crs": "EPSG:999999"}), 422)
        # A malformed field map.
        assert_problem(client.post("/territories", files=files,
                                   data={"field_map": '{"a": 1'}), 400, "field_map")
        # Over the size limit (1 MB here): 413, whether declared or streamed.
        big = b"x" * (2 * 2**20)
        assert_problem(client.post("/territories", files={
            "files": ("territory.gpkg", big, "application/octet-stream")}), 413, "MB")
        # No files at all.
        assert client.post("/territories", data={"name": "x"}).status_code == 422
    assert _territories(db_url) == 0


def test_request_errors_are_problem_details(client: TestClient) -> None:
    assert_problem(client.get("/territories/12345"), 404, "12345")
    assert_problem(client.get("/plans/12345/grids"), 404, "12345")
    assert_problem(client.get("/jobs/nope"), 404, "nope")
    assert_problem(client.get("/no/such/path"), 404)
    assert_problem(client.post("/territories/1/plans", content=b"{not json",
                               headers={"content-type": "application/json"}), 422)
    assert_problem(client.post("/territories/12345/plans", json={"seed": 1}), 404, "12345")
    r = client.post("/territories/12345/plans", json={"min_households": -5})
    assert_problem(r, 422, "min_households")
    assert_problem(client.get("/plans/1/grids", params={"bbox": "1,2,3"}), 400, "bbox")
    assert_problem(client.get("/plans/1/grids", params={"simplify": -1}), 422, "simplify")
    catalogue = client.get("/problems").json()
    assert catalogue["layer-error"]["status"] == 422
    assert catalogue["database-error"]["status"] == 503


def test_band_is_checked_before_a_job_is_queued(client: TestClient, demo_gpkg: Path) -> None:
    tid = upload(client, demo_gpkg).json()["id"]
    assert_problem(client.post(f"/territories/{tid}/plans",
                               json={"min_households": 600}), 400, "min")
    assert client.get("/jobs").json() == []


def test_health_and_unreachable_database() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # nothing listens here once closed
    url = f"postgresql+psycopg://nobody@127.0.0.1:{port}/none?connect_timeout=2"
    with unsigned_client(url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        body = assert_problem(client.get("/readyz"), 503)
        assert "unreachable" in body["detail"]
        assert_problem(client.get("/territories"), 503, "database")
        assert "psycopg" not in client.get("/territories").text


def test_readyz_on_a_migrated_database(client: TestClient) -> None:
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["audit"]["dropped"] == 0


def test_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    with unsigned_client(f"sqlite:///{tmp_path / 'empty.sqlite'}") as client:
        body = assert_problem(client.get("/readyz"), 503, "gridmap db upgrade")
        assert body["title"].startswith("Not ready")


def test_openapi_lists_every_route(client: TestClient) -> None:
    paths = set(json.loads(client.get("/openapi.json").text)["paths"])
    for path in ("/territories", "/territories/{territory_id}",
                 "/territories/{territory_id}/plans", "/jobs/{job_id}", "/plans",
                 "/plans/{plan_id}", "/plans/{plan_id}/grids", "/plans/{plan_id}/report",
                 "/plans/{plan_id}/publish", "/plans/{a}/diff/{b}", "/areas/{code}",
                 "/healthz", "/readyz"):
        assert path in paths, path


@pytest.mark.postgis
def test_text_postgres_cannot_store_is_a_422_not_a_500(postgis_url: str, demo_gpkg: Path
                                                       ) -> None:
    """Found by schemathesis: a NUL character in a name."""
    with make_client(postgis_url) as client:
        tid = upload(client, demo_gpkg).json()["id"]
        body = assert_problem(client.put(f"/territories/{tid}/staff",
                                         json=[{"name": "a\u0000b"}]), 422, "NUL")
        assert body["type"] == "/problems/invalid-value"
        assert client.put(f"/territories/{tid}/staff", json=[{"name": "李四"}]).json() == {
            "staff": 1, "grids": 0}
