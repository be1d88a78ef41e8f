"""Jobs on a real Dask cluster: `dask scheduler` and two `dask worker` processes started as an
operator starts them (tests/daskcluster.py), and the default LocalCluster.

A partition job through the API computes on the cluster's workers (never in the web
process), a worker killed during a job has its town retried on the other, a queued and a
running job are cancelled with nothing stored and their tasks gone from the scheduler, the
per-territory and per-account job limits answer 429 with Retry-After, and a multi-district
territory partitioned on the cluster gives each district the grids it gets alone."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from daskcluster import DaskCluster
from fastapi.testclient import TestClient
from signin import client_for, headers_for
from sqlalchemy import func, select

from api.app import create_app
from data.demo import generate_province
from gis.contract import Territory
from gis.database import make_engine
from gis.io.territory import read_territory
from gis.models.plans import Plan
from gis.settings import Settings
from partitioning.cluster import partition_on_cluster
from partitioning.params import PartitionParams
from partitioning.towns import partition_pieces, split_territory

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskCluster]:
    dask = DaskCluster(workers=2).start()
    try:
        yield dask
    finally:
        dask.stop()


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three demo districts of 10,000 households side by side (six towns)."""
    path = tmp_path_factory.mktemp("province") / "province.gpkg"
    generate_province(3, 10_000, 5).write(path)
    return path


@pytest.fixture(scope="module")
def expected(province: Path) -> pd.DataFrame:
    """The province's grids computed here, piece after piece (no cluster)."""
    result = partition_pieces(read_territory(province), PartitionParams(seed=1))
    return _table(result.grids)


def _table(grids: gpd.GeoDataFrame) -> pd.DataFrame:
    """Codes, households, 四至 and outline (metric CRS) of each grid, by code."""
    metric = grids.to_crs(4547)
    return pd.DataFrame({
        "code": grids["code"].astype(str).to_numpy(),
        "households": grids["households"].astype(int).to_numpy(),
        "boundary_text": grids["boundary_text"].astype(str).to_numpy(),
        "outline": metric.geometry.to_numpy()}).sort_values("code").reset_index(drop=True)


def assert_same_grids(got: pd.DataFrame, want: pd.DataFrame, tolerance_m: float = 0.0) -> None:
    """The same grids: codes, households and 四至 equal, outlines within ``tolerance_m``
    (a plan read back from the store went through WGS84 and the database)."""
    columns = ["code", "households", "boundary_text"]
    pd.testing.assert_frame_equal(got[columns], want[columns])
    apart = shapely.hausdorff_distance(got["outline"].to_numpy(), want["outline"].to_numpy())
    worst = int(apart.argmax())
    assert apart.max() <= tolerance_m, (got["code"][worst], float(apart.max()))


def _client(db_url: str, scheduler: str, **settings: Any) -> TestClient:
    return client_for(create_app(Settings(database_url=db_url, dask_scheduler=scheduler,
                                          escalation_interval_s=0, **settings)))


def _upload(client: TestClient, path: Path) -> int:
    with path.open("rb") as fh:
        r = client.post("/territories", files={"files": (path.name, fh)},
                        data={"name": "示范省"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _submit(client: TestClient, territory_id: int, **params: Any) -> str:
    r = client.post(f"/territories/{territory_id}/plans", json={"seed": 1, **params})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _wait(client: TestClient, job_id: str, until: Any = None, timeout: float = 300
          ) -> dict[str, Any]:
    """Poll a job until ``until(job)`` (default: it ended)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if (until(job) if until else job["state"] in ("done", "failed", "cancelled")):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def _plan_table(db_url: str, plan_id: int) -> pd.DataFrame:
    from gis.plans import read_grids

    engine = make_engine(db_url)
    try:
        return _table(read_grids(engine, plan_id))
    finally:
        engine.dispose()


def _plans(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Plan)).scalar_one())
    finally:
        engine.dispose()


def _keys_of(cluster: DaskCluster, job_id: str) -> list[str]:
    """Task keys of a job the scheduler still knows."""
    from distributed import Client

    with Client(cluster.address, set_as_default=False, timeout="10s") as client:
        def keys(dask_scheduler: Any) -> list[str]:
            return [str(k) for k in dask_scheduler.tasks]

        return [k for k in client.run_on_scheduler(keys) if job_id[:16] in k]


def test_a_partition_job_runs_on_the_cluster(db_url: str, cluster: DaskCluster,
                                             province: Path, expected: pd.DataFrame) -> None:
    """Through the API, on both backends: the job reports towns done out of towns in all,
    every town ran on one of the cluster's workers (not in this process), and the plan is
    the one computed here piece after piece (the grids never depend on where they ran)."""
    with _client(db_url, cluster.address) as client:
        tid = _upload(client, province)
        job_id = _submit(client, tid)
        seen = [_wait(client, job_id, lambda j: j["towns_total"] is not None)]
        job = _wait(client, job_id)
        assert job["state"] == "done" and job["error"] is None, job
        assert job["towns_total"] == 6 and job["towns_done"] == 6, job
        assert seen[0]["stage"].startswith(("towns", "saving", "done")), seen
        report = client.get(f"/plans/{job['plan_id']}/report").json()
    workers = {p["worker"] for p in report["pieces"]}
    assert len(report["pieces"]) == 6 and workers <= {
        f"tcp://127.0.0.1:{p}" for p in _worker_ports(cluster)} and workers, report["pieces"]
    assert_same_grids(_plan_table(db_url, int(job["plan_id"])), expected, 0.01)


def _worker_ports(cluster: DaskCluster) -> list[int]:
    from distributed import Client

    with Client(cluster.address, set_as_default=False, timeout="10s") as client:
        return [int(a.rsplit(":", 1)[1]) for a in client.scheduler_info()["workers"]]


def test_a_worker_killed_during_a_job_is_retried_on_another(
        postgis_url: str, cluster: DaskCluster, province: Path, expected: pd.DataFrame) -> None:
    """One of the two workers is killed (SIGKILL, no nanny to restart it) while the job's
    towns run: the scheduler gives its towns to the other worker, the job ends done with
    the same grids as an undisturbed run, and no plan is stored twice or in part."""
    with _client(postgis_url, cluster.address, job_workers=1) as client:
        tid = _upload(client, province)
        job_id = _submit(client, tid)
        running = _wait(client, job_id, lambda j: j["state"] != "queued" and (
            j["towns_total"] is not None or j["state"] != "running"))
        assert running["state"] == "running", running
        killed = cluster.kill_worker()
        job = _wait(client, job_id)
        assert job["state"] == "done", job
    try:
        assert killed not in cluster.worker_pids()
        assert_same_grids(_plan_table(postgis_url, int(job["plan_id"])), expected, 0.01)
        assert _plans(postgis_url) == 1
    finally:
        cluster.add_worker()
        cluster.wait_for_workers(2)


def test_cancel_a_queued_and_a_running_job(postgis_url: str, cluster: DaskCluster,
                                           province: Path) -> None:
    """DELETE /jobs/{id}: a queued job is cancelled before it starts, a running one while
    its towns compute; both end ``cancelled`` and stay so, nothing is stored, the running
    one's tasks leave the scheduler, and cancelling an ended job is a 409."""
    with _client(postgis_url, cluster.address, job_workers=1) as client:
        tid = _upload(client, province)
        first = _submit(client, tid)
        second = _submit(client, tid, seed=2)
        assert client.get(f"/jobs/{second}").json()["state"] == "queued"
        r = client.delete(f"/jobs/{second}")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "cancelled" and "cancelled" in r.json()["error"]
        _wait(client, first, lambda j: j["state"] == "running" and j["towns_total"])
        r = client.delete(f"/jobs/{first}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        deadline = time.monotonic() + 60
        while _keys_of(cluster, first):
            assert time.monotonic() < deadline, _keys_of(cluster, first)
            time.sleep(0.2)
        time.sleep(1.0)   # what the driver and the workers might still do, done by now
        for job_id in (first, second):
            job = client.get(f"/jobs/{job_id}").json()
            assert job["state"] == "cancelled" and job["plan_id"] is None, job
        r = client.delete(f"/jobs/{first}")
        assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM)
        assert client.delete("/jobs/nosuchjob").status_code == 404
        assert _plans(postgis_url) == 0
        # The cluster is free again: a new job runs to its end.
        assert _wait(client, _submit(client, tid))["state"] == "done"


def test_the_job_limits_answer_429(postgis_url: str, cluster: DaskCluster,
                                   province: Path) -> None:
    """At most N queued or running jobs per territory and per account: one more is a 429
    problem (too-many-jobs) with Retry-After; once one is cancelled there is room again."""
    with _client(postgis_url, cluster.address, job_workers=1, job_limit_per_territory=1,
                 job_limit_per_account=2, job_retry_after_s=17) as client:
        tid = _upload(client, province)
        other = _upload(client, province)
        third = _upload(client, province)
        first = _submit(client, tid)
        r = client.post(f"/territories/{tid}/plans", json={"seed": 2})
        assert r.status_code == 429 and r.headers["content-type"].startswith(PROBLEM), r.text
        assert r.headers["retry-after"] == "17"
        body = r.json()
        assert body["type"] == "/problems/too-many-jobs" and "GRIDMAP_JOB_LIMIT_PER_TERRITORY" \
            in body["detail"]
        second = _submit(client, other)
        r = client.post(f"/territories/{third}/plans", json={"seed": 1})   # 3rd of the account
        assert r.status_code == 429 and "GRIDMAP_JOB_LIMIT_PER_ACCOUNT" in r.json()["detail"]
        # Another account may still submit on the third territory.
        planner = headers_for(client.app.state.engine, "planner-2", "planner")
        r = client.post(f"/territories/{third}/plans", json={"seed": 1}, headers=planner)
        assert r.status_code == 202, r.text
        for job_id in (first, second, r.json()["id"]):
            # Cancelled, or (a small territory on an idle cluster) ended before the cancel.
            cancel = client.delete(f"/jobs/{job_id}")
            assert cancel.status_code == 200 or (
                cancel.status_code == 409
                and client.get(f"/jobs/{job_id}").json()["state"] in ("done", "failed")), \
                cancel.text
        assert client.post(f"/territories/{tid}/plans", json={"seed": 1}).status_code == 202


def _district(territory: Territory, code: str) -> Territory:
    """A district of a multi-district territory as a territory of its own."""
    admin = territory.layers["admin_areas"]
    area = admin.loc[admin["code"].astype(str) == code].geometry.iloc[0]
    layers = {name: (gdf[gdf["code"].astype(str).str.startswith(code)]
                     if name == "admin_areas" else gdf[gdf.intersects(area)])
              for name, gdf in territory.layers.items()}
    return Territory(code, {k: v.reset_index(drop=True) for k, v in layers.items()})


def test_a_multi_district_territory_gives_each_district_its_grids_alone(
        cluster: DaskCluster, province: Path) -> None:
    """The province partitioned on the cluster as one territory, and each of its districts
    on its own: the same grids (codes, households, 四至, outlines), and the province's
    report adds up the districts'."""
    from distributed import Client

    territory = read_territory(province)
    params = PartitionParams(seed=3)
    with Client(cluster.address, set_as_default=False, timeout="10s") as client:
        whole = partition_on_cluster(client, split_territory(territory), params)
        alone = {}
        for code in ("440111", "440112", "440113"):
            alone[code] = partition_on_cluster(
                client, split_territory(_district(territory, code)), params)
    table = _table(whole.grids)
    for code, result in alone.items():
        mine = table[table["code"].str.startswith(code)].reset_index(drop=True)
        assert_same_grids(mine, _table(result.grids))
    for key in ("n_grids", "households", "n_forced", "n_blocks", "buildings"):
        assert whole.report[key] == sum(r.report[key] for r in alone.values()), key
    assert whole.report["in_range_share"] >= min(r.report["in_range_share"]
                                                 for r in alone.values())


def test_a_worker_killed_while_the_cli_partitions_loses_no_piece(
        cluster: DaskCluster, province: Path, expected: pd.DataFrame) -> None:
    """The CLI's way (pieces streamed from this process, each worker holding one running
    and one waiting): a worker killed once the first piece is back takes its unfinished
    pieces with it; they are sent again to the other worker, the pieces already back are
    kept, and the grids are those of an undisturbed run."""
    from distributed import Client

    params = PartitionParams(seed=1)
    killed: list[int] = []
    seen: list[int] = []

    def progress(_key: str, _share: float, done: int, _total: int) -> None:
        seen.append(done)
        if done == 1:
            killed.append(cluster.kill_worker())

    try:
        with Client(cluster.address, set_as_default=False, timeout="10s") as client:
            split = split_territory(read_territory(province), lazy=True)
            result = partition_on_cluster(client, split, params, progress=progress)
        assert killed and killed[0] not in cluster.worker_pids()
        assert seen == list(range(1, len(split) + 1))
        assert result.report["resent_pieces"] >= 1
        assert {p["worker"] for p in result.report["pieces"]} and len(result.grids) == len(
            expected)
        assert_same_grids(_table(result.grids), expected)
    finally:
        cluster.add_worker()
        cluster.wait_for_workers(2)


def test_partition_cli_on_a_scheduler(cluster: DaskCluster, province: Path,
                                      tmp_path: Path, expected: pd.DataFrame) -> None:
    """`gridmap partition --scheduler ADDRESS` computes on that cluster."""
    from typer.testing import CliRunner

    from api.cli import app

    out = tmp_path / "plan"
    result = CliRunner().invoke(app, ["partition", str(province), "--out", str(out),
                                      "--seed", "1", "--scheduler", cluster.address])
    assert result.exit_code == 0, result.output
    assert "6 pieces on 2 workers" in result.output
    grids = gpd.read_file(out / "grids.gpkg", engine="pyogrio")
    assert_same_grids(_table(grids), expected, 0.01)


def test_the_default_local_cluster(spatialite_url: str, province: Path,
                                   expected: pd.DataFrame) -> None:
    """Without GRIDMAP_DASK_SCHEDULER the service starts a LocalCluster of worker processes
    (one here: GRIDMAP_DASK_WORKERS=1) and computes there, not in the web process."""
    with _client(spatialite_url, "", dask_workers=1) as client:
        compute = client.app.state.jobs.compute
        tid = _upload(client, province)
        job = _wait(client, _submit(client, tid))
        assert job["state"] == "done", job
        assert compute.address == "" and compute._cluster is not None
        pids = compute.client().run(os.getpid)
        assert len(pids) == 1 and os.getpid() not in pids.values()
        # Forked from the fork server that loaded the engine, without Dask's profiler
        # (it held the GIL every 10 ms; partitioning/cluster.py).
        seen = compute.client().run(_worker_setup)
        assert list(seen.values()) == [(False, True)], seen
        report = client.get(f"/plans/{job['plan_id']}/report").json()
        assert {p["worker"] for p in report["pieces"]} == set(pids)
    assert_same_grids(_plan_table(spatialite_url, int(job["plan_id"])), expected, 0.01)


def _worker_setup(dask_worker: Any) -> tuple[bool, bool]:
    """Whether a worker runs Dask's profiler, and whether its parent is the fork server."""
    import psutil

    parent = psutil.Process(os.getppid()).cmdline()
    return ("profile" in dask_worker.periodic_callbacks,
            any("multiprocessing.forkserver" in part for part in parent))
