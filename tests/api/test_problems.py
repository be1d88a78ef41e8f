"""Every error answer comes from api/problems.py's table: its type is listed at /problems and
its body is the problem+json the table makes, whichever layer refused the request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from demo_plan import DemoStore
from fastapi.testclient import TestClient
from signin import client_for

from api.app import create_app
from api.problems import MEDIA_TYPE, PROBLEMS, PayloadTooLarge
from gis.errors import GridmapError, StaleVersion
from gis.plans import read_grids
from gis.settings import Settings
from maps.poster import FontMissing, GlyphMissing


def problem(r: Any, status: int, exc: type[GridmapError]) -> dict[str, Any]:
    """The body of ``r``, checked to be the table's problem for ``exc``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(MEDIA_TYPE)
    body: dict[str, Any] = r.json()
    assert body["type"] == f"/problems/{exc.code}"
    assert (body["status"], body["title"]) == (PROBLEMS[exc].status, PROBLEMS[exc].title)
    return body


@pytest.fixture
def small_limit(db_url: str) -> Iterator[TestClient]:
    with client_for(create_app(Settings(database_url=db_url, max_upload_mb=1))) as c:
        yield c


def test_the_catalogue_lists_a_type_for_each_case(small_limit: TestClient) -> None:
    listed = small_limit.get("/problems").json()
    for exc in PROBLEMS:
        if issubclass(exc, GridmapError):
            assert listed[exc.code]["status"] == PROBLEMS[exc].status, exc
    assert {code: listed[code]["status"] for code in (StaleVersion.code, FontMissing.code,
                                                      GlyphMissing.code,
                                                      PayloadTooLarge.code)} == \
        {"stale-version": 409, "font-missing": 503, "glyph-missing": 422,
         "payload-too-large": 413}


def test_a_body_over_the_limit_is_the_tables_413_declared_or_streamed(
        small_limit: TestClient) -> None:
    big = b"x" * (2 * 2**20)
    declared = problem(small_limit.post("/territories", files={
        "files": ("territory.gpkg", big, "application/octet-stream")}), 413, PayloadTooLarge)

    def chunks() -> Iterator[bytes]:      # no Content-Length: refused while it streams
        yield (b'--b0\r\nContent-Disposition: form-data; name="files"; '
               b'filename="territory.gpkg"\r\nContent-Type: application/octet-stream\r\n\r\n')
        for _ in range(4):
            yield b"y" * 2**19
        yield b"\r\n--b0--\r\n"

    streamed = problem(small_limit.post(
        "/territories", content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b0"}), 413, PayloadTooLarge)
    assert declared["detail"] == streamed["detail"]
    assert "1 MB" in declared["detail"] and "GRIDMAP_MAX_UPLOAD_MB" in declared["detail"]


@pytest.mark.parametrize("store", ["spatialite"], indirect=True)
def test_a_name_the_poster_font_cannot_print_is_the_tables_422(
        client: TestClient, store: DemoStore) -> None:
    r = client.post(f"/plans/{store.plan_id}/copy", json={"note": "字形"})
    assert r.status_code == 201, r.text
    draft = int(r.json()["id"])
    grid = read_grids(store.engine, draft).iloc[0]
    r = client.post(f"/plans/{draft}/edits", json={"op": "rename", "grid": grid["code"],
                                                  "name": "白云😀网格"},
                    headers={"If-Match": '"0"', "X-Gridmap-User": quote("王")})
    assert r.status_code == 200, r.text
    body = problem(client.get(f"/plans/{draft}/posters/{grid['village_code']}.png"), 422,
                   GlyphMissing)
    assert "U+1F600" in body["detail"]
