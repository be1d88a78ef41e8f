"""Open311 GeoReport v2: existing 311 clients report and follow events (JSON format)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, authenticate, check_code, partial
from api.deps import get_engine
from api.problems import BadRequest, Forbidden
from api.routes.event_reports import EventIn, report_event
from api.routes.events import now_of, rules_of, with_light
from events.rules import CATEGORY_NAMES, LEVEL_NAMES
from events.store import get_event, list_events
from events.unlocated import get_unlocated, list_unlocated
from events.workflow import OPEN
from gis.errors import NotFound

router = APIRouter(prefix="/open311/v2", tags=["open311"])
#: Our states as people read them (the spec's status_notes).
STATE_NAMES = {"reported": "已上报 reported", "accepted": "已受理 accepted",
               "dispatched": "已派遣 dispatched", "handling": "处置中 handling",
               "resolved": "已办结 resolved", "verified": "已核查 verified",
               "closed": "已结案 closed", "needs_location": "待定位 needs a location"}
#: At most this many requests in one GET requests.json (the spec's suggested 1,000), and
#: the default window: the last 90 days.
MAX_REQUESTS = 1000
DEFAULT_DAYS = 90
#: An answer holds a key in its URL (api_key): never stored by a shared cache.
NO_STORE = {"Cache-Control": "private, no-store"}


async def _params(request: Request) -> dict[str, str]:
    """The query parameters and, for a form POST, its fields (the spec sends forms)."""
    params = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and kind in ("application/x-www-form-urlencoded",
                                             "multipart/form-data"):
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    elif request.method == "POST" and kind == "application/json":
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise BadRequest("请求体不是 JSON the body is not JSON: send a form "
                             "(application/x-www-form-urlencoded) as GeoReport v2 does") from exc
        if isinstance(body, dict):
            params.update({str(k): str(v) for k, v in body.items() if v is not None})
    return params


def needs(permission: str) -> Any:
    """The account behind the spec's ``api_key`` (an API key of ours), else behind the
    usual headers; 401 without one, 403 without ``permission``."""

    async def check(request: Request) -> Principal:
        params = await _params(request)
        key = params.get("api_key")
        has_header = request.headers.get("x-api-key") or request.headers.get("authorization")
        if key and not has_header and getattr(request.state, "principal", None) is None:
            auth = request.app.state.auth
            who = auth.from_key(key) if auth.fresh("k:" + key) else \
                await run_in_threadpool(auth.from_key, key)
            request.state.principal = who
        who = await authenticate(request)
        if permission != "any" and not who.can(permission):
            raise Forbidden(f"a {who.role} account may not do this (needs {permission})")
        return who

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


Reader = Annotated[Principal, needs("events:read")]
Creator = Annotated[Principal, needs("events:create")]
Anyone = Annotated[Principal, needs("any")]


def _service(code: str) -> dict[str, Any]:
    return {"service_code": code, "service_name": CATEGORY_NAMES.get(code, code),
            "description": f"{CATEGORY_NAMES.get(code, code)}（{code}）", "metadata": False,
            "type": "realtime", "keywords": "", "group": "网格事件"}


@router.get("/services.json", summary="The services: our event categories")
def services(request: Request, who: Anyone) -> JSONResponse:
    return JSONResponse([_service(c) for c in rules_of(request).limits], headers=NO_STORE)


def _as_request(event: dict[str, Any]) -> dict[str, Any]:
    """An event as a GeoReport v2 service request."""
    status = str(event.get("status"))
    updated = event.get("resolved_at") or event.get("level_since") or event.get("reported_at")
    handler = event.get("handler")
    level = LEVEL_NAMES.get(str(event.get("level")), "")
    return {
        "service_request_id": str(event["id"]),
        "status": "open" if status in OPEN else "closed",
        "status_notes": STATE_NAMES.get(status, status),
        "service_name": CATEGORY_NAMES.get(event["category"], event["category"]),
        "service_code": event["category"],
        "description": event.get("description"),
        "agency_responsible": f"{level} {handler}".strip() if handler else level,
        "service_notice": "",
        "requested_datetime": event.get("reported_at"),
        "updated_datetime": updated,
        "expected_datetime": event.get("deadline_at"),
        "address": event.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": event.get("lat"),
        "long": event.get("lon"),
        "media_url": None,
    }


def _as_waiting(waiting: dict[str, Any]) -> dict[str, Any]:
    """An event that still needs a location, as a service request (open, no point)."""
    return {
        "service_request_id": f"u{waiting['id']}",
        "status": "open",
        "status_notes": STATE_NAMES["needs_location"],
        "service_name": CATEGORY_NAMES.get(waiting["category"], waiting["category"]),
        "service_code": waiting["category"],
        "description": waiting.get("description"),
        "agency_responsible": "",
        "service_notice": "地址需人工定位 the address will be placed on the map by an operator",
        "requested_datetime": waiting.get("reported_at"),
        "updated_datetime": waiting.get("reported_at"),
        "expected_datetime": None,
        "address": waiting.get("address"),
        "address_id": None, "zipcode": None, "lat": None, "long": None, "media_url": None,
    }


def _masked(request: Request, who: Principal, event: dict[str, Any]) -> dict[str, Any]:
    return with_light(event, rules_of(request), now_of(request), who)


def _one(request: Request, engine: Engine, who: Principal, request_id: str
         ) -> dict[str, Any]:
    """One request by its id: an event (``123``) or one waiting for a location (``u45``,
    answered as the event it became once placed)."""
    text = request_id.strip()
    if text.startswith("u") and text[1:].isdigit() and len(text) <= 10:
        waiting = get_unlocated(engine, int(text[1:]))
        if waiting.get("event_id"):
            text = str(waiting["event_id"])
        else:
            if not (who.everywhere or who.overlaps(waiting["area_code"])):
                raise NotFound(f"no service request {request_id}")
            out = _as_waiting(waiting)
            if not who.can("personal"):
                out = {**out, "description": _masked(request, who, {
                    "description": out["description"], "reporter": None,
                    "deadline_at": None, "category": waiting["category"],
                    "status": "reported", "level": "grid"})["description"]}
            return out
    if not text.isdigit() or len(text) > 10 or int(text) > 2**31 - 1:
        raise NotFound(f"no service request {request_id}")
    event = get_event(engine, int(text), with_history=False)
    check_code(who, event["grid_code"], f"service request {request_id}")
    return _as_request(_masked(request, who, event))


@router.get("/requests/{request_id}.json", summary="One service request",
            responses={404: {"description": "No such request"}})
def get_request(request: Request, who: Reader,
                request_id: Annotated[str, Path(max_length=20)],
                engine: Engine = Depends(get_engine)) -> JSONResponse:
    return JSONResponse([_one(request, engine, who, request_id)], headers=NO_STORE)


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"{name} {value!r} is not a W3C date-time (2010-01-01T00:00:00Z); "
                         "时间格式应为 ISO 8601") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.get("/requests.json", summary="Service requests: by id, or by service, time and status")
async def get_requests(request: Request, who: Reader, engine: Engine = Depends(get_engine)
                       ) -> JSONResponse:
    params = await _params(request)
    ids = [i for i in (params.get("service_request_id") or "").split(",") if i.strip()]
    if ids:
        if len(ids) > MAX_REQUESTS:
            raise BadRequest(f"at most {MAX_REQUESTS} service_request_id values at once")
        found = []
        for i in ids:
            try:
                found.append(await run_in_threadpool(_one, request, engine, who, i))
            except NotFound:
                continue  # the spec: ids that do not exist are left out
        return JSONResponse(found, headers=NO_STORE)
    codes = [c for c in (params.get("service_code") or "").split(",") if c.strip()]
    unknown = [c for c in codes if c not in rules_of(request).limits]
    if unknown:
        raise BadRequest(f"unknown service_code {', '.join(unknown)}; see services.json")
    statuses = {s.strip() for s in (params.get("status") or "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise BadRequest("status is open, closed or both (open,closed)")
    end = _date(params.get("end_date"), "end_date") or now_of(request) + timedelta(seconds=1)
    start = _date(params.get("start_date"), "start_date") or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise BadRequest("start_date must be before end_date")

    def read() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        wanted: list[str | None] = [*codes] or [None]
        for code in wanted:
            rows = list_events(engine, areas=partial(who), category=code, since=start,
                               until=end, limit=MAX_REQUESTS)
            out += [_as_request(_masked(request, who, e)) for e in rows]
        if not statuses or "open" in statuses:
            for w in list_unlocated(engine, limit=MAX_REQUESTS):
                if (codes and w["category"] not in codes) or not (
                        who.everywhere or who.overlaps(w["area_code"])):
                    continue
                at = _date(w["reported_at"], "reported_at")
                if at is not None and start <= at < end:
                    out.append(_as_waiting(w))
        if statuses:
            out = [r for r in out if r["status"] in statuses]
        out.sort(key=lambda r: str(r["requested_datetime"]), reverse=True)
        return out[:MAX_REQUESTS]

    return JSONResponse(await run_in_threadpool(read), headers=NO_STORE)


@router.post("/requests.json", summary="Report a service request: by lat/long (WGS84) or by "
                                       "address_string (geocoded here)")
async def post_request(request: Request, who: Creator, engine: Engine = Depends(get_engine)
                       ) -> JSONResponse:
    params = await _params(request)
    code = params.get("service_code")
    if not code:
        raise BadRequest("service_code is required (see services.json); 缺少服务类型")
    lat, lon = params.get("lat"), params.get("long")
    address = params.get("address_string") or None
    name = "".join(params.get(k, "") for k in ("last_name", "first_name")).strip() or None
    description = params.get("description") or None
    if params.get("phone"):
        description = ((description or "") + f"\n联系电话：{params['phone']}").strip()
    fields: dict[str, Any] = {"category": code, "source": "citizen",
                              "description": description, "reporter": name,
                              "address": address}
    if lat or lon:
        try:
            fields.update(x=float(lon or "nan"), y=float(lat or "nan"), coord_sys="wgs84")
        except ValueError as exc:
            raise BadRequest("lat and long must be numbers (WGS84 degrees)") from exc
        if not (abs(fields["x"]) <= 180 and abs(fields["y"]) <= 90):
            raise BadRequest("lat and long must both be given, in WGS84 degrees")
    elif not address:
        raise BadRequest("give lat and long, or address_string; 需要坐标或地址")
    if params.get("jurisdiction_id", "").isdigit():
        fields["territory_id"] = int(params["jurisdiction_id"])
    try:
        body = EventIn(**fields)
    except ValidationError as exc:
        raise BadRequest("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                   for e in exc.errors())) from exc
    answer = await report_event(body, request, who, engine)
    stored = json.loads(bytes(answer.body))
    if answer.status_code in (200, 201):
        out = {"service_request_id": str(stored["id"]),
               "service_notice": f"已受理，落入网格 {stored['grid_code']} routed to grid "
                                 f"{stored['grid_code']}", "account_id": None}
    else:  # 202: kept until an operator places it
        out = {"service_request_id": f"u{stored['id']}",
               "service_notice": "地址需人工定位 the address will be placed on the map by an "
                                 "operator", "account_id": None}
    return JSONResponse([out], status_code=201 if answer.status_code != 200 else 200,
                        headers=NO_STORE)
