"""Class 11 and 9: the re-route's actor is the signed-in account; phone numbers are masked in
every way people write them, and a name with a phone loses both; account areas are 6, 9,
12 or 15 digits or *; tiles cut to an account's areas are private to it (never public,
never cached for someone else); posters are kept and made a bounded number at a time."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from secworld import World, make_world, partitioned, world  # noqa: F401

from events.privacy import mask_name, mask_text
from gis.accounts import AccountError, parse_areas
from maps.tiles import tile_at


def test_the_actor_of_a_reroute_is_the_signed_in_account(world: World) -> None:
    x, y, code = world.point(3)
    with world.client("worker-w", "grid_worker", code[:12]) as worker, world.client() as admin:
        worker_name = "worker-w"
        made = worker.post("/events", json={"x": x, "y": y, "coord_sys": "wgs84",
                                            "category": "sanitation", "source": "patrol"})
        assert made.status_code == 201, made.text
        newer = admin.post(f"/plans/{world.plan_id}/copy").json()["id"]
        assert admin.post(f"/plans/{newer}/publish").status_code == 200
        world.app.state.routers.invalidate()
        for body in ({"actor": "区长 (forged)", "reason": "新方案"}, {"reason": "新方案"}):
            moved = worker.post(f"/events/{made.json()['id']}/reroute", json=body)
            assert moved.status_code == 200, moved.text
            assert moved.json()["history"][-1]["actor"] == worker_name
        history = admin.get(f"/events/{made.json()['id']}").json()["history"]
        assert "区长 (forged)" not in str(history)


@pytest.mark.parametrize(("text", "hidden"), [
    ("13912345678", "12345678"[:4]), ("+8613912345678", "1234"), ("+86 139 1234 5678", "1234"),
    ("8613912345678", "1234"), ("008613912345678", "1234"), ("139-1234-5678", "1234"),
    ("139 1234 5678", "1234"), ("１３９１２３４５６７８", "１２３４"),
    ("联系１３９－１２３４－５６７８", "１２３４"), ("010-12345678", "1234"),
    ("(010) 8765 4321", "8765"), ("0755 8765 4321", "8765"), ("+86 10 8765 4321", "8765"),
    ("+86-21-62345678", "6234"), ("电话：021-62345678。", "6234")])
def test_phone_numbers_are_masked_however_written(text: str, hidden: str) -> None:
    masked = mask_text(f"报告人说 {text} 请回电")
    assert masked is not None and hidden not in masked, masked
    assert "*" in masked and masked.endswith(" 请回电")


@pytest.mark.parametrize("text", ["网格 440111001001001 内", "村 440111001001", "2026-05-01",
                                  "工单 20261207000123", "12345 热线", "楼高 18 层 120 户"])
def test_codes_dates_and_counts_are_not_taken_for_phones(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize("name", ["张三13912345678", "李四 139-1234-5678", "王五+86 13912345678",
                                  "赵六 (010)87654321"])
def test_a_name_followed_by_a_phone_loses_both(name: str) -> None:
    masked = mask_name(name)
    assert masked is not None
    assert name[1] not in masked and "1234" not in masked and "8765" not in masked, masked
    assert masked[0] == name[0]


def test_account_areas_are_codes_of_the_scheme() -> None:
    for good in ("440111", "440111001", "440111001001", "440111001001001", "*",
                 "440111,440112001"):
        assert parse_areas(good)
    for bad in ("4", "44", "4401", "44011", "4401110", "44011100", "4401110010",
                "44011100100", "4401110010010", "44011100100100", "4401110010010011",
                "*,440111", "44x111", "440111 001"):
        with pytest.raises(AccountError):
            parse_areas(bad)


def test_account_areas_are_checked_over_http(world: World) -> None:
    with world.client() as admin:
        for areas in (["44"], ["4401"], ["44011100"], ["440111001001001001"]):
            made = admin.post("/accounts", json={"username": "odd", "password": "x" * 12,
                                                 "role": "viewer", "areas": areas})
            assert made.status_code == 422, (areas, made.text)
            assert "6 digits" in made.json()["detail"]


def test_tiles_are_private_to_the_account(world: World) -> None:
    x, y, code = world.point()
    tile = tile_at(x, y, 15)
    path = f"/tiles/{world.plan_id}/{tile.z}/{tile.x}/{tile.y}.mvt"
    with world.client("town-v", "viewer", code[:9]) as town, world.client() as everyone:
        token = town.get(f"/tiles/{world.plan_id}.json").json()["tiles"][0].split("?v=")[1]
        for client in (town, everyone):
            for url in (path, f"{path}?v={token}", f"/tiles/{world.plan_id}.json"):
                answer = client.get(url)
                assert answer.status_code == 200
                cache = answer.headers["cache-control"]
                assert "private" in cache and "public" not in cache, (url, cache)
                vary = {v.strip().lower() for v in answer.headers["vary"].split(",")}
                assert {"authorization", "x-api-key", "cookie"} <= vary
        # Cut tiles differ by account, and so do their validators.
        assert town.get(path).headers["etag"] != everyone.get(path).headers["etag"]


def _village(world: World) -> str:
    return str(world.grids["village_code"].value_counts().index[-1])


def test_posters_are_kept_by_plan_area_size_and_format(world: World) -> None:
    village = _village(world)
    url = f"/plans/{world.plan_id}/posters/{village}.png"
    with world.client() as admin:
        first = admin.get(url)
        assert first.status_code == 200 and first.headers["x-poster-cache"] == "miss"
        again = admin.get(url)
        assert again.headers["x-poster-cache"] == "hit" and again.content == first.content
        assert admin.get(f"{url}?size=A0").headers["x-poster-cache"] == "miss"
        # Publishing another plan changes what this plan's poster says (archived): remade.
        newer = admin.post(f"/plans/{world.plan_id}/copy").json()["id"]
        assert admin.post(f"/plans/{newer}/publish").status_code == 200
        assert admin.get(url).headers["x-poster-cache"] == "miss"


def test_posters_made_at_once_are_bounded(db_url: str, partitioned: Any) -> None:
    backend = "postgis" if db_url.startswith("postgresql") else "spatialite"
    small = make_world(backend, db_url, partitioned, poster_workers=1, poster_wait_s=0.05,
                       poster_cache_mb=0)
    villages = [str(v) for v in small.grids["village_code"].unique()[:4]]
    gate = threading.Barrier(len(villages))
    with small.client() as admin:

        def ask(village: str) -> Any:
            gate.wait()
            return admin.get(f"/plans/{small.plan_id}/posters/{village}.png")

        with ThreadPoolExecutor(len(villages)) as pool:
            answers = list(pool.map(ask, villages))
    codes = sorted(a.status_code for a in answers)
    assert 200 in codes and 503 in codes, codes
    for busy in (a for a in answers if a.status_code == 503):
        assert int(busy.headers["Retry-After"]) > 0
        assert busy.json()["type"] == "/problems/busy"
    small.engine.dispose()


def test_every_answer_to_an_account_is_private(world: World) -> None:
    """Not only tiles: grids, events, exports cut to an account's areas are never stored by
    a shared cache (private, Vary on what tells accounts apart)."""
    _, _, code = world.point()
    with world.client("town-p", "operator", code[:9]) as town:
        for url in (f"/plans/{world.plan_id}/grids", "/events", f"/plans/{world.plan_id}",
                    f"/plans/{world.plan_id}/export.geojson", "/screen/data", "/me"):
            answer = town.get(url)
            assert answer.status_code == 200, (url, answer.text[:200])
            assert "private" in answer.headers.get("cache-control", ""), url
            assert "public" not in answer.headers.get("cache-control", ""), url
            assert "cookie" in answer.headers.get("vary", "").lower(), url
    with world.client() as admin:
        admin.headers.clear()
        assert "private" not in admin.get("/healthz").headers.get("cache-control", "")
