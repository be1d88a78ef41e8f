"""Class 3: idempotency keys belong to the account that sent them. The same key from another
account makes that account's own event (never returns the first, nor is silently dropped);
a replay by the same account returns its event, checked against its areas and masked as
any read of it is."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
from typing import Any

from secworld import World, partitioned, world  # noqa: F401

from gis.accounts import change_account


def _report(client: Any, world: World, key: str, i: int = 0, **extra: Any) -> Any:
    x, y, _ = world.point(i)
    return client.post("/events", json={
        "x": x, "y": y, "coord_sys": "wgs84", "category": "sanitation", "source": "hotline",
        "reporter": "王小明", "description": "楼道堆物，电话 13912345678",
        "idempotency_key": key, **extra})


def test_a_key_of_one_account_neither_finds_nor_blocks_another_accounts_event(world: World
                                                                              ) -> None:
    district = str(world.grids["code"].iloc[0])[:6]
    with world.client("op-a", "operator", district) as a, \
            world.client("rep-b", "reporter", district) as b:
        first = _report(a, world, "12345-20261207-0001")
        assert first.status_code == 201
        # The same (predictable) ticket number from another account: its own new event.
        other = _report(b, world, "12345-20261207-0001", description="另一件事")
        assert other.status_code == 201, other.text
        assert other.json()["id"] != first.json()["id"]
        assert other.json()["description"] == "另一件事"
        assert other.json()["reporter"] == "王**"           # a reporter sees names masked
        # Pre-claiming a key does not swallow a later genuine report of another account.
        claimed = _report(b, world, "ticket-0002", description="抢占")
        genuine = _report(a, world, "ticket-0002", description="真实上报")
        assert claimed.status_code == genuine.status_code == 201
        assert genuine.json()["description"] == "真实上报"
        # The client's key is what comes back, whoever asks.
        assert genuine.json()["idempotency_key"] == "ticket-0002"
        assert a.get(f"/events/{genuine.json()['id']}").json()["idempotency_key"] == \
            "ticket-0002"


def test_a_replay_returns_the_accounts_event_checked_and_masked(world: World) -> None:
    x_code = str(world.grids["code"].iloc[0])
    town = x_code[:9]
    with world.client("rep-c", "reporter", town) as reporter:
        made = _report(reporter, world, "retry-1")
        assert made.status_code == 201
        again = _report(reporter, world, "retry-1", description="changed")
        assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
        assert again.json()["reporter"] == "王**"
        assert "139****5678" in again.json()["description"]
        # The account's areas move elsewhere: a replay no longer shows the stored event.
        others = [t for t in world.towns if t != town]
        if others:
            change_account(world.engine, "rep-c", areas=others[0])
            world.app.state.auth._accounts.clear()
            i = next(i for i, c in enumerate(world.grids["code"]) if str(c)[:9] == others[0])
            replay = _report(reporter, world, "retry-1", i)
            assert replay.status_code == 404, replay.text
            assert "王" not in replay.text and "13912345678" not in replay.text


def test_a_very_long_key_is_still_scoped(world: World) -> None:
    long_key = "k" * 100
    with world.client("op-d", "operator") as a, world.client("op-e", "operator") as b:
        first = _report(a, world, long_key)
        second = _report(b, world, long_key)
        assert first.status_code == second.status_code == 201
        assert _report(a, world, long_key).json()["id"] == first.json()["id"]
        header = a.post("/events", headers={"Idempotency-Key": "h" * 5_000}, json={
            "x": world.point()[0], "y": world.point()[1], "coord_sys": "wgs84",
            "category": "sanitation", "source": "hotline"})
        assert header.status_code == 201
