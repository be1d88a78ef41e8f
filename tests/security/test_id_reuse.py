"""Class 4: ids are never reused, so nothing cached by id outlives what it named. Two server
processes (two apps over one store): a planner's scope of a deleted territory, cached in one,
must not let them read, partition or delete the next upload (another district's), made
through the other; on SQLite the id-keyed tables are AUTOINCREMENT (migration 0009)."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
from pathlib import Path

import pytest
from conftest import tiny_layers, write_layers
from fastapi.testclient import TestClient
from secworld import World, partitioned, world  # noqa: F401
from sqlalchemy import text

from api.app import create_app
from gis.database import make_engine


def _upload(client: TestClient, folder: Path, district: str) -> int:
    layers = tiny_layers()
    admin = layers["admin_areas"]
    for col in ("code", "parent_code"):
        admin[col] = admin[col].map(lambda c: district + c[6:] if isinstance(c, str) else c)
    path = write_layers(layers, folder, "GPKG")
    with path.open("rb") as fh:
        made = client.post("/territories", files={"files": (path.name, fh)},
                           data={"name": f"区 {district}"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_a_deleted_territorys_id_names_nothing_in_any_process(world: World, tmp_path: Path
                                                              ) -> None:
    first = world.app                                        # process 1
    second = create_app(world.settings, make_engine(world.url))   # process 2
    planner = world.account("planner-x", "planner", "440111")
    admin = world.account("sec-admin")
    with TestClient(first, headers=planner) as p1, TestClient(second, headers=admin) as a2:
        old = _upload(TestClient(first, headers=admin), tmp_path / "old", "440111")
        assert p1.get(f"/territories/{old}").status_code == 200     # scope cached in 1
        assert a2.delete(f"/territories/{old}").status_code in (200, 204)
        new = _upload(a2, tmp_path / "new", "440106")              # another district
        assert new != old, "a deleted territory's id was given to the next upload"
        for method, path in (("GET", f"/territories/{old}"), ("DELETE", f"/territories/{old}"),
                             ("GET", f"/territories/{new}"), ("DELETE", f"/territories/{new}"),
                             ("POST", f"/territories/{new}/plans")):
            answer = p1.request(method, path, json={} if method == "POST" else None)
            assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
        assert a2.get(f"/territories/{new}").status_code == 200     # still there


@pytest.mark.parametrize("table", ["territories", "plans", "accounts", "api_keys"])
def test_sqlite_tables_keyed_by_id_never_reuse_one(world: World, table: str) -> None:
    with world.engine.connect() as conn:
        if world.backend == "spatialite":
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :t"),
                               {"t": table}).scalar_one()
            assert "AUTOINCREMENT" in sql
        else:   # PostgreSQL: a sequence (identity or serial) never hands a value out twice
            assert conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                {"t": table}).scalar_one()
