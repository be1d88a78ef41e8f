"""Signing in (OAuth2 password flow, the sign-in page), accounts, API keys and the audit log."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote, urljoin, urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import COOKIE, PERMISSIONS, ROLE_NAMES, Admin, Authenticator, authenticate
from api.deps import Id, get_engine, get_settings
from api.problems import Unauthorized
from gis import accounts
from gis.settings import Settings
from maps.pages import render

router = APIRouter(tags=["accounts"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the token is valid")


class AccountOut(BaseModel):
    username: str
    display_name: str | None
    role: str
    areas: list[str]
    disabled: bool


class AccountIn(BaseModel):
    username: str = Field(min_length=1, max_length=60)
    password: str = Field(min_length=accounts.MIN_PASSWORD, max_length=200)
    role: str
    areas: list[str] = Field(min_length=1, max_length=50,
                             description="Area codes, or [\"*\"] for every area")
    display_name: str | None = Field(None, max_length=100)


class AccountChange(BaseModel):
    password: str | None = Field(None, min_length=accounts.MIN_PASSWORD, max_length=200)
    role: str | None = None
    areas: list[str] | None = Field(None, min_length=1, max_length=50)
    disabled: bool | None = None


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the key is for")


class KeyOut(BaseModel):
    key: str = Field(description="Shown this once: only its hash is stored")
    name: str


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "No valid credentials"}}


def _set_cookie(response: Response, token: str, seconds: int, secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=seconds, httponly=True, samesite="strict",
                        secure=secure, path="/")


@router.post("/token", response_model=TokenOut, responses=UNAUTHORIZED,
             summary="Sign in: a token for a username and password (OAuth2 password flow)",
             description="Send the token as `Authorization: Bearer <token>`. The answer also "
                         "sets an HttpOnly sign-in cookie for the pages.")
async def token(request: Request, response: Response,
                form: Annotated[OAuth2PasswordRequestForm, Depends()],
                engine: Annotated[Engine, Depends(get_engine)],
                settings: Annotated[Settings, Depends(get_settings)]) -> TokenOut:
    account = await run_in_threadpool(accounts.verify_password, engine, form.username,
                                      form.password)
    audit = request.app.state.audit
    if account is None:
        audit.record(username=form.username[:60], role=None, action="login-failed",
                     method="POST", path="/token", status=401)
        raise Unauthorized("wrong username or password, or the account is disabled")
    auth: Authenticator = request.app.state.auth
    issued, seconds = auth.issue(account)
    audit.record(username=account.username, role=account.role, action="login",
                 method="POST", path="/token", status=200)
    _set_cookie(response, issued, seconds, settings.secure_cookies)
    return TokenOut(access_token=issued, expires_in=seconds)


@router.post("/logout", status_code=204, summary="Sign out of the pages (drops the cookie)")
def logout(response: Response) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me", response_model=AccountOut, responses=UNAUTHORIZED,
            summary="The signed-in account: role and areas")
async def me(request: Request, engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    who = await authenticate(request)
    return (await run_in_threadpool(accounts.get_account, engine, who.username)).as_json()


#: What may not appear anywhere in a sign-in's return path, even percent-encoded (once or
#: more): a backslash (browsers read ``/\\host`` as ``//host``) and control characters
#: (URL parsers drop tabs and newlines: ``/\t/host`` is ``//host``).
_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f]")
#: A dot segment (``/../``, ``/./``): a path is given as the pages link it, never with one
#: (``/..//host`` resolves to ``//host``).
_DOT_SEGMENT = re.compile(r"/\.{1,2}(?:/|$|\?|#)")


def safe_next(target: str) -> str:
    """Where to go after signing in: ``target`` when it is a path of this site (with its
    query), else ``/``. Refused: schemes, hosts, ``//``, backslashes, control characters and
    dot segments, also percent-encoded (once or several times)."""
    decoded, seen = target, set()
    while decoded not in seen:            # every layer of percent-encoding
        seen.add(decoded)
        if (not decoded.startswith("/") or decoded.startswith("//")
                or _UNSAFE.search(decoded) or _DOT_SEGMENT.search(decoded)):
            return "/"
        decoded = unquote(decoded)
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or urljoin("http://gridmap.invalid/", target) \
            .split("/", 3)[2] != "gridmap.invalid":
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(next: str = "/") -> HTMLResponse:
    return HTMLResponse(render("login.html", title="登录 · gridmap", next=safe_next(next),
                               styles=["/static/login.css"], scripts=["/static/login.js"]))


@router.get("/accounts", response_model=list[AccountOut], summary="Every account (admin)")
def list_all(who: Admin, engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    return [a.as_json() for a in accounts.list_accounts(engine)]


@router.post("/accounts", response_model=AccountOut, status_code=201,
             summary="Create an account (admin)")
def create(body: AccountIn, who: Admin, engine: Annotated[Engine, Depends(get_engine)]
           ) -> Any:
    return accounts.add_account(engine, body.username, body.password, body.role, body.areas,
                                body.display_name).as_json()


@router.patch("/accounts/{username}", response_model=AccountOut,
              summary="Change an account's password, role, areas or state (admin)")
def change(username: str, body: AccountChange, who: Admin,
           engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    return accounts.change_account(engine, username, password=body.password,
                                   disabled=body.disabled, role=body.role,
                                   areas=body.areas).as_json()


@router.post("/accounts/{username}/keys", response_model=KeyOut, status_code=201,
             summary="A new API key for an account (admin; shown once)")
def new_key(username: str, body: KeyIn, who: Admin,
            engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    return {"key": accounts.create_api_key(engine, username, body.name), "name": body.name}


@router.get("/accounts/{username}/keys", summary="An account's API keys (admin; never the "
                                                "keys themselves)")
def keys(username: str, who: Admin, engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    return accounts.list_api_keys(engine, username)


@router.delete("/accounts/{username}/keys/{key_id}", status_code=204,
               summary="Revoke one API key (admin)",
               responses={404: {"description": "No such key of this account"}})
def revoke_key(username: str, key_id: Id, who: Admin,
               engine: Annotated[Engine, Depends(get_engine)]) -> Response:
    # A revoked key stops working within api.auth.ACCOUNT_TTL_S (the accounts' cache).
    accounts.revoke_api_key(engine, username, key_id)
    return Response(status_code=204)


@router.get("/audit", summary="The audit log, newest first (admin)")
def audit_log(who: Admin, engine: Annotated[Engine, Depends(get_engine)], request: Request,
              username: Annotated[str | None, Query(max_length=60)] = None,
              since: datetime | None = None,
              until: datetime | None = None,
              action: Annotated[str | None, Query(max_length=16, description=(
                  "read, change, denied, login, login-failed"))] = None,
              path: Annotated[str | None, Query(max_length=400, description=(
                  "Requests whose path starts with this"))] = None,
              status: Annotated[int | None, Query(ge=100, le=599)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[dict[str, Any]]:
    request.app.state.audit.flush()  # what was just done is in the answer
    return accounts.read_audit(engine, username=username, since=since, until=until,
                               action=action, path=path, status=status, limit=limit,
                               offset=offset)


def role_table() -> dict[str, Any]:
    """Roles with their Chinese names and permissions (for the docs and /roles)."""
    return {r: {"name": ROLE_NAMES[r], "permissions": sorted(p)}
            for r, p in PERMISSIONS.items()}


@router.get("/roles", summary="The roles and what each may do")
def roles() -> dict[str, Any]:
    return role_table()
