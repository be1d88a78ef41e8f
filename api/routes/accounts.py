"""Signing in (OAuth2 password flow, the sign-in page), accounts, API keys and the audit log."""

from __future__ import annotations

import asyncio
import hashlib
import os
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

from api.audit import storable
from api.auth import COOKIE, PERMISSIONS, ROLE_NAMES, Admin, Authenticator, authenticate
from api.deps import PAGE_HEADERS, Id, Limit, Offset, get_engine, get_settings, paged
from api.problems import Busy, TooManyRequests, Unauthorized
from gis import accounts
from gis.models.base import utcnow
from gis.paging import Page
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


class KeyListed(BaseModel):
    id: int
    name: str
    created_at: str | None
    revoked_at: str | None


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


def _password_checks(request: Request) -> asyncio.Semaphore:
    """The process's bound on argon2id checks running at once (64 MiB each)."""
    state = request.app.state
    found: asyncio.Semaphore | None = getattr(state, "password_checks", None)
    if found is None:
        settings: Settings = state.settings
        found = asyncio.Semaphore(settings.password_checks or os.cpu_count() or 2)
        state.password_checks = found
    return found


def _throttle_keys(request: Request, username: str) -> tuple[str, str]:
    """The counters of a sign-in: the account named (hashed: any text may be typed) and the
    client's address (behind a proxy, run uvicorn with --forwarded-allow-ips so that this
    is the client's and not the proxy's)."""
    name = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    address = request.client.host if request.client else "unknown"
    return f"signin:account:{name}", f"signin:address:{storable(address, 100)}"


def _too_many(settings: Settings, hits: tuple[int, int], start: tuple[datetime, datetime],
              now: datetime) -> TooManyRequests | None:
    """429 when the account's or the address's failures are over their limit."""
    for n, began, limit, what in ((hits[0], start[0], settings.signin_failures_per_account,
                                   "for this account"),
                                  (hits[1], start[1], settings.signin_failures_per_address,
                                   "from this address")):
        if limit > 0 and n > limit:
            wait = max(1, int((began - now).total_seconds() + settings.signin_window_s + 1))
            return TooManyRequests(
                f"登录失败次数过多 too many failed sign-ins {what} (more than {limit} in "
                f"{settings.signin_window_s // 60} min): wait {wait} s before trying again, "
                "or ask an administrator (GRIDMAP_SIGNIN_FAILURES_PER_ACCOUNT / "
                "_PER_ADDRESS)", wait)
    return None


@router.post("/token", response_model=TokenOut,
             responses={**UNAUTHORIZED, 429: {"description": "Too many failed sign-ins (for "
                                                             "the account or the address)"}},
             summary="Sign in: a token for a username and password (OAuth2 password flow)",
             description="Send the token as `Authorization: Bearer <token>`. The answer also "
                         "sets an HttpOnly sign-in cookie for the pages. Failed sign-ins are "
                         "throttled per account and per client address (429 with "
                         "Retry-After; docs/security.md).")
async def token(request: Request, response: Response,
                form: Annotated[OAuth2PasswordRequestForm, Depends()],
                engine: Annotated[Engine, Depends(get_engine)],
                settings: Annotated[Settings, Depends(get_settings)]) -> TokenOut:
    audit = request.app.state.audit
    keys = _throttle_keys(request, form.username)
    now = utcnow()
    # Every try is counted before the password is checked (parallel tries cannot all slip
    # through before the first failure is counted); a success takes its own back.
    counted = [await run_in_threadpool(accounts.throttle_hit, engine, k,
                                       settings.signin_window_s, now) for k in keys]
    refusal = _too_many(settings, (counted[0][0], counted[1][0]),
                        (counted[0][1], counted[1][1]), now)
    if refusal is not None:
        # A refused try costs nothing: it gives its hits back, so that the counts say how
        # many passwords were checked (a flood on one account does not also use up the
        # address's allowance), while the window still ends when it was going to.
        for k in keys:
            await run_in_threadpool(accounts.throttle_hit, engine, k,
                                    settings.signin_window_s, now, -1)
        audit.record(username=form.username[:60], role=None, action="login-throttled",
                     method="POST", path="/token", status=429)
        raise refusal
    checks = _password_checks(request)
    try:
        await asyncio.wait_for(checks.acquire(), settings.signin_wait_s)
    except TimeoutError as exc:
        raise Busy("登录请求过多 too many sign-ins are being checked at once: retry in a few "
                   "seconds", 5) from exc
    try:
        account = await run_in_threadpool(accounts.verify_password, engine, form.username,
                                          form.password)
    finally:
        checks.release()
    if account is None:
        audit.record(username=form.username[:60], role=None, action="login-failed",
                     method="POST", path="/token", status=401)
        raise Unauthorized("wrong username or password, or the account is disabled")
    await run_in_threadpool(accounts.throttle_clear, engine, keys[0])
    await run_in_threadpool(accounts.throttle_hit, engine, keys[1], settings.signin_window_s,
                            now, -1)
    auth: Authenticator = request.app.state.auth
    issued, seconds = auth.issue(account)
    audit.record(username=account.username, role=account.role, action="login",
                 method="POST", path="/token", status=200)
    _set_cookie(response, issued, seconds, settings.secure_cookies)
    return TokenOut(access_token=issued, expires_in=seconds)


@router.post("/logout", status_code=204,
             summary="Sign out: the token (bearer or cookie) is voided and the cookie dropped")
async def logout(request: Request) -> Response:
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else \
        request.cookies.get(COOKIE)
    if token:
        if auth._secret is None:
            await run_in_threadpool(lambda: auth.secret)
        try:
            claims = auth.claims(token)
        except Unauthorized:
            claims = None   # expired or not ours: nothing to void
        if claims is not None:
            await run_in_threadpool(auth.revoke, claims)
            request.app.state.audit.record(
                username=str(claims["sub"])[:60], role=None, action="logout",
                method="POST", path="/logout", status=204)
    answer = Response(status_code=204)
    answer.delete_cookie(COOKIE, path="/")
    return answer


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


@router.get("/accounts", response_model=list[AccountOut], summary="Every account (admin)",
            responses=PAGE_HEADERS)
def list_all(who: Admin, engine: Annotated[Engine, Depends(get_engine)], request: Request,
             response: Response, limit: Limit = 1_000, offset: Offset = 0) -> Any:
    page = Page(limit, offset)
    return paged(request, response, page,
                 accounts.accounts_page(engine, page).map(lambda a: a.as_json()))


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
                                                "keys themselves)",
            response_model=list[KeyListed], responses=PAGE_HEADERS)
def keys(username: str, who: Admin, engine: Annotated[Engine, Depends(get_engine)],
         request: Request, response: Response, limit: Limit = 1_000,
         offset: Offset = 0) -> Any:
    page = Page(limit, offset)
    return paged(request, response, page, accounts.api_keys_page(engine, username, page))


@router.delete("/accounts/{username}/keys/{key_id}", status_code=204,
               summary="Revoke one API key (admin)",
               responses={404: {"description": "No such key of this account"}})
def revoke_key(username: str, key_id: Id, who: Admin,
               engine: Annotated[Engine, Depends(get_engine)]) -> Response:
    # A revoked key stops working within api.auth.ACCOUNT_TTL_S (the accounts' cache).
    accounts.revoke_api_key(engine, username, key_id)
    return Response(status_code=204)


@router.get("/audit", summary="The audit log, newest first (admin)", responses=PAGE_HEADERS)
def audit_log(who: Admin, engine: Annotated[Engine, Depends(get_engine)], request: Request,
              response: Response,
              username: Annotated[str | None, Query(max_length=60)] = None,
              since: datetime | None = None,
              until: datetime | None = None,
              action: Annotated[str | None, Query(max_length=16, description=(
                  "read, change, denied, login, login-failed"))] = None,
              path: Annotated[str | None, Query(max_length=400, description=(
                  "Requests whose path starts with this"))] = None,
              status: Annotated[int | None, Query(ge=100, le=599)] = None,
              limit: Limit = 100, offset: Offset = 0) -> list[dict[str, Any]]:
    request.app.state.audit.flush()  # what was just done is in the answer
    page = Page(limit, offset)
    return paged(request, response, page, accounts.audit_page(
        engine, page, username=username, since=since, until=until, action=action, path=path,
        status=status))


def role_table() -> dict[str, Any]:
    """Roles with their Chinese names and permissions (for the docs and /roles)."""
    return {r: {"name": ROLE_NAMES[r], "permissions": sorted(p)}
            for r, p in PERMISSIONS.items()}


@router.get("/roles", summary="The roles and what each may do")
def roles() -> dict[str, Any]:
    return role_table()
