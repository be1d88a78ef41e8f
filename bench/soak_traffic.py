"""What the soak asks: the plan's points, areas and tiles, and a request maker per kind
(events with idempotency keys and retries, routes, tiles, grids, event lists, screens)."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from demo_db import connect, in_grids
from http_client import Conn
from load_gen import CATEGORIES
from soak_client import Limits, Recorder, Request, send

SOURCES = ("patrol", "citizen", "hotline", "sensor")
ZOOMS = (12, 13, 14, 15, 16)
ZOOM_WEIGHTS = (0.1, 0.15, 0.25, 0.25, 0.25)
#: What a browser (maps, the screen) adds to a GET: the service's GZip middleware compresses.
BROWSER = {"Accept-Encoding": "gzip, deflate"}


@dataclass
class World:
    """What the traffic is made from: the plan, points, areas, tiles."""

    plan_id: int
    territory_id: int
    inside: np.ndarray        # (n, 2) WGS84 points inside the grids
    inside_gcj: np.ndarray    # the same in GCJ-02
    box: np.ndarray           # (n, 2) points anywhere in the grids' bounding box
    box_gcj: np.ndarray
    bounds: tuple[float, float, float, float]
    token: str
    districts: list[str]
    towns: list[str]
    villages: list[str]
    grids: list[str]
    grids_url: str


@dataclass
class Ledger:
    """The idempotency keys posted and what came back for them."""

    answered: dict[str, int] = field(default_factory=dict)   # key → event id (2xx)
    bodies: dict[str, bytes] = field(default_factory=dict)   # key → the body sent
    unsure: set[str] = field(default_factory=set)            # sent, no answer
    created: int = 0            # 201
    first_answered_200: int = 0  # a new key answered 200 (a retry of nothing)
    retries: int = 0
    retries_200_same: int = 0
    retries_new_event: int = 0  # a retry answered 201 or with another id: a duplicate
    routed_outside: int = 0     # inside points the answer put outside every grid


def event_maker(world: World, ledger: Ledger, prefix: str, retry_share: float,
                rng: random.Random) -> Callable[[], Request]:
    counter = iter(range(10**12))

    def make() -> Request:
        if ledger.answered and rng.random() < retry_share:
            key = rng.choice(list(ledger.answered)[-500:])
            expect = ledger.answered[key]
            ledger.retries += 1

            def retried(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
                if status // 100 != 2:
                    return
                got = json.loads(body)["id"]
                if status == 200 and got == expect:
                    ledger.retries_200_same += 1
                else:
                    ledger.retries_new_event += 1

            return Request("POST", "/events", ledger.bodies[key],
                           {"Content-Type": "application/json"}, True, retried)
        n = next(counter)
        key = f"{prefix}-{n}"
        i = rng.randrange(len(world.inside))
        gcj = rng.random() < 0.5
        x, y = (world.inside_gcj if gcj else world.inside)[i]
        payload = {"x": float(x), "y": float(y), "coord_sys": "gcj02" if gcj else "wgs84",
                   "category": rng.choice(CATEGORIES), "source": rng.choice(SOURCES),
                   "territory_id": world.territory_id,
                   "description": f"压测事件 soak {n}", "reporter": f"网格员{n % 97}",
                   "idempotency_key": key}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")

        def answered(status: int, headers: dict[bytes, bytes], body_: bytes) -> None:
            if status // 100 != 2:
                return
            event = json.loads(body_)
            ledger.answered[key] = int(event["id"])
            ledger.bodies[key] = body
            ledger.unsure.discard(key)
            if status == 201:
                ledger.created += 1
            else:
                ledger.first_answered_200 += 1
            if not event.get("grid_code"):
                ledger.routed_outside += 1

        def failed() -> None:
            ledger.unsure.add(key)

        return Request("POST", "/events", body, {"Content-Type": "application/json"}, True,
                       answered, failed)

    return make


def route_maker(world: World, rng: random.Random) -> Callable[[], Request]:
    def make() -> Request:
        inside = rng.random() < 0.8
        gcj = rng.random() < 0.5
        pts = (world.inside_gcj if gcj else world.inside) if inside else \
            (world.box_gcj if gcj else world.box)
        x, y = pts[rng.randrange(len(pts))]
        return Request("GET", f"/route?x={float(x)!r}&y={float(y)!r}&coord_sys="
                              f"{'gcj02' if gcj else 'wgs84'}&territory={world.territory_id}")

    return make


@dataclass
class TileLog:
    """What the tile traffic met: the server's cache header, sizes, distinct tiles."""

    etags: dict[tuple[int, int, int], str] = field(default_factory=dict)
    sizes: dict[tuple[int, int, int], int] = field(default_factory=dict)
    cache: Counter[str] = field(default_factory=Counter)
    revalidations: int = 0


def tile_maker(world: World, log: TileLog, rng: random.Random) -> Callable[[], Request]:
    from maps.tiles import tile_at, tiles_covering

    ranges = {}
    for z in ZOOMS:
        tiles = list(tiles_covering(world.bounds, z))
        ranges[z] = (min(t.x for t in tiles), max(t.x for t in tiles),
                     min(t.y for t in tiles), max(t.y for t in tiles))
    spots = [world.inside[i] for i in rng.sample(range(len(world.inside)), 12)]
    weights = [1 / (k + 1) for k in range(len(spots))]   # Zipf: a few places are busy

    def make() -> Request:
        if log.etags and rng.random() < 0.1:   # a client revalidating what it has
            address = rng.choice(list(log.etags))
            log.revalidations += 1
            z, x, y = address
            return Request("GET", f"/tiles/{world.plan_id}/{z}/{x}/{y}.mvt",
                           headers={**BROWSER, "If-None-Match": log.etags[address]})
        z = rng.choices(ZOOMS, ZOOM_WEIGHTS)[0]
        x0, x1, y0, y1 = ranges[z]
        if rng.random() < 0.8:
            lon, lat = rng.choices(spots, weights)[0]
            centre = tile_at(float(lon), float(lat), z)
            x = min(max(centre.x + rng.randint(-2, 2), x0), x1)
            y = min(max(centre.y + rng.randint(-2, 2), y0), y1)
        else:
            x, y = rng.randint(x0, x1), rng.randint(y0, y1)

        def done(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
            if status == 200:
                log.etags[(z, x, y)] = headers.get(b"etag", b"").decode()
                raw = (gzip.decompress(body) if headers.get(b"content-encoding") == b"gzip"
                       else body)
                log.sizes[(z, x, y)] = len(raw)   # what the server's cache holds
                log.cache[headers.get(b"x-tile-cache", b"?").decode()] += 1

        return Request("GET", f"/tiles/{world.plan_id}/{z}/{x}/{y}.mvt?v={world.token}",
                       headers=BROWSER, with_body=True, done=done)

    return make



def browser_gets(rng: random.Random, paths: Sequence[tuple[float, Callable[[], str]]]
                 ) -> Callable[[], Request]:
    """GETs as a browser sends them, the path drawn by share: ``paths`` holds (cumulative
    share up to, path maker) pairs, the last one taking the rest."""

    def make() -> Request:
        r = rng.random()
        path = next((p for upto, p in paths[:-1] if r < upto), paths[-1][1])
        return Request("GET", path(), headers=BROWSER)

    return make


def grids_maker(world: World, rng: random.Random) -> Callable[[], Request]:
    base = f"/plans/{world.plan_id}/grids"

    def viewport() -> str:
        lon, lat = world.inside[rng.randrange(len(world.inside))]
        half = rng.uniform(0.005, 0.02)   # a viewport of 1–4 km
        return (f"{base}?bbox={lon - half:.5f},{lat - half:.5f},{lon + half:.5f},"
                f"{lat + half:.5f}")

    return browser_gets(rng, [
        (0.5, viewport),
        (0.75, lambda: f"{base}?town={rng.choice(world.towns)}"),
        (0.95, lambda: f"{base}?village={rng.choice(world.villages)}&simplify=3"),
        (1.0, lambda: world.grids_url)])


def lists_maker(world: World, rng: random.Random) -> Callable[[], Request]:
    base = f"/events?territory={world.territory_id}"
    return browser_gets(rng, [
        (0.3, lambda: f"{base}&town={rng.choice(world.towns)}&open=true&limit=100"),
        (0.6, lambda: f"{base}&village={rng.choice(world.villages)}&limit=50"),
        (0.85, lambda: f"{base}&grid={rng.choice(world.grids)}&limit=50"),
        (1.0, lambda: f"{base}&limit=100&offset={rng.randrange(0, 2000, 100)}")])


@dataclass
class ScreenLog:
    by_level: dict[str, Counter[int | str]] = field(default_factory=dict)


async def screen(level: str, area: str | None, world: World, port: int, interval: float,
                 recycle: int, timeout: float, rec: Recorder, limits: Limits,
                 log: ScreenLog, rng: random.Random) -> None:
    """One command-centre screen: loads the plan's grids once, then polls its area's figures
    with the last ETag."""
    conn = Conn(port, recycle, timeout)
    counts = log.by_level.setdefault(level, Counter())
    await asyncio.sleep(rng.uniform(0, interval))
    if limits.over():
        return
    await send(conn, "get_grids", Request("GET", world.grids_url, headers=BROWSER), rec)
    etag: list[str] = []
    query = f"/screen/data?territory={world.territory_id}" + (f"&area={area}" if area else "")

    def done(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        if rec.measuring:
            counts[status] += 1
        if status == 200:
            etag[:] = [headers.get(b"etag", b"").decode()]

    slot = time.monotonic()
    while True:
        slot += interval
        wait = slot - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if limits.over():
            break
        slot = max(slot, time.monotonic())
        headers = {**BROWSER, "If-None-Match": etag[0]} if etag else BROWSER
        await send(conn, "screen_data", Request("GET", query, headers=headers, done=done), rec)
    await conn.close()


def make_world(url: str, setup: dict[str, Any], grids_path: Path, seed: int) -> World:
    from gis.obfuscation import gcj02_from_wgs84
    from gis.settings import Settings
    from maps.screen import grids_url

    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = setup["bbox_wgs84"]
    n = 20_000
    box = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
    inside = box[in_grids(box[:, 0], box[:, 1], grids_path)][:n]
    box = box[:n]
    tid, plan_id = setup["territory_id"], setup["plan_id"]
    with connect(url) as conn:
        areas = conn.execute("SELECT level::text, code FROM admin_areas WHERE territory_id = "
                             "%s ORDER BY code", (tid,)).fetchall()
        grid_codes = [r[0] for r in conn.execute(
            "SELECT code FROM grids WHERE plan_id = %s ORDER BY code", (plan_id,))]
    level = {lv: [c for lv_, c in areas if lv_ == lv] for lv in ("district", "town", "village")}
    return World(plan_id=plan_id, territory_id=tid, inside=inside,
                 inside_gcj=np.column_stack(gcj02_from_wgs84(inside[:, 0], inside[:, 1])),
                 box=box, box_gcj=np.column_stack(gcj02_from_wgs84(box[:, 0], box[:, 1])),
                 bounds=(minx, miny, maxx, maxy), token="",
                 districts=level["district"], towns=level["town"], villages=level["village"],
                 grids=grid_codes, grids_url=grids_url(plan_id, Settings().basemap_crs))


async def fetch_token(port: int, world: World) -> None:
    """The plan's generation token, from its TileJSON (as a map client gets it)."""
    conn = Conn(port, 10, 60)
    status, _, body = await conn.request("GET", f"/tiles/{world.plan_id}.json",
                                         with_body=True)
    await conn.close()
    if status != 200:
        raise RuntimeError(f"TileJSON answered {status}")
    template = json.loads(body)["tiles"][0]
    world.token = template.split("?v=")[1]

