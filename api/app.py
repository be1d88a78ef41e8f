"""The FastAPI service: app factory, shared state, size limits, security headers, the API's
documentation page, health and readiness."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from api import problems
from api.audit import AuditLog, AuditRequests
from api.auth import (
    Authenticator,
    CrossSiteGuard,
    PrivateAnswers,
    Scopes,
    api_routes,
    declare_security,
)
from api.headers import SecurityHeaders
from api.jobs import JobRunner
from api.ratelimit import RateLimit
from events.geocode import IndexCache
from events.router_cache import RouterCache
from events.rules import Rules
from events.store import escalate_overdue, recover_imports
from gis.database import check_schema, is_sqlite, make_engine, ping
from gis.errors import GridmapError
from gis.models.base import utcnow
from gis.settings import Settings, get_settings
from maps.apidocs import docs_html
from maps.assets import STATIC
from partitioning.cluster import shared_compute

log = logging.getLogger("gridmap.api")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = 512 * 2**20) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # An HTTPException passes FastAPI's body parsing untouched (ours would
                    # become its 400); problems.install answers it as PayloadTooLarge.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return (f"the request body is over the limit of {self.limit // 2**20} MB; split the "
                "upload (e.g. one layer per request is not possible, so clip the territory) "
                "or raise GRIDMAP_MAX_UPLOAD_MB on the server")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Answered before the app sees the request (its handlers are not reached from
        # here), from the same table.
        await problems.answer(problems.PayloadTooLarge(self._message()), Request(scope))(
            scope, receive, send)


def operation_id(route: APIRoute) -> str:
    """``<module>_<function>`` (``accounts_create``, ``exports_export``, ``ogc_items``): what a
    generated client names the call, readable and unique."""
    module = route.endpoint.__module__.rsplit(".", 1)[-1]
    return f"{'service' if module == 'app' else module}_{route.name}"


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The service over the store at ``settings.database_url`` (or the given engine)."""
    settings = settings or get_settings()
    if engine is None:
        pool: dict[str, Any] = {"connect_args": {
            "timeout": settings.sqlite_busy_timeout_s}} if is_sqlite(settings.database_url) \
            else {
            "pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout_s,
            "connect_args": {"connect_timeout": settings.db_connect_timeout_s}}
        engine = make_engine(settings.database_url, **pool)

    runner = JobRunner(engine, settings.job_workers, settings.job_stale_after_s,
                       settings.job_timeout_s,
                       shared_compute(settings.dask_scheduler, settings.dask_workers),
                       nice=settings.dask_nice,
                       limit_per_account=settings.job_limit_per_account,
                       limit_per_territory=settings.job_limit_per_territory,
                       retry_after_s=settings.job_retry_after_s)
    rules = Rules.load(settings.event_rules_path or None, settings.yellow_share)
    stop = threading.Event()

    def escalate_periodically(app: FastAPI) -> None:
        while not stop.wait(settings.escalation_interval_s):
            try:
                escalate_overdue(engine, rules, app.state.clock())
            except Exception as exc:  # the database may be away for a while
                log.warning("automatic escalation skipped: %s", exc)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            runner.recover()
            if engine.dialect.name == "sqlite":
                recover_imports(engine, settings.job_stale_after_s)
        except Exception as exc:  # the database may be down at start: /readyz says so
            log.warning("could not check for orphaned jobs at start: %s", exc)
        app.state.audit.start()
        if settings.escalation_interval_s > 0:
            threading.Thread(target=escalate_periodically, args=(app,), daemon=True,
                             name="gridmap-escalation").start()
        yield
        stop.set()
        runner.shutdown()
        app.state.audit.stop()

    app = FastAPI(
        title="gridmap 网格化服务管理",
        version="0.1.0",
        description="Territories, partition jobs, versioned grid plans, exports and an "
                    "OGC API – Features endpoint for grid-based community governance. "
                    "Errors are RFC 9457 problem details (application/problem+json).",
        lifespan=lifespan,
        # /docs is served below from the vendored Swagger UI (FastAPI's own loads it from a
        # CDN, with an inline script); ReDoc is not offered.
        docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,
        # Names the request bodies and answers after the operation (Body_accounts_token),
        # not after the function, path and method (Body_token_token_post).
        generate_unique_id_function=operation_id,
    )
    app.docs_url = "/docs"   # read by the OGC landing page's service-doc link
    app.state.engine = engine
    app.state.settings = settings
    app.state.jobs = runner
    app.state.rules = rules
    app.state.routers = RouterCache(engine, settings.near_boundary_m)
    app.state.geocoders = IndexCache(engine)
    #: The clock events are timed by (tests replace it).
    app.state.clock = utcnow
    app.state.auth = Authenticator(engine, settings.token_minutes)
    app.state.scopes = Scopes(engine)
    app.state.audit = AuditLog(engine)
    app.state.event_limit = RateLimit(settings.event_rate_per_minute, settings.event_rate_burst)
    problems.install(app)

    from api.routes import (
        accounts,
        areas,
        edits,
        events,
        exports,
        field,
        geocode,
        ogc,
        open311,
        overlays,
        pages,
        plans,
        posters,
        screen,
        territories,
        tiles,
        workspace,
    )

    for module in (accounts, territories, overlays, plans, edits, areas, events, geocode, open311,
                   field, exports, ogc, tiles, posters, pages, screen, workspace):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    ogc.describe_limit(app, settings)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The database is reachable and migrated",
             responses={503: {"description": "Not ready: the database is unreachable or "
                                             "not migrated"}})
    def readyz(request: Request) -> Any:
        audit = app.state.audit.health()
        try:
            ping(engine)
            check_schema(engine)
        except GridmapError as exc:
            return problems.problem_response(503, exc.code, "Not ready 未就绪", exc.message,
                                             request, audit=audit)
        # Ready even with entries quarantined or dropped (the service works), but said here
        # and in the log, for whoever watches.
        return {"status": "ready", "audit": audit}

    # No OAuth2 redirect page: the API signs in by the password flow, which needs none.
    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(docs_html(app.title, app.openapi_url or "/openapi.json"))

    @app.get("/problems", tags=["health"], summary="Every problem type the API reports")
    def problem_types() -> dict[str, dict[str, Any]]:
        return problems.catalogue()

    # Innermost first: an unhandled error becomes a 500 the audit log still sees, and the
    # connection stays open for the client's next request.
    app.add_middleware(problems.CatchAll)
    app.add_middleware(CrossSiteGuard, trusted=tuple(settings.trusted_origins.split(",")))
    app.add_middleware(PrivateAnswers)
    app.add_middleware(AuditRequests)
    app.add_middleware(BodyLimit, limit=settings.max_upload_mb * 2**20)
    # Compress answers over 1 kB for clients that accept it (GeoJSON shrinks ~7x).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    declare_security(app, api_routes(app.routes))
    problems.declare_problems(app, {(m.lower(), r.path): operation_id(r)
                                    for r in api_routes(app.routes) if r.include_in_schema
                                    for m in (r.methods or ())})
    _outermost(app, lambda inner: SecurityHeaders(inner, settings.basemap_url,
                                                    settings.basemap_labels_url))
    return app


def _outermost(app: FastAPI, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Wrap the whole middleware stack, Starlette's error middleware included, so that a 500
    answer carries the security headers too (``add_middleware`` puts a middleware inside it)."""
    build = app.build_middleware_stack

    def build_wrapped() -> Any:
        return wrap(build())

    app.build_middleware_stack = build_wrapped  # type: ignore[method-assign]
