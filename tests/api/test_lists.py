"""Every list of the API pages: limit/offset read in SQL, RFC 8288 Link next/prev/first, the
total where it is cheap; found by walking the OpenAPI document, not by a list kept here."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
from conftest import link_targets, tiny_layers, write_layers
from fastapi.testclient import TestClient
from PIL import Image
from signin import ADMIN, client_for
from sqlalchemy import Engine, insert

from api.app import create_app
from events.roster import Member, replace_roster
from gis.accounts import add_account, create_api_key
from gis.io.territory import read_territory
from gis.models.base import SRID
from gis.models.jobs import Job
from gis.overlays import read_overlay, store_overlay
from gis.plans import publish_plan, read_grids, write_plan
from gis.settings import Settings
from gis.store import import_territory, load_territory
from partitioning.engine import partition_territory
from partitioning.output import grid_table

#: Items made of each list (two pages of two, and one more).
MADE = 3
#: Filters that keep a list still while it is walked (each request adds to the audit log;
#: changes were all made before).
STILL = {"/audit": {"action": "change"}}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _fill(engine: Engine, client: TestClient, tmp: Path) -> dict[str, Any]:
    """At least three of everything a list shows; the path parameters to show them."""
    gpkg = write_layers(tiny_layers(), tmp, "GPKG")
    territory_ids = [import_territory(engine, read_territory(gpkg), name=f"区域{i}")
                     for i in range(MADE)]
    territory = territory_ids[0]
    result = partition_territory(load_territory(engine, territory))
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(SRID)
    plans = [write_plan(engine, territory, grid_table(result), blocks, result.report,
                        {"seed": 0}, note=f"plan {i}") for i in range(MADE)]
    publish_plan(engine, plans[0])
    grids = read_grids(engine, plans[0])
    code = str(grids["code"].iloc[0])
    draft = plans[1]
    for body in ({"op": "lock", "grids": [code]}, {"op": "unlock", "grids": [code]},
                 {"op": "rename", "grid": code, "name": "一号网格"}):
        version = client.get(f"/plans/{draft}").headers["etag"]
        made = client.post(f"/plans/{draft}/edits", json=body, headers={"If-Match": version})
        assert made.status_code == 200, made.text
    points = grids.to_crs(3857).representative_point().to_crs(4326)
    events = []
    for p in list(points) * MADE:
        made = client.post("/events", json={"x": p.x, "y": p.y, "coord_sys": "wgs84",
                                            "category": "sanitation", "source": "patrol",
                                            "territory_id": territory})
        assert made.status_code == 201, made.text
        events.append(made.json()["id"])
    for i in range(MADE):       # addresses the territory cannot place: they wait
        waiting = client.post("/events", json={"address": f"无此路{i}号", "category": "sanitation",
                                               "source": "hotline", "territory_id": territory})
        assert waiting.status_code == 202, waiting.text
    for _ in range(MADE):
        shot = client.post(f"/events/{events[0]}/photos",
                           files={"photo": ("p.png", _png(), "image/png")})
        assert shot.status_code == 201, shot.text
        walk = client.post("/patrols", json={"lon": points.iloc[0].x, "lat": points.iloc[0].y,
                                             "territory_id": territory})
        assert walk.status_code == 201, walk.text
    replace_roster(engine, territory, [Member(f"网格员{i}", grids=(code,)) for i in range(MADE)])
    admin = read_territory(gpkg).layers["admin_areas"]
    villages = admin[admin["level"] == "village"][["code", "name", "geometry"]]
    gpd.GeoDataFrame(villages, crs=admin.crs).to_file(tmp / "units.geojson", driver="GeoJSON")
    for department in ("公安", "城管", "应急"):
        store_overlay(engine, territory, department, read_overlay(tmp / "units.geojson"),
                      source="units.geojson")
    with engine.begin() as conn:
        for i in range(MADE):
            conn.execute(insert(Job).values(id=f"job{i}", territory_id=territory,
                                            kind="partition", state="done"))
    for i in range(MADE - 1):
        add_account(engine, f"user{i}", "a-long-password", "viewer", "*")
    for i in range(MADE - 1):
        create_api_key(engine, ADMIN, f"key{i}")
    return {"territory_id": territory, "plan_id": draft, "event_id": events[0],
            "username": ADMIN}


def test_every_list_links_its_pages(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with client_for(create_app(Settings(database_url=db_url), engine)) as client:
        params = _fill(engine, client, tmp_path)
        doc = client.get("/openapi.json").json()
        lists = [(path, op) for path, ops in doc["paths"].items() for method, op in ops.items()
                 if method == "get" and op["responses"]["200"].get("content", {}).get(
                     "application/json", {}).get("schema", {}).get("type") == "array"]
        assert {p for p, _ in lists} >= {
            "/accounts", "/accounts/{username}/keys", "/audit", "/territories", "/jobs",
            "/territories/{territory_id}/overlays", "/plans", "/plans/{plan_id}/edits",
            "/events", "/territories/{territory_id}/staff", "/events/{event_id}/photos",
            "/patrols"}
        for path, op in lists:
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            assert {"limit", "offset"} <= names, path
            assert {"Link", "X-Total-Count"} <= set(op["responses"]["200"]["headers"]), path
            url = re.sub(r"\{(\w+)\}", lambda m: str(params[m.group(1)]), path)
            still = STILL.get(path, {})
            first = client.get(url, params={**still, "limit": 2})
            assert first.status_code == 200, (path, first.text)
            assert len(first.json()) == 2, path
            links = link_targets(first.headers["link"])
            assert set(links) == {"next"}, path
            query = parse_qs(urlsplit(links["next"]).query)
            assert (query["limit"], query["offset"]) == (["2"], ["2"]), path
            second = client.get(links["next"])
            assert second.status_code == 200 and second.json(), path
            assert {"prev", "first"} <= set(link_targets(second.headers["link"])), path
            assert second.json()[0] not in first.json(), path
            every = client.get(url, params={**still, "limit": 500})
            assert every.status_code == 200, (path, every.text)
            assert "link" not in every.headers, path        # one page holds them all
            assert every.json()[:2] == first.json(), path
            assert every.json()[2:2 + len(second.json())] == second.json(), path
            if "x-total-count" in first.headers:
                assert int(first.headers["x-total-count"]) == len(every.json()), path
            else:                                           # uncounted: the log, events
                assert path in ("/audit", "/events"), path
        # the events waiting for a location: a list inside an envelope, paged the same way
        first = client.get("/events/unlocated", params={"limit": 2})
        assert first.json()["count"] == MADE and len(first.json()["events"]) == 2
        assert set(link_targets(first.headers["link"])) == {"next"}
        second = client.get(link_targets(first.headers["link"])["next"]).json()["events"]
        assert len(second) == 1 and second[0] not in first.json()["events"]
