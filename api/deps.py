"""FastAPI dependencies: the store's engine and the settings, from the app's state."""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

from fastapi import Header, Path, Query, Request, Response
from pydantic import AfterValidator
from sqlalchemy import Engine

from api.auth import Principal
from gis.codes import LEVEL_DIGITS, check_code
from gis.paging import Page, Paged
from gis.settings import Settings
from maps.tiles import TileCache


# Async (they only read the app's state) so FastAPI calls them on the event loop instead of
# sending each to a worker thread.
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


#: A list's page: how many items, after how many (the ``Link`` header names the next page).
Limit = Annotated[int, Query(ge=1, le=1_000, description="Items on a page")]
Offset = Annotated[int, Query(ge=0, le=10**9, description=(
    "Items to skip (follow the Link header's rel=next instead of counting)"))]

#: What a list's 200 answer carries besides its items (declared in the OpenAPI document).
PAGE_HEADERS: dict[int | str, dict[str, Any]] = {200: {"headers": {
    "Link": {"description": "RFC 8288 links to the next, previous and first pages "
                            "(rel=next while more follow)", "schema": {"type": "string"}},
    "X-Total-Count": {"description": "Items in the whole list, where counting is cheap",
                      "schema": {"type": "integer"}},
}}}


def paged(request: Request, response: Response, page: Page, found: Paged[Any]) -> list[Any]:
    """The page's items, with its ``Link`` and ``X-Total-Count`` headers set."""
    page_links(request, response, offset=page.offset, limit=page.limit, more=found.more,
               total=found.total)
    return found.items


def page_links(request: Request, response: Response, *, offset: int, limit: int, more: bool,
               total: int | None = None) -> None:
    """A list's paging as RFC 8288 ``Link`` header: ``next`` when more may follow (a full
    page, or fewer than ``total`` so far), ``prev`` and ``first`` after the first page; the
    total in ``X-Total-Count`` where it is known without another query."""
    url = request.url
    links = []
    if more if total is None else offset + limit < total:
        links.append(f'<{url.include_query_params(offset=offset + limit, limit=limit)}>; '
                     'rel="next"')
    if offset > 0:
        links.append(f'<{url.include_query_params(offset=max(0, offset - limit), limit=limit)}>'
                     '; rel="prev"')
        links.append(f'<{url.include_query_params(offset=0, limit=limit)}>; rel="first"')
    if links:
        response.headers["Link"] = ", ".join(links)
    if total is not None:
        response.headers["X-Total-Count"] = str(total)


#: A database id in a path: a positive 32-bit integer (larger ones cannot exist).
Id = Annotated[int, Path(ge=1, le=2**31 - 1, description="Id (a positive integer)")]
#: The same as an optional query parameter.
IdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


def _code_of(*levels: str) -> AfterValidator:
    """A query's area code checked for its level(s): digits, of the level's length (a
    clear 422 otherwise; a prefix filter never sees a LIKE wildcard)."""
    def check(value: str | None) -> str | None:
        return None if value is None else check_code(value, *levels)

    return AfterValidator(check)


def _code_query(description: str, *levels: str) -> Any:
    """The query parameter's declaration: the pattern is documented in the schema, and
    checked by :func:`_code_of` (whose 422 says what a code looks like)."""
    lengths = [LEVEL_DIGITS[level] for level in levels or LEVEL_DIGITS]
    pattern = "^(" + "|".join(f"[0-9]{{{n}}}" for n in lengths) + ")$"
    return Query(max_length=40, description=description,
                 json_schema_extra={"pattern": pattern})


#: Optional area codes in a query, by level (``AreaCodeQuery``: any level).
TownCode = Annotated[str | None, _code_query("9-digit town/street code, e.g. 440111001",
                                             "town"), _code_of("town")]
VillageCode = Annotated[str | None, _code_query(
    "12-digit village/community code, e.g. 440111001001", "village"), _code_of("village")]
GridCode = Annotated[str | None, _code_query("15-digit grid code, e.g. 440111001001001",
                                             "grid"), _code_of("grid")]
AreaCodeQuery = Annotated[str | None, _code_query(
    "District (6 digits), town (9), village/community (12) or grid (15) code"), _code_of()]


def check_encoding(name: str | None) -> str | None:
    """A text encoding the user named (e.g. GBK), or a 400 that says it is unknown."""
    if name is None or not name.strip():
        return None
    try:
        codecs.lookup(name.strip())
    except LookupError as exc:
        from api.problems import BadRequest

        raise BadRequest(f"unknown text encoding {name!r}; use e.g. UTF-8 or GBK") from exc
    return name.strip()


_once_lock = threading.Lock()
T = TypeVar("T")


def app_once(request: Request, name: str, make: Callable[[Settings], T]) -> T:
    """The app's one ``name`` (kept in its state), made from the settings by ``make`` on
    first use; requests that race to make it get the same one."""
    state = request.app.state
    with _once_lock:
        found: T | None = getattr(state, name, None)
        if found is None:
            found = make(state.settings)
            setattr(state, name, found)
    return found


def plan_cache(request: Request) -> TileCache:
    """The app's cache of bytes made from a plan alone: tiles and the map's simplified grids
    (made on first use, sized by ``GRIDMAP_TILE_CACHE_MB``)."""
    return app_once(request, "tile_cache", lambda s: TileCache(s.tile_cache_mb * 2**20))


#: The person at the keyboard when an account is shared (e.g. a station's); the audit log
#: keeps the account either way.
USER = Header(alias="X-Gridmap-User", max_length=100, description=(
    "The person making the change when not the account's own name (recorded in the "
    "history; the audit log records the account); UTF-8 percent-encoded, e.g. %E7%8E%8B "
    "for 王"))


def author(value: str | None, who: Principal) -> str:
    """Who the history names: the X-Gridmap-User header when given (HTTP headers are
    ASCII, so a Chinese name comes percent-encoded as UTF-8, ``%E7%8E%8B`` for 王), else
    the signed-in account's name."""
    if value is not None:
        from api.problems import BadRequest

        try:
            value = unquote(value.strip(), errors="strict")[:100]
        except UnicodeDecodeError as exc:
            raise BadRequest("X-Gridmap-User is not UTF-8 once percent-decoded: send the "
                             "name as UTF-8 percent-encoded (%E7%8E%8B for 王)") from exc
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise BadRequest("X-Gridmap-User holds control characters: send a plain name")
    return value or who.label
