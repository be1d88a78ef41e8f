"""Vector tiles: tile math, tiles decoded and compared with the plan's grids on both backends,
the cache (bytes, ETag, 304, reused plan ids), problems, TileJSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import shapely.geometry
from demo_plan import DemoStore
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Transformer
from signin import client_for
from sqlalchemy import Engine, delete, insert, text

from api.app import create_app
from gis.models.territories import Territory
from gis.plans import read_grids, write_plan
from gis.settings import Settings
from maps.tiles import (
    BUFFER,
    EXTENT,
    FIELDS,
    HALF_WORLD,
    LAYER,
    PlanStamp,
    Tile,
    TileCache,
    TileError,
    check_tile,
    from_tile_coords,
    render_tile,
    status_of,
    tile_at,
    tile_bounds,
    tile_envelope,
    tiles_covering,
)

MVT = "application/vnd.mapbox-vector-tile"
TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)
BAND = (300, 500)


# ------------------------------------------------------------------------------------------
# Tile math against values worked out by hand


def test_world_and_quadrant_bounds() -> None:
    assert tile_envelope(Tile(0, 0, 0)) == pytest.approx(
        (-HALF_WORLD, -HALF_WORLD, HALF_WORLD, HALF_WORLD))
    # z1: the north-west quarter; its north edge is the Mercator limit atan(sinh(pi)).
    north = float(np.degrees(np.arctan(np.sinh(np.pi))))
    assert north == pytest.approx(85.0511287798066)
    assert tile_bounds(Tile(1, 0, 0)) == pytest.approx((-180.0, 0.0, 0.0, north), abs=1e-9)
    assert tile_bounds(Tile(1, 1, 1)) == pytest.approx((0.0, -north, 180.0, 0.0), abs=1e-9)


def test_known_tile_bounds() -> None:
    # z10 x486 y332 (Ireland, as mercantile's docs show it): west = 486/1024*360-180,
    # north = atan(sinh(pi*(1-2*332/1024))), south likewise with y=333.
    west, south, east, north = tile_bounds(Tile(10, 486, 332))
    assert west == pytest.approx(-9.140625, abs=1e-12)
    assert east == pytest.approx(-8.7890625, abs=1e-12)
    assert north == pytest.approx(53.33087298301705, abs=1e-9)
    assert south == pytest.approx(53.12040528310657, abs=1e-9)
    # Guangzhou's Baiyun district at z14: x = floor((113.30+180)/360*2^14) = floor(13348.4),
    # y = floor((1-asinh(tan(23.19°))/pi)/2*2^14) = floor(7106.5).
    assert tile_at(113.30, 23.19, 14) == Tile(14, 13348, 7106)
    # The margin widens the envelope by a share of the side, on every side.
    a, b = tile_envelope(Tile(14, 13347, 7119)), tile_envelope(Tile(14, 13347, 7119), 0.25)
    side = a[2] - a[0]
    assert side == pytest.approx(2 * HALF_WORLD / 2**14)
    assert b == pytest.approx((a[0] - side / 4, a[1] - side / 4, a[2] + side / 4,
                               a[3] + side / 4))


@given(z=st.integers(0, 22), fx=st.floats(0, 1, exclude_max=True),
       fy=st.floats(0, 1, exclude_max=True))
def test_tile_at_finds_the_tile_of_its_centre(z: int, fx: float, fy: float) -> None:
    tile = Tile(z, int(fx * 2**z), int(fy * 2**z))
    west, south, east, north = tile_bounds(tile)
    assert west < east and south < north
    assert tile_at((west + east) / 2, (south + north) / 2, z) == tile


def test_tiles_covering_a_box() -> None:
    box = tile_bounds(Tile(12, 3336, 1779))
    inner = (box[0] + 1e-6, box[1] + 1e-6, box[2] - 1e-6, box[3] - 1e-6)
    assert list(tiles_covering(inner, 12)) == [Tile(12, 3336, 1779)]
    # One zoom deeper, the same box is four tiles, listed by column.
    assert list(tiles_covering(inner, 13)) == [Tile(13, 6672, 3558), Tile(13, 6672, 3559),
                                               Tile(13, 6673, 3558), Tile(13, 6673, 3559)]


@pytest.mark.parametrize(("z", "x", "y", "words"), [
    (-1, 0, 0, "z=-1"), (23, 0, 0, "z=23"), (2, 4, 0, "x=4"), (2, 0, -1, "y=-1"),
    (0, 0, 1, "y=1")])
def test_bad_tiles_are_refused(z: int, x: int, y: int, words: str) -> None:
    with pytest.raises(TileError, match=words) as caught:
        check_tile(z, x, y)
    assert "超出范围" in caught.value.message and "outside" in caught.value.message


def test_status_against_the_band() -> None:
    assert [status_of("comprehensive", h, BAND) for h in (299, 300, 500, 501)] == \
        ["below", "in_band", "in_band", "above"]
    assert status_of("dedicated", 400, BAND) == "dedicated"


def test_cache_is_bounded_in_bytes_and_drops_the_least_recently_used() -> None:
    cost = 1000 + TileCache.OVERHEAD
    cache = TileCache(3 * cost)
    stamp = PlanStamp(1, "a")
    for i in range(3):
        cache.put(stamp, Tile(5, i, 0), bytes(1000))
    assert cache.get(stamp, Tile(5, 0, 0)) is not None  # now the most recently used
    cache.put(stamp, Tile(5, 3, 0), bytes(1000))
    assert cache.size == 3 * cost and len(cache) == 3
    assert cache.get(stamp, Tile(5, 1, 0)) is None  # the least recently used went
    assert cache.get(stamp, Tile(5, 0, 0)) == bytes(1000)
    assert cache.get(PlanStamp(1, "b"), Tile(5, 0, 0)) is None  # another generation
    cache.put(stamp, Tile(5, 9, 0), bytes(10 * cost))  # larger than the cache: not kept
    assert cache.size <= cache.max_bytes and cache.get(stamp, Tile(5, 9, 0)) is None
    assert cache.stats()["hits"] == 2


# ------------------------------------------------------------------------------------------
# Tiles of the published demo plan, on each backend


def decode(data: bytes) -> dict[str, dict[str, Any]]:
    """A tile's grid features by code (tile coordinates, y down as ST_AsMVT writes them)."""
    if not data:
        return {}
    layers = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    assert set(layers) == {LAYER}
    assert layers[LAYER]["extent"] == EXTENT
    features = layers[LAYER]["features"]
    by_code = {f["properties"]["code"]: f for f in features}
    assert len(by_code) == len(features), "one feature per grid"
    return by_code


def plan_tiles(store: DemoStore, z: int) -> list[Tile]:
    return list(tiles_covering(tuple(store.grids.total_bounds), z))


def mercator(geoms: Any) -> np.ndarray:
    return np.asarray(gpd.GeoSeries(list(geoms), crs=4326).to_crs(3857).to_numpy())


@pytest.mark.parametrize("z", [12, 14])
def test_tiles_hold_exactly_the_grids_they_meet(store: DemoStore, z: int) -> None:
    """Codes in each tile = the grids meeting the buffered tile (grids only grazing it may
    vanish when snapped to the tile grid); properties as stored; every grid in some tile;
    geometry back-projected from tile coordinates lies on the grid."""
    grids = store.grids.set_index("code")
    metric = dict(zip(grids.index, mercator(grids.geometry), strict=True))
    seen: set[str] = set()
    for tile in plan_tiles(store, z):
        got = decode(render_tile(store.engine, store.plan_id, tile, BAND))
        buffered = shapely.box(*tile_envelope(tile, BUFFER / EXTENT))
        unit = (tile_envelope(tile)[2] - tile_envelope(tile)[0]) / EXTENT
        parts = {c: shapely.intersection(g, buffered) for c, g in metric.items()}
        may = {c for c, p in parts.items() if not p.is_empty and p.area > 0}
        must = {c for c, p in parts.items() if not shapely.buffer(p, -unit).is_empty}
        assert must <= set(got) <= may, (tile, set(got) ^ must)
        seen |= set(got)
        for code, feature in got.items():
            row = grids.loc[code]
            props = feature["properties"]
            assert set(props) <= set(FIELDS) and {"code", "households", "status"} <= set(props)
            assert feature["id"] == int(row["id"])
            assert props["households"] == int(row["households"])
            assert props["status"] == status_of(row["kind"], int(row["households"]), BAND)
            assert props["kind"] == row["kind"]
            assert props["village_code"] == row["village_code"]
            assert props.get("name") == row["name"]
            assert props["flags"] == ",".join(row["flags"])
            assert props["households_estimated"] == int(row["households_estimated"])
            assert props["barrier_inside_m"] == pytest.approx(float(row["barrier_inside_m"]))
            shape = shapely.geometry.shape(feature["geometry"])
            assert shape.is_valid and shape.geom_type in ("Polygon", "MultiPolygon")
            back = mercator(from_tile_coords(np.array([shape]), tile))[0]
            want = parts[code]
            moved = shapely.area(shapely.symmetric_difference(back, want))
            # Snapping to the 4096 grid moves each vertex at most half a unit diagonally.
            assert moved <= 0.75 * unit * shapely.length(want) + 4 * unit**2, (tile, code)
            if want.area > 50 * unit * want.length:  # thick enough for snapping to be < 1%
                iou = shapely.area(shapely.intersection(back, want)) / \
                    shapely.area(shapely.union(back, want))
                assert iou > 0.99, (tile, code, iou)
    assert seen == set(grids.index)


def test_statuses_and_flags_appear(store: DemoStore) -> None:
    """The demo has in-band, dedicated and flagged grids: the tiles show them all."""
    statuses: set[str] = set()
    flagged = 0
    crossing: dict[str, float] = {}
    for tile in plan_tiles(store, 12):
        for feature in decode(render_tile(store.engine, store.plan_id, tile, BAND)).values():
            props = feature["properties"]
            statuses.add(props["status"])
            flagged += bool(props["flags"])
            if "crosses_barrier" in props["flags"].split(","):
                crossing[props["code"]] = props["barrier_inside_m"]
    assert {"in_band", "dedicated"} <= statuses <= set(("below", "in_band", "above",
                                                        "dedicated"))
    assert flagged > 0
    # The grids that cross a river, ridge or railway say so, with the metres inside them.
    want = store.grids[store.grids["flags"].map(lambda f: "crosses_barrier" in f)]
    assert set(crossing) == set(want["code"]) and len(crossing) > 0
    assert crossing == pytest.approx(dict(zip(want["code"], want["barrier_inside_m"],
                                              strict=True)))


def test_a_tile_away_from_the_plan_is_empty(store: DemoStore) -> None:
    assert render_tile(store.engine, store.plan_id, Tile(14, 0, 0), BAND) == b""


@pytest.fixture(scope="module")
def twin(store: DemoStore, request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, int]]:
    """The same grids written as a plan into a fresh store of the *other* backend."""
    from conftest import fresh_database

    from gis.database import make_engine

    other = "spatialite" if store.backend == "postgis" else "postgis"
    url = fresh_database(request, other, tmp_path_factory.mktemp("twin"))
    engine = make_engine(url)
    plan_id = write_grids(engine, store.grids)
    try:
        yield engine, plan_id
    finally:
        engine.dispose()


def write_grids(engine: Engine, grids: gpd.GeoDataFrame) -> int:
    """A territory row and a plan of ``grids`` (no blocks)."""
    with engine.begin() as conn:
        territory_id = conn.execute(insert(Territory).values(
            name="复制", metric_epsg=4526).returning(Territory.id)).scalar_one()
    blocks = gpd.GeoDataFrame({"village_code": [], "households": [], "population": [],
                               "grid_code": []}, geometry=[], crs=4326)
    return write_plan(engine, int(territory_id), grids.drop(columns="id", errors="ignore"),
                      blocks, {}, {})


@pytest.mark.parametrize("z", [12, 14, 16])
def test_both_backends_and_both_methods_agree(store: DemoStore, twin: tuple[Engine, int],
                                              z: int) -> None:
    """PostGIS (ST_AsMVT) and SpatiaLite (Python) tiles of the same grids: same codes and
    properties, outlines within snapping; on PostGIS the Python path agrees too."""
    engines = [(store.engine, store.plan_id), twin]
    if store.backend == "postgis":
        engines.append((store.engine, -1))  # -1: the Python path on PostGIS
    tiles = plan_tiles(store, z)
    if len(tiles) > 60:
        tiles = [tiles[i] for i in np.random.default_rng(z).choice(len(tiles), 60, False)]
    compared = 0
    for tile in tiles:
        decoded = []
        for engine, plan_id in engines:
            method = "python" if plan_id == -1 else "auto"
            data = render_tile(engine, store.plan_id if plan_id == -1 else plan_id, tile, BAND,
                               method)
            decoded.append(decode(data))
        first = decoded[0]
        for other in decoded[1:]:
            assert set(other) == set(first), tile
            for code, feature in first.items():
                twin_feature = other[code]
                assert {k: v for k, v in twin_feature["properties"].items()} == \
                    feature["properties"]
                a = shapely.geometry.shape(feature["geometry"])
                b = shapely.geometry.shape(twin_feature["geometry"])
                assert shapely.area(shapely.symmetric_difference(a, b)) <= \
                    0.5 * max(a.length, b.length) + 4, (tile, code)
                compared += 1
    assert compared > 0


def test_envelopes_are_postgis_own(postgis_url: str) -> None:
    """tile_envelope and tile_bounds give what ST_TileEnvelope gives (and its margin)."""
    from gis.database import make_engine

    engine = make_engine(postgis_url)
    try:
        with engine.connect() as conn:
            for tile in (Tile(0, 0, 0), Tile(1, 1, 0), Tile(14, 13347, 7119),
                         Tile(22, 3417000, 1822500)):
                row = conn.execute(text(
                    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), ST_XMin(b), "
                    "ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT ST_TileEnvelope(:z, :x, "
                    ":y) AS e, ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :m), 4326) "
                    "AS b) AS q"), {"z": tile.z, "x": tile.x, "y": tile.y,
                                    "m": BUFFER / EXTENT}).one()
                assert tile_envelope(tile) == pytest.approx(row[:4], abs=1e-6)
                if 0 < tile.x < 2**tile.z - 1:  # inside the world, with its margin
                    assert tile_bounds(tile, BUFFER / EXTENT) == pytest.approx(row[4:],
                                                                               abs=1e-9)
    finally:
        engine.dispose()
    # At the antimeridian the margin stops at 180° instead of wrapping round to -177°.
    pad = 360 / 2 * BUFFER / EXTENT
    west, _, east, north = tile_bounds(Tile(1, 1, 0), BUFFER / EXTENT)
    assert (west, east, north) == pytest.approx((-pad, 180.0, 85.0511287798066))


# ------------------------------------------------------------------------------------------
# The routes


def test_tile_route_cache_etag_and_304(store: DemoStore, client: TestClient) -> None:
    tile = next(t for t in plan_tiles(store, 14)
                if render_tile(store.engine, store.plan_id, t, BAND))
    url = f"/tiles/{store.plan_id}/{tile}.mvt"
    first = client.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"] == MVT
    assert first.content == render_tile(store.engine, store.plan_id, tile, BAND)
    again = client.get(url)
    assert again.headers["x-tile-cache"] == "hit"
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == "private, no-cache"   # docs/security.md
    for sent in (first.headers["etag"], f'"x", W/{first.headers["etag"]}', "*"):
        unchanged = client.get(url, headers={"If-None-Match": sent})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["etag"] == first.headers["etag"]
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    # Another tile, another tag.
    neighbour = Tile(tile.z, tile.x + 1, tile.y)
    assert client.get(f"/tiles/{store.plan_id}/{neighbour}.mvt").headers["etag"] != \
        first.headers["etag"]


def test_empty_tile_is_200_with_no_body(store: DemoStore, client: TestClient) -> None:
    response = client.get(f"/tiles/{store.plan_id}/14/0/0.mvt")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == "0"
    assert response.headers["content-type"] == MVT


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/tiles/{plan}/23/0/0.mvt", 400, "z=23"),
    ("/tiles/{plan}/3/8/0.mvt", 400, "x=8"),
    ("/tiles/{plan}/3/0/-2.mvt", 400, "y=-2"),
    ("/tiles/{plan}/3/a/0.mvt", 422, "x"),
    ("/tiles/999999/3/0/0.mvt", 404, "999999"),
    ("/tiles/{plan}/3/0/0.mvt?v=000000000000", 404, "TileJSON"),
    ("/tiles/999999.json", 404, "999999"),
])
def test_bad_requests_are_problems(store: DemoStore, client: TestClient, path: str,
                                   status: int, words: str) -> None:
    response = client.get(path.format(plan=store.plan_id))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and words in body["detail"]
    if status == 400:
        assert "超出范围" in body["detail"] and "outside" in body["detail"]


def test_tilejson(store: DemoStore, client: TestClient) -> None:
    response = client.get(f"/tiles/{store.plan_id}.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["tilejson"] == "3.0.0" and doc["scheme"] == "xyz"
    assert 0 <= doc["minzoom"] <= doc["maxzoom"] <= 22
    assert doc["bounds"] == pytest.approx(list(store.grids.total_bounds), abs=1e-5)
    west, south, east, north = doc["bounds"]
    assert west <= doc["center"][0] <= east and south <= doc["center"][1] <= north
    (layer,) = doc["vector_layers"]
    assert layer["id"] == LAYER and set(layer["fields"]) == set(FIELDS)
    assert all(isinstance(v, str) for v in layer["fields"].values())
    (template,) = doc["tiles"]
    assert all(part in template for part in ("{z}", "{x}", "{y}"))
    # The template, filled in, serves the plan's tiles, marked immutable (generation token).
    tile = next(t for t in plan_tiles(store, doc["maxzoom"] - 2)
                if render_tile(store.engine, store.plan_id, t, BAND))
    url = template.replace("{z}", str(tile.z)).replace("{x}", str(tile.x)) \
        .replace("{y}", str(tile.y)).removeprefix("http://testserver")
    served = client.get(url)
    assert served.status_code == 200 and "immutable" in served.headers["cache-control"]
    props = next(iter(decode(served.content).values()))["properties"]
    assert set(props) <= set(layer["fields"])


# ------------------------------------------------------------------------------------------
# No stale tile for a plan id used again


def small_grids(x0: float, households: int) -> gpd.GeoDataFrame:
    boxes = [shapely.box(x0 + i * 0.004, 23.2, x0 + (i + 1) * 0.004, 23.204) for i in range(2)]
    return gpd.GeoDataFrame({
        "code": [f"44011110020000{i + 1}" for i in range(2)], "name": ["甲", "乙"],
        "village_code": ["440111100200"] * 2, "kind": ["comprehensive"] * 2,
        "households": [households] * 2, "population": [households * 3] * 2,
        "area_m2": [1.0] * 2, "compactness": [0.8] * 2, "barrier_share": [0.5] * 2,
        "radius_m": [200.0] * 2, "boundary_text": ["东至…"] * 2, "flags": [[], []]},
        geometry=boxes, crs=4326)


def test_a_reused_plan_id_never_gets_the_old_tiles(engine: Engine) -> None:
    """Delete a territory with its plan, store another plan under the same id (neither
    backend reuses an id by itself since migration 0009: the id sequence is reset, as after
    a restore): the cached tile and the old ETag are not served for it."""
    settings = Settings(database_url=str(engine.url), escalation_interval_s=0)
    with client_for(create_app(settings, engine)) as client:
        first = write_grids(engine, small_grids(113.30, 350))
        tile = tile_at(113.302, 23.202, 15)
        url = f"/tiles/{first}/{tile}.mvt"
        old = client.get(url)
        assert old.status_code == 200 and client.get(url).headers["x-tile-cache"] == "hit"
        assert {f["properties"]["households"] for f in decode(old.content).values()} == {350}
        old_url = client.get(f"/tiles/{first}.json").json()["tiles"][0]
        with engine.begin() as conn:
            conn.execute(delete(Territory))
            if engine.dialect.name == "postgresql":
                conn.execute(text("ALTER SEQUENCE plans_id_seq RESTART WITH 1"))
            else:
                conn.execute(text("UPDATE sqlite_sequence SET seq = 0 WHERE name = 'plans'"))
        assert client.get(url).status_code == 404
        second = write_grids(engine, small_grids(113.30, 600))
        assert second == first
        new = client.get(url, headers={"If-None-Match": old.headers["etag"]})
        assert new.status_code == 200 and new.headers["etag"] != old.headers["etag"]
        assert new.headers["x-tile-cache"] == "miss"
        assert {(f["properties"]["households"], f["properties"]["status"])
                for f in decode(new.content).values()} == {(600, "above")}
        filled = old_url.replace("{z}", str(tile.z)).replace("{x}", str(tile.x)) \
            .replace("{y}", str(tile.y)).removeprefix("http://testserver")
        assert client.get(filled).status_code == 404  # the old generation's URL
    assert read_grids(engine, second)["households"].tolist() == [600, 600]
