"""Printable partition posters (网格划分图) of a town or community."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy import Engine

from api.auth import PlansRead, check_plan
from api.deps import Id, app_once, get_engine
from api.problems import Busy
from gis.errors import NotFound
from gis.exports.plan import content_disposition
from gis.overlays import get_overlay
from gis.plans import get_plan
from maps.poster import PaperSize, Poster, PosterFormat, make_poster
from maps.tiles import plan_stamp


class PosterCache:
    """Made posters in memory, least recently used dropped first, bounded in bytes; and a
    bound on posters made at once (each is seconds of CPU and hundreds of MB at A0), with
    one making per poster (requests for a poster being made wait for it)."""

    def __init__(self, max_bytes: int, workers: int, wait_s: float) -> None:
        self.max_bytes = max(0, max_bytes)
        self.wait_s = wait_s
        self.size = 0
        self._items: OrderedDict[tuple[Any, ...], Poster] = OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[tuple[Any, ...], threading.Lock] = {}
        self._slots = threading.BoundedSemaphore(max(1, workers))

    def get(self, key: tuple[Any, ...]) -> Poster | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def _put(self, key: tuple[Any, ...], poster: Poster) -> None:
        cost = len(poster.content)
        if cost > self.max_bytes:
            return
        with self._lock:
            self._items[key] = poster
            self.size += cost
            while self.size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.size -= len(dropped.content)

    def made(self, key: tuple[Any, ...], make: Any) -> tuple[Poster, bool]:
        """The poster under ``key``, made by ``make()`` unless kept; (poster, was kept)."""
        found = self.get(key)
        if found is not None:
            return found, True
        with self._lock:
            one = self._making.setdefault(key, threading.Lock())
        if not one.acquire(timeout=self.wait_s):
            raise self._busy()
        try:
            found = self.get(key)
            if found is not None:
                return found, True
            if not self._slots.acquire(timeout=self.wait_s):
                raise self._busy()
            try:
                poster: Poster = make()
            finally:
                self._slots.release()
            self._put(key, poster)
            return poster, False
        finally:
            one.release()
            with self._lock:
                self._making.pop(key, None)

    def _busy(self) -> Busy:
        return Busy(f"海报生成繁忙 posters are being made at the limit of this server "
                    f"(GRIDMAP_POSTER_WORKERS) for over {self.wait_s:g} s: retry shortly", 10)


def poster_cache(request: Request) -> PosterCache:
    return app_once(request, "poster_cache", lambda s: PosterCache(
        s.poster_cache_mb * 2**20, s.poster_workers or os.cpu_count() or 2, s.poster_wait_s))

router = APIRouter(tags=["posters"])

AreaCode = Annotated[str, PathParam(
    min_length=1, max_length=12, pattern=r"^[0-9A-Za-z_-]+$",
    description="Code of a town/street (街道/镇, 9 digits) or village/community (社区/村, "
                "12 digits) of the plan's territory")]


@router.get(
    "/plans/{plan_id}/posters/{area_code}.{fmt}",
    summary="A printable partition poster (网格划分图) of a town or community",
    description=(
        "The poster of one town/street or village/community that has grids in the plan: "
        "title, plan version and date, the map (grids in soft colours with their codes, "
        "grid, village and town boundaries, named roads and rivers, legend, scale bar, north "
        "arrow) and the grid table (code, name, households, 四至). `pdf`: vector, the CJK "
        "font embedded, the table continued on further pages when it does not fit beside "
        "the map. `png`: the first page, 150 dpi on A3, 100 dpi on A0. Landscape, or "
        "portrait when the area is tall."),
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "image/png": {}},
                     "description": "The poster, as an attachment"},
               404: {"description": "No such plan, or the area is not a town or "
                                    "village/community of the plan's territory with grids, "
                                    "or no such overlay"}})
def poster(plan_id: Id, area_code: AreaCode, fmt: PosterFormat, request: Request,
           who: PlansRead,
           size: Annotated[PaperSize, Query(description="Paper size")] = PaperSize.A3,
           overlay: Annotated[str | None, Query(
               min_length=1, max_length=40, description="A department whose overlay's unit "
               "boundaries (and names) are drawn too, e.g. 公安")] = None,
           engine: Engine = Depends(get_engine)) -> Any:
    check_plan(request, who, plan_id)
    if not who.covers(area_code):
        raise NotFound(f"no area {area_code} with grids in plan {plan_id}")
    # Kept by what the poster shows: the plan's generation (a new plan, or an edit of a
    # draft, makes a new stamp), its status and publication date, the area, paper and
    # format, and the day it is made on (printed on it, in the service's zone).
    zone = request.app.state.settings.timezone
    info = get_plan(engine, plan_id)
    # An overlay replaced is a new overlay (id): its poster is a new one too.
    drawn = None if overlay is None else get_overlay(engine, info.territory_id, overlay)
    key = (plan_stamp(engine, plan_id), info.status, info.published_at, area_code,
           PaperSize(size), PosterFormat(fmt), zone, datetime.now(ZoneInfo(zone)).date(),
           None if drawn is None else (drawn["id"], drawn["created_at"]))
    # A missing font (503) or glyph (422) is answered from the problem table.
    made, kept = poster_cache(request).made(
        key, lambda: make_poster(engine, plan_id, area_code, size, fmt, zone=zone,
                                 overlay=overlay))
    return Response(made.content, media_type=made.media_type, headers={
        "Content-Disposition": content_disposition(made.filename, made.ascii_filename),
        "X-Poster-Cache": "hit" if kept else "miss"})
