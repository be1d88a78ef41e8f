"""Exports in the office's coordinate system: each format in each CRS read back by GDAL and
compared with the plan to within 1 cm; what the files declare; CRSs that do not fit are 422."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import pytest
import shapely
from demo_plan import DemoStore, assert_matches_plan
from fastapi.testclient import TestClient

from gis.errors import CRSError
from gis.exports.shapefile import SHAPEFILE_FIELDS
from gis.exports.sheets import SHEET_COLUMNS, heading
from gis.zones import gauss_kruger_epsg, output_crs

#: 1 cm, in metres: how far a read-back vertex may lie from the stored one.
CM = 0.01
HEADINGS = {field: heading(zh, en) for field, zh, en in SHEET_COLUMNS}


def _zone_with_number(metric_epsg: int) -> int:
    """The same 3° zone as EPSG:4534–4554, in its zone-numbered twin (EPSG:4513–4533)."""
    return metric_epsg - 21


def requested(store: DemoStore) -> dict[str, int]:
    """``crs=`` values → the EPSG code the file must declare."""
    return {"wgs84": 4326, "cgcs2000": 4490, "auto": store.metric_epsg,
            f"EPSG:{_zone_with_number(store.metric_epsg)}": _zone_with_number(
                store.metric_epsg),
            "32649": 32649}


def fetch(client: TestClient, store: DemoStore, fmt: str, crs: str, folder: Path,
          **params: str) -> Path:
    response = client.get(f"/plans/{store.plan_id}/export.{fmt}",
                          params={"crs": crs, **params})
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    epsg = requested(store)[crs]
    assert (f"_EPSG{epsg}." in disposition) == (epsg != 4326)
    path = folder / f"grids-{crs.replace(':', '')}.{fmt}"
    path.write_bytes(response.content)
    return path


def assert_within_a_centimetre(frame: gpd.GeoDataFrame, store: DemoStore,
                               code_column: str = "code") -> None:
    """Every outline of ``frame`` (in its own CRS) lies within 1 cm of the stored grid."""
    want = store.grids.set_index("code").geometry.to_crs(store.metric_epsg)
    got = frame.set_index(frame[code_column].astype(str)).geometry.to_crs(store.metric_epsg)
    assert sorted(got.index) == sorted(want.index)
    distances = shapely.hausdorff_distance(got.loc[want.index].to_numpy(), want.to_numpy())
    assert float(np.max(distances)) < CM, float(np.max(distances))


def _crs_of(store: DemoStore, crs: str) -> pyproj.CRS:
    return pyproj.CRS.from_epsg(requested(store)[crs])


@pytest.fixture(params=["wgs84", "cgcs2000", "auto", "zone", "32649"])
def crs(request: pytest.FixtureRequest, store: DemoStore) -> str:
    if request.param == "zone":
        return f"EPSG:{_zone_with_number(store.metric_epsg)}"
    return str(request.param)


def test_auto_is_the_territorys_zone(store: DemoStore) -> None:
    lon = float(store.grids.union_all().centroid.x)
    assert store.metric_epsg == gauss_kruger_epsg(lon)


def test_geopackage_in_each_crs(client: TestClient, store: DemoStore, crs: str,
                                tmp_path: Path) -> None:
    path = fetch(client, store, "gpkg", crs, tmp_path)
    frame = pyogrio.read_dataframe(path, layer="grids")
    assert frame.crs.to_epsg() == requested(store)[crs]
    assert_within_a_centimetre(frame, store)
    assert_matches_plan(frame.to_crs(4326), store, tolerance=1e-6)


def test_shapefile_in_each_crs_declares_it_in_esri_wkt(client: TestClient, store: DemoStore,
                                                       crs: str, tmp_path: Path) -> None:
    path = fetch(client, store, "shp.zip", crs, tmp_path)
    with zipfile.ZipFile(path) as zf:
        prj = zf.read("grids.prj").decode("ascii")
    expected = _crs_of(store, crs)
    assert prj == expected.to_wkt("WKT1_ESRI")
    if crs == "auto":
        cm = 3 * round(store.metric_epsg - 4534) + 75
        assert prj.startswith(f'PROJCS["CGCS2000_3_Degree_GK_CM_{cm}E"')
    frame = pyogrio.read_dataframe(f"/vsizip/{path}/grids.shp")
    assert pyproj.CRS(frame.crs).equals(expected, ignore_axis_order=True)
    assert_within_a_centimetre(frame, store)
    assert_matches_plan(frame.set_crs(4326, allow_override=True) if crs == "wgs84"
                        else frame.to_crs(4326), store, tolerance=1e-6,
                        columns={v: k for k, v in SHAPEFILE_FIELDS.items()})


def test_geojson_in_each_crs(client: TestClient, store: DemoStore, crs: str,
                             tmp_path: Path) -> None:
    path = fetch(client, store, "geojson", crs, tmp_path)
    frame = pyogrio.read_dataframe(path)
    assert frame.crs.to_epsg() == requested(store)[crs]
    assert_within_a_centimetre(frame, store)
    # numbers of a projected file are metres, of a geographic one degrees
    x = float(shapely.get_coordinates(frame.geometry.iloc[0])[0, 0])
    assert (x > 1000) == _crs_of(store, crs).is_projected


def test_csv_in_each_crs_has_outlines_and_centroids(client: TestClient, store: DemoStore,
                                                    crs: str, tmp_path: Path) -> None:
    path = fetch(client, store, "csv", crs, tmp_path)
    frame = pyogrio.read_dataframe(path, encoding="utf-8-sig")  # GDAL reads the WKT column
    assert set(frame[HEADINGS["crs"]]) == {f"EPSG:{requested(store)[crs]}"}
    frame = frame.set_crs(_crs_of(store, crs), allow_override=True)
    assert_within_a_centimetre(frame, store, HEADINGS["code"])
    _assert_centroids(frame[HEADINGS["code"]], frame[HEADINGS["centroid_x"]],
                      frame[HEADINGS["centroid_y"]], _crs_of(store, crs), store)


def test_xlsx_in_each_crs_has_centroids(client: TestClient, store: DemoStore, crs: str,
                                        tmp_path: Path) -> None:
    path = fetch(client, store, "xlsx", crs, tmp_path)
    frame = pyogrio.read_dataframe(path, layer="网格 grids")
    assert set(frame[HEADINGS["crs"]]) == {f"EPSG:{requested(store)[crs]}"}
    _assert_centroids(frame[HEADINGS["code"]], frame[HEADINGS["centroid_x"]],
                      frame[HEADINGS["centroid_y"]], _crs_of(store, crs), store)
    about = pyogrio.read_dataframe(path, layer="说明 about", read_geometry=False)
    assert any(str(v).startswith(f"EPSG:{requested(store)[crs]}")
               for v in about.to_numpy().ravel())


def _assert_centroids(codes: object, xs: object, ys: object, crs: pyproj.CRS,
                      store: DemoStore) -> None:
    points = gpd.GeoSeries(gpd.points_from_xy(np.asarray(xs, dtype=float),
                                              np.asarray(ys, dtype=float)),
                           index=np.asarray(codes, dtype=str), crs=crs).to_crs(
        store.metric_epsg)
    want = store.grids.set_index("code").geometry.to_crs(store.metric_epsg).centroid
    assert sorted(points.index) == sorted(want.index)
    gap = points.loc[want.index].distance(want)
    assert float(gap.max()) < CM, float(gap.max())


@pytest.mark.parametrize("bad", [
    "gcj02", "bd09", "EPSG:4978", "EPSG:5773", "EPSG:99999", "not-a-crs", "EPSG:4546",
    "EPSG:4554", "EPSG:2326", "EPSG:32650", "+proj=geocent +ellps=GRS80"])
def test_crs_that_does_not_fit_is_422_and_leaves_nothing(client: TestClient, store: DemoStore,
                                                         bad: str) -> None:
    # geocentric, vertical, unknown, obfuscated, or meant for another part of the world
    response = client.get(f"/plans/{store.plan_id}/export.gpkg", params={"crs": bad})
    assert response.status_code == 422, (bad, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert "crs=" in response.json()["detail"]


def test_output_crs_names() -> None:
    box = (113.2, 23.1, 113.4, 23.3)
    assert output_crs(None, bounds=box, zone_epsg=4547).is_wgs84
    assert output_crs("CRS84", bounds=box, zone_epsg=4547).is_wgs84
    assert output_crs("http://www.opengis.net/def/crs/EPSG/0/4490", bounds=box,
                      zone_epsg=4547).epsg == 4490
    assert output_crs("urn:ogc:def:crs:EPSG::4547", bounds=box, zone_epsg=4547).epsg == 4547
    assert output_crs("AUTO", bounds=box, zone_epsg=4547).label == "EPSG:4547"
    assert output_crs("4526", bounds=box, zone_epsg=4547).tag == "EPSG4526"
    suzhou = output_crs("2000sz", bounds=(120.5, 31.2, 120.9, 31.4), zone_epsg=4549)
    assert suzhou.epsg is None and suzhou.crs.is_projected and suzhou.tag == "2000sz"
    with pytest.raises(CRSError, match="4549"):
        output_crs("EPSG:4545", bounds=(120.5, 31.2, 120.9, 31.4), zone_epsg=4549)
