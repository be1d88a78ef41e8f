"""Reading a territory (gis.io, gis.contract): every format, OpenStreetMap, field maps, bad
input, repairs, coordinate systems and the derived admin fields."""

from __future__ import annotations

import ast
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from conftest import tiny_layers, write_layers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osm_fixture import ORIGIN, UNIT, write_pbf  # tests/gis is on sys.path (rootdir mode)

from gis.contract import LAYERS, Territory
from gis.crs import SZ2000, WGS84, transform_geometries
from gis.errors import CoordinateError, CRSError, GridmapError, LayerError
from gis.io.options import parse_crs_option, parse_field_map
from gis.io.territory import read_territory
from gis.obfuscation import gcj02_from_wgs84
from gis.zones import metric_crs_for

Layers = dict[str, gpd.GeoDataFrame]

pytestmark = pytest.mark.filterwarnings(
    "ignore:Column names longer than 10 characters:UserWarning",
    "ignore:Normalized/laundered field name:RuntimeWarning",
)


# ---------------------------------------------------------------------------------------------
# Helpers


def _plain(value: Any) -> Any:
    """A cell as a plain Python value: missing -> None, 12.0 -> 12."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _rows(gdf: gpd.GeoDataFrame, layer: str) -> list[tuple[Any, ...]]:
    fields = LAYERS[layer].fields
    return [tuple(_plain(v) for v in row) for row in gdf[list(fields)].itertuples(index=False)]


def _same_geometry(a: gpd.GeoSeries | np.ndarray, b: gpd.GeoSeries | np.ndarray,
                   tolerance: float = 1e-9) -> bool:
    ga = shapely.normalize(np.asarray(a, dtype=object))
    gb = shapely.normalize(np.asarray(b, dtype=object))
    return len(ga) == len(gb) and bool(np.all(shapely.equals_exact(ga, gb, tolerance=tolerance)))


def _shapefile_mask(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """The rows write_layers keeps in a Shapefile (the geometry type of the first row)."""
    first = gdf.geometry.iloc[0].geom_type.removeprefix("Multi")
    return (gdf.geometry.geom_type.str.removeprefix("Multi") == first).to_numpy()


def _write_geojson(layers: Layers, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, gdf in layers.items():
        gdf.to_file(folder / f"{name}.geojson", driver="GeoJSON", engine="pyogrio")
    return folder


def _core(**changes: gpd.GeoDataFrame) -> Layers:
    """admin_areas and buildings of the tiny territory, with some layers replaced."""
    tiny = tiny_layers()
    layers = {"admin_areas": tiny["admin_areas"], "buildings": tiny["buildings"]}
    layers.update(changes)
    return layers


def _shift(layers: Layers, fn: Callable[[np.ndarray], np.ndarray]) -> Layers:
    """Every geometry with its coordinates mapped by ``fn`` (an (n, 2) array -> (n, 2))."""
    return {name: gdf.set_geometry(shapely.transform(gdf.geometry.to_numpy(), fn))
            for name, gdf in layers.items()}


def _zip_folder(folder: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"{prefix}{p.name}")
    return target


def _max_distance_m(a: gpd.GeoSeries, b: gpd.GeoSeries) -> float:
    """Largest Hausdorff distance in metres between corresponding features of two WGS84
    layers (insensitive to ring orientation and start vertex, which Shapefiles change)."""
    assert len(a) == len(b)
    metric = metric_crs_for(tuple(a.total_bounds))
    ma = gpd.GeoSeries(a.to_numpy(), crs=WGS84).to_crs(metric).to_numpy()
    mb = gpd.GeoSeries(b.to_numpy(), crs=WGS84).to_crs(metric).to_numpy()
    return float(np.max(shapely.hausdorff_distance(ma, mb)))


def _error(path: Path, **kwargs: Any) -> LayerError:
    with pytest.raises(LayerError) as info:
        read_territory(path, **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------------
# 1. Every format reads to the same features


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Territory:
    """The tiny territory read from a GeoPackage (every layer in one file)."""
    return read_territory(write_layers(tiny_layers(), tmp_path_factory.mktemp("ref"), "GPKG"))


def test_geopackage_reads_every_layer_with_its_values(reference: Territory) -> None:
    tiny = tiny_layers()
    assert reference.counts() == {name: len(gdf) for name, gdf in tiny.items()}
    assert reference.repairs == []
    assert reference.name == "territory"
    assert reference.sources["admin_areas"] == "territory.gpkg:admin_areas"
    for name, gdf in reference.layers.items():
        assert gdf.crs == WGS84
        assert list(gdf.columns) == [*LAYERS[name].fields, "geometry"]
        assert _same_geometry(gdf.geometry, tiny[name].geometry), name
    admin = reference.layers["admin_areas"]
    assert _rows(admin, "admin_areas") == [
        ("440111", "白云示范区", "district", None, None),
        ("440111001", "景泰街道", "town", "440111", None),
        ("440111001001", "景泰社区", "village", "440111001", "urban"),
        ("440111001201", "石马村", "village", "440111001", "rural"),
    ]
    buildings = reference.layers["buildings"]
    no_address = (None,) * 5   # address, road, house_number, compound, building_no
    assert _rows(buildings, "buildings") == [
        (120, 300, 18, None, "residential", *no_address),
        (80, 200, 11, None, "residential", *no_address),   # 住宅 -> residential
        (None, None, 6, None, "residential", *no_address),
        (1, 3, 2, None, "residential", *no_address),
        (0, 0, 3, None, "commercial", *no_address),
    ]
    assert str(buildings["households"].dtype) == "Int64"
    assert _rows(reference.layers["roads"], "roads") == [
        ("primary", "白云大道"), ("primary", "机场路"), ("service", None)]
    assert _rows(reference.layers["facilities"], "facilities") == [
        ("school", "景泰小学"), ("hospital", "区人民医院")]
    assert _rows(reference.layers["dedicated_areas"], "dedicated_areas") == [
        ("白云工业园", "industrial")]
    assert _rows(reference.layers["water"], "water") == [("白沙河",), ("石马湖",)]


def _assert_same_as(reference: Territory, territory: Territory,
                    masks: dict[str, np.ndarray] | None = None) -> None:
    masks = masks or {}
    assert set(territory.layers) == set(reference.layers)
    for name, ref in reference.layers.items():
        if name in masks:
            ref = ref[masks[name]].reset_index(drop=True)
        got = territory.layers[name]
        assert len(got) == len(ref), name
        assert _rows(got, name) == _rows(ref, name), name
        assert _same_geometry(got.geometry, ref.geometry), name
        assert got.crs == WGS84


def test_folder_of_geojson(reference: Territory, tmp_path: Path) -> None:
    folder = write_layers(tiny_layers(), tmp_path / "geojson", "GeoJSON")
    territory = read_territory(folder)
    _assert_same_as(reference, territory)
    assert territory.sources["buildings"] == "buildings.geojson"


def test_folder_of_shapefiles(reference: Territory, tmp_path: Path) -> None:
    tiny = tiny_layers()
    folder = write_layers(tiny, tmp_path / "shp", "ESRI Shapefile")
    territory = read_territory(folder)
    masks = {name: _shapefile_mask(gdf) for name, gdf in tiny.items()}
    # parent_code was cut to parent_cod by the Shapefile and is read back under its name.
    _assert_same_as(reference, territory, masks)
    assert territory.counts()["buildings"] == 4  # the address point cannot share the file
    assert territory.counts()["water"] == 1


def test_zip_of_shapefiles(reference: Territory, tmp_path: Path) -> None:
    tiny = tiny_layers()
    folder = write_layers(tiny, tmp_path / "shp", "ESRI Shapefile")
    archive = _zip_folder(folder, tmp_path / "jingtai.zip", prefix="jingtai/")
    territory = read_territory(archive)
    _assert_same_as(reference, territory,
                    {name: _shapefile_mask(gdf) for name, gdf in tiny.items()})
    assert territory.name == "jingtai"
    assert territory.sources["admin_areas"] == "jingtai/admin_areas.shp"


def test_folder_of_per_layer_geopackages(reference: Territory, tmp_path: Path) -> None:
    folder = tmp_path / "gpkgs"
    folder.mkdir()
    for name, gdf in tiny_layers().items():
        gdf.to_file(folder / f"{name}.gpkg", driver="GPKG", engine="pyogrio")
    territory = read_territory(folder)
    _assert_same_as(reference, territory)
    assert territory.sources["roads"] == "roads.gpkg"


def test_a_geopackage_named_after_a_layer_is_still_a_whole_territory(
        reference: Territory, tmp_path: Path) -> None:
    path = write_layers(tiny_layers(), tmp_path, "GPKG").rename(tmp_path / "buildings.gpkg")
    territory = read_territory(path)
    _assert_same_as(reference, territory)
    assert territory.sources["admin_areas"] == "buildings.gpkg:admin_areas"


def test_geopackage_layers_outside_the_contract_are_noted(tmp_path: Path) -> None:
    path = write_layers(tiny_layers(), tmp_path, "GPKG")
    extra = tiny_layers()["roads"]
    extra.to_file(path, layer="bus_stops", driver="GPKG", engine="pyogrio")
    territory = read_territory(path)
    assert "bus_stops" not in territory.layers
    assert any("bus_stops" in note and "not in the contract" in note for note in territory.notes)


def _address_points() -> pd.DataFrame:
    buildings = tiny_layers()["buildings"]
    centres = shapely.centroid(buildings.geometry.to_numpy())
    return pd.DataFrame({
        "lon": shapely.get_x(centres), "lat": shapely.get_y(centres),
        "households": [120, 80, 30, 1, 0],
    })


def _csv_folder(tmp_path: Path) -> Path:
    folder = write_layers({k: v for k, v in tiny_layers().items() if k != "buildings"},
                          tmp_path / "csv", "GeoJSON")
    _address_points().to_csv(folder / "buildings.csv", index=False)
    return folder


@pytest.mark.parametrize("crs", ["wgs84", {"buildings": "wgs84"}])
def test_folder_with_csv_address_points(reference: Territory, tmp_path: Path,
                                        crs: str | dict[str, str]) -> None:
    folder = _csv_folder(tmp_path)
    territory = read_territory(folder, crs=crs)
    assert territory.counts() == reference.counts()
    buildings = territory.layers["buildings"]
    assert buildings["households"].tolist() == [120, 80, 30, 1, 0]
    assert set(buildings.geom_type) == {"Point"}
    points = _address_points()
    assert np.allclose(buildings.geometry.x, points["lon"], atol=1e-12)
    assert np.allclose(buildings.geometry.y, points["lat"], atol=1e-12)
    # The other layers are untouched by the CSV.
    assert _rows(territory.layers["admin_areas"], "admin_areas") == _rows(
        reference.layers["admin_areas"], "admin_areas")


def test_csv_without_a_coordinate_system_is_rejected(tmp_path: Path) -> None:
    exc = _error(_csv_folder(tmp_path))
    assert exc.layer == "buildings"
    assert exc.file == "buildings.csv"
    assert "coordinate system" in str(exc)
    assert "--crs" in str(exc)


def test_gbk_csv_with_chinese_columns_and_a_field_map(tmp_path: Path) -> None:
    folder = _write_geojson({"admin_areas": tiny_layers()["admin_areas"]}, tmp_path / "t")
    points = _address_points().rename(columns={"lon": "经度", "lat": "纬度",
                                               "households": "户数"})
    points["名称"] = ["一号楼", "二号楼", "三号楼", "四号楼", "五号楼"]
    points.to_csv(folder / "buildings.csv", index=False, encoding="gbk")
    territory = read_territory(folder, crs={"buildings": "wgs84"},
                               field_map={"buildings.户数": "households"})
    assert territory.layers["buildings"]["households"].tolist() == [120, 80, 30, 1, 0]


def test_csv_inside_a_zip(tmp_path: Path) -> None:
    archive = _zip_folder(_csv_folder(tmp_path), tmp_path / "csv.zip")
    territory = read_territory(archive, crs={"buildings": "wgs84"})
    assert territory.layers["buildings"]["households"].tolist() == [120, 80, 30, 1, 0]


def test_csv_with_a_missing_coordinate_names_the_row(tmp_path: Path) -> None:
    folder = _csv_folder(tmp_path)
    points = _address_points()
    points.loc[2, "lat"] = None
    points.to_csv(folder / "buildings.csv", index=False)
    exc = _error(folder, crs="wgs84")
    assert (exc.layer, exc.row) == ("buildings", 2)
    assert "lon/lat" in exc.reason


def _gbk_shapefiles(folder: Path, *, cpg: bool) -> Path:
    folder.mkdir()
    for name, gdf in _core().items():
        gdf = gdf[_shapefile_mask(gdf)]
        gdf.to_file(folder / f"{name}.shp", driver="ESRI Shapefile", engine="pyogrio",
                    encoding="GBK")
        if not cpg:
            (folder / f"{name}.cpg").unlink()
    dbf = (folder / "admin_areas.dbf").read_bytes()
    assert "景泰社区".encode("gbk") in dbf  # really GBK on disk
    return folder


def test_gbk_shapefile_with_cpg(tmp_path: Path) -> None:
    folder = _gbk_shapefiles(tmp_path / "gbk", cpg=True)
    assert (folder / "admin_areas.cpg").read_text().strip().upper() == "GBK"
    territory = read_territory(folder)
    assert territory.layers["admin_areas"]["name"].tolist() == [
        "白云示范区", "景泰街道", "景泰社区", "石马村"]


def test_gbk_shapefile_without_cpg_needs_the_encoding(tmp_path: Path) -> None:
    folder = _gbk_shapefiles(tmp_path / "gbk", cpg=False)
    assert not (folder / "admin_areas.cpg").exists()
    territory = read_territory(folder, encoding="GBK")
    assert territory.layers["admin_areas"]["name"].tolist() == [
        "白云示范区", "景泰街道", "景泰社区", "石马村"]
    # Without it the names come out garbled (read as Latin-1): proof the option matters.
    garbled = read_territory(folder)
    assert "景泰社区" not in garbled.layers["admin_areas"]["name"].tolist()


def test_encoding_applies_only_to_shapefiles_without_cpg(tmp_path: Path) -> None:
    folder = _gbk_shapefiles(tmp_path / "gbk", cpg=False)
    # buildings.shp is rewritten in UTF-8 with its .cpg; 住宅 must survive --encoding GBK.
    buildings = tiny_layers()["buildings"]
    for p in folder.glob("buildings.*"):
        p.unlink()
    buildings[_shapefile_mask(buildings)].to_file(folder / "buildings.shp", engine="pyogrio")
    assert (folder / "buildings.cpg").read_text().strip().upper().replace("-", "") == "UTF8"
    for source in (folder, _zip_folder(folder, tmp_path / "gbk.zip")):
        territory = read_territory(source, encoding="GBK")
        assert territory.layers["admin_areas"]["name"].tolist()[2] == "景泰社区"
        assert territory.layers["buildings"]["use"].tolist()[:2] == ["residential",
                                                                     "residential"]


# ---------------------------------------------------------------------------------------------
# 2. OpenStreetMap


@pytest.fixture(scope="module")
def pbf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pbf(tmp_path_factory.mktemp("osm") / "jingtai.osm.pbf")


def _osm_box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    ox, oy = ORIGIN
    return shapely.box(ox + x0 * UNIT, oy + y0 * UNIT, ox + x1 * UNIT, oy + y1 * UNIT)


def test_openstreetmap_pbf(pbf: Path) -> None:
    territory = read_territory(pbf)
    assert territory.name == "jingtai"
    assert territory.counts() == {
        "admin_areas": 3, "roads": 3, "water": 1, "ridges": 1, "railways": 1,
        "buildings": 4, "facilities": 1, "dedicated_areas": 1, "landuse": 3,
    }
    assert all("OpenStreetMap" in label for label in territory.sources.values())
    assert all(gdf.crs == WGS84 for gdf in territory.layers.values())

    admin = territory.layers["admin_areas"]
    assert _rows(admin, "admin_areas") == [
        ("440111001", "景泰街道", "town", "440111", None),
        ("440111001001", "景泰社区", "village", "440111001", "urban"),
        ("440111001201", "石马村", "village", "440111001", "rural"),
    ]
    # The town's ring is assembled from the relation's two ways.
    assert _same_geometry(
        shapely.get_parts(admin.geometry.to_numpy()),
        [_osm_box(0, 0, 20, 10), _osm_box(0, 0, 10, 10), _osm_box(10, 0, 20, 10)])

    roads = territory.layers["roads"]
    assert roads["class"].tolist() == ["primary", "residential", "footway"]
    assert [_plain(v) for v in roads["name"]] == ["白云大道", None, None]
    assert territory.layers["water"]["name"].tolist() == ["白沙河"]
    assert territory.layers["railways"]["name"].tolist() == ["京广铁路"]
    assert territory.layers["ridges"]["name"].tolist() == ["凤凰山脊"]
    assert set(territory.layers["water"].geom_type) == {"LineString"}

    buildings = territory.layers["buildings"]
    none = (None,) * 5
    assert _rows(buildings, "buildings") == [
        (120, None, 18, None, "residential", *none),
        # apartments; addr:street / addr:housenumber / addr:full -> road, house_number, address
        (None, None, 11, None, "residential", "景泰街道景泰路12号", "景泰路", "12", None, None),
        (None, None, None, 12.5, None, *none),          # building=yes, height "12.5 m"
        (None, None, 2, None, "residential", *none),
    ]
    assert _same_geometry(shapely.get_parts(buildings.geometry.to_numpy())[:1],
                          [_osm_box(1, 1, 2, 2)])

    facilities = territory.layers["facilities"]
    assert _rows(facilities, "facilities") == [("school", "景泰小学")]
    assert facilities.geom_type.tolist() == ["Point"]
    assert _rows(territory.layers["dedicated_areas"], "dedicated_areas") == [
        ("白云工业园", "industrial")]
    # landuse=*, leisure=park mapped into the contract's classes.
    assert sorted(_rows(territory.layers["landuse"], "landuse")) == [
        ("green", "景泰公园"), ("industrial", "白云工业园"), ("residential", "景泰小区")]


def test_openstreetmap_without_division_codes_has_no_admin_areas(tmp_path: Path) -> None:
    path = write_pbf(tmp_path / "norefs.osm.pbf", with_refs=False)
    exc = _error(path)
    message = str(exc)
    assert "admin_areas" in message
    assert "found: buildings" in message
    # The note saying why the boundaries were dropped reaches the user.
    assert "3 administrative boundaries" in message
    assert "ref" in message


def test_layer_file_beside_the_pbf_wins(pbf: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(pbf, folder / "jingtai.osm.pbf")
    tiny = tiny_layers()
    tiny["admin_areas"].to_file(folder / "admin_areas.geojson", driver="GeoJSON",
                                engine="pyogrio")
    territory = read_territory(folder)
    assert territory.sources["admin_areas"] == "admin_areas.geojson"
    assert territory.sources["buildings"] == "jingtai.osm.pbf (OpenStreetMap)"
    assert territory.layers["admin_areas"]["code"].tolist() == tiny["admin_areas"]["code"].tolist()
    assert territory.counts()["buildings"] == 4


def test_layer_file_beside_a_pbf_without_codes(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_pbf(folder / "norefs.osm.pbf", with_refs=False)
    tiny_layers()["admin_areas"].to_file(folder / "admin_areas.geojson", driver="GeoJSON",
                                         engine="pyogrio")
    territory = read_territory(folder)
    assert territory.counts()["admin_areas"] == 4
    assert territory.counts()["roads"] == 3


def test_corrupt_pbf_is_a_layer_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.osm.pbf"
    path.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all" * 20)
    exc = _error(path)
    assert "broken.osm.pbf" in str(exc)
    assert "cannot be read" in str(exc)


# ---------------------------------------------------------------------------------------------
# 3. Field maps


def test_field_map_renames_the_users_columns(reference: Territory, tmp_path: Path) -> None:
    tiny = tiny_layers()
    admin = tiny["admin_areas"].rename(columns={"code": "社区编码", "name": "名称",
                                                "level": "级别"})
    admin["级别"] = ["区", "街道", "社区", "村"]
    buildings = tiny["buildings"].rename(columns={"households": "户数"})
    folder = _write_geojson({"admin_areas": admin, "buildings": buildings}, tmp_path / "t")
    field_map = {"社区编码": "code", "名称": "name", "级别": "level",
                 "buildings.户数": "households"}
    territory = read_territory(folder, field_map=field_map)
    assert _rows(territory.layers["admin_areas"], "admin_areas") == _rows(
        reference.layers["admin_areas"], "admin_areas")
    assert territory.layers["buildings"]["households"].tolist()[:2] == [120, 80]

    # Without the map the required columns are missing.
    exc = _error(folder)
    assert exc.layer == "admin_areas"
    assert "code" in exc.reason and "--field-map" in exc.reason


def test_layer_scoped_field_map_only_touches_its_layer(tmp_path: Path) -> None:
    tiny = tiny_layers()
    buildings = tiny["buildings"].rename(columns={"households": "户数"})
    folder = _write_geojson(_core(buildings=buildings), tmp_path / "t")
    # Scoped to another layer: the buildings keep 户数, so the address point has no households.
    exc = _error(folder, field_map={"admin_areas.户数": "households"})
    assert (exc.layer, exc.row) == ("buildings", 3)
    assert "address point" in exc.reason
    territory = read_territory(folder, field_map={"buildings.户数": "households"})
    assert territory.layers["buildings"]["households"].tolist()[:2] == [120, 80]


def test_parse_field_map_and_crs_option() -> None:
    assert parse_field_map(["社区编码=code", " buildings.户数 = households "]) == {
        "社区编码": "code", "buildings.户数": "households"}
    with pytest.raises(GridmapError, match="SOURCE=TARGET"):
        parse_field_map(["社区编码"])
    assert parse_crs_option(None) is None
    assert parse_crs_option(["gcj02"]) == "gcj02"
    assert parse_crs_option(["buildings=wgs84"]) == {"buildings": "wgs84"}
    both = parse_crs_option(["gcj02", "buildings=wgs84"])
    assert isinstance(both, dict)
    assert both["buildings"] == "wgs84" and both["roads"] == "gcj02"


# ---------------------------------------------------------------------------------------------
# 4. Bad input


@pytest.mark.parametrize("driver", ["GeoJSON", "GPKG"])
def test_empty_geometry_names_its_row(tmp_path: Path, driver: str) -> None:
    tiny = tiny_layers()
    buildings = tiny["buildings"].copy()
    buildings.loc[3, "geometry"] = None if driver == "GeoJSON" else shapely.Polygon()
    path = write_layers(_core(buildings=buildings), tmp_path, driver)
    exc = _error(path)
    assert (exc.layer, exc.row) == ("buildings", 3)
    assert "empty geometry" in exc.reason
    assert "row 3" in str(exc) and "layer buildings" in str(exc) and "file " in str(exc)


def test_missing_required_column(tmp_path: Path) -> None:
    admin = tiny_layers()["admin_areas"].drop(columns="level")
    exc = _error(_write_geojson(_core(admin_areas=admin), tmp_path))
    assert (exc.layer, exc.row, exc.file) == ("admin_areas", None, "admin_areas.geojson")
    assert "missing column(s) level" in exc.reason
    assert "--field-map" in exc.reason
    assert "found: code, name, parent_code, kind" in exc.reason


def _cell_error(tmp_path: Path, layer: str, row: int, column: str, value: Any) -> LayerError:
    """The error reading the tiny territory (as GeoJSON) with one cell of ``layer`` changed;
    it names that layer and row."""
    frame = tiny_layers()[layer].copy()
    frame.loc[row, column] = value
    exc = _error(_write_geojson(_core(**{layer: frame}), tmp_path))
    assert (exc.layer, exc.row) == (layer, row)
    return exc


def test_wrong_geometry_type(tmp_path: Path) -> None:
    exc = _cell_error(tmp_path, "admin_areas", 2, "geometry", shapely.Point(113.305, 23.205))
    assert "wrong geometry type Point" in exc.reason
    assert "polygon" in exc.reason


def test_shapefile_without_prj(tmp_path: Path) -> None:
    folder = write_layers(_core(), tmp_path / "shp", "ESRI Shapefile")
    (folder / "buildings.prj").unlink()
    exc = _error(folder)
    assert (exc.layer, exc.file) == ("buildings", "buildings.shp")
    assert "no coordinate system" in exc.reason
    # Saying which fixes it.
    territory = read_territory(folder, crs={"buildings": "wgs84"})
    assert territory.counts()["buildings"] == 4


@pytest.mark.parametrize("crs", ["wgs85", {"buildings": "gcj03"}, "EPSG:999999"])
def test_unknown_crs_string_lists_the_accepted_forms(
        tmp_path: Path, crs: str | dict[str, str]) -> None:
    folder = _write_geojson(_core(), tmp_path)
    with pytest.raises((CRSError, LayerError)) as info:
        read_territory(folder, crs=crs)
    message = str(info.value)
    wrong = crs if isinstance(crs, str) else crs["buildings"]
    assert f"unknown coordinate system {wrong!r}" in message
    for accepted in ("wgs84", "cgcs2000", "gcj02", "bd09", "2000sz", "EPSG:4547"):
        assert accepted in message


def test_a_crs_on_another_planet_is_a_layer_error(tmp_path: Path) -> None:
    # pyproj knows "mars2000", but nothing converts Mars to WGS84.
    exc = _error(_write_geojson(_core(), tmp_path), crs="mars2000")
    assert exc.layer == "admin_areas"
    assert "cannot convert" in exc.reason and "--crs" in exc.reason


def test_swapped_latitude_and_longitude(tmp_path: Path) -> None:
    layers = _shift(_core(), lambda xy: xy[:, ::-1])
    exc = _error(_write_geojson(layers, tmp_path))
    assert exc.layer == "admin_areas"
    assert "swapped" in exc.reason


def test_swapped_axes_declared_cgcs2000(tmp_path: Path) -> None:
    layers = {k: v.set_crs("EPSG:4490", allow_override=True)
              for k, v in _shift(_core(), lambda xy: xy[:, ::-1]).items()}
    exc = _error(write_layers(layers, tmp_path, "GPKG"))
    assert exc.layer == "admin_areas"
    assert "swapped" in exc.reason


def test_swapped_axes_are_reported_with_the_users_own_values(tmp_path: Path) -> None:
    # Read as Baidu BD-09, the message quotes the file's values, not de-obfuscated ones.
    layers = _shift(_core(), lambda xy: xy[:, ::-1])
    exc = _error(_write_geojson(layers, tmp_path), crs="bd09")
    assert exc.layer == "admin_areas"
    assert "swapped" in exc.reason
    assert "read as bd09" in exc.reason
    assert "(23.2, 113.3) is (lat, lon)" in exc.reason


def test_coordinates_outside_china(tmp_path: Path) -> None:
    paris = np.array([2.35 - ORIGIN[0], 48.85 - ORIGIN[1]])
    layers = _shift(_core(), lambda xy: xy + paris)
    exc = _error(_write_geojson(layers, tmp_path))
    assert exc.layer == "admin_areas"
    assert "outside China" in exc.reason


@pytest.mark.parametrize("declared", [4326, 4490])
def test_metres_declared_as_degrees(tmp_path: Path, declared: int) -> None:
    layers = {k: v.to_crs(4547).set_crs(declared, allow_override=True)
              for k, v in _core().items()}
    exc = _error(write_layers(layers, tmp_path, "GPKG"))
    assert exc.layer == "admin_areas"
    assert "metres" in exc.reason


@pytest.mark.parametrize(("value", "row"), [(-5, 1), (2.5, 4)])
def test_bad_households(tmp_path: Path, value: float, row: int) -> None:
    exc = _cell_error(tmp_path, "buildings", row, "households", value)
    assert "households must be a whole number >= 0" in exc.reason
    assert str(value) in exc.reason


def test_address_point_without_households(tmp_path: Path) -> None:
    exc = _cell_error(tmp_path, "buildings", 3, "households", None)
    assert "address point" in exc.reason


def _admin_with(**columns: list[Any]) -> gpd.GeoDataFrame:
    admin = tiny_layers()["admin_areas"].copy()
    for col, values in columns.items():
        admin[col] = values
    return admin


@pytest.mark.parametrize(("admin", "row", "words"), [
    (_admin_with(level=["district", "town", "province", "village"]), 2,
     ["unknown level 'province'"]),
    (_admin_with(code=["440111", "440111001", "4401110010", "440111001201"]), 2,
     ["'4401110010'", "12-digit", "village"]),
    (_admin_with(code=["440111", "440111001", "440111001001", "440111001001"]), 3,
     ["440111001001", "appears twice"]),
    (_admin_with(parent_code=[None, "440111", "440111001", "440111002"]), 3,
     ["parent_code 440111002 does not match", "expected 440111001"]),
    (_admin_with(code=["440111", "440111001", "440111001001", "440111002201"],
                 parent_code=[None, "440111", None, None]), 3,
     ["parent 440111002", "not among the towns"]),
    (_admin_with(kind=[None, None, "urban", "suburban"]), 3, ["unknown kind 'suburban'"]),
    (_admin_with(name=["白云示范区", "景泰街道", "", "石马村"]), 2, ["needs a name"]),
], ids=["level", "code-length", "duplicate", "parent-code", "missing-parent", "kind", "name"])
def test_bad_admin_areas(tmp_path: Path, admin: gpd.GeoDataFrame, row: int,
                         words: list[str]) -> None:
    exc = _error(_write_geojson(_core(admin_areas=admin), tmp_path))
    assert (exc.layer, exc.row, exc.file) == ("admin_areas", row, "admin_areas.geojson")
    for word in words:
        assert word in exc.reason
    assert f"row {row}" in str(exc)


def test_road_without_class(tmp_path: Path) -> None:
    exc = _cell_error(tmp_path, "roads", 1, "class", None)
    assert "class" in exc.reason


def test_missing_required_layer(tmp_path: Path) -> None:
    tiny = tiny_layers()
    folder = _write_geojson({"admin_areas": tiny["admin_areas"], "roads": tiny["roads"]},
                            tmp_path)
    exc = _error(folder)
    assert "no buildings layer" in str(exc)
    assert "found: admin_areas, roads" in str(exc)


def test_nothing_recognisable_in_a_folder(tmp_path: Path) -> None:
    tiny_layers()["roads"].to_file(tmp_path / "streets.geojson", driver="GeoJSON",
                                   engine="pyogrio")
    exc = _error(tmp_path)
    assert "no admin_areas and no buildings" in str(exc)
    assert "found: none" in str(exc)


def test_layer_given_twice(tmp_path: Path) -> None:
    tiny = tiny_layers()
    folder = _write_geojson(_core(roads=tiny["roads"]), tmp_path)
    tiny["roads"].to_file(folder / "roads.shp", driver="ESRI Shapefile", engine="pyogrio")
    exc = _error(folder)
    assert exc.layer == "roads"
    assert "given twice" in str(exc)
    assert "roads.geojson" in str(exc) and "roads.shp" in str(exc)


def test_non_existent_path(tmp_path: Path) -> None:
    exc = _error(tmp_path / "nowhere.gpkg")
    assert "no such file or folder" in str(exc)
    assert "nowhere.gpkg" in str(exc)


@pytest.mark.parametrize("name", ["admin_areas.geojson", "territory.geojson", "houses.shp"])
def test_single_layer_file_is_not_a_territory(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    tiny_layers()["admin_areas"].to_file(path, engine="pyogrio")
    exc = _error(path)
    assert exc.file == name
    assert "one layer, not a territory" in str(exc)


def test_unsupported_single_file(tmp_path: Path) -> None:
    path = tmp_path / "territory.txt"
    path.write_text("hello")
    exc = _error(path)
    assert "unsupported file type" in str(exc)


def test_empty_layer(tmp_path: Path) -> None:
    folder = _write_geojson({"admin_areas": tiny_layers()["admin_areas"]}, tmp_path)
    (folder / "buildings.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    exc = _error(folder)
    assert (exc.layer, exc.file) == ("buildings", "buildings.geojson")
    assert "empty" in exc.reason


@pytest.mark.parametrize("name", ["territory.gpkg", "buildings.gpkg", "buildings.geojson",
                                  "territory.zip"])
def test_corrupt_file_is_a_layer_error(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "t"
    if name.startswith("buildings"):
        _write_geojson({"admin_areas": tiny_layers()["admin_areas"]}, folder)
        path = folder
    else:
        folder.mkdir()
        path = folder / name
    (folder / name).write_bytes(b"this is not what it says it is \x00\xff" * 50)
    exc = _error(path)
    assert name in str(exc)
    assert type(exc) is LayerError


# ---------------------------------------------------------------------------------------------
# 5. Repairs


def _bow_tie(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])


def test_self_intersecting_polygons_are_repaired_and_reported(tmp_path: Path) -> None:
    tiny = tiny_layers()
    ox, oy = ORIGIN
    admin = tiny["admin_areas"].copy()
    admin.loc[3, "geometry"] = _bow_tie(ox + 0.010, oy, ox + 0.020, oy + 0.010)
    buildings = tiny["buildings"].copy()
    buildings.loc[2, "geometry"] = _bow_tie(ox + 0.001, oy + 0.006, ox + 0.002, oy + 0.007)
    assert not admin.geometry.iloc[3].is_valid
    territory = read_territory(_write_geojson(_core(admin_areas=admin, buildings=buildings),
                                              tmp_path))
    assert [(r.layer, r.row, r.file) for r in territory.repairs] == [
        ("admin_areas", 3, "admin_areas.geojson"), ("buildings", 2, "buildings.geojson")]
    assert all("Self-intersection" in r.reason for r in territory.repairs)
    for layer, row in (("admin_areas", 3), ("buildings", 2)):
        geom = territory.layers[layer].geometry.iloc[row]
        assert geom.is_valid
        assert geom.geom_type in ("Polygon", "MultiPolygon")
        assert len(shapely.get_parts(geom)) == 2  # the two triangles of the bow tie
    fixed = territory.layers["admin_areas"].geometry.iloc[3]
    # Both triangles are kept (buffer(0) would keep only one): half the bounding box.
    assert fixed.area == pytest.approx(0.5 * 0.010 * 0.010, rel=1e-9)
    assert fixed.bounds == pytest.approx(admin.geometry.iloc[3].bounds)
    # Valid rows are left alone.
    assert territory.layers["admin_areas"].geometry.iloc[2].equals(admin.geometry.iloc[2])


def test_polygon_that_collapses_when_repaired_is_rejected(tmp_path: Path) -> None:
    ox, oy = ORIGIN
    # Zero area: every vertex on one line, so make_valid leaves a line, not a polygon.
    exc = _cell_error(tmp_path, "buildings", 1, "geometry", shapely.Polygon(
        [(ox, oy), (ox + 0.001, oy + 0.001), (ox + 0.002, oy + 0.002), (ox, oy)]))
    assert "collapses" in exc.reason


# ---------------------------------------------------------------------------------------------
# 6. Coordinate systems


def test_gauss_kruger_layers_come_back_in_wgs84(reference: Territory, tmp_path: Path) -> None:
    layers = {k: v.to_crs("EPSG:4547") for k, v in tiny_layers().items()}
    territory = read_territory(write_layers(layers, tmp_path, "GPKG"))
    for name, ref in reference.layers.items():
        got = territory.layers[name]
        assert got.crs == WGS84
        assert _same_geometry(got.geometry, ref.geometry, tolerance=1e-7), name
        assert _rows(got, name) == _rows(ref, name)
    assert territory.metric_crs.to_epsg() == 4547


def test_gcj02_layers_land_back_within_a_centimetre(reference: Territory,
                                                   tmp_path: Path) -> None:
    layers = {k: v.set_geometry(transform_geometries(v.geometry, WGS84, "gcj02"))
              for k, v in tiny_layers().items()}
    folder = _write_geojson(layers, tmp_path)
    territory = read_territory(folder, crs="gcj02")
    for name, ref in reference.layers.items():
        assert _max_distance_m(territory.layers[name].geometry, ref.geometry) < 0.01, name
    # Read as WGS84 (what the file declares) they are hundreds of metres off.
    as_declared = read_territory(folder)
    offset = _max_distance_m(as_declared.layers["admin_areas"].geometry,
                             reference.layers["admin_areas"].geometry)
    assert 100 < offset < 1000


def test_gcj02_for_one_layer_only(reference: Territory, tmp_path: Path) -> None:
    core = _core()

    def to_gcj02(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(gcj02_from_wgs84(xy[:, 0], xy[:, 1]))

    layers = {**core, "buildings": core["buildings"].set_geometry(
        shapely.transform(core["buildings"].geometry.to_numpy(), to_gcj02))}
    territory = read_territory(_write_geojson(layers, tmp_path), crs={"buildings": "GCJ-02"})
    for name in ("admin_areas", "buildings"):
        assert _max_distance_m(territory.layers[name].geometry,
                               reference.layers[name].geometry) < 0.01


def test_suzhou_2000sz_declared_or_given(tmp_path: Path) -> None:
    # Move the tiny territory to Suzhou, where the local 2000SZ system is used.
    suzhou = np.array([120.62 - ORIGIN[0], 31.30 - ORIGIN[1]])
    wgs = _shift(_core(), lambda xy: xy + suzhou)
    wgs = {k: v.set_crs(WGS84, allow_override=True) for k, v in wgs.items()}
    local = {k: v.to_crs(SZ2000) for k, v in wgs.items()}
    x = shapely.get_coordinates(local["admin_areas"].geometry.to_numpy())[:, 0]
    assert 300_000 < x.min() < x.max() < 400_000  # really metres near FE 350000
    declared = read_territory(write_layers(local, tmp_path / "gpkg", "GPKG"))
    folder = write_layers(local, tmp_path / "shp", "ESRI Shapefile")
    for name in wgs:
        (folder / f"{name}.prj").unlink()
    given = read_territory(folder, crs="2000sz")
    for territory, masks in ((declared, {}), (given, {k: _shapefile_mask(v)
                                                      for k, v in wgs.items()})):
        for name, original in wgs.items():
            expected = original.geometry[masks.get(name, slice(None))]
            assert _max_distance_m(territory.layers[name].geometry,
                                   expected.reset_index(drop=True)) < 0.01
    assert declared.metric_crs.to_epsg() == 4549  # CGCS2000 GK zone of 120E


def test_metric_crs_of_the_tiny_territory(reference: Territory) -> None:
    assert reference.metric_crs == pyproj.CRS.from_epsg(4547)
    metric = reference.to_metric()
    assert set(metric) == set(reference.layers)
    assert all(gdf.crs == reference.metric_crs for gdf in metric.values())
    minx, miny, maxx, maxy = metric["admin_areas"].total_bounds
    # 0.02 degree of longitude and 0.01 of latitude at 23.2N, in metres.
    assert maxx - minx == pytest.approx(2046, rel=0.01)
    assert maxy - miny == pytest.approx(1108, rel=0.01)
    assert reference.bounds == pytest.approx((113.30, 23.20, 113.32, 23.21))


def test_a_file_crs_pyproj_cannot_transform_is_a_layer_error(tmp_path: Path) -> None:
    folder = write_layers(_core(), tmp_path, "ESRI Shapefile")
    (folder / "buildings.prj").write_text(
        'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],'
        'AXIS["X",EAST],AXIS["Y",NORTH]]')
    exc = _error(folder)
    assert (exc.layer, exc.file) == ("buildings", "buildings.shp")
    assert "coordinate" in exc.reason


# ---------------------------------------------------------------------------------------------
# 7. Derived admin fields, Chinese spellings


def test_admin_fields_derived_and_chinese_spellings(tmp_path: Path) -> None:
    tiny = tiny_layers()
    ox, oy = ORIGIN
    admin = gpd.GeoDataFrame(
        {"code": ["440111", "440111001", "440111100", "440111001001", "440111001201",
                  "440111100250"],
         "name": ["白云示范区", "景泰街道", "钟落潭镇", "景泰社区", "石马村", "良田村"],
         "level": ["区", "街道", "镇", "社区", "村", "村委会"]},
        geometry=[shapely.box(ox, oy, ox + 0.03, oy + 0.01),
                  shapely.box(ox, oy, ox + 0.02, oy + 0.01),
                  shapely.box(ox + 0.02, oy, ox + 0.03, oy + 0.01),
                  shapely.box(ox, oy, ox + 0.01, oy + 0.01),
                  shapely.box(ox + 0.01, oy, ox + 0.02, oy + 0.01),
                  shapely.box(ox + 0.02, oy, ox + 0.03, oy + 0.01)],
        crs=WGS84,
    )
    roads = tiny["roads"].copy()
    roads["class"] = ["主干路", "巷", "Residential"]
    territory = read_territory(_write_geojson(_core(admin_areas=admin, roads=roads), tmp_path))
    got = territory.layers["admin_areas"]
    assert got["level"].tolist() == ["district", "town", "town", "village", "village",
                                     "village"]
    assert [_plain(v) for v in got["parent_code"]] == [
        None, "440111", "440111", "440111001", "440111001", "440111100"]
    assert [_plain(v) for v in got["kind"]] == [None, None, None, "urban", "rural", "rural"]
    assert territory.layers["roads"]["class"].tolist() == ["primary", "service", "residential"]


def test_given_kind_wins_over_the_code(tmp_path: Path) -> None:
    admin = _admin_with(kind=[None, None, "农村", "城镇"])
    territory = read_territory(_write_geojson(_core(admin_areas=admin), tmp_path))
    assert [_plain(v) for v in territory.layers["admin_areas"]["kind"]] == [
        None, None, "rural", "urban"]


def test_numeric_codes_read_as_text(tmp_path: Path) -> None:
    admin = _admin_with(code=[440111, 440111001, 440111001001, 440111001201],
                        parent_code=[None, None, None, None])
    territory = read_territory(_write_geojson(_core(admin_areas=admin), tmp_path))
    got = territory.layers["admin_areas"]
    assert got["code"].tolist() == ["440111", "440111001", "440111001001", "440111001201"]
    assert [_plain(v) for v in got["parent_code"]] == [None, "440111", "440111001",
                                                       "440111001"]


# ---------------------------------------------------------------------------------------------
# 8. Property: random rectangles read back unchanged


@st.composite
def rectangles(draw: st.DrawFn) -> tuple[shapely.Polygon, list[shapely.Polygon]]:
    lon = draw(st.floats(74.0, 134.0))
    lat = draw(st.floats(4.0, 53.0))
    width = draw(st.floats(1e-4, 0.5))
    height = draw(st.floats(1e-4, 0.5))
    area = shapely.box(lon, lat, lon + width, lat + height)
    n = draw(st.integers(1, 6))
    houses = []
    for _ in range(n):
        fx = draw(st.floats(0.0, 0.9))
        fy = draw(st.floats(0.0, 0.9))
        size = draw(st.floats(0.01, 0.1))
        houses.append(shapely.box(lon + fx * width, lat + fy * height,
                                  lon + (fx + size) * width, lat + (fy + size) * height))
    return area, houses


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rectangles())
def test_random_rectangles_read_back_unchanged(
        case: tuple[shapely.Polygon, list[shapely.Polygon]]) -> None:
    area, houses = case
    layers = {
        "admin_areas": gpd.GeoDataFrame(
            {"code": ["440111"], "name": ["测试区"], "level": ["district"]},
            geometry=[area], crs=WGS84),
        "buildings": gpd.GeoDataFrame(
            {"households": list(range(len(houses)))}, geometry=houses, crs=WGS84),
    }
    with tempfile.TemporaryDirectory() as tmp:
        territory = read_territory(_write_geojson(layers, Path(tmp)))
    assert territory.counts() == {"admin_areas": 1, "buildings": len(houses)}
    assert territory.repairs == []
    for name, gdf in layers.items():
        got = territory.layers[name].geometry.to_numpy()
        assert bool(np.all(shapely.equals_exact(got, gdf.geometry.to_numpy(), tolerance=1e-9)))
    assert territory.layers["buildings"]["households"].tolist() == list(range(len(houses)))
    assert territory.bounds == pytest.approx(area.bounds, abs=1e-9)


def test_coordinate_errors_are_not_leaked_raw(tmp_path: Path) -> None:
    """Coordinate problems surface as LayerError (naming the layer), not CoordinateError."""
    layers = _shift(_core(), lambda xy: xy[:, ::-1])
    with pytest.raises(LayerError) as info:
        read_territory(_write_geojson(layers, tmp_path))
    assert not isinstance(info.value, CoordinateError)
    assert isinstance(info.value.__cause__, CoordinateError)


def test_a_territory_pickled_before_the_reader_was_split_loads(tmp_path: Path) -> None:
    """A pickle naming gis.layers.Territory (made before gis/layers.py became gis.contract
    and gis.io) loads as today's Territory, its layers intact."""
    territory = read_territory(_write_geojson(_core(), tmp_path))
    new = pickle.dumps(territory, protocol=2)   # protocol 2 names classes as "module\nname"
    old = new.replace(b"cgis.contract\nTerritory\n", b"cgis.layers\nTerritory\n")
    assert old != new
    loaded = pickle.loads(old)
    assert type(loaded) is Territory
    assert loaded.counts() == territory.counts()
    assert loaded.layers["admin_areas"]["code"].tolist() == \
        territory.layers["admin_areas"]["code"].tolist()


def test_the_repository_imports_the_reader_by_its_new_names() -> None:
    """gis.layers is kept for what outside the repository uses; inside it, a module imports
    gis.contract and gis.io (a bench step that runs older commits may fall back to it when
    the new module is not found)."""
    root = Path(__file__).resolve().parents[2]
    found = []
    for folder in ("api", "bench", "data", "events", "gis", "maps", "partitioning", "scripts",
                   "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            if path == root / "gis" / "layers.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            fallback = {id(n) for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler)
                        and isinstance(h.type, ast.Name) and h.type.id == "ModuleNotFoundError"
                        for n in ast.walk(h)}
            for node in ast.walk(tree):
                if id(node) in fallback:
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n == "gis.layers" or n.startswith("gis.layers.") for n in names):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []
