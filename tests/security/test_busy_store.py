"""Class 8: a bulk import on SpatiaLite does not shut other writers out (it stores in short
transactions, other writers in between, and removes its rows again if it fails or its
process dies); a database that is busy answers "busy, retry in N s" (503, Retry-After),
told apart from one that cannot be reached."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import io
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pysqlite3 import dbapi2 as sqlite
from secworld import World, make_world, partitioned  # noqa: F401
from sqlalchemy import func, insert, select

from api.app import create_app
from events.bulk import recover_imports
from gis.models.base import utcnow
from gis.models.events import Event, EventImport
from gis.settings import Settings


@pytest.fixture
def lite(spatialite_url: str, partitioned: Any) -> Any:
    built = make_world("spatialite", spatialite_url, partitioned, sqlite_busy_timeout_s=1.0)
    with TestClient(built.app):
        yield built
    built.engine.dispose()


def _csv(world: World, n: int, seed: int = 0, boom_at: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    grids = world.grids.geometry.to_numpy()
    points = shapely.point_on_surface(grids[rng.integers(0, len(grids), n)])
    lines = ["x,y,category,description"]
    for i, p in enumerate(points):
        lines.append(f"{p.x:.7f},{p.y:.7f},sanitation,{'boom' if i == boom_at else 'ok'}")
    return ("\n".join(lines) + "\n").encode()


def _count(world: World) -> int:
    with world.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Event)).scalar_one())


def _import(client: TestClient, data: bytes) -> Any:
    return client.post("/events/import", files={"file": ("e.csv", io.BytesIO(data))},
                       data={"coord_sys": "wgs84", "source": "hotline"})


def test_other_writers_get_in_during_a_bulk_import(lite: World) -> None:
    n = 60_000
    data = _csv(lite, n)
    x, y, _ = lite.point()
    answers: list[tuple[int, float]] = []
    done = threading.Event()
    with lite.client() as admin:

        def importer() -> Any:
            try:
                return _import(admin, data)
            finally:
                done.set()

        thread_result: list[Any] = []
        worker = threading.Thread(target=lambda: thread_result.append(importer()))
        worker.start()
        while _count(lite) == 0 and not done.is_set():
            time.sleep(0.01)
        while not done.is_set():
            started = time.perf_counter()
            one = admin.post("/events", json={"x": x, "y": y, "coord_sys": "wgs84",
                                              "category": "sanitation", "source": "patrol"})
            answers.append((one.status_code, time.perf_counter() - started))
            time.sleep(0.05)
        worker.join()
    assert thread_result[0].status_code == 200, thread_result[0].text
    assert thread_result[0].json()["imported"] == n
    assert len(answers) >= 3, "the import ended before another writer tried"
    # Every one stored: none waited for the lock past the busy timeout (1 s here: a writer
    # that does answers 503 — before, the import held it throughout and they all did).
    assert all(code == 201 for code, _ in answers), answers
    # And they were served as they came, not after the import. (The median, not the
    # slowest: an answer's time also holds its share of this one process's GIL with the
    # importer's thread, which late in a long test session can stall one request for
    # seconds without any lock involved.)
    times = sorted(s for _, s in answers)
    assert times[len(times) // 2] < lite.settings.sqlite_busy_timeout_s + 2, times
    assert _count(lite) == n + len(answers)


def test_a_failed_import_removes_what_it_stored(lite: World) -> None:
    with lite.engine.begin() as conn:   # the database refuses one row deep in the file
        conn.exec_driver_sql("CREATE TRIGGER boom BEFORE INSERT ON events WHEN "
                             "NEW.description = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END")
    with lite.client() as admin:
        before = _count(lite)
        answer = _import(admin, _csv(lite, 20_000, boom_at=17_000))
        assert answer.status_code >= 400
        assert _count(lite) == before
    with lite.engine.connect() as conn:
        states = [s for (s,) in conn.execute(select(EventImport.state))]
    assert states == ["failed"]


def test_an_orphaned_import_is_removed_at_start(lite: World) -> None:
    dead = os.getpid() + 1_000_000    # no such process
    now = utcnow()
    with lite.engine.begin() as conn:
        import_id = conn.execute(insert(EventImport).values(
            state="running", worker=f"{socket.gethostname()}:{dead}", rows=2,
            started_at=now, heartbeat_at=now).returning(EventImport.id)).scalar_one()
    x, y, _ = lite.point()
    admin = lite.client()   # not started again: its start would recover the import at once
    for _ in range(2):
        made = admin.post("/events", json={"x": x, "y": y, "coord_sys": "wgs84",
                                           "category": "sanitation", "source": "patrol"})
        with lite.engine.begin() as conn:
            conn.execute(Event.__table__.update().where(
                Event.id == made.json()["id"]).values(import_id=import_id))
    kept = admin.post("/events", json={"x": x, "y": y, "coord_sys": "wgs84",
                                       "category": "sanitation", "source": "patrol"})
    assert _count(lite) == 3
    assert recover_imports(lite.engine) == 1
    assert _count(lite) == 1
    assert admin.get(f"/events/{kept.json()['id']}").status_code == 200
    # A server start does the same.
    with lite.engine.begin() as conn:
        second = conn.execute(insert(EventImport).values(
            state="running", worker=f"{socket.gethostname()}:{dead}", rows=1,
            started_at=now, heartbeat_at=now).returning(EventImport.id)).scalar_one()
        conn.execute(Event.__table__.update().where(
            Event.id == kept.json()["id"]).values(import_id=second))
    with lite.client():
        pass
    assert _count(lite) == 0


def test_a_busy_database_says_busy_and_when_to_retry(lite: World) -> None:
    lite.account("sec-admin")
    holder = sqlite.connect(str(Path(lite.url.removeprefix("sqlite:///"))))
    holder.execute("BEGIN IMMEDIATE")   # another process writing, for longer than the wait
    try:
        x, y, _ = lite.point()
        with lite.client() as admin:
            started = time.perf_counter()
            answer = admin.post("/events", json={"x": x, "y": y, "coord_sys": "wgs84",
                                                 "category": "sanitation", "source": "patrol"})
            waited = time.perf_counter() - started
    finally:
        holder.rollback()
        holder.close()
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"] == "/problems/database-busy"
    assert "busy" in answer.json()["detail"] and "cannot be reached" not in answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert lite.settings.sqlite_busy_timeout_s <= waited < 5


def test_a_missing_database_is_unavailable_not_busy(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite"
    path.mkdir()    # a directory where the database file should be: it cannot be opened
    app = create_app(Settings(database_url=f"sqlite:///{path}", escalation_interval_s=0))
    with TestClient(app, headers={"X-API-Key": "k"}) as client:
        answer = client.get("/plans")
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"] == "/problems/database-error"
        assert "busy" not in answer.json()["detail"]
        assert client.get("/readyz").status_code == 503
