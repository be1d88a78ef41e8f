"""Bulk import of events over HTTP: a CSV or GeoJSON of points or addresses, checked, routed
on the workers and stored in one transaction (rows too vague kept as needs_location)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from sqlalchemy import Engine

from api.auth import EventsImport, Principal, check_territory
from api.deps import check_encoding, get_engine
from api.problems import BadRequest, Forbidden
from api.routes.events import now_of, routers_of, rules_of
from events.bulk import create_events_columns
from events.files import check_text, coordinate_columns, event_frame
from events.geocode import at_least
from events.route_input import points_to_wgs84
from events.rules import SOURCES
from events.unlocated import create_unlocated_many, forget_unlocated
from gis.errors import CoordinateError, LayerError
from gis.io.limits import ReadLimits

router = APIRouter(tags=["events"])
#: operationIds stay ``events_<function>`` (api.app.operation_id): these routes were split out
#: of api/routes/events.py, and generated clients keep the names they had.
OPERATION_PREFIX = "events"


#: The columns an import reads besides the coordinates (other properties are ignored).
IMPORT_COLUMNS = ("category", "source", "description", "reporter", "address", "地址")
#: Names of an import's address column (rows without coordinates are geocoded from it).
ADDRESS_COLUMNS = ("address", "地址", "详细地址", "事发地址")


def _by_row(x: np.ndarray, y: np.ndarray, coord_sys: str, exc: CoordinateError) -> str:
    """The reason some imported points cannot be routed, naming rows (1 = the first event)
    rather than array indexes; worked out again only when the import is refused."""
    try:
        points_to_wgs84(x, y, coord_sys, row_numbers=np.arange(1, len(x) + 1))
    except CoordinateError as named:
        return named.message
    return exc.message


def _geocode_rows(request: Request, who: Principal, tid: int, name: str, table: pd.DataFrame,
                  x: np.ndarray, y: np.ndarray, coord_sys: str
                  ) -> tuple[np.ndarray, list[int], list[dict[str, Any]]]:
    """Rows without coordinates placed by their address (in place, in ``coord_sys``):
    (each row's geocode level or None, the rows left waiting for a location, their
    geocoder answers). A row with neither is refused, naming it."""
    level = np.full(len(table), None, dtype=object)
    need = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if not need.size:
        return level, [], []
    by_name = {str(c).strip().lower(): c for c in table.columns}
    col = next((by_name[n] for n in ADDRESS_COLUMNS if n in by_name), None)
    texts = (table[col].fillna("").astype(str).str.strip().to_numpy(dtype=object)
             if col is not None else np.full(len(table), "", dtype=object))
    empty = need[texts[need] == ""]
    if empty.size:
        raise CoordinateError(f"{name}: row {int(empty[0]) + 1} has neither valid coordinates "
                              f"nor an address ({empty.size} such rows); nothing was "
                              "imported")
    index = request.app.state.geocoders.get(tid)
    answers = index.to(index.geocode_many(texts[need].tolist()), coord_sys)
    minimum = request.app.state.settings.geocode_min_level
    waiting: list[int] = []
    kept: list[dict[str, Any]] = []
    for row, answer in zip(need.tolist(), answers, strict=True):
        if answer["level"] != "none" and at_least(answer["level"], minimum):
            x[row], y[row], level[row] = answer["x"], answer["y"], answer["level"]
        else:
            if answer["area_code"] and not who.overlaps(answer["area_code"]):
                raise Forbidden(f"{name}: row {row + 1}'s address lies outside your areas "
                                f"({', '.join(who.areas)}); nothing was imported")
            waiting.append(row)
            kept.append(answer)
    return level, waiting, kept


@router.post("/events/import", summary="Bulk import: a CSV (x/lon, y/lat columns, or an address "
                                       "column) or GeoJSON of points, routed and stored in one "
                                       "transaction",
             responses={409: {"description": "No published plan"},
                        422: {"description": "A bad row (named); nothing stored"}})
def import_events(
    request: Request,
    who: EventsImport,
    file: Annotated[UploadFile, File(description="CSV or GeoJSON of points")],
    coord_sys: Annotated[str | None, Form(min_length=1, max_length=200, description=(
        "The coordinates' system (required when the file has coordinates)"))] = None,
    territory_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
    category: Annotated[str | None, Form(max_length=60, description=(
        "For rows without a category column"))] = None,
    source: Annotated[str, Form(max_length=40)] = "hotline",
    encoding: Annotated[str | None, Form(max_length=40)] = None,
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    started = time.perf_counter()
    rules = rules_of(request)
    name = Path(file.filename or "events.csv").name or "events.csv"
    limits = ReadLimits.from_settings(request.app.state.settings)
    table = event_frame(file.file.read(), name, encoding=check_encoding(encoding),
                        max_rows=limits.max_features, keep=IMPORT_COLUMNS)
    with_address = any(str(c).strip().lower() in ADDRESS_COLUMNS for c in table.columns)
    xcol: str | None
    ycol: str | None
    try:
        xcol, ycol = coordinate_columns(table, name, ("x", "lon", "lng", "longitude", "经度"),
                                        ("y", "lat", "latitude", "纬度"))
    except LayerError:
        if not with_address:
            raise
        xcol = ycol = None  # an address column alone: every row geocoded
    check_text(table, IMPORT_COLUMNS, name)
    if xcol is not None and ycol is not None:
        if coord_sys is None:
            raise CoordinateError(f"{name}: coord_sys is required for the file's coordinates "
                                  "(wgs84, cgcs2000, gcj02, bd09, 2000sz, EPSG:xxxx): there "
                                  "is no default; nothing was imported")
        # Copies: rows without coordinates get their geocoded point written in.
        x = pd.to_numeric(table[xcol], errors="coerce").to_numpy(dtype=float, copy=True)
        y = pd.to_numeric(table[ycol], errors="coerce").to_numpy(dtype=float, copy=True)
    else:
        x = np.full(len(table), np.nan)
        y = np.full(len(table), np.nan)
    coord_sys = coord_sys or "wgs84"
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size and not with_address:
        raise CoordinateError(f"{name}: row {int(bad[0]) + 1} has no valid {xcol}/{ycol} "
                              f"({bad.size} such rows); nothing was imported")
    cats = table["category"].astype(str).to_numpy(dtype=object) if "category" in table \
        else np.full(len(table), category or "", dtype=object)
    bad = np.flatnonzero(~pd.Series(cats).isin(list(rules.limits)).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise BadRequest(f"{name}: row {i + 1} has category {cats[i]!r}, not one of "
                         f"{', '.join(rules.limits)}; nothing was imported")
    srcs = table["source"].astype(str).to_numpy(dtype=object) if "source" in table else \
        np.full(len(table), source, dtype=object)
    bad = np.flatnonzero(~pd.Series(srcs).isin(list(SOURCES)).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise BadRequest(f"{name}: row {i + 1} has source {srcs[i]!r}, not one of "
                         f"{', '.join(SOURCES)}; nothing was imported")
    tid = territory_id if territory_id is not None else \
        routers_of(request).default_territory()
    if with_address:
        check_territory(request, who, tid)
    level, waiting, answers = _geocode_rows(request, who, tid, name, table, x, y, coord_sys) \
        if with_address else (np.full(len(table), None, dtype=object), [], [])
    keep = np.ones(len(table), dtype=bool)
    keep[waiting] = False
    located = table[keep].reset_index(drop=True)
    x, y = x[keep], y[keep]
    cats_all, srcs_all = cats, srcs
    cats, srcs, level = cats[keep], srcs[keep], level[keep]
    checked = time.perf_counter()
    try:   # on the cluster's workers (which keep the territory's router), not here
        routed = request.app.state.jobs.route_columns(
            tid, x, y, coord_sys, request.app.state.settings.near_boundary_m)
    except CoordinateError as exc:
        raise CoordinateError(f"{name}: {_by_row(x, y, coord_sys, exc)}; nothing was "
                              "imported") from exc
    if not who.everywhere:
        codes = pd.Series(routed["grid_code"], dtype=object).fillna("")
        out = np.flatnonzero(~codes.str.startswith(tuple(who.areas)).to_numpy(dtype=bool))
        if out.size:
            raise Forbidden(f"{name}: {out.size} rows lie outside your areas "
                            f"({', '.join(who.areas)}), the first row {int(out[0]) + 1} in "
                            f"grid {codes.iloc[int(out[0])]}; nothing was imported")
    now = now_of(request)

    def text(frame: pd.DataFrame, col: str) -> np.ndarray | None:
        return frame[col].astype(str).to_numpy(dtype=object) if col in frame else None

    by_name = {str(c).strip().lower(): c for c in located.columns}
    addr_col = next((by_name[n] for n in ADDRESS_COLUMNS if n in by_name), None)
    columns = {k: routed[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                      "village_code", "town_code", "district_code",
                                      "distance_m", "other_grid_code", "flags")}
    columns.update(category=cats, source=srcs, coord_sys=coord_sys, x=x, y=y, reported_at=now,
                   description=text(located, "description"),
                   reporter=text(located, "reporter"), geocode_level=level,
                   address=(located[addr_col].fillna("").astype(str).str.slice(0, 300)
                            .replace("", None).to_numpy(dtype=object)
                            if addr_col is not None else None))
    stored = time.perf_counter()
    # The rows waiting for a location first (one transaction), removed again if the
    # events cannot be stored: nothing of a refused import stays.
    waited = _store_waiting(engine, who, tid, table, waiting, answers, now, cats_all,
                            srcs_all)
    try:
        n = create_events_columns(engine, columns, routed["lon"], routed["lat"], rules) \
            if len(x) else 0
    except BaseException:
        forget_unlocated(engine, waited)
        raise
    done = time.perf_counter()
    flags = routed["flags"]
    return {"imported": n, "needs_location": len(waited), "plan_id": routed["plan_id"],
            "outside": sum("outside" in f for f in flags),
            "near_boundary": sum("near_boundary" in f for f in flags),
            "seconds": {"read": round(checked - started, 2), "route": round(stored - checked, 2),
                        "store": round(done - stored, 2), "total": round(done - started, 2)}}


def _store_waiting(engine: Engine, who: Principal, tid: int, table: pd.DataFrame,
                   rows: list[int], answers: list[dict[str, Any]], now: datetime,
                   cats: np.ndarray, srcs: np.ndarray) -> list[int]:
    """An import's rows too vague to route, kept as ``needs_location``; their ids."""
    if not rows:
        return []
    by_name = {str(c).strip().lower(): c for c in table.columns}
    col = next(by_name[n] for n in ADDRESS_COLUMNS if n in by_name)

    def cell(name: str, row: int) -> str | None:
        return str(table[name].iloc[row]) if name in table and str(table[name].iloc[row]) \
            else None

    fields = [{"territory_id": tid, "category": str(cats[r]), "source": str(srcs[r]),
               "address": str(table[col].iloc[r])[:300], "description": cell("description", r),
               "reporter": cell("reporter", r), "reported_at": now, "geocode": a,
               "idempotency_key": None, "created_by": who.username}
              for r, a in zip(rows, answers, strict=True)]
    return create_unlocated_many(engine, fields)
