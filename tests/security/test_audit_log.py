"""Class 1: nothing a request sends can stop the audit log. Odd paths, headers, user names,
query strings and bodies are stored (escaped, cut to the column), and an entry the store
refuses is quarantined or dropped alone: the entries after it are written, /readyz says so."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import logging
from typing import Any

import pytest
from secworld import World, partitioned, world  # noqa: F401

from gis import accounts
from gis.models.base import utcnow


def _audit(world: World, **filters: Any) -> list[dict[str, Any]]:
    world.app.state.audit.flush()
    return accounts.read_audit(world.engine, limit=1000, **filters)


@pytest.mark.parametrize("path", ["/plans/%00/publish", "/%00", "/events/%00%01%1b",
                                  "/territories/%FF%FE", "/accounts/a%00b/keys",
                                  "/x" + "%00" * 500])
def test_odd_paths_are_audited_and_do_not_block_later_entries(world: World, path: str
                                                              ) -> None:
    """Refused (401/403) or a change by an account: audited, whatever the path holds. An
    unknown path answers 404 to anyone (refused, nothing to audit)."""
    with world.client() as admin:
        anonymous = admin.post(path, headers={"X-API-Key": ""})
        assert anonymous.status_code in (401, 404, 405)
        signed_in = admin.post(path, json={"name": "x"})
        assert signed_in.status_code in (404, 405, 422)
        after = admin.post(f"/plans/{world.plan_id}/copy")
        assert after.status_code == 201
    rows = _audit(world)
    if anonymous.status_code == 401:
        assert any(r["status"] == 401 and r["username"] is None and r["path"].startswith(
            path.split("%")[0]) and "\\x00" in r["path"] for r in rows), rows[:3]
    if signed_in.status_code not in (404, 405):   # a route took it: a change, audited
        assert any(r["username"] == "sec-admin" and r["status"] == signed_in.status_code
                   for r in rows)
    assert any(r["path"] == f"/plans/{world.plan_id}/copy" and r["status"] == 201
               for r in rows), "the entry after the odd one must be written"
    assert world.app.state.audit.pending() == 0
    assert world.app.state.audit.health()["dropped"] == 0
    assert all(len(r["path"]) <= 400 for r in rows)


def test_odd_user_names_query_strings_and_bodies_are_stored(world: World) -> None:
    with world.client() as admin:
        failed = admin.post("/token", data={"username": "evil\x00\x01\u202e名字" * 20,
                                            "password": "x" * 12})
        assert failed.status_code == 401
        odd = admin.get("/events?status=%00%FF&x=%7F", headers={"X-API-Key": "\x7fbad"})
        assert odd.status_code in (400, 401)
        body = admin.post("/events", content=b'{"x": "\x00\xff"}',
                          headers={"Content-Type": "application/json"})
        assert body.status_code in (400, 422)
        assert admin.post(f"/plans/{world.plan_id}/copy").status_code == 201
    rows = _audit(world)
    failed_row = next(r for r in rows if r["action"] == "login-failed")
    assert failed_row["username"].startswith("evil\\x00\\x01")
    assert len(failed_row["username"]) <= 60
    assert any(r["path"] == f"/plans/{world.plan_id}/copy" for r in rows)
    assert world.app.state.audit.health()["dropped"] == 0


def test_an_entry_the_store_refuses_is_quarantined_alone(world: World,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    """An entry that bypassed the cleaning (a lone surrogate, which no driver can encode;
    a NUL on PostgreSQL) is refused with its batch; the batch is then written one by one,
    the bad entry quarantined with its text escaped, the others as they were."""
    log = world.app.state.audit
    bad = {"at": utcnow(), "username": "x\ud800y", "role": None, "action": "change",
           "method": "POST", "path": "/bad\ud800\x00path", "status": 200, "detail": None}
    good = [{**bad, "username": f"good{i}", "path": f"/good/{i}"} for i in range(3)]
    with log._lock:
        log._pending += [good[0], bad, good[1], good[2]]
    with caplog.at_level(logging.WARNING, "gridmap.audit"):
        log.flush()
    rows = _audit(world)
    paths = [r["path"] for r in rows]
    assert {"/good/0", "/good/1", "/good/2"} <= set(paths)
    quarantined = [r for r in rows if (r["detail"] or "").startswith("quarantined")]
    assert len(quarantined) == 1 and quarantined[0]["path"].startswith("/bad\\ud800")
    assert "quarantined" in caplog.text
    health = log.health()
    assert health["quarantined"] == 1 and health["pending"] == 0
    with world.client() as admin:
        ready = admin.get("/readyz").json()
    assert ready["status"] == "ready" and ready["audit"]["quarantined"] == 1


def test_an_entry_that_cannot_be_written_even_escaped_is_dropped_and_logged(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    log = world.app.state.audit
    broken = {"at": "not a time", "username": None, "role": None, "action": "change",
              "method": "POST", "path": "/broken", "status": 200, "detail": None}
    fine = {**broken, "at": utcnow(), "path": "/fine"}
    with log._lock:
        log._pending += [broken, fine]
    with caplog.at_level(logging.ERROR, "gridmap.audit"):
        log.flush()
    assert "/fine" in [r["path"] for r in _audit(world)]
    assert log.health()["dropped"] == 1 and "dropped" in caplog.text and "/broken" in caplog.text
    with world.client() as admin:
        assert admin.get("/readyz").json()["audit"]["dropped"] == 1
