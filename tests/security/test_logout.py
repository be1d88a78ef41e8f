"""Class 11 (sessions): /logout voids the token itself, at once and in every server process,
whether it came as a bearer token or as the cookie."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
from fastapi.testclient import TestClient
from secworld import PASSWORD, World, partitioned, world  # noqa: F401

from api.app import create_app
from gis.database import make_engine


def test_logout_voids_a_bearer_token_in_every_process(world: World) -> None:
    world.account("leaving", "viewer", "*")
    other = create_app(world.settings, make_engine(world.url))
    with TestClient(world.app) as one, TestClient(other) as two:
        token = one.post("/token", data={"username": "leaving", "password": PASSWORD}
                         ).json()["access_token"]
        one.cookies.clear()
        bearer = {"Authorization": f"Bearer {token}"}
        assert one.get("/me", headers=bearer).status_code == 200
        assert two.get("/me", headers=bearer).status_code == 200   # cached in process 2
        assert one.post("/logout", headers=bearer).status_code == 204
        for client in (one, two):
            answer = client.get("/me", headers=bearer)
            assert answer.status_code == 401, answer.text
            assert "signed out" in answer.json()["detail"]
        # Signing in again gives a token that works.
        fresh = one.post("/token", data={"username": "leaving", "password": PASSWORD}
                         ).json()["access_token"]
        assert two.get("/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_logout_voids_the_cookie_token_not_only_the_cookie(world: World) -> None:
    world.account("pages", "viewer", "*")
    with TestClient(world.app) as browser:
        assert browser.post("/token", data={"username": "pages", "password": PASSWORD}
                            ).status_code == 200
        stolen = browser.cookies.get("gridmap_token")
        assert browser.get("/me").status_code == 200
        out = browser.post("/logout")
        assert out.status_code == 204 and "gridmap_token" in out.headers["set-cookie"]
        browser.cookies.clear()
        browser.cookies.set("gridmap_token", stolen)   # kept by whoever copied it
        assert browser.get("/me").status_code == 401


def test_logout_without_or_with_a_bad_token_is_harmless(world: World) -> None:
    with TestClient(world.app) as client:
        assert client.post("/logout").status_code == 204
        assert client.post("/logout", headers={"Authorization": "Bearer junk"}
                           ).status_code == 204
