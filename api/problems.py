"""Errors as RFC 9457 problem details, from one table of named exceptions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.asgi import HttpMiddleware
from events.photos import PhotoError, PhotoTooLarge
from events.rules import EventError
from gis.accounts import AccountError
from gis.database import PgInterfaceError, PgOperationalError, is_busy, is_unavailable
from gis.errors import (
    ComputeUnavailable,
    Conflict,
    CoordinateError,
    CRSError,
    DatabaseError,
    EditRefused,
    GridmapError,
    LayerError,
    NotFound,
    PreconditionRequired,
    StaleVersion,
)
from maps.poster import FontMissing, GlyphMissing

log = logging.getLogger("gridmap.api")
MEDIA_TYPE = "application/problem+json"
#: Seconds a client is told to wait (``Retry-After``) when the database is unavailable,
#: and when it is there but busy (another writer holds the lock past the wait allowed).
RETRY_AFTER_S = 5
BUSY_RETRY_AFTER_S = 2
#: Routes whose errors take the Open311 GeoReport v2 form instead of problem details.
OPEN311 = "/open311/"


class PayloadTooLarge(GridmapError):
    """An upload or request body is over the configured limit."""

    code = "payload-too-large"


class BadRequest(GridmapError):
    """A request parameter is malformed (beyond what validation catches)."""

    code = "bad-request"


class NotAcceptable(GridmapError):
    """The client accepts none of the media types the resource is served in."""

    code = "not-acceptable"


class Unauthorized(GridmapError):
    """No valid credentials: sign in (POST /token) or send an API key."""

    code = "unauthorized"


class Forbidden(GridmapError):
    """The account's role or areas do not allow this."""

    code = "forbidden"


class TooManyRequests(GridmapError):
    """Over the account's rate limit: wait and retry (see Retry-After)."""

    code = "too-many-requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseBusy(GridmapError):
    """The database is there but another writer holds it: retry in a few seconds."""

    code = "database-busy"


class Busy(GridmapError):
    """Too much of this work is running at once on the server: retry after Retry-After."""

    code = "busy"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnsupportedMediaType(GridmapError):
    """The request body's Content-Type is not one the route reads."""

    code = "unsupported-media-type"


class TooManyJobs(TooManyRequests):
    """Over the limit of queued or running jobs of an account or a territory: wait for
    one to end (see Retry-After), or cancel one."""

    code = "too-many-jobs"


@dataclass(frozen=True)
class Problem:
    status: int
    title: str


#: Every error the service reports, most specific first: exception → status and title.
PROBLEMS: dict[type[Exception], Problem] = {
    NotFound: Problem(404, "Not found 未找到"),
    Unauthorized: Problem(401, "Sign in first 请先登录"),
    AccountError: Problem(422, "The account cannot be saved 账户信息有误"),
    Forbidden: Problem(403, "Not allowed 无权访问"),
    TooManyJobs: Problem(429, "Too many jobs 任务过多"),
    TooManyRequests: Problem(429, "Too many requests 请求过于频繁"),
    Busy: Problem(503, "The server is busy 服务器繁忙"),
    DatabaseBusy: Problem(503, "The database is busy 数据库繁忙"),
    UnsupportedMediaType: Problem(415, "Unsupported body type 不支持的请求体类型"),
    EditRefused: Problem(422, "The edit is refused 编辑不被允许"),
    PreconditionRequired: Problem(428, "The plan version is missing 缺少方案版本"),
    StaleVersion: Problem(409, "Stale version 版本已过期"),
    Conflict: Problem(409, "Conflict with the stored state 状态冲突"),
    LayerError: Problem(422, "The territory breaks the layer contract 图层不符合数据规范"),
    CRSError: Problem(422, "Coordinate system problem 坐标系错误"),
    CoordinateError: Problem(422, "Coordinates out of place 坐标错误"),
    PayloadTooLarge: Problem(413, "Request too large 请求过大"),
    PhotoTooLarge: Problem(413, "Photo too large 照片过大"),
    PhotoError: Problem(415, "Not a photo 不支持的照片格式"),
    EventError: Problem(400, "The event step breaks the rules 事件流程不允许"),
    BadRequest: Problem(400, "Bad request 请求参数错误"),
    NotAcceptable: Problem(406, "Not acceptable 无法提供所请求的格式"),
    DatabaseError: Problem(503, "The database is unavailable 数据库不可用"),
    ComputeUnavailable: Problem(503, "The compute cluster is unavailable 计算集群不可用"),
    FontMissing: Problem(503, "A font the poster needs is missing 缺少海报字体"),
    GlyphMissing: Problem(422, "A name cannot be printed 名称含无法打印的字符"),
    GridmapError: Problem(400, "Bad input 输入有误"),
}
#: Problem types that are not exceptions of ours.
EXTRA = {
    "validation-error": Problem(422, "The request does not match the API 请求不符合接口定义"),
    "invalid-value": Problem(422, "A value cannot be stored 数据值无效"),
    "internal-error": Problem(500, "Internal error 内部错误"),
}


def problem_for(exc: GridmapError) -> Problem:
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return PROBLEMS[GridmapError]


def answer(exc: GridmapError, request: Request) -> JSONResponse:
    """The problem answer of one of our exceptions, from :data:`PROBLEMS` (what the app's
    handler sends; also for middleware that answers before the app is reached)."""
    problem = problem_for(exc)
    return problem_response(problem.status, exc.code, problem.title, exc.message, request)


def problem_response(status: int, code: str, title: str, detail: str, request: Request,
                     **extra: Any) -> JSONResponse:
    if str(request.url.path).startswith(OPEN311):
        # GeoReport v2 clients read errors as the spec writes them: [{code, description}].
        return JSONResponse([{"code": status, "description": f"{title}: {detail}"}],
                            status_code=status)
    body = {"type": f"/problems/{code}", "title": title, "status": status, "detail": detail,
            "instance": str(request.url.path), **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


#: The problem details body (RFC 9457) as the OpenAPI document declares it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem", "type": "object",
    "description": "RFC 9457 problem details; the title in English and 中文, the detail says "
                   "what to fix. /problems lists every type.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "/problems/<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request's path"},
        "errors": {"type": "array", "description": "validation errors: where and what",
                   "items": {"type": "object", "properties": {
                       "where": {"type": "string"}, "message": {"type": "string"}}}},
    },
    "additionalProperties": True,
}


def declare_problems(app: FastAPI, names: dict[tuple[str, str], str]) -> None:
    """Make the OpenAPI document say what the API does: every 4xx/5xx response is
    ``application/problem+json`` with the :data:`PROBLEM_SCHEMA` (FastAPI's
    ``HTTPValidationError`` is never sent, so it goes), and each operation's id is its
    function's name (``names``: (method, path) → name; unique, checked here)."""
    generate = app.openapi
    if len(set(names.values())) != len(names):
        raise RuntimeError("two API routes share a function name: operationIds must differ")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Problem"] = PROBLEM_SCHEMA
        problem = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (method, path) in names:
                    operation["operationId"] = names[(method, path)]
                for status, response in operation.get("responses", {}).items():
                    if status[:1] in ("4", "5"):
                        response["content"] = problem
                        if response.get("description") == "Validation Error":
                            response["description"] = EXTRA["validation-error"].title
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem details."""

    @app.exception_handler(GridmapError)
    async def gridmap_error(request: Request, exc: GridmapError) -> Response:
        problem = problem_for(exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, LayerError):
            extra = {k: v for k, v in (("file", exc.file), ("layer", exc.layer),
                                       ("row", exc.row)) if v is not None}
        if isinstance(exc, StaleVersion):
            extra = {"current_version": exc.current}
        response = problem_response(problem.status, exc.code, problem.title, exc.message,
                                    request, **extra)
        if isinstance(exc, StaleVersion):
            # The version to redo the edit on, as GET /plans/{id} gives it.
            response.headers["ETag"] = f'"{exc.current}"'
        if isinstance(exc, Unauthorized):
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                # A page opened in a browser: to the sign-in page, and back after it (the
                # path with its query: /screen?territory=1 comes back as it was).
                back = request.url.path + (f"?{request.url.query}" if request.url.query
                                           else "")
                return RedirectResponse(f"/login?next={quote(back, safe='/')}", 303)
            response.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, TooManyRequests | Busy):
            response.headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, ComputeUnavailable):
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": ".".join(str(p) for p in e.get("loc", ())),
                   "message": str(e.get("msg", ""))} for e in exc.errors()]
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors)
        problem = EXTRA["validation-error"]
        return problem_response(problem.status, "validation-error", problem.title, detail,
                                request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == PROBLEMS[PayloadTooLarge].status:
            # The body limit's streamed refusal (api.app.BodyLimit).
            return answer(PayloadTooLarge(str(exc.detail)), request)
        if exc.status_code == PROBLEMS[NotFound].status:   # no such route
            return answer(NotFound(str(exc.detail)), request)
        code = {405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
        return problem_response(exc.status_code, code, str(exc.detail), str(exc.detail),
                                request)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(PgOperationalError)  # the driver's own (COPY), unwrapped
    @app.exception_handler(PgInterfaceError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        if is_busy(exc):
            return database_busy(request, exc)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
        problem = PROBLEMS[DatabaseError]
        response = problem_response(
            problem.status, DatabaseError.code, problem.title,
            "数据库暂时无法连接，请稍后重试 the database cannot be reached (it may be "
            "restarting): try again shortly (an event report retried with the same "
            "idempotency key is never stored twice); if this lasts, check "
            "GRIDMAP_DATABASE_URL and that the database server is running", request)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, exc: DataError) -> JSONResponse:
        # The driver's own words stay in the server's log: they name internals, and say
        # nothing a client can act on that the text below does not.
        log.info("value refused by the database on %s %s: %s", request.method,
                 request.url.path, str(exc.orig).strip().splitlines()[0][:300])
        problem = EXTRA["invalid-value"]
        return problem_response(problem.status, "invalid-value", problem.title,
                                f"数据值无法保存 {_unstorable(exc)}; nothing was changed",
                                request)

    @app.exception_handler(DBAPIError)
    async def database_failed(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_busy(exc):
            return database_busy(request, exc)
        if is_unavailable(exc):
            return await database_down(request, exc)
        log.exception("database statement failed", exc_info=exc)
        problem = EXTRA["internal-error"]
        return problem_response(problem.status, "internal-error", problem.title,
                                "the database refused the operation; nothing was changed",
                                request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path,
                      exc_info=exc)
        problem = EXTRA["internal-error"]
        return problem_response(problem.status, "internal-error", problem.title,
                                "an unexpected error occurred; it was logged", request)


def _unstorable(exc: DataError) -> str:
    """What kind of value the database refused, in our words."""
    said = str(exc.orig).lower()
    if "nul" in said or "0x00" in said:
        return ("a text holds a NUL character (\\u0000), which cannot be stored: remove "
                "control characters from the text fields")
    if "out of range" in said or "overflow" in said:
        return "a number or date is out of the range that can be stored"
    if "too long" in said:
        return "a text is longer than the field allows"
    return ("a value cannot be stored (e.g. text with a NUL character, or a number out of "
            "range)")


def database_busy(request: Request, exc: BaseException) -> JSONResponse:
    """503 for a database that is there but busy (see gis.database.is_busy)."""
    log.info("database busy on %s %s: %s", request.method, request.url.path,
             str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200])
    problem = PROBLEMS[DatabaseBusy]
    response = problem_response(
        problem.status, DatabaseBusy.code, problem.title,
        f"数据库正忙，请 {BUSY_RETRY_AFTER_S} 秒后重试 the database is busy with another "
        f"write (e.g. a bulk import): retry in {BUSY_RETRY_AFTER_S} s; nothing was changed",
        request)
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response


def internal_error(request: Request) -> JSONResponse:
    """The 500 problem for an error nothing else handled."""
    problem = EXTRA["internal-error"]
    return problem_response(problem.status, "internal-error", problem.title,
                            "an unexpected error occurred; it was logged", request)


class CatchAll(HttpMiddleware):
    """ASGI middleware: an error no handler took becomes the 500 problem here, without
    re-raising. Starlette's own last resort re-raises after answering, and the server then
    closes the connection: the client's next request on it failed too (keep-alive lost)."""

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def noted(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, noted)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope.get("method"),
                          ascii(scope.get("path")), exc_info=exc)
            if started:  # half an answer is out: only closing tells the client
                raise
            await internal_error(Request(scope))(scope, receive, send)


def catalogue() -> dict[str, dict[str, Any]]:
    """Every problem type with its status and title (served at /problems)."""
    out = {cls.code: {"status": p.status, "title": p.title, "meaning": (cls.__doc__ or "")
                      .strip().splitlines()[0]}
           for cls, p in PROBLEMS.items() if issubclass(cls, GridmapError)}
    out.update({code: {"status": p.status, "title": p.title} for code, p in EXTRA.items()})
    return out
