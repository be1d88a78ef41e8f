"""Tests for gis.crs: coordinate system parsing, GCJ-02/BD-09, transforms and China checks."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from gis.china import check_china
from gis.crs import (
    CGCS2000,
    SZ2000,
    WGS84,
    CoordSys,
    parse_coord_sys,
    to_wgs84_checked,
    transform,
    transform_geometries,
)
from gis.errors import CoordinateError, CRSError
from gis.obfuscation import (
    bd09_from_gcj02,
    bd09_from_wgs84,
    gcj02_from_bd09,
    gcj02_from_wgs84,
    wgs84_from_bd09,
    wgs84_from_gcj02,
)
from gis.zones import gauss_kruger_epsg, metric_crs_for

GEOD = pyproj.Geod(ellps="WGS84")
ONE_CM = 0.01


def _dist_m(
    lon1: NDArray[np.float64],
    lat1: NDArray[np.float64],
    lon2: NDArray[np.float64],
    lat2: NDArray[np.float64],
) -> NDArray[np.float64]:
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=np.float64)


@pytest.fixture(scope="module")
def china_grid() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A 100 x 100 grid (10,000 points) spanning China."""
    lon, lat = np.meshgrid(np.linspace(73.5, 135.0, 100), np.linspace(18.0, 53.5, 100))
    return lon.ravel(), lat.ravel()


# --- GCJ-02 / BD-09 ---------------------------------------------------------------------------


def test_gcj02_reference_point_tiananmen() -> None:
    lon, lat = gcj02_from_wgs84(116.391349, 39.907375)
    assert lon.shape == (1,) and lat.shape == (1,)
    assert lon[0] == pytest.approx(116.397590, abs=1e-5)
    assert lat[0] == pytest.approx(39.908775, abs=1e-5)


@pytest.mark.parametrize(
    ("city", "lon", "lat"),
    [("Guangzhou", 113.264385, 23.129112), ("Hangzhou", 120.155070, 30.274084)],
)
def test_gcj02_offset_magnitude(city: str, lon: float, lat: float) -> None:
    g_lon, g_lat = gcj02_from_wgs84(lon, lat)
    offset = _dist_m(np.array([lon]), np.array([lat]), g_lon, g_lat)[0]
    assert 500.0 <= offset <= 700.0, f"{city}: GCJ-02 offset {offset:.1f} m"
    b_lon, b_lat = bd09_from_wgs84(lon, lat)
    bd_offset = _dist_m(np.array([lon]), np.array([lat]), b_lon, b_lat)[0]
    assert 900.0 <= bd_offset <= 1500.0, f"{city}: BD-09 offset {bd_offset:.1f} m"


def test_gcj02_round_trip_grid(
    china_grid: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> None:
    lon, lat = china_grid
    g_lon, g_lat = gcj02_from_wgs84(lon, lat)
    assert g_lon.shape == lon.shape
    w_lon, w_lat = wgs84_from_gcj02(g_lon, g_lat)
    assert _dist_m(lon, lat, w_lon, w_lat).max() <= ONE_CM
    # and the other way round: treat the grid as GCJ-02 values
    w_lon, w_lat = wgs84_from_gcj02(lon, lat)
    g_lon, g_lat = gcj02_from_wgs84(w_lon, w_lat)
    assert _dist_m(lon, lat, g_lon, g_lat).max() <= ONE_CM


def test_bd09_round_trip_grid(
    china_grid: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> None:
    lon, lat = china_grid
    b_lon, b_lat = bd09_from_gcj02(lon, lat)
    g_lon, g_lat = gcj02_from_bd09(b_lon, b_lat)
    assert _dist_m(lon, lat, g_lon, g_lat).max() <= ONE_CM
    b_lon, b_lat = bd09_from_wgs84(lon, lat)
    w_lon, w_lat = wgs84_from_bd09(b_lon, b_lat)
    assert _dist_m(lon, lat, w_lon, w_lat).max() <= ONE_CM


def test_outside_china_unchanged_by_gcj02() -> None:
    paris = (2.3522, 48.8566)
    lon, lat = gcj02_from_wgs84(*paris)
    assert (lon[0], lat[0]) == paris
    lon, lat = wgs84_from_gcj02(*paris)
    assert (lon[0], lat[0]) == paris


def test_conversions_keep_array_shape() -> None:
    lon = np.full((3, 4), 120.0)
    lat = np.full((3, 4), 30.0)
    for func in (gcj02_from_wgs84, wgs84_from_gcj02, bd09_from_wgs84, wgs84_from_bd09):
        out_lon, out_lat = func(lon, lat)
        assert out_lon.shape == (3, 4) and out_lat.shape == (3, 4)


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(min_value=73.5, max_value=135.0, allow_nan=False),
    lat=st.floats(min_value=18.0, max_value=53.5, allow_nan=False),
)
def test_gcj02_round_trip_property(lon: float, lat: float) -> None:
    w_lon, w_lat = wgs84_from_gcj02(*gcj02_from_wgs84(lon, lat))
    assert _dist_m(np.array([lon]), np.array([lat]), w_lon, w_lat)[0] <= ONE_CM


# --- Suzhou 2000SZ ------------------------------------------------------------------------------


def test_sz2000_known_point() -> None:
    lon, lat = 120.78333, 31.3
    tm = pyproj.Transformer.from_crs(
        CGCS2000, "+proj=tmerc +lon_0=120.78333 +ellps=GRS80", always_xy=True
    )
    _, northing = tm.transform(lon, lat)
    expected_y = northing - 2_800_000.0
    assert 3_400_000.0 < northing < 3_500_000.0
    assert 600_000.0 < expected_y < 700_000.0
    for src in (WGS84, CGCS2000):
        x, y = transform(lon, lat, src, "2000SZ")
        assert x[0] == pytest.approx(350_000.0, abs=1e-6)
        assert y[0] == pytest.approx(expected_y, abs=1e-3)


def test_sz2000_round_trip() -> None:
    x = np.array([350_000.0, 340_123.4, 361_234.5])
    y = np.array([664_235.9, 650_000.0, 690_000.0])
    lon, lat = transform(x, y, "sz2000", WGS84)
    assert np.all((lon > 120.0) & (lon < 121.5) & (lat > 30.5) & (lat < 32.0))
    x2, y2 = transform(lon, lat, WGS84, SZ2000)
    assert np.abs(x2 - x).max() <= 1e-3
    assert np.abs(y2 - y).max() <= 1e-3


# --- Gauss-Kruger zones -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "epsg"),
    [(113.3, 4547), (120.17, 4549), (87.6, 4538), (116.4, 4548), (73.5, 4534), (136.5, 4554)],
)
def test_gauss_kruger_epsg(lon: float, epsg: int) -> None:
    assert gauss_kruger_epsg(lon) == epsg


@pytest.mark.parametrize("lon", [73.4, 136.6, 2.35, float("nan")])
def test_gauss_kruger_epsg_outside(lon: float) -> None:
    with pytest.raises(CoordinateError):
        gauss_kruger_epsg(lon)


def test_metric_crs_for() -> None:
    crs = metric_crs_for((120.0, 30.1, 120.4, 30.4))
    assert crs.is_projected
    assert crs.to_epsg() == 4549
    assert crs.axis_info[0].unit_name == "metre"
    with pytest.raises(CoordinateError):
        metric_crs_for((float("nan"), 0.0, 1.0, 1.0))


# --- parse_coord_sys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name", "geographic", "obfuscation"),
    [
        ("wgs84", "wgs84", True, None),
        ("WGS84", "wgs84", True, None),
        ("CGCS2000", "cgcs2000", True, None),
        ("gcj02", "gcj02", True, "gcj02"),
        ("GCJ-02", "gcj02", True, "gcj02"),
        ("bd09", "bd09", True, "bd09"),
        ("BD-09", "bd09", True, "bd09"),
        ("2000SZ", "2000sz", False, None),
        ("sz2000", "2000sz", False, None),
        (SZ2000, "2000sz", False, None),
        (4547, "EPSG:4547", False, None),
        ("EPSG:4547", "EPSG:4547", False, None),
        ("epsg:4547", "EPSG:4547", False, None),
        ("4547", "EPSG:4547", False, None),
        (pyproj.CRS.from_epsg(4547), "EPSG:4547", False, None),
    ],
)
def test_parse_coord_sys(
    value: str | int | pyproj.CRS, name: str, geographic: bool, obfuscation: str | None
) -> None:
    cs = parse_coord_sys(value)
    assert isinstance(cs, CoordSys)
    assert cs.name == name
    assert cs.is_geographic is geographic
    assert cs.obfuscation == obfuscation
    assert (cs.crs is None) == (obfuscation is not None)
    assert parse_coord_sys(cs) is cs


def test_parse_coord_sys_proj_string_and_wkt() -> None:
    proj = "+proj=tmerc +lat_0=0 +lon_0=114 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"
    cs = parse_coord_sys(proj)
    assert cs.crs is not None and cs.crs.is_projected and not cs.is_geographic
    wkt = pyproj.CRS.from_epsg(4547).to_wkt()
    cs = parse_coord_sys(wkt)
    assert cs.crs is not None and cs.crs.to_epsg() == 4547
    assert parse_coord_sys(WGS84).crs == pyproj.CRS.from_epsg(4326)


@pytest.mark.parametrize("value", ["wgs85", "", "EPSG:99999999", 99999999, 3.5, True])
def test_parse_coord_sys_unknown(value: object) -> None:
    with pytest.raises(CRSError) as info:
        parse_coord_sys(value)  # type: ignore[arg-type]
    message = str(info.value)
    for accepted in ("wgs84", "cgcs2000", "gcj02", "bd09", "2000sz", "EPSG", "PROJ", "WKT"):
        assert accepted in message


# --- transform ----------------------------------------------------------------------------------


def test_transform_scalar_and_identity() -> None:
    x, y = transform(120.0, 30.0, "wgs84", "EPSG:4326")
    assert x.shape == (1,) and (x[0], y[0]) == (120.0, 30.0)
    x, y = transform([120.0, 121.0], [30.0, 31.0], "gcj02", "GCJ-02")
    assert x.tolist() == [120.0, 121.0]


def test_transform_projected_round_trip() -> None:
    lon = np.array([113.1, 113.3, 114.9])
    lat = np.array([22.9, 23.1, 23.4])
    x, y = transform(lon, lat, WGS84, 4547)
    assert np.all((x > 300_000) & (x < 700_000) & (y > 2_500_000) & (y < 2_700_000))
    lon2, lat2 = transform(x, y, "EPSG:4547", CGCS2000)
    assert np.abs(lon2 - lon).max() < 1e-9 and np.abs(lat2 - lat).max() < 1e-9


def test_transform_obfuscated_to_projected() -> None:
    g_lon, g_lat = np.array([120.16, 120.2]), np.array([30.27, 30.3])
    x, y = transform(g_lon, g_lat, "gcj02", 4549)
    w_lon, w_lat = wgs84_from_gcj02(g_lon, g_lat)
    x2, y2 = transform(w_lon, w_lat, WGS84, 4549)
    np.testing.assert_allclose(x, x2, atol=1e-6)
    np.testing.assert_allclose(y, y2, atol=1e-6)
    back_lon, back_lat = transform(x, y, 4549, "gcj02")
    assert _dist_m(g_lon, g_lat, back_lon, back_lat).max() <= ONE_CM


def test_transform_gcj02_bd09_consistent() -> None:
    lon, lat = np.array([116.4, 121.5]), np.array([39.9, 31.2])
    b_lon, b_lat = transform(lon, lat, "gcj02", "bd09")
    np.testing.assert_allclose(b_lon, bd09_from_gcj02(lon, lat)[0])
    w_lon, w_lat = transform(b_lon, b_lat, "bd09", WGS84)
    expected_lon, expected_lat = wgs84_from_gcj02(lon, lat)
    assert _dist_m(w_lon, w_lat, expected_lon, expected_lat).max() <= ONE_CM


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_transform_non_finite(bad: float) -> None:
    with pytest.raises(CoordinateError, match="index 1"):
        transform([120.0, bad], [30.0, 30.0], WGS84, 4549)


# --- check_china / to_wgs84_checked -------------------------------------------------------------


def test_check_china_accepts_chinese_points() -> None:
    check_china([116.39, 121.47, 87.6], [39.9, 31.23, 43.8])
    check_china([], [])


def test_check_china_swapped() -> None:
    with pytest.raises(CoordinateError, match="swapped") as info:
        check_china([39.9, 31.23], [116.39, 121.47], what="layer buildings")
    assert "layer buildings" in str(info.value)
    assert "axis order" in str(info.value)


def test_check_china_outside() -> None:
    with pytest.raises(CoordinateError, match="outside China") as info:
        check_china([116.39, 2.3522, 121.47], [39.9, 48.8566, 31.23], what="layer grids")
    message = str(info.value)
    assert "index 1" in message and "1 of 3" in message and "2.3522" in message
    assert message.startswith("layer grids")
    # a tolerance share lets a few stray points through
    check_china([116.39, 2.3522, 121.47], [39.9, 48.8566, 31.23], max_outside_share=0.5)


def test_check_china_metres() -> None:
    with pytest.raises(CoordinateError, match="projected") as info:
        check_china([500_123.0, 500_456.0], [3_350_000.0, 3_351_000.0])
    assert "metres" in str(info.value) and "coordinate system" in str(info.value)


def test_check_china_nan() -> None:
    with pytest.raises(CoordinateError, match="non-finite"):
        check_china([116.39, np.nan], [39.9, 40.0])


def test_to_wgs84_checked() -> None:
    lon, lat = to_wgs84_checked([437_000.0], [3_350_000.0], 4549)
    assert 119.0 < lon[0] < 121.0 and 30.0 < lat[0] < 31.0
    lon, lat = to_wgs84_checked([116.39759], [39.908775], "gcj02")
    assert lon[0] == pytest.approx(116.391349, abs=1e-5)
    # degrees declared as a Gauss-Kruger system land near the equator: the message names it
    with pytest.raises(CoordinateError, match="EPSG:4549"):
        to_wgs84_checked([120.1], [30.2], 4549)
    with pytest.raises(CoordinateError, match="swapped"):
        to_wgs84_checked([30.2], [120.1], "bd09")
    with pytest.raises(CoordinateError, match="metres"):
        to_wgs84_checked([437_000.0], [3_350_000.0], "wgs84")


# --- geometries ---------------------------------------------------------------------------------


def test_transform_geometries_gcj02_round_trip() -> None:
    polys = np.array(
        [
            shapely.box(120.10, 30.20, 120.20, 30.30),
            shapely.Polygon([(113.2, 23.1), (113.3, 23.1), (113.25, 23.2)]),
            None,
        ],
        dtype=object,
    )
    wgs = transform_geometries(polys, "gcj02", WGS84)
    assert wgs[2] is None
    coords = shapely.get_coordinates(polys[:2])
    expected = np.column_stack(wgs84_from_gcj02(coords[:, 0], coords[:, 1]))
    np.testing.assert_allclose(shapely.get_coordinates(wgs[:2]), expected, atol=1e-12)
    back = transform_geometries(gpd.GeoSeries(wgs[:2]), WGS84, "gcj02")
    assert isinstance(back, np.ndarray) and len(back) == 2
    assert np.abs(shapely.get_coordinates(back) - coords).max() < 1e-9  # ~0.1 mm
    assert all(b.is_valid and isinstance(b, shapely.Polygon) for b in back)


def test_transform_geometries_keeps_z_and_projects() -> None:
    geoms = np.array([shapely.Point(120.78333, 31.3, 5.0), shapely.Point(120.8, 31.31)])
    out = transform_geometries(geoms, CGCS2000, "2000sz")
    assert out[0].has_z and out[0].z == 5.0 and not out[1].has_z
    assert out[0].x == pytest.approx(350_000.0, abs=1e-6)


def test_overlays_shift_into_the_basemap_system_vertex_by_vertex() -> None:
    import geopandas as gpd
    import pytest
    import shapely

    from gis.geometry import for_basemap
    from gis.obfuscation import bd09_from_wgs84, gcj02_from_wgs84

    frame = gpd.GeoDataFrame({"code": ["a"]}, geometry=[shapely.box(113.2, 23.1, 113.3, 23.2)],
                             crs=4326)
    xy = shapely.get_coordinates(frame.geometry)
    assert for_basemap(frame, "wgs84") is frame
    for name, forward in (("gcj02", gcj02_from_wgs84), ("bd09", bd09_from_wgs84)):
        moved = shapely.get_coordinates(for_basemap(frame, name).geometry)
        lon, lat = forward(xy[:, 0], xy[:, 1])
        assert moved[:, 0] == pytest.approx(lon) and moved[:, 1] == pytest.approx(lat)
        assert abs(moved[0, 0] - xy[0, 0]) > 1e-4  # hundreds of metres in Guangzhou
    assert shapely.get_coordinates(frame.geometry)[0, 0] == 113.3  # the input is untouched
    with pytest.raises(ValueError, match="wgs84, gcj02 or bd09"):
        for_basemap(frame, "mercator")
