"""Rebalance through the edits (If-Match, history, undo, redo) and the stable redraw job end to
end, on PostGIS and SpatiaLite."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from demo_plan import DemoStore, _demo
from fastapi.testclient import TestClient
from test_edits import USER, edit, first_move, state, version_of

from data.changes import scripted_changes
from data.demo import DemoTerritory
from gis.plans import read_blocks, read_grids, read_lines


def _wait(client: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return dict(job)
        time.sleep(0.05)


def test_rebalance_edit_with_lock_undo_and_redo(client: TestClient, store: DemoStore) -> None:
    r = client.post(f"/plans/{store.plan_id}/copy", headers=USER)
    plan_id = int(r.json()["id"])
    moved, (_block, src, dst) = first_move(client, store, plan_id, 0)
    village = src[:12]
    grids = read_grids(store.engine, plan_id)
    mine = grids[(grids["village_code"] == village) & (grids["kind"] == "comprehensive")]
    others = sorted(set(mine["code"]) - {src, dst})
    locked = others[0] if others else None
    version = 1
    if locked:
        assert edit(client, plan_id, version, {"op": "lock", "grids": [locked]}).status_code \
            == 200
        version += 1
    before = state(store.engine, plan_id)
    r = edit(client, plan_id, version, {"op": "rebalance", "village": village,
                                        "note": "重新平衡"})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{version + 1}"'
    body = r.json()
    assert body["op"] == "rebalance" and "重新平衡" in body["summary"]
    touched = {f["properties"]["code"] for f in body["grids"]["features"]}
    assert {src, dst} & touched
    after = state(store.engine, plan_id)
    if locked:
        assert locked not in touched
        row_before = [row for row in before[0] if row[0] == locked]
        assert row_before == [row for row in after[0] if row[0] == locked]   # byte-identical
    # Households conserved; every grid of the village in the band again.
    now = read_grids(store.engine, plan_id)
    assert int(now["households"].sum()) == int(grids["households"].sum())
    regular = now[(now["village_code"] == village) & (now["kind"] == "comprehensive")
                  & now["flags"].map(lambda f: not set(f) - {"below_min", "above_max"})]
    assert regular["households"].between(300, 500).all(), regular[["code", "households"]]
    # Stale version refused; undo restores the exact rows; redo brings the rebalance back.
    stale = edit(client, plan_id, version, {"op": "rebalance", "village": village})
    assert stale.status_code == 409 and stale.json()["current_version"] == version + 1
    u = client.post(f"/plans/{plan_id}/undo", headers={"If-Match": f'"{version + 1}"'})
    assert u.status_code == 200, u.text
    assert state(store.engine, plan_id) == before
    d = client.post(f"/plans/{plan_id}/redo", headers={"If-Match": f'"{version + 2}"'})
    assert d.status_code == 200, d.text
    assert state(store.engine, plan_id) == after
    history = client.get(f"/plans/{plan_id}/edits").json()
    assert [h["op"] for h in history][-3:] == ["rebalance", "undo", "redo"]
    assert version_of(client, plan_id) == version + 3
    # Refusals: both or neither region, a locked grid named, an unknown village.
    v = version + 3
    both = edit(client, plan_id, v, {"op": "rebalance", "village": village, "grids": [src]})
    assert both.status_code == 422
    if locked:
        assert edit(client, plan_id, v, {"op": "rebalance", "grids": [locked]}).status_code \
            == 409
    unknown = edit(client, plan_id, v, {"op": "rebalance", "village": "440111999999"})
    assert unknown.status_code == 422 and "440111999999" in unknown.json()["detail"]
    assert moved.status_code == 200


@pytest.fixture(scope="module")
def new_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    demo = _demo()
    layers, info = scripted_changes(demo.layers, 0.05, 3)
    path = tmp_path_factory.mktemp("redraw") / "demo-2025.gpkg"
    DemoTerritory(layers, demo.seed, info["households_after"]).write(path)
    return path, info


def test_redraw_job_makes_a_draft_from_the_published_plan(
        client: TestClient, store: DemoStore, new_data: tuple[Path, dict[str, Any]]) -> None:
    path, info = new_data
    with path.open("rb") as fh:
        r = client.post(f"/territories/{store.territory_id}/redraw",
                        files={"files": (path.name, fh)},
                        data={"note": "2025 年户数更新", "created_by": "王芳"})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/jobs/{r.json()['id']}"
    job = _wait(client, r.json()["id"])
    assert job["state"] == "done", job
    assert job["kind"] == "redraw" and job["parameters"]["plan_id"] == store.plan_id
    plan = client.get(f"/plans/{job['plan_id']}").json()
    assert plan["status"] == "draft" and plan["parent_id"] == store.plan_id
    assert plan["note"] == "2025 年户数更新" and plan["created_by"] == "王芳"
    report = client.get(f"/plans/{job['plan_id']}/report").json()
    redraw = report["redraw"]
    assert redraw["households_total"] == info["households_after"]
    assert redraw["grids_kept"] + len(redraw["grids_changed"]) + \
        len(redraw["grids_retired"]) == len(store.grids)
    assert redraw["households_moved"] == sum(m["households"] for m in redraw["moves"])
    old = store.grids.set_index("code")
    new = read_grids(store.engine, job["plan_id"]).set_index("code")
    assert int(new["households"].sum()) == info["households_after"]
    kept = set(old.index) - set(redraw["grids_changed"]) - set(redraw["grids_retired"])
    for code in kept:
        assert new.loc[code].geometry.equals_exact(old.loc[code].geometry, 1e-9)
        assert new.loc[code, "name"] == old.loc[code, "name"]
        # A kept grid keeps its strong barrier inside and, unflagged anew, its reason.
        assert new.loc[code, "barrier_inside_m"] == old.loc[code, "barrier_inside_m"]
        if list(new.loc[code, "flags"]) == list(old.loc[code, "flags"]):
            assert new.loc[code, "flag_reason"] == old.loc[code, "flag_reason"]
    assert new["barrier_inside_m"].notna().all()
    # The blocks are the parent's, so are the streets found between its buildings.
    parent_lines = read_lines(store.engine, store.plan_id)
    lines = read_lines(store.engine, job["plan_id"])
    assert len(lines) == len(parent_lines) > 0
    assert lines.drop(columns="geometry").equals(parent_lines.drop(columns="geometry"))
    assert all(a.equals(b) for a, b in zip(lines.geometry, parent_lines.geometry, strict=True))
    assert not set(redraw["grids_new"]) & set(old.index)
    blocks = read_blocks(store.engine, job["plan_id"])
    assert blocks["grid_code"].notna().all()
    assert int(blocks["households"].sum()) == info["households_after"]
    # The draft can be edited like any other (blocks numbered, grids linked).
    assert client.get(f"/plans/{job['plan_id']}").headers["ETag"] == '"0"'


def test_redraw_refusals(client: TestClient, store: DemoStore,
                         new_data: tuple[Path, dict[str, Any]]) -> None:
    path, _info = new_data
    with path.open("rb") as fh:
        r = client.post("/territories/999999/redraw", files={"files": (path.name, fh)})
    assert r.status_code == 404
    # The tiny territory has no published plan.
    with path.open("rb") as fh:
        r = client.post(f"/territories/{store.tiny_territory_id}/redraw",
                        files={"files": (path.name, fh)})
    assert r.status_code == 409 and "published" in r.json()["detail"]
    # A plan of another territory.
    with path.open("rb") as fh:
        r = client.post(f"/territories/{store.tiny_territory_id}/redraw",
                        files={"files": (path.name, fh)}, data={"plan_id": str(store.plan_id)})
    assert r.status_code == 409


def test_cli_redraw(tmp_path: Path, new_data: tuple[Path, dict[str, Any]]) -> None:
    import json

    import geopandas as gpd
    from typer.testing import CliRunner

    from api.cli import app
    path, info = new_data
    runner = CliRunner()
    old = _demo().write(tmp_path / "old.gpkg")
    done = runner.invoke(app, ["partition", str(old), "--out", str(tmp_path / "v1")])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["redraw", str(tmp_path / "v1"), str(path), "--out",
                               str(tmp_path / "v2")])
    assert done.exit_code == 0, done.output
    assert "保留 kept" in done.output
    report = json.loads((tmp_path / "v2" / "report.json").read_text(encoding="utf-8"))
    grids = gpd.read_file(tmp_path / "v2" / "grids.gpkg")
    assert int(grids["households"].sum()) == info["households_after"] == \
        report["redraw"]["households_total"]
    v1 = gpd.read_file(tmp_path / "v1" / "grids.gpkg").set_index("code")
    kept = set(v1.index) - set(report["redraw"]["grids_changed"]) - \
        set(report["redraw"]["grids_retired"])
    assert len(kept) == report["redraw"]["grids_kept"] > 0
    v2 = grids.set_index("code")
    assert all(v2.loc[c].geometry.equals(v1.loc[c].geometry) for c in kept)
    missing = runner.invoke(app, ["redraw", str(tmp_path), str(path), "--out",
                                  str(tmp_path / "v3")])
    assert missing.exit_code != 0 and "grids.gpkg" in missing.output
