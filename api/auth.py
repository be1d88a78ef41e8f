"""Who is asking: tokens, API keys and sign-in cookies; roles, permissions and area scopes."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy import ColumnElement, Engine
from starlette.concurrency import run_in_threadpool

from api.asgi import HttpMiddleware
from api.problems import Forbidden, Unauthorized
from gis import accounts
from gis.accounts import AccountInfo
from gis.errors import NotFound
from gis.models.base import utcnow
from gis.plans import get_plan
from gis.store import list_territories, territory_roots

#: What each role may do. ``personal`` = names and phone numbers in events unmasked.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"plans:read", "plans:write", "events:read", "events:create",
                        "events:import", "events:act", "staff:write", "personal",
                        "accounts"}),
    "planner": frozenset({"plans:read", "plans:write"}),
    "operator": frozenset({"plans:read", "events:read", "events:create", "events:import",
                           "events:act", "staff:write", "personal"}),
    "grid_worker": frozenset({"plans:read", "events:read", "events:create", "events:act",
                              "personal"}),
    "reporter": frozenset({"events:create"}),
    "viewer": frozenset({"plans:read"}),
}
ROLE_NAMES = {"admin": "管理员", "planner": "规划员", "operator": "指挥中心操作员",
              "grid_worker": "网格员", "reporter": "上报员", "viewer": "只读用户"}
COOKIE = "gridmap_token"
ALGORITHM = "HS256"
#: How long a resolved account is trusted before the store is asked again (seconds): a
#: disabled account or a changed password takes effect within this time.
ACCOUNT_TTL_S = 5.0

@dataclass(frozen=True)
class Principal:
    """The signed-in account a request acts as."""

    username: str
    role: str
    areas: tuple[str, ...]
    display_name: str | None = None
    #: The account's id (never reused): the scope of its idempotency keys.
    account_id: int = 0

    @property
    def everywhere(self) -> bool:
        return self.areas == ("*",)

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def covers(self, code: str | None) -> bool:
        """The area (or grid) with this code lies within the account's areas."""
        if self.everywhere:
            return True
        return bool(code) and any(str(code).startswith(a) for a in self.areas)

    def overlaps(self, code: str | None) -> bool:
        """The area with this code contains or lies within one of the account's areas."""
        if self.everywhere:
            return True
        return bool(code) and any(str(code).startswith(a) or a.startswith(str(code))
                                  for a in self.areas)

    def where(self, column: Any) -> ColumnElement[bool] | None:
        """A filter keeping rows whose code column lies within the areas (None: all)."""
        return accounts.within_areas(column, self.areas)

    @property
    def label(self) -> str:
        return self.display_name or self.username


def _principal(account: AccountInfo) -> Principal:
    return Principal(account.username, account.role, account.areas, account.display_name,
                     account.id)


class Authenticator:
    """Checks tokens and keys against the store, with a short cache so a request costs no
    database round trip when the same account asked a moment ago."""

    def __init__(self, engine: Engine, token_minutes: int) -> None:
        self.engine = engine
        self.lifetime = timedelta(minutes=token_minutes)
        #: Seconds an account read from the store is trusted (see ACCOUNT_TTL_S).
        self.ttl = ACCOUNT_TTL_S
        self._secret: str | None = None
        self._lock = threading.Lock()
        self._accounts: OrderedDict[str, tuple[float, AccountInfo | None]] = OrderedDict()
        #: Tokens signed out through this process (the store holds every process's).
        self._revoked: set[str] = set()

    @property
    def secret(self) -> str:
        if self._secret is None:
            self._secret = accounts.service_secret(self.engine, "token-signing-key")
        return self._secret

    def issue(self, account: AccountInfo) -> tuple[str, int]:
        """A signed token for the account, and its lifetime in seconds."""
        now = utcnow()
        claims = {"sub": account.username, "iat": now, "exp": now + self.lifetime,
                  "ver": account.changed_at.timestamp(),
                  # The token's own id: signing out revokes it (revoked_tokens).
                  "jti": secrets.token_urlsafe(16)}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM), int(
            self.lifetime.total_seconds())

    def fresh(self, key: str) -> bool:
        """Whether the account behind ``key`` is known without asking the store (then a
        request is answered on the event loop, without a thread hop)."""
        with self._lock:
            hit = self._accounts.get(key)
        return hit is not None and time.monotonic() - hit[0] < self.ttl

    def _cached(self, key: str, load: Any) -> AccountInfo | None:
        now = time.monotonic()
        with self._lock:
            hit = self._accounts.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        found = load()
        with self._lock:
            self._accounts[key] = (now, found)
            self._accounts.move_to_end(key)
            while len(self._accounts) > 10_000:
                self._accounts.popitem(last=False)
        return found

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature and expiry are checked (401 if not)."""
        try:
            return dict(jwt.decode(token, self.secret, algorithms=[ALGORITHM],
                                   options={"require": ["sub", "exp", "ver", "jti"]}))
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired: sign in again (POST /token)") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("the token is not valid: sign in again (POST /token)") from exc

    def revoke(self, claims: dict[str, Any]) -> None:
        """Void the token of these claims for every process (signing out)."""
        from datetime import UTC, datetime

        jti = str(claims["jti"])
        with self._lock:
            self._revoked.add(jti)
        accounts.revoke_token(self.engine, jti, datetime.fromtimestamp(
            float(claims["exp"]), UTC))

    def check_revoked(self, claims: dict[str, Any]) -> None:
        """401 for a token signed out in any process (asked of the store each time: a
        token must stop at once everywhere, not after a cache's lifetime)."""
        jti = str(claims["jti"])
        if jti in self._revoked or accounts.is_revoked(self.engine, jti):
            raise Unauthorized("the token was signed out (POST /logout): sign in again")

    def from_token(self, token: str, claims: dict[str, Any] | None = None,
                   checked: bool = False) -> Principal:
        """The account of a token; ``checked``: its revocation was already asked."""
        claims = claims or self.claims(token)
        if not checked:
            self.check_revoked(claims)
        username = str(claims["sub"])

        def load() -> AccountInfo | None:
            try:
                return accounts.get_account(self.engine, username)
            except NotFound:
                return None

        account = self._cached("u:" + username, load)
        if account is None or account.disabled:
            raise Unauthorized(f"the account {username!r} is disabled or gone")
        if abs(account.changed_at.timestamp() - float(claims["ver"])) > 1e-3:
            raise Unauthorized("the account changed since this token was issued (password, "
                               "role or areas): sign in again")
        return _principal(account)

    def from_key(self, key: str) -> Principal:
        account = self._cached("k:" + key, lambda: accounts.account_of_key(self.engine, key))
        if account is None:
            raise Unauthorized("the API key is unknown, revoked, or its account disabled")
        return _principal(account)


async def authenticate(request: Request) -> Principal:
    """The account behind the request's bearer token, API key or sign-in cookie; 401
    without one. Kept on the request for the audit log."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is not None:
        return found
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization", "")
    key = request.headers.get("x-api-key")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    if token is None and not key:
        token = request.cookies.get(COOKIE)
    # An account read a moment ago is answered here; otherwise the store is asked in a
    # worker thread (the event loop never waits for the database).
    if token:
        if auth._secret is None:   # read from the store once
            await run_in_threadpool(lambda: auth.secret)
        claims = auth.claims(token)
        # One thread hop: the revocation check (and the account, unless read a moment ago).
        if auth.fresh(f"u:{claims['sub']}"):
            await run_in_threadpool(auth.check_revoked, claims)
            found = auth.from_token(token, claims, checked=True)
        else:
            found = await run_in_threadpool(auth.from_token, token, claims)
    elif key:
        found = auth.from_key(key) if auth.fresh("k:" + key) else \
            await run_in_threadpool(auth.from_key, key)
    else:
        raise Unauthorized("sign in first: send Authorization: Bearer <token> (POST /token) "
                           "or X-API-Key: <key>")
    request.state.principal = found
    return found


def needs(permission: str) -> Any:
    """A dependency: the signed-in account, which must hold ``permission`` (403 if not)."""

    async def check(request: Request) -> Principal:
        who = await authenticate(request)
        if not who.can(permission):
            raise Forbidden(f"a {who.role} ({ROLE_NAMES.get(who.role, who.role)}) account "
                            f"may not do this (needs {permission})")
        return who

    check.permission = permission  # type: ignore[attr-defined]  # read by declare_security
    return Depends(check)


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every API route, also those of included routers (which FastAPI keeps nested)."""
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            out += api_routes(route.original_router.routes)
    return out


def declare_security(app: Any, routes: list[APIRoute]) -> None:
    """Name the sign-in schemes in the OpenAPI document (for /docs' Authorize button and
    clients), on every operation guarded by :func:`needs`. Declared here rather than as
    sub-dependencies of each guard, which cost every request two more dependency calls."""
    generate = app.openapi
    guarded = {(m.lower(), r.path) for r in routes for m in (r.methods or ())
               if any(hasattr(d.call, "permission") for d in r.dependant.dependencies)}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return dict(app.openapi_schema)
        schema = generate()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["OAuth2PasswordBearer"] = {
            "type": "oauth2", "description": "A token from POST /token (OAuth2 password flow)",
            "flows": {"password": {"tokenUrl": "/token", "scopes": {}}}}
        schemes["APIKeyHeader"] = {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                   "description": "A long-lived key: `gridmap user key`"}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (method, path) in guarded:
                    operation["security"] = [{"OAuth2PasswordBearer": []},
                                             {"APIKeyHeader": []}]
                    # what every guarded call may answer (a generated client parses them)
                    answers = operation.setdefault("responses", {})
                    answers.setdefault("401", {"description": "Not signed in, or the token "
                                                              "or key no longer works"})
                    answers.setdefault("403", {"description": "The account's role or areas "
                                                              "do not allow this"})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


PlansRead = Annotated[Principal, needs("plans:read")]
PlansWrite = Annotated[Principal, needs("plans:write")]
EventsRead = Annotated[Principal, needs("events:read")]
EventsCreate = Annotated[Principal, needs("events:create")]
EventsImport = Annotated[Principal, needs("events:import")]
EventsAct = Annotated[Principal, needs("events:act")]
StaffWrite = Annotated[Principal, needs("staff:write")]
Admin = Annotated[Principal, needs("accounts")]


def outside(who: Principal, what: str) -> Forbidden:
    """The refusal for something outside the account's areas."""
    return Forbidden(f"{what} lies outside your areas ({', '.join(who.areas)})")


class Scopes:
    """What territories and plans lie where: a territory's top area codes and a plan's
    territory, remembered per process (neither changes once stored)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._roots: dict[int, tuple[str, ...]] = {}
        self._plans: dict[int, int] = {}

    def roots(self, territory_id: int) -> tuple[str, ...]:
        found = self._roots.get(territory_id)
        if found is None:
            found = territory_roots(self.engine, territory_id)
            self._roots[territory_id] = found
        return found

    def territory_of_plan(self, plan_id: int) -> int:
        found = self._plans.get(plan_id)
        if found is None:
            found = get_plan(self.engine, plan_id).territory_id
            self._plans[plan_id] = found
        return found

    def forget(self, territory_id: int) -> None:
        self._roots.pop(territory_id, None)
        for plan, territory in list(self._plans.items()):
            if territory == territory_id:
                self._plans.pop(plan, None)


def _scopes(request: Request) -> Scopes:
    scopes: Scopes = request.app.state.scopes
    return scopes


def visible(request: Request, who: Principal, territory_id: int) -> bool:
    """Whether the account has an area in the territory."""
    return who.everywhere or any(who.overlaps(r) for r in _scopes(request).roots(territory_id))


def visible_territories(request: Request, who: Principal, engine: Engine) -> list[int] | None:
    """The territories the account has an area in (None: every one), for a list's reader
    to filter on in SQL."""
    if who.everywhere:
        return None
    return [i for i, _ in list_territories(engine) if visible(request, who, i)]


def check_territory(request: Request, who: Principal, territory_id: int,
                    whole: bool = False) -> None:
    """404 for a territory the account has no area in (its existence is not told); with
    ``whole``, 403 unless the account's areas cover all of it (a partition, a publish)."""
    if who.everywhere:
        return
    if not visible(request, who, territory_id):
        raise NotFound(f"no territory {territory_id}")
    roots = _scopes(request).roots(territory_id)
    if whole and not all(who.covers(r) for r in roots):
        raise Forbidden(f"this acts on all of territory {territory_id} "
                        f"({', '.join(roots)}); your areas ({', '.join(who.areas)}) cover "
                        "only part of it")


def check_plan(request: Request, who: Principal, plan_id: int, whole: bool = False) -> int:
    """:func:`check_territory` for the plan's territory; returns the territory's id."""
    if who.everywhere:
        return 0
    territory_id = _scopes(request).territory_of_plan(plan_id)
    check_territory(request, who, territory_id, whole)
    return territory_id


def check_code(who: Principal, code: str | None, what: str) -> None:
    """404 for an area, grid or event outside the account's areas."""
    if not who.covers(code):
        raise NotFound(f"no {what}")


def partial(who: Principal) -> tuple[str, ...] | None:
    """The account's areas when they limit what it sees, None for every area."""
    return None if who.everywhere else who.areas


#: Methods that change nothing (RFC 9110 safe methods): never checked for cross-site use.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Body types the API reads (JSON, uploads, the sign-in form); an unsafe request with any
#: other Content-Type (text/plain is what a cross-site form can send without asking) is 415.
BODY_TYPES = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
#: Routes checked for cross-site use even without a cookie: signing in or out from another
#: site's page would swap or end the victim's session.
SIGN_IN_PATHS = frozenset({"/token", "/logout"})


class CrossSiteGuard:
    """ASGI middleware against cross-site request forgery through the sign-in cookie.

    An unsafe request (POST, PUT, PATCH, DELETE, ...) authenticated by the cookie alone (no
    bearer token, no API key), and any request to ``/token`` or ``/logout``, must come from
    the service's own pages: ``Sec-Fetch-Site`` (sent by current browsers) must be
    ``same-origin`` or ``none``; without it, ``Origin`` (or else ``Referer``) must name this
    host (the ``Host`` header, or one of ``GRIDMAP_TRUSTED_ORIGINS`` behind a proxy that
    rewrites it). A request with none of these headers comes from no browser and passes.
    SameSite=Strict alone is not enough: a page on another port of the same host is the
    same *site*. Bearer and API-key requests are never affected: a browser does not add
    those headers by itself."""

    def __init__(self, app: Any, trusted: tuple[str, ...] = ()) -> None:
        self.app = app
        self.trusted = {t.strip().rstrip("/").lower() for t in trusted if t.strip()}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        refusal = self._media_type(headers) or self._cross_site(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        from api.problems import PROBLEMS, UnsupportedMediaType, problem_response

        status, code, title, detail = refusal
        if status == 415:
            title = PROBLEMS[UnsupportedMediaType].title
        await problem_response(status, code, title, detail, Request(scope))(
            scope, receive, send)

    @staticmethod
    def _media_type(headers: dict[str, str]) -> tuple[int, str, str, str] | None:
        given = headers.get("content-type", "").split(";")[0].strip().lower()
        if not given or given in BODY_TYPES or given.endswith("+json"):
            return None
        return (415, "unsupported-media-type", "",
                f"a request body of type {given!r} is not read by this API: send "
                "application/json (uploads: multipart/form-data; POST /token: "
                "application/x-www-form-urlencoded), or no body")

    def _cross_site(self, scope: Any, headers: dict[str, str]
                    ) -> tuple[int, str, str, str] | None:
        by_cookie = ("authorization" not in headers and "x-api-key" not in headers
                     and f"{COOKIE}=" in headers.get("cookie", ""))
        if not by_cookie and scope.get("path") not in SIGN_IN_PATHS:
            return None
        fetch = headers.get("sec-fetch-site")
        if fetch is not None:
            if fetch.strip().lower() in ("same-origin", "none"):
                return None
            said = f"Sec-Fetch-Site: {fetch}"
        else:
            origin = headers.get("origin") or headers.get("referer")
            if origin is None:
                return None  # not sent by a browser
            if self._ours(origin, headers.get("host", "")):
                return None
            said = f"Origin: {origin}"
        return (403, "cross-site-request", "Cross-site request refused 拒绝跨站请求",
                f"跨站请求被拒绝 this request came from another site's page ({said}) and "
                "would act with the sign-in cookie: send it from the service's own pages, "
                "or authenticate with Authorization: Bearer or X-API-Key (behind a proxy, "
                "list the public origin in GRIDMAP_TRUSTED_ORIGINS)")

    def _ours(self, origin: str, host: str) -> bool:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(origin.strip())
        except ValueError:
            return False
        if not parts.scheme or not parts.netloc:
            return False  # "null" (sandboxed or file pages) and the like
        if f"{parts.scheme}://{parts.netloc}".lower() in self.trusted:
            return True
        return bool(host) and parts.netloc.lower() == host.strip().lower()


class PrivateAnswers(HttpMiddleware):
    """ASGI middleware: an answer to a request that carries credentials (a bearer token, an
    API key or the sign-in cookie) is the account's own, cut to its areas: unless the route
    said otherwise, ``Cache-Control: private`` keeps shared caches (a proxy) from storing it,
    and ``Vary`` names what tells accounts apart. A route's own Cache-Control is kept, made
    private unless it names ``private``, ``public`` or ``no-store`` itself."""

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        names = {k.lower() for k, _ in scope.get("headers") or []}
        credentialed = b"authorization" in names or b"x-api-key" in names or any(
            k.lower() == b"cookie" and f"{COOKIE}=".encode() in v
            for k, v in scope.get("headers") or [])
        if not credentialed:
            await self.app(scope, receive, send)
            return

        async def marked(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers") or []]
                present = {k.lower() for k, _ in headers}
                for i, (k, v) in enumerate(headers):
                    # A route's own policy (no-cache: revalidate with the ETag) made private
                    # unless it says who may keep it.
                    if k.lower() == b"cache-control" and not any(
                            w in v.lower() for w in (b"private", b"public", b"no-store")):
                        headers[i] = (k, b"private, " + v)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"private"))
                if b"vary" not in present:
                    headers.append((b"vary", b"Authorization, X-API-Key, Cookie"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, marked)
