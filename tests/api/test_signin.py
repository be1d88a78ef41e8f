"""Signing in: the OAuth2 password flow, tokens that expire or are voided, API keys, the
per-account rate limit, the `gridmap user` commands and the sign-in page in Chromium."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from browser import live_server, open_page
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from gis.accounts import add_account, change_account, create_api_key, revoke_api_keys
from gis.database import make_engine
from gis.models.base import utcnow
from gis.settings import Settings

PASSWORD = "correct horse battery"


@pytest.fixture()
def app(db_url: str) -> Any:
    settings = Settings(database_url=db_url, escalation_interval_s=0,
                        event_rate_per_minute=60, event_rate_burst=3)
    made = create_app(settings)
    made.state.auth.ttl = 0.0     # see account changes at once (5 s in service)
    add_account(made.state.engine, "wang", PASSWORD, "operator", "*", "王芳")
    return made


def _token(client: TestClient, password: str = PASSWORD) -> Any:
    return client.post("/token", data={"username": "wang", "password": password})


def test_password_flow_gives_a_token_that_works(app: Any) -> None:
    with TestClient(app) as client:
        answer = _token(client)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 480 * 60
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        me = client.get("/me", headers=auth).json()
        assert me == {"username": "wang", "display_name": "王芳", "role": "operator",
                      "areas": ["*"], "disabled": False}
        # The answer also set the HttpOnly cookie the pages use.
        assert "httponly" in answer.headers["set-cookie"].lower()
        assert "samesite=strict" in answer.headers["set-cookie"].lower()
        assert client.get("/events").status_code == 200     # by the cookie alone
        wrong = _token(TestClient(app), "not the password")
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        unknown = TestClient(app).post("/token", data={"username": "li", "password": "x" * 12})
        assert unknown.status_code == 401


def test_disabling_or_a_new_password_voids_tokens(app: Any) -> None:
    engine = app.state.engine
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {_token(client).json()['access_token']}"}
        assert client.get("/me", headers=auth).status_code == 200
        change_account(engine, "wang", disabled=True)
        refused = client.get("/me", headers=auth)
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
        assert _token(client).status_code == 401             # no new token either
        change_account(engine, "wang", disabled=False)
        time.sleep(0.01)
        fresh = {"Authorization": f"Bearer {_token(client).json()['access_token']}"}
        change_account(engine, "wang", password="another good password")
        stale = client.get("/me", headers=fresh)
        assert stale.status_code == 401 and "sign in again" in stale.json()["detail"]
        assert _token(client, "another good password").status_code == 200


def test_expired_forged_and_garbage_tokens_are_refused(app: Any) -> None:
    auth = app.state.auth
    with TestClient(app) as client:
        account = add_account(app.state.engine, "li", PASSWORD, "viewer", "440111")
        now = utcnow()
        claims = {"sub": "li", "iat": now - timedelta(hours=9),
                  "exp": now - timedelta(hours=1), "ver": account.changed_at.timestamp(),
                  "jti": "made-by-hand"}
        expired = jwt.encode(claims, auth.secret, algorithm="HS256")
        answer = client.get("/me", headers={"Authorization": f"Bearer {expired}"})
        assert answer.status_code == 401 and "expired" in answer.json()["detail"]
        forged = jwt.encode({**claims, "exp": now + timedelta(hours=1)}, "guessed secret",
                            algorithm="HS256")
        assert client.get("/me", headers={"Authorization": f"Bearer {forged}"}
                          ).status_code == 401
        for junk in ("", "abc", "a.b.c", "Bearer"):
            assert client.get("/me", headers={"Authorization": f"Bearer {junk}"}
                              ).status_code == 401


def test_api_keys_work_until_revoked(app: Any) -> None:
    engine = app.state.engine
    key = create_api_key(engine, "wang", "hotline")
    with TestClient(app) as client:
        assert client.get("/me", headers={"X-API-Key": key}).json()["username"] == "wang"
        assert revoke_api_keys(engine, "wang", "hotline") == 1
        assert client.get("/me", headers={"X-API-Key": key}).status_code == 401
        assert client.get("/me", headers={"X-API-Key": key + "x"}).status_code == 401


def test_event_creation_is_rate_limited_per_account(app: Any, tmp_path: Path) -> None:
    """Three at once, then one a second (60 a minute): the fourth in a row gets 429 with
    Retry-After; another account is not held back."""
    engine = app.state.engine
    wang = {"X-API-Key": create_api_key(engine, "wang", "t")}
    add_account(engine, "li", PASSWORD, "reporter", "*")
    li = {"X-API-Key": create_api_key(engine, "li", "t")}
    event = {"x": 113.3, "y": 23.2, "coord_sys": "wgs84", "category": "sanitation",
             "source": "hotline"}
    with TestClient(app) as client:
        # No plan is published here: each accepted request ends in a 409, after the limit.
        codes = [client.post("/events", json=event, headers=wang).status_code
                 for _ in range(4)]
        assert codes[:3] == [409, 409, 409] and codes[3] == 429, codes
        limited = client.post("/events", json=event, headers=wang)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "per minute" in limited.json()["detail"]
        assert client.post("/events", json=event, headers=li).status_code == 409


def test_user_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.sqlite'}"
    runner = CliRunner()
    made = runner.invoke(cli, ["user", "add", "root", "--role", "admin", "--area", "*",
                               "--password-stdin", "--database-url", url],
                         input="a long enough password\n")
    assert made.exit_code == 0, made.output
    short = runner.invoke(cli, ["user", "add", "li", "--role", "viewer", "--area", "440111",
                                "--password-stdin", "--database-url", url], input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    bad = runner.invoke(cli, ["user", "add", "li", "--role", "boss", "--area", "440111",
                              "--password-stdin", "--database-url", url],
                        input="a long enough password\n")
    assert bad.exit_code == 1 and "unknown role" in bad.output
    area = runner.invoke(cli, ["user", "add", "li", "--role", "viewer", "--area", "44x",
                               "--password-stdin", "--database-url", url],
                         input="a long enough password\n")
    assert area.exit_code == 1 and "not an area code" in area.output
    assert runner.invoke(cli, ["user", "passwd", "root", "--password-stdin",
                               "--database-url", url], input="a new long password\n"
                         ).exit_code == 0
    assert runner.invoke(cli, ["user", "disable", "root", "--database-url", url]).exit_code == 0
    listed = runner.invoke(cli, ["user", "list", "--database-url", url])
    assert "root" in listed.output and "disabled" in listed.output
    key = runner.invoke(cli, ["user", "key", "root", "--name", "qgis", "--database-url", url])
    assert key.exit_code == 0 and key.output.strip().startswith("gm_")
    gone = runner.invoke(cli, ["user", "disable", "nobody", "--database-url", url])
    assert gone.exit_code == 1 and "no account" in gone.output
    engine = make_engine(url)
    app = create_app(Settings(database_url=url), engine)
    with TestClient(app) as client:   # disabled: neither the key nor the password works
        assert client.get("/me", headers={"X-API-Key": key.output.strip()}).status_code == 401
        assert client.post("/token", data={"username": "root",
                                           "password": "a new long password"}
                           ).status_code == 401


def test_the_sign_in_page_in_chromium(browser: Any, postgis_url: str) -> None:
    """A page opened without signing in leads to the sign-in page; a wrong password says so
    in Chinese; the right one leads back to the page."""
    app = create_app(Settings(database_url=postgis_url, escalation_interval_s=0))
    add_account(app.state.engine, "zhao", PASSWORD, "viewer", "*")
    with live_server(app, sign_in=False) as running:
        page, errors = open_page(browser, f"{running.url}/")
        try:
            assert "/login?next=/" in page.url
            page.fill("input[name=username]", "zhao")
            page.fill("input[name=password]", "wrong password!")
            page.click("button[type=submit]")
            page.wait_for_selector("#error:not(:empty)")
            assert "用户名或密码错误" in page.inner_text("#error")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{running.url}/")
            assert "网格" in page.content()
            cookie = [c for c in page.context.cookies() if c["name"] == "gridmap_token"]
            assert cookie and cookie[0]["httpOnly"] and cookie[0]["sameSite"] == "Strict"
            # The console shows the one 401 of the wrong password, nothing else.
            assert not errors.exceptions, errors.exceptions
            assert all("401" in m for m in errors.console), errors.console
        finally:
            page.close()
