"""Accounts for tests: an API key per (database, account), made once, and clients using it."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gis.accounts import add_account, create_api_key, get_account
from gis.errors import NotFound

#: The administrator every test client acts as unless it signs in otherwise.
ADMIN = "test-admin"
_keys: dict[tuple[str, str], str] = {}


def account_key(engine: Engine, username: str = ADMIN, role: str = "admin",
                areas: str = "*", display_name: str | None = None) -> str:
    """An API key of the account (created with a random password when missing)."""
    where = (engine.url.render_as_string(hide_password=False), username)
    if where not in _keys:
        try:
            get_account(engine, username)
        except NotFound:
            add_account(engine, username, secrets.token_urlsafe(12), role, areas,
                        display_name)
        _keys[where] = create_api_key(engine, username, "tests")
    return _keys[where]


def headers_for(engine: Engine, username: str = ADMIN, role: str = "admin",
                areas: str = "*") -> dict[str, str]:
    return {"X-API-Key": account_key(engine, username, role, areas)}


def admin_headers(engine: Engine) -> dict[str, str]:
    return headers_for(engine)


def client_for(app: Any, **kwargs: Any) -> TestClient:
    """A TestClient of ``app`` signed in as the test administrator."""
    return TestClient(app, headers=admin_headers(app.state.engine), **kwargs)
