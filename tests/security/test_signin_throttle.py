"""Class 6: sign-in is throttled and bounded. Failures are counted per account and per client
address in the store (so every server process shares them): past the limit, 429 with
Retry-After, even for the right password, and no password is hashed; a success clears the
account's count; password checks (argon2id, 64 MiB each) run at most N at once."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from secworld import PASSWORD, World, make_world, partitioned, world  # noqa: F401

from api.app import create_app
from gis import accounts
from gis.database import make_engine


def _sign_in(client: TestClient, username: str, password: str) -> Any:
    return client.post("/token", data={"username": username, "password": password})


def test_failures_per_account_end_in_429_even_for_the_right_password(world: World) -> None:
    world.account("target", "viewer", "*")
    limit = world.settings.signin_failures_per_account
    with TestClient(world.app) as client:
        for _ in range(limit):
            assert _sign_in(client, "target", "wrong password!").status_code == 401
        started = time.perf_counter()
        refused = _sign_in(client, "target", PASSWORD)
        assert refused.status_code == 429, refused.text
        assert time.perf_counter() - started < 0.5     # no password was hashed
        wait = int(refused.headers["Retry-After"])
        assert 0 < wait <= world.settings.signin_window_s + 1
        assert refused.json()["type"] == "/problems/too-many-requests"
        # Another account is not held up by this one's failures.
        world.account("bystander", "viewer", "*")
        assert _sign_in(client, "bystander", PASSWORD).status_code == 200


def test_a_success_clears_the_accounts_failures(world: World) -> None:
    world.account("forgetful", "viewer", "*")
    limit = world.settings.signin_failures_per_account
    with TestClient(world.app) as client:
        for _ in range(3):
            for _ in range(limit - 1):
                assert _sign_in(client, "forgetful", "wrong password!").status_code == 401
            assert _sign_in(client, "forgetful", PASSWORD).status_code == 200


def test_the_limits_are_shared_by_every_server_process(world: World) -> None:
    """Two apps over one store (two uvicorn workers): failures in either count together,
    per account and, with many account names, per address."""
    world.account("shared", "viewer", "*")
    other = create_app(world.settings, make_engine(world.url))
    limit = world.settings.signin_failures_per_account
    with TestClient(world.app) as one, TestClient(other) as two:
        for i in range(limit):
            client = one if i % 2 else two
            assert _sign_in(client, "shared", "wrong password!").status_code == 401
        assert _sign_in(one, "shared", PASSWORD).status_code == 429
        assert _sign_in(two, "shared", PASSWORD).status_code == 429


def test_failures_per_address_across_account_names(db_url: str, partitioned: Any) -> None:
    backend = "postgis" if db_url.startswith("postgresql") else "spatialite"
    small = make_world(backend, db_url, partitioned, signin_failures_per_address=6)
    small.account("real", "viewer", "*")
    with TestClient(small.app) as client:
        for i in range(6):
            assert _sign_in(client, f"guess{i}", "wrong password!").status_code == 401
        assert _sign_in(client, "real", PASSWORD).status_code == 429
        # The count lives in the store: it is the same for a fresh process.
        with TestClient(create_app(small.settings, make_engine(small.url))) as fresh:
            assert _sign_in(fresh, "guess-new", "x" * 12).status_code == 429
    small.engine.dispose()


def test_password_checks_run_at_most_n_at_once(db_url: str, partitioned: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    backend = "postgis" if db_url.startswith("postgresql") else "spatialite"
    small = make_world(backend, db_url, partitioned, password_checks=2,
                       signin_failures_per_address=1000, signin_failures_per_account=1000)
    running, most = 0, 0
    lock = threading.Lock()
    verify = accounts.verify_password

    def counted(*args: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return verify(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(accounts, "verify_password", counted)
    with TestClient(small.app) as client, ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda i: _sign_in(client, f"nobody{i}", "wrong password!")
                              .status_code, range(24)))
    assert codes == [401] * 24
    assert most == 2, most
    small.engine.dispose()


def test_throttle_counters_are_one_atomic_statement(world: World) -> None:
    """Hits from many threads at once are all counted (no lost update)."""
    from gis.models.base import utcnow

    now = utcnow()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: accounts.throttle_hit(world.engine, "k", 60, now), range(40)))
    hits, _ = accounts.throttle_hit(world.engine, "k", 60, now, 0)
    assert hits == 40
