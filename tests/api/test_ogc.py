"""The OGC API – Features endpoint, read by GDAL's OAPIF driver from a real uvicorn server."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import httpx
import oapif_reader
import pyproj
import pytest
import shapely
import shapely.geometry
from browser import LiveServer, live_server
from demo_plan import (
    DEMO_NAME,
    LON_LAT,
    PAGE_LIMIT,
    PAGE_LIMIT_MAX,
    DemoStore,
    assert_matches_plan,
)

from api.app import create_app

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
PROBLEM = "application/problem+json"


class Server(LiveServer):
    def items_requests(self, collection: str) -> list[dict[str, list[str]]]:
        path = f"/ogc/collections/{collection}/items"
        return [query for p, query in self.requests if p == path]


@pytest.fixture(scope="module")
def server(store: DemoStore) -> Iterator[Server]:
    with live_server(create_app(store.settings, store.engine)) as running:
        yield Server(running.url, running.requests)


@pytest.fixture(scope="module")
def gdal() -> Iterator[ProcessPoolExecutor]:
    """A child process for GDAL (see oapif_reader: pyogrio holds the GIL while reading)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def oapif(server: Server) -> str:
    return f"OAPIF:{server.url}/ogc"


def test_gdal_lists_grids_for_published_territories_and_areas_for_all(
        server: Server, store: DemoStore, gdal: ProcessPoolExecutor) -> None:
    layers = dict(gdal.submit(oapif_reader.list_layers, oapif(server)).result(timeout=120))
    t, tiny = store.territory_id, store.tiny_territory_id
    assert set(layers) == {f"grids-{t}", f"streets-{t}", f"areas-{t}", f"areas-{tiny}"}
    # (GDAL says Unknown when the first page mixes Polygon and MultiPolygon: a grid in
    # parts; the geometries read are checked below.)
    assert layers[f"grids-{t}"] in ("Polygon", "MultiPolygon", "Unknown"), layers
    assert "LineString" in layers[f"streets-{t}"], layers


def test_gdal_reads_the_inferred_streets_of_the_published_plan(
        server: Server, store: DemoStore, gdal: ProcessPoolExecutor) -> None:
    from gis.plans import read_lines

    want = read_lines(store.engine, store.plan_id)
    assert len(want) > 0, "the demo plan must have inferred streets"
    frame = gdal.submit(oapif_reader.read, oapif(server),
                        f"streets-{store.territory_id}").result(timeout=120)
    assert frame.crs.to_string() in LON_LAT
    assert sorted(frame["line_no"].astype(int)) == sorted(want["line_no"].astype(int))
    got = frame.set_index(frame["line_no"].astype(int)).sort_index()
    want = want.set_index(want["line_no"].astype(int)).sort_index()
    assert (got["kind"] == "inferred_street").all()
    assert list(got["name"]) == list(want["name"])
    assert got["width_m"].astype(float).round(2).tolist() == \
        want["width_m"].astype(float).round(2).tolist()
    # (7 decimals in GeoJSON: about 1 cm)
    apart = shapely.hausdorff_distance(got.geometry.to_numpy(), want.geometry.to_numpy())
    assert float(apart.max()) < 1e-6
    one = int(want.index[0])
    item = httpx.get(f"{server.url}/ogc/collections/streets-{store.territory_id}/items/{one}")
    assert item.status_code == 200 and item.json()["id"] == one
    assert item.json()["properties"]["width_m"] == round(float(want.loc[one, "width_m"]), 2)
    doc = httpx.get(f"{server.url}/ogc/collections/streets-{store.territory_id}").json()
    assert doc["title"].startswith("推测巷道") and "extent" in doc
    missing = httpx.get(f"{server.url}/ogc/collections/streets-{store.tiny_territory_id}")
    assert missing.status_code == 404 and "no published plan" in missing.json()["detail"]


def test_gdal_reads_every_grid_following_the_next_links(
        server: Server, store: DemoStore, gdal: ProcessPoolExecutor) -> None:
    collection = f"grids-{store.territory_id}"
    server.requests.clear()
    frame = gdal.submit(oapif_reader.read, oapif(server), collection).result(timeout=120)
    assert_matches_plan(frame, store, tolerance=1e-3)
    assert list(frame["id"]) == list(frame["code"])  # the feature id is the grid code
    assert set(frame.geom_type) <= {"Polygon", "MultiPolygon"}
    offsets = sorted(int(q["offset"][0]) for q in server.items_requests(collection)
                     if "offset" in q)
    n = len(store.grids)
    assert offsets == list(range(PAGE_LIMIT_MAX, n, PAGE_LIMIT_MAX)), \
        "GDAL must have paged through the server's capped pages"


def test_gdal_bbox_is_filtered_by_the_server(server: Server, store: DemoStore,
                                             gdal: ProcessPoolExecutor) -> None:
    x0, y0, x1, y1 = store.grids.total_bounds
    box = (x0 + (x1 - x0) * 0.3, y0 + (y1 - y0) * 0.3, x0 + (x1 - x0) * 0.6,
           y0 + (y1 - y0) * 0.6)
    expected = sorted(store.grids["code"][shapely.intersects(
        store.grids.geometry.to_numpy(), shapely.box(*box))])
    assert 0 < len(expected) < len(store.grids)
    collection = f"grids-{store.territory_id}"
    server.requests.clear()
    frame = gdal.submit(oapif_reader.read, oapif(server), collection,
                        bbox=box).result(timeout=120)
    assert sorted(frame["code"]) == expected
    assert any("bbox" in q for q in server.items_requests(collection))
    page = httpx.get(f"{server.url}/ogc/collections/{collection}/items",
                     params={"bbox": ",".join(map(str, box))}).json()
    assert page["numberMatched"] == len(expected)


def test_gdal_reads_the_admin_areas(server: Server, store: DemoStore,
                                    gdal: ProcessPoolExecutor) -> None:
    frame = gdal.submit(oapif_reader.read, oapif(server),
                        f"areas-{store.territory_id}").result(timeout=120)
    assert sorted(frame["code"]) == sorted(store.area_names)
    assert dict(zip(frame["code"], frame["name"], strict=True)) == store.area_names
    assert set(frame["level"]) == {"district", "town", "village"}
    assert frame.crs.to_string() in LON_LAT


def test_pages_link_to_each_other(server: Server, store: DemoStore) -> None:
    url = f"{server.url}/ogc/collections/grids-{store.territory_id}/items"
    n = len(store.grids)
    codes: list[str] = []
    next_url: str | None = f"{url}?limit=4"
    pages = 0
    while next_url:
        response = httpx.get(next_url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/geo+json"
        assert response.headers["content-crs"] == f"<{CRS84}>"
        page = response.json()
        assert page["type"] == "FeatureCollection" and page["numberMatched"] == n
        assert page["numberReturned"] == len(page["features"]) <= 4
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page["timeStamp"])
        links = {link["rel"]: link["href"] for link in page["links"]}
        assert links["self"] == next_url
        if pages:
            assert parse_qs(links["prev"].split("?", 1)[1])["offset"] == [str(4 * (pages - 1))]
        codes += [f["id"] for f in page["features"]]
        next_url = links.get("next")
        pages += 1
    assert codes == sorted(store.grids["code"]) and pages == -(-n // 4)
    assert httpx.get(url).json()["numberReturned"] == PAGE_LIMIT
    assert httpx.get(url, params={"limit": 1000}).json()["numberReturned"] == PAGE_LIMIT_MAX
    assert httpx.get(url, params={"offset": n}).json()["features"] == []


def test_landing_page_conformance_and_collection(server: Server, store: DemoStore) -> None:
    landing = httpx.get(f"{server.url}/ogc")
    assert landing.headers["content-type"] == "application/json"
    links = {link["rel"]: link for link in landing.json()["links"]}
    assert set(links) == {"self", "service-desc", "service-doc", "conformance", "data"}
    api = httpx.get(links["service-desc"]["href"]).json()
    limit = api["components"]["parameters"]["limit"]["schema"]
    assert (limit["default"], limit["maximum"]) == (PAGE_LIMIT, PAGE_LIMIT_MAX)
    assert {"$ref": "#/components/parameters/limit"} in \
        api["paths"]["/ogc/collections/{collectionId}/items"]["get"]["parameters"]
    conforms = httpx.get(links["conformance"]["href"]).json()["conformsTo"]
    assert {c.rsplit("/", 1)[1] for c in conforms} == {"core", "geojson", "oas30", "crs"}

    listed = httpx.get(links["data"]["href"]).json()["collections"]
    grids = next(c for c in listed if c["id"] == f"grids-{store.territory_id}")
    assert grids == httpx.get(f"{server.url}/ogc/collections/{grids['id']}").json()
    assert DEMO_NAME in grids["title"] and f"v{store.version}" in grids["title"]
    assert grids["crs"] == [CRS84, f"{EPSG}4490", f"{EPSG}{store.metric_epsg}"]
    assert grids["storageCrs"] == CRS84 and grids["extent"]["spatial"]["crs"] == CRS84
    assert grids["extent"]["spatial"]["bbox"][0] == pytest.approx(
        list(store.grids.total_bounds), abs=1e-7)
    rels = {link["rel"]: link for link in grids["links"]}
    assert rels["items"]["type"] == "application/geo+json"
    gpkg = next(link for link in grids["links"] if link["rel"] == "enclosure"
                and link["type"] == "application/geopackage+sqlite3")
    download = httpx.get(gpkg["href"])
    assert download.status_code == 200 and download.content.startswith(b"SQLite format 3")


def test_one_feature_by_its_code(server: Server, store: DemoStore) -> None:
    want = store.grids.iloc[len(store.grids) // 2]
    url = f"{server.url}/ogc/collections/grids-{store.territory_id}/items/{want['code']}"
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    feature = response.json()
    assert feature["type"] == "Feature" and feature["id"] == want["code"]
    assert feature["properties"]["households"] == want["households"]
    assert feature["properties"]["name"] == want["name"]
    geometry = shapely.geometry.shape(feature["geometry"])
    assert shapely.equals_exact(geometry, want.geometry, tolerance=1e-7)  # 7 decimals
    assert {link["rel"] for link in feature["links"]} == {"self", "collection"}


@pytest.mark.parametrize(("path", "params", "headers", "status", "detail"), [
    ("/ogc/collections/grids-999", {}, {}, 404, "no collection"),
    ("/ogc/collections/nothing/items", {}, {}, 404, "no collection"),
    ("/ogc/collections/grids-{tiny}", {}, {}, 404, "no published plan"),
    ("/ogc/collections/grids-{t}/items/000", {}, {}, 404, "no feature '000'"),
    ("/ogc/collections/grids-{t}/items", {"limit": 0}, {}, 400, "limit"),
    ("/ogc/collections/grids-{t}/items", {"limit": "ten"}, {}, 400, "limit"),
    ("/ogc/collections/grids-{t}/items", {"offset": -1}, {}, 400, "offset"),
    ("/ogc/collections/grids-{t}/items", {"bbox": "113,23,114"}, {}, 400, "bbox"),
    ("/ogc/collections/grids-{t}/items", {"bbox": "1,2,3,4", "bbox-crs": "EPSG:3857"}, {},
     400, "bbox-crs"),
    ("/ogc/collections/grids-{t}/items",
     {"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}, {}, 400, "crs"),
    ("/ogc/collections/grids-{t}/items", {"crs": "EPSG:4546"}, {}, 400, "EPSG/0/4490"),
    ("/ogc/collections/grids-{t}/items/000", {"crs": "EPSG:3857"}, {}, 400, "crs"),
    ("/ogc/collections/grids-{t}/items", {"bbox": "23,113,22,114", "bbox-crs": "EPSG:4490"},
     {}, 400, "bbox"),
    ("/ogc/collections/grids-{t}/items", {"bbox": "a,b,c,d", "bbox-crs": "[EPSG:4490]"},
     {}, 400, "bbox"),
    ("/ogc", {"f": "html"}, {}, 400, "f=json"),
    ("/ogc/collections", {}, {"Accept": "text/html"}, 406, "application/json"),
    ("/ogc/collections/areas-{t}/items", {}, {"Accept": "application/xml"}, 406,
     "application/geo+json"),
])
def test_errors_are_problem_details(server: Server, store: DemoStore, path: str,
                                    params: dict[str, Any], headers: dict[str, str],
                                    status: int, detail: str) -> None:
    path = path.format(t=store.territory_id, tiny=store.tiny_territory_id)
    response = httpx.get(server.url + path, params=params, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["instance"] == path
    assert detail in body["detail"]


@pytest.mark.parametrize(("params", "accept", "media_type"), [
    ({}, "application/geo+json, application/json", "application/geo+json"),
    ({}, "application/json", "application/json"),
    ({}, "text/html,application/xhtml+xml,*/*;q=0.8", "application/geo+json"),
    ({"f": "json"}, "text/html", "application/geo+json"),
])
def test_items_media_type_follows_f_and_accept(server: Server, store: DemoStore,
                                               params: dict[str, str], accept: str,
                                               media_type: str) -> None:
    response = httpx.get(f"{server.url}/ogc/collections/areas-{store.territory_id}/items",
                         params=params, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.json()["numberMatched"] == len(store.area_names)


# --- Part 2: coordinate reference systems by reference -------------------------------------


def _zone(store: DemoStore) -> str:
    return f"EPSG:{store.metric_epsg}"


@pytest.mark.parametrize("crs", ["EPSG:4490", "zone"])
def test_gdal_reads_the_grids_in_cgcs2000_and_the_zone(
        server: Server, store: DemoStore, gdal: ProcessPoolExecutor, crs: str) -> None:
    crs = _zone(store) if crs == "zone" else crs
    collection = f"grids-{store.territory_id}"
    server.requests.clear()
    frame = gdal.submit(oapif_reader.read, oapif(server), collection,
                        CRS=crs).result(timeout=120)
    assert frame.crs.to_epsg() == int(crs.split(":")[1])
    asked = {q["crs"][0] for q in server.items_requests(collection) if "crs" in q}
    assert asked == {EPSG + crs.split(":")[1]}
    want = store.grids.set_index("code").geometry.to_crs(store.metric_epsg)
    got = frame.set_index("code").geometry.to_crs(store.metric_epsg).loc[want.index]
    gap = shapely.hausdorff_distance(got.to_numpy(), want.to_numpy())
    assert float(gap.max()) < 0.01  # 1 cm
    assert_matches_plan(frame.to_crs(4326), store, tolerance=1e-3)


def test_items_in_a_crs_are_in_its_axis_order_and_say_so(server: Server,
                                                          store: DemoStore) -> None:
    url = f"{server.url}/ogc/collections/grids-{store.territory_id}/items"
    first = store.grids.sort_values("code").iloc[0]
    lon, lat = shapely.get_coordinates(first.geometry)[0]
    answers = {}
    for crs in (None, f"{EPSG}4490", "[EPSG:4490]", f"{EPSG}{store.metric_epsg}"):
        response = httpx.get(url, params={"crs": crs} if crs else {})
        assert response.status_code == 200, response.text
        want = crs if crs is None or crs.startswith("http") else f"{EPSG}4490"
        assert response.headers["content-crs"] == f"<{want or CRS84}>"
        answers[crs] = response.json()["features"][0]["geometry"]["coordinates"][0][0]
        if response.json()["features"][0]["geometry"]["type"] == "MultiPolygon":
            answers[crs] = answers[crs][0]
    assert answers[None] == pytest.approx([lon, lat], abs=1e-7)
    assert answers[f"{EPSG}4490"] == pytest.approx([lat, lon], abs=1e-8)  # latitude first
    assert answers["[EPSG:4490]"] == answers[f"{EPSG}4490"]
    north, east = answers[f"{EPSG}{store.metric_epsg}"]             # northing first
    e, n = pyproj.Transformer.from_crs(4326, store.metric_epsg, always_xy=True).transform(
        lon, lat)
    assert (north, east) == pytest.approx((n, e), abs=0.002)
    one = httpx.get(f"{url}/{first['code']}", params={"crs": f"{EPSG}{store.metric_epsg}"})
    assert one.headers["content-crs"] == f"<{EPSG}{store.metric_epsg}>"


@pytest.mark.parametrize("bbox_crs", ["EPSG:4490", "zone"])
def test_bbox_in_another_crs_selects_the_same_grids(server: Server, store: DemoStore,
                                                    bbox_crs: str) -> None:
    x0, y0, x1, y1 = store.grids.total_bounds
    box = (x0 + (x1 - x0) * 0.3, y0 + (y1 - y0) * 0.3, x0 + (x1 - x0) * 0.6,
           y0 + (y1 - y0) * 0.6)
    url = f"{server.url}/ogc/collections/grids-{store.territory_id}/items"
    plain = httpx.get(url, params={"bbox": ",".join(map(str, box)), "limit": 1000}).json()
    if bbox_crs == "EPSG:4490":
        text = ",".join(map(str, (box[1], box[0], box[3], box[2])))  # latitude first
        crs = f"{EPSG}4490"
    else:
        forward = pyproj.Transformer.from_crs(4326, store.metric_epsg, always_xy=True)
        e0, n0 = forward.transform(box[0], box[1])
        e1, n1 = forward.transform(box[2], box[3])
        # a box drawn in the zone: a little larger than the lon/lat box's corners
        text = ",".join(map(str, (min(n0, n1) - 1, min(e0, e1) - 1, max(n0, n1) + 1,
                                  max(e0, e1) + 1)))
        crs = f"{EPSG}{store.metric_epsg}"
    got = httpx.get(url, params={"bbox": text, "bbox-crs": crs, "limit": 1000}).json()
    codes = {f["id"] for f in got["features"]}
    assert {f["id"] for f in plain["features"]} <= codes
    assert 0 < len(codes) < len(store.grids)
