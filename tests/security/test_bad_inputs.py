"""Class 10: inputs that reached a 500. A reported_at far from now is a 400 (bounded by
settings), an undecodable X-Gridmap-User (or any undecodable header value) a 4xx, a value
the database refuses a 422 in our words (never the driver's); after a 500 the connection
stays open for the client's next request."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import socket
from datetime import timedelta
from typing import Any

import pytest
from browser import live_server
from secworld import World, make_world, partitioned, world  # noqa: F401

from gis.models.base import utcnow


def _event(world: World, **extra: Any) -> dict[str, Any]:
    x, y, _ = world.point()
    return {"x": x, "y": y, "coord_sys": "wgs84", "category": "sanitation",
            "source": "patrol", **extra}


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                                  "+1 day", "-31 days", "+11 minutes"])
def test_reported_at_outside_the_window_is_400(world: World, when: str) -> None:
    now = utcnow()
    if when[0] in "+-":
        amount, unit = when[1:].split()
        delta = timedelta(**{unit if unit.endswith("s") else unit + "s": int(amount)})
        when = (now + delta if when[0] == "+" else now - delta).isoformat()
    with world.client() as admin:
        answer = admin.post("/events", json=_event(world, reported_at=when))
        assert answer.status_code == 400, answer.text
        assert "GRIDMAP_REPORTED_AT_MAX_AGE_DAYS" in answer.json()["detail"]


def test_reported_at_inside_the_window_is_stored(world: World) -> None:
    now = utcnow()
    with world.client() as admin:
        for moment in (now - timedelta(days=29), now + timedelta(minutes=9)):
            answer = admin.post("/events", json=_event(world, reported_at=moment.isoformat()))
            assert answer.status_code == 201, answer.text


def test_the_window_is_configurable(db_url: str, partitioned: Any) -> None:
    backend = "postgis" if db_url.startswith("postgresql") else "spatialite"
    wide = make_world(backend, db_url, partitioned, reported_at_max_age_days=400)
    with wide.client() as admin:
        old = (utcnow() - timedelta(days=300)).isoformat()
        assert admin.post("/events", json=_event(wide, reported_at=old)).status_code == 201
    wide.engine.dispose()


@pytest.mark.parametrize("value", ["%FF", "%E7%8E", "%C0%80", "a%00b", "%0A"])
def test_an_undecodable_person_header_is_400(world: World, value: str) -> None:
    with world.client() as admin:
        draft = admin.post(f"/plans/{world.plan_id}/copy").json()["id"]
        for method, path in (("POST", f"/plans/{draft}/publish"),
                             ("POST", f"/plans/{draft}/copy"),
                             ("POST", f"/plans/{draft}/undo")):
            answer = admin.request(method, path, headers={"X-Gridmap-User": value,
                                                          "If-Match": '"0"'})
            assert answer.status_code == 400, (path, answer.text)
            assert "X-Gridmap-User" in answer.json()["detail"]


def test_raw_non_ascii_header_bytes_never_give_a_500(world: World) -> None:
    """Header values as raw bytes (latin-1 on the wire, not UTF-8) on every header a route
    reads: a clear 4xx or a normal answer, never a 500."""
    with world.client() as admin:
        draft = admin.post(f"/plans/{world.plan_id}/copy").json()["id"]
    raw = "\xff\xfe\x80ü"
    with world.client() as admin:
        for name in ("X-Gridmap-User", "If-Match", "If-None-Match", "Idempotency-Key",
                     "Accept", "Authorization", "X-API-Key", "Cookie", "Origin"):
            for method, path, body in (("POST", f"/plans/{draft}/edits", {"op": "lock"}),
                                       ("POST", f"/plans/{draft}/publish", None),
                                       ("POST", "/events", _event(world)),
                                       ("GET", f"/tiles/{world.plan_id}/14/0/0.mvt", None),
                                       ("GET", "/ogc/collections", None)):
                answer = admin.request(method, path, json=body,
                                       headers={name: raw.encode("latin-1")})
                assert answer.status_code < 500, (name, path, answer.text)


def test_driver_messages_never_reach_a_client(world: World) -> None:
    with world.client() as admin:
        answer = admin.post("/events", json=_event(world, description="a\x00b",
                                                   reporter="\x00"))
        if world.backend == "postgis":   # PostgreSQL refuses NUL in text; SQLite keeps it
            assert answer.status_code == 422, answer.text
            assert "NUL" in answer.json()["detail"]
        for text in ("PostgreSQL", "psycopg", "sqlite3", "(0x00) bytes", "Traceback"):
            assert text not in answer.text


def test_a_500_does_not_close_the_connection(world: World) -> None:
    """Over a real socket with keep-alive: the request after a 500 is answered on the same
    connection."""

    async def boom() -> None:
        raise RuntimeError("a bug")

    world.app.add_api_route("/boom-for-test", boom, methods=["GET"])
    with live_server(world.app, sign_in=False) as running:
        port = int(running.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            stream = conn.makefile("rb")
            for path, status in (("/boom-for-test", 500), ("/healthz", 200),
                                 ("/boom-for-test", 500), ("/readyz", 200)):
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                line = stream.readline()
                assert line.split()[1] == str(status).encode(), (path, line)
                length = 0
                while (header := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    assert not (name.lower() == "connection" and "close" in value.lower())
                body = stream.read(length)
                if status == 500:
                    assert b"internal-error" in body and b"a bug" not in body
