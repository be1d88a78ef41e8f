"""Faults: PostgreSQL really stopped and restarted under a running service.

The module has its own durable PostgreSQL cluster (fsync and synchronous commits on, so an
``immediate`` stop is a crash the data must survive) and a real uvicorn server over it; the
session's shared cluster is never touched. Each test stops and starts that cluster in the
middle of something — a bulk import, a partition job (computing, and blocked inside its plan
write), a stream of event posts from several clients that retry with their idempotency keys,
plain requests — and checks what the user sees and what is stored afterwards. The last test
gives partition jobs a tiny time limit. Measured figures go to ``tests/artifacts/faults.json``.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psycopg
import pytest
from browser import live_server
from fastapi import FastAPI
from pgcluster import ThrowawayCluster
from signin import admin_headers
from sqlalchemy import Engine, text

from api.app import create_app
from api.problems import PROBLEMS, RETRY_AFTER_S
from data.changes import scripted_changes
from data.demo import DemoTerritory, generate
from events.rules import DEFAULT_LIMITS
from events.store import client_key
from gis.database import make_engine, upgrade
from gis.errors import DatabaseError
from gis.settings import Settings

pytestmark = pytest.mark.postgis

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
PROBLEM = "application/problem+json"
UNAVAILABLE = PROBLEMS[DatabaseError].title   # "The database is unavailable 数据库不可用"
CATEGORIES = list(DEFAULT_LIMITS)
#: What the tests measured, written to tests/artifacts/faults.json at the end of the module.
MEASURED: dict[str, dict[str, Any]] = {}


#: The administrator's API key, made when the module's database is (see ``service``).
AUTH: dict[str, str] = {}


def auth_headers() -> dict[str, str]:
    """The headers every request of these tests carries: an administrator's API key."""
    return dict(AUTH)


@dataclass
class Service:
    """The module's own PostgreSQL, the service over it, and the published demo plan."""

    cluster: ThrowawayCluster
    database_url: str
    settings: Settings
    app: FastAPI
    base: str
    #: The tests' own engine, for checking what is stored.
    engine: Engine
    territory_id: int
    plan_id: int
    grids: int
    bbox: tuple[float, float, float, float]
    partition_s: float
    #: The demo territory with changed households (a redraw's input).
    newer: Path

    def client(self, base: str | None = None, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=base or self.base, headers=auth_headers(),
                            timeout=timeout)

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(query), params))

    def one(self, query: str, **params: Any) -> Any:
        return self.sql(query, **params)[0][0]

    def raw(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A plain driver connection (to watch or lock tables from outside the service)."""
        return psycopg.connect(f"host=127.0.0.1 port={self.cluster.port} user=postgres "
                               f"dbname={self.database_url.rsplit('/', 1)[1]}",
                               autocommit=autocommit)

    def ensure_up(self) -> None:
        """Start the cluster again if a failed test left it stopped."""
        try:
            self.raw().close()
        except psycopg.OperationalError:
            self.cluster.start_server()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60,
               every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(every)


def job_state(http: httpx.Client, job_id: str) -> dict[str, Any] | None:
    """The job as the API reports it, or None while the service cannot say (503, no answer)."""
    try:
        r = http.get(f"/jobs/{job_id}")
    except httpx.HTTPError:
        return None
    if r.status_code == 503:
        return None
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def wait_job(http: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """The job once it ended (done or failed)."""
    def ended() -> dict[str, Any] | None:
        job = job_state(http, job_id)
        return job if job and job["state"] in ("done", "failed") else None

    done: dict[str, Any] = wait_until(f"job {job_id} to end", ended, timeout, every=0.1)
    return done


def submit_partition(http: httpx.Client, territory_id: int) -> str:
    r = http.post(f"/territories/{territory_id}/plans", json={"seed": 1})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def submit_redraw(http: httpx.Client, territory_id: int, path: Path) -> str:
    with path.open("rb") as fh:
        r = http.post(f"/territories/{territory_id}/redraw", files={"files": (path.name, fh)})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def assert_unavailable(r: httpx.Response) -> dict[str, Any]:
    """A 503 problem that says the database is unavailable (and when to try again)."""
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.headers["retry-after"] == str(RETRY_AFTER_S)
    body: dict[str, Any] = r.json()
    assert body["title"] == UNAVAILABLE and body["status"] == 503
    assert body["type"] == f"/problems/{DatabaseError.code}"
    assert "数据库" in body["detail"] and "Traceback" not in r.text and "psycopg" not in r.text
    return body


def half_written_plans(service: Service) -> list[int]:
    """Plans without grids or without blocks (a plan written in part)."""
    return [int(p) for (p,) in service.sql(
        "SELECT p.id FROM plans p WHERE NOT EXISTS (SELECT 1 FROM grids g WHERE "
        "g.plan_id = p.id) OR NOT EXISTS (SELECT 1 FROM blocks b WHERE b.plan_id = p.id)")]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    cluster = ThrowawayCluster(durable=True).start()
    try:
        url = cluster.create_database("gridmap_faults")
        engine = make_engine(url)
        upgrade(engine)
        AUTH.update(admin_headers(engine))
        # One account posts every event of the stream test: no per-account limit here.
        settings = Settings(database_url=url, escalation_interval_s=0, job_workers=1,
                            db_pool_size=10, db_connect_timeout_s=2, db_pool_timeout_s=5,
                            event_rate_per_minute=0)
        app = create_app(settings)
        folder = tmp_path_factory.mktemp("faults")
        demo = generate(10_000, 5)
        gpkg = demo.write(folder / "demo.gpkg")
        layers, changed = scripted_changes(demo.layers, 0.05, 3)   # for redraws
        newer = DemoTerritory(layers, demo.seed, changed["households_after"]).write(
            folder / "demo-2025.gpkg")
        with live_server(app) as live, httpx.Client(base_url=live.url, headers=auth_headers(),
                                                     timeout=120) as http:
            with gpkg.open("rb") as fh:
                r = http.post("/territories", files={"files": (gpkg.name, fh)},
                              data={"name": "白云示范区"})
            assert r.status_code == 201, r.text
            territory_id = int(r.json()["id"])
            started = time.perf_counter()
            job = wait_job(http, submit_partition(http, territory_id))
            partition_s = time.perf_counter() - started
            assert job["state"] == "done", job
            plan_id = int(job["plan_id"])
            assert http.post(f"/plans/{plan_id}/publish").status_code == 200
            with engine.connect() as conn:
                n_grids, *bbox = conn.execute(text(
                    "SELECT count(*), ST_XMin(ST_Extent(geom)), ST_YMin(ST_Extent(geom)), "
                    "ST_XMax(ST_Extent(geom)), ST_YMax(ST_Extent(geom)) FROM grids "
                    "WHERE plan_id = :p"), {"p": plan_id}).one()
            yield Service(cluster, url, settings, app, live.url, engine, territory_id,
                          plan_id, int(n_grids), (bbox[0], bbox[1], bbox[2], bbox[3]),
                          partition_s, newer)
        engine.dispose()
    finally:
        cluster.stop()
        if MEASURED:
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "faults.json").write_text(json.dumps(MEASURED, indent=2,
                                                              ensure_ascii=False))


@pytest.fixture
def up(service: Service) -> Iterator[Service]:
    """The service with its database running, before and after the test."""
    service.ensure_up()
    yield service
    service.ensure_up()


def events_csv(bbox: tuple[float, float, float, float], n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = bbox
    frame = pd.DataFrame({"x": rng.uniform(x0, x1, n).round(7),
                          "y": rng.uniform(y0, y1, n).round(7),
                          "category": np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES),
                                                                        n)],
                          "description": [f"批量导入 {i}" for i in range(n)]})
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


def test_bulk_import_cut_by_a_crash_stores_all_or_nothing(up: Service) -> None:
    """A 200,000-row import while PostgreSQL crashes (``immediate``) in the middle of its
    COPY: the client gets a 503 problem, the events table holds none of the import; the same
    import sent again stores all of it."""
    rows = 200_000
    data = events_csv(up.bbox, rows, seed=11)
    form = {"coord_sys": "wgs84", "territory_id": str(up.territory_id), "source": "hotline"}
    before = up.one("SELECT count(*) FROM events")
    outcome: dict[str, Any] = {}

    def send() -> None:
        with up.client(timeout=300) as http:
            try:
                outcome["response"] = http.post("/events/import", data=form, files={
                    "file": ("events.csv", data, "text/csv")})
            except httpx.HTTPError as exc:
                outcome["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    with up.raw() as watch:
        def copying() -> int:
            assert sender.is_alive(), f"the import ended before the crash: {outcome}"
            row = watch.execute("SELECT tuples_processed FROM pg_stat_progress_copy WHERE "
                                "relid = 'events'::regclass").fetchone()
            return int(row[0]) if row and row[0] >= 20_000 else 0

        copied = wait_until("the import's COPY to be under way", copying, timeout=120,
                            every=0.01)
    crashed = time.perf_counter()
    up.cluster.stop_server("immediate")
    time.sleep(1.0)
    up.cluster.start_server()
    back = time.perf_counter()
    sender.join(timeout=120)
    assert not sender.is_alive()
    response: httpx.Response | None = outcome.get("response")
    if response is not None:   # (a dropped connection is an acceptable answer too)
        assert_unavailable(response)
    assert up.one("SELECT count(*) FROM events") == before, "part of the import was kept"

    with up.client(timeout=300) as http:
        started = time.perf_counter()
        again = http.post("/events/import", data=form,
                          files={"file": ("events.csv", data, "text/csv")})
        rerun_s = time.perf_counter() - started
    assert again.status_code == 200, again.text
    assert again.json()["imported"] == rows
    assert up.one("SELECT count(*) FROM events") == before + rows
    assert up.one("SELECT count(*) FROM events WHERE description LIKE '批量导入 %%'") == rows
    MEASURED["bulk_import"] = {
        "rows": rows, "rows_copied_when_crashed": copied,
        "answer": response.status_code if response is not None else repr(outcome.get("error")),
        "stored_after_crash": 0, "down_s": round(back - crashed, 2),
        "rerun_status": again.status_code, "rerun_imported": again.json()["imported"],
        "rerun_s": round(rerun_s, 2)}


def test_partition_job_cut_by_a_crash_fails_and_can_be_run_again(up: Service) -> None:
    """PostgreSQL crashes under a partition job twice — while it computes, and while it is
    inside the transaction that writes its plan (held there by a lock on ``blocks``): each
    time the job ends ``failed`` saying the database went away, no plan is left half-written,
    and the same job run again succeeds."""
    measured: dict[str, Any] = {"partition_s": round(up.partition_s, 1)}
    plans_before = {int(p) for (p,) in up.sql(
        "SELECT id FROM plans WHERE territory_id = :t", t=up.territory_id)}
    runner = up.app.state.jobs
    with up.client() as http:
        # 1. The database stops while the job computes; it stays down until the job's
        #    thread has met it (its next progress report fails), then comes back.
        job_id = submit_partition(http, up.territory_id)
        wait_until("the job to compute", lambda: (job := job_state(http, job_id)) and
                   job["state"] == "running" and not job["stage"].startswith("loading"))
        crashed = time.perf_counter()
        up.cluster.stop_server("immediate")
        wait_until("the job's thread to stop", lambda: job_id not in runner.running())
        up.cluster.start_server()
        back = time.perf_counter()
        computing = wait_job(http, job_id)
        measured["computing"] = {"down_s": round(back - crashed, 2),
                                 "failed_recorded_after_back_s":
                                     round(time.perf_counter() - back, 2),
                                 "state": computing["state"], "error": computing["error"]}
        assert computing["state"] == "failed", computing
        assert "database went away" in computing["error"] and computing["plan_id"] is None

        # 2. The job is inside write_plan's transaction (plan row and grids inserted, its
        #    blocks waiting for the lock) when the database crashes.
        locker = up.raw(autocommit=False)
        locker.execute("LOCK TABLE blocks IN SHARE MODE")
        job_id = submit_partition(http, up.territory_id)
        with up.raw() as watch:
            def writing() -> bool:
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO blocks%'").fetchone()
                return bool(row and row[0])

            wait_until("the job to write its plan", writing, timeout=120)
        crashed = time.perf_counter()
        up.cluster.stop_server("immediate")
        locker.close()
        wait_until("the job's thread to stop", lambda: job_id not in runner.running())
        up.cluster.start_server()
        back = time.perf_counter()
        writing_job = wait_job(http, job_id)
        measured["writing"] = {"down_s": round(back - crashed, 2),
                               "state": writing_job["state"], "error": writing_job["error"]}
        assert writing_job["state"] == "failed", writing_job
        assert "database went away" in writing_job["error"]
        assert half_written_plans(up) == []
        assert {int(p) for (p,) in up.sql("SELECT id FROM plans WHERE territory_id = :t",
                                          t=up.territory_id)} == plans_before

        # 3. Run again: done, with the whole plan.
        started = time.perf_counter()
        rerun = wait_job(http, submit_partition(http, up.territory_id))
        measured["rerun_s"] = round(time.perf_counter() - started, 1)
        assert rerun["state"] == "done", rerun
    assert up.one("SELECT count(*) FROM grids WHERE plan_id = :p", p=rerun["plan_id"]) == up.grids
    assert half_written_plans(up) == []
    MEASURED["partition_job"] = measured


def test_event_stream_across_crashes_loses_and_doubles_nothing(up: Service) -> None:
    """Four clients post events with idempotency keys, retrying a key on any error, while
    PostgreSQL crashes twice: every event answered 2xx is stored after recovery, none twice,
    and sending an accepted key again (every retried key, 200 others) returns the original
    event."""
    threads, keep_posting_s = 4, 11.0
    prefix = f"stream-{time.monotonic_ns()}-"
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = up.bbox
    accepted: dict[str, tuple[int, int]] = {}       # key -> (event id, status)
    attempts: dict[str, int] = {}
    answers: list[tuple[int, float]] = []            # (status or 0 for no answer, seconds)
    problems: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    points = [(float(x), float(y)) for x, y in zip(rng.uniform(x0, x1, 100_000),
                                                   rng.uniform(y0, y1, 100_000),
                                                   strict=True)]

    def post(worker: int) -> None:
        with up.client(timeout=30) as http:
            n = 0
            while not stop.is_set():
                key, n = f"{prefix}{worker}-{n}", n + 1
                x, y = points[(worker * 25_000 + n) % len(points)]
                body = {"x": x, "y": y, "coord_sys": "wgs84", "category": "sanitation",
                        "source": "patrol", "territory_id": up.territory_id,
                        "description": key}
                give_up = time.monotonic() + 60
                while time.monotonic() < give_up:
                    with lock:
                        attempts[key] = attempts.get(key, 0) + 1
                    started = time.perf_counter()
                    try:
                        r = http.post("/events", json=body, headers={"Idempotency-Key": key})
                    except httpx.HTTPError:
                        with lock:
                            answers.append((0, time.perf_counter() - started))
                        time.sleep(0.1)
                        continue
                    with lock:
                        answers.append((r.status_code, time.perf_counter() - started))
                    if r.status_code in (200, 201):
                        with lock:
                            accepted[key] = (int(r.json()["id"]), r.status_code)
                        break
                    try:
                        assert_unavailable(r)
                    except AssertionError as exc:
                        with lock:
                            problems.append(f"{key}: {exc}")
                        return
                    time.sleep(0.1)

    workers = [threading.Thread(target=post, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    downs: list[float] = []
    started = time.perf_counter()
    for down_s in (2.0, 1.0):
        time.sleep(2.5)
        t = time.perf_counter()
        up.cluster.restart("immediate", down_s=down_s)
        downs.append(round(time.perf_counter() - t, 2))
    time.sleep(max(0.0, keep_posting_s - (time.perf_counter() - started)))
    stop.set()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers) and problems == []

    # Keys are stored scoped to the account (``<account id>:<key>``, events.store).
    stored = {str(client_key(k)): int(i) for k, i in up.sql(
        "SELECT idempotency_key, id FROM events WHERE idempotency_key LIKE :p",
        p="%:" + prefix + "%")}
    twice = up.sql("SELECT description, count(*) FROM events WHERE description LIKE :p "
                   "GROUP BY description HAVING count(*) > 1", p=prefix + "%")
    lost = [k for k, (i, _s) in accepted.items() if stored.get(k) != i]
    statuses = [s for s, _t in answers]
    unavailable = [t for s, t in answers if s == 503]
    assert len(accepted) == len(attempts), "a key was never accepted within its minute"
    assert lost == [] and twice == []
    assert set(stored) == set(attempts)
    assert unavailable or statuses.count(0), "no request met the crashes"
    # Every accepted key sent again: the original event, nothing new.
    count = up.one("SELECT count(*) FROM events")
    retried = [k for k, n in attempts.items() if n > 1]
    others = sorted(set(accepted) - set(retried))
    resent = retried + [others[i] for i in rng.choice(len(others), min(200, len(others)),
                                                      replace=False)]
    with up.client() as http:
        for key in resent:
            event_id = accepted[key][0]
            r = http.post("/events", json={"x": (x0 + x1) / 2, "y": (y0 + y1) / 2,
                                           "coord_sys": "wgs84", "category": "sanitation",
                                           "source": "patrol",
                                           "territory_id": up.territory_id},
                          headers={"Idempotency-Key": key})
            assert r.status_code == 200 and r.json()["id"] == event_id, r.text
    assert up.one("SELECT count(*) FROM events") == count
    MEASURED["event_stream"] = {
        "clients": threads, "crashes_down_s": downs, "keys": len(attempts),
        "requests": len(answers), "answers_2xx": statuses.count(201) + statuses.count(200),
        "answers_201": statuses.count(201),
        "answers_200_retry_found_original": statuses.count(200),
        "answers_503": len(unavailable), "no_answer": statuses.count(0),
        "keys_retried": sum(1 for n in attempts.values() if n > 1),
        "stored": len(stored), "accepted_not_stored": len(lost), "stored_twice": len(twice),
        "slowest_503_s": round(max(unavailable, default=0.0), 3),
        "resent_keys_returned_original": len(resent)}


def test_while_the_database_is_down_the_api_answers_503_and_recovers_alone(up: Service
                                                                           ) -> None:
    """Down: the API answers 503 problems at once, /healthz 200, /readyz 503. Back: the same
    server (not restarted) answers normally."""
    p, t = up.plan_id, up.territory_id
    gets = ["/territories", f"/territories/{t}", f"/plans?territory={t}", f"/plans/{p}",
            f"/plans/{p}/grids", "/events?limit=5", "/events/stats?by=town", "/jobs",
            "/ogc/collections",
            "/screen/data"]
    event = {"x": (up.bbox[0] + up.bbox[2]) / 2, "y": (up.bbox[1] + up.bbox[3]) / 2,
             "coord_sys": "wgs84", "category": "dispute", "source": "hotline",
             "territory_id": t}
    with up.client(timeout=60) as http:
        for path in gets:
            assert http.get(path).status_code == 200, path
        up.cluster.stop_server("immediate")
        down_at = time.perf_counter()
        slowest, answered = 0.0, 0
        while time.perf_counter() - down_at < 4.0:   # several rounds while it stays down
            for method, path, kwargs in [*(("GET", g, {}) for g in gets),
                                         ("POST", "/events", {"json": event}),
                                         ("POST", f"/territories/{t}/plans", {"json": {}})]:
                started = time.perf_counter()
                r = http.request(method, path, **kwargs)
                slowest = max(slowest, time.perf_counter() - started)
                assert_unavailable(r)
                answered += 1
            assert http.get("/healthz").json() == {"status": "ok"}
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.headers["content-type"].startswith(
                PROBLEM), ready.text
        # bounded by the connect and pool timeouts (2 s and 5 s here), not minutes
        assert slowest < up.settings.db_connect_timeout_s + up.settings.db_pool_timeout_s
        up.cluster.start_server()
        back = time.perf_counter()
        ready_after = wait_until("/readyz", lambda: http.get("/readyz").status_code == 200
                                 and time.perf_counter() - back, timeout=30)
        first_ok = wait_until("/territories", lambda: http.get("/territories").status_code
                              == 200 and time.perf_counter() - back, timeout=30)
        took = {}
        for path in gets:
            t0 = time.perf_counter()
            assert http.get(path).status_code == 200, path
            took[path] = round(time.perf_counter() - t0, 3)
        r = http.post("/events", json=event)
        assert r.status_code == 201, r.text
        all_after = time.perf_counter() - back
    MEASURED["database_down"] = {
        "down_s": round(back - down_at, 2), "answers_503": answered,
        "slowest_503_s": round(slowest, 3), "ready_after_start_s": round(ready_after, 3),
        "first_route_ok_after_start_s": round(first_ok, 3),
        "every_route_ok_after_start_s": round(all_after, 3), "route_s_after_start": took}


def test_a_database_that_does_not_answer_gives_503_within_the_connect_timeout(up: Service
                                                                             ) -> None:
    """The database host takes connections but never answers (its postmaster frozen): a
    server with no open connection answers 503 after GRIDMAP_DB_CONNECT_TIMEOUT_S instead of
    hanging, and normally once the database answers again."""
    settings = up.settings.model_copy(update={"db_connect_timeout_s": 2})
    app = create_app(settings)
    with live_server(app) as live, up.client(live.url) as http:
        app.state.engine.dispose()   # (the check for orphaned jobs at start opened one)
        up.cluster.pause_server()
        try:
            started = time.perf_counter()
            assert_unavailable(http.get("/territories"))
            waited = time.perf_counter() - started
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 503
        finally:
            up.cluster.resume_server()
        back = time.perf_counter()
        first_ok = wait_until("/territories", lambda: http.get("/territories").status_code
                              == 200 and time.perf_counter() - back, timeout=30)
    assert 1.5 < waited < settings.db_connect_timeout_s + settings.db_pool_timeout_s
    MEASURED["database_hung"] = {"connect_timeout_s": 2, "503_after_s": round(waited, 2),
                                 "ok_after_resume_s": round(first_ok, 3)}


def test_jobs_past_their_time_limit_fail_and_store_nothing(up: Service) -> None:
    """GRIDMAP_JOB_TIMEOUT_S: a partition or redraw job still running after it is marked
    failed ("timed out after N s") at that moment, its thread stops at its next progress
    report and its result is never stored."""
    limit = 0.1
    with up.client() as http:   # the redraw in full, without a limit: how long it takes
        started = time.perf_counter()
        full = wait_job(http, submit_redraw(http, up.territory_id, up.newer))
        redraw_s = time.perf_counter() - started
        assert full["state"] == "done", full
    settings = up.settings.model_copy(update={"job_timeout_s": limit})
    app = create_app(settings)
    plans_before = up.one("SELECT count(*) FROM plans")
    measured: dict[str, Any] = {"limit_s": limit}
    with live_server(app) as live, up.client(live.url) as http:
        for kind, submit, full_s in [
                ("partition", lambda: submit_partition(http, up.territory_id), up.partition_s),
                ("redraw", lambda: submit_redraw(http, up.territory_id, up.newer), redraw_s)]:
            started = time.perf_counter()
            job_id = submit()
            job = wait_job(http, job_id)
            failed_after = time.perf_counter() - started
            wait_until("the job's thread to stop", lambda: not app.state.jobs.running())
            stopped_after = time.perf_counter() - started
            time.sleep(0.5)
            assert job["state"] == "failed" and job["plan_id"] is None, job
            assert f"timed out after {limit:g} s" in job["error"], job["error"]
            assert job_state(http, job_id) == job   # the thread's end changed nothing
            ran = (datetime.fromisoformat(job["finished_at"])
                   - datetime.fromisoformat(job["started_at"])).total_seconds()
            assert limit <= ran < limit + 5, ran   # failed at its deadline, not its end
            measured[kind] = {"ran_s": round(ran, 2), "failed_after_s": round(failed_after, 2),
                              "thread_stopped_after_s": round(stopped_after, 2),
                              "without_limit_s": round(full_s, 2)}
    assert up.one("SELECT count(*) FROM plans") == plans_before
    MEASURED["job_timeout"] = measured
