"""Parent codes derived from statistical codes (gis.divisions): route, import, exports."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from typer.testing import CliRunner

from api.cli import app
from gis import divisions
from gis.contract import check_layer


def test_levels_by_length() -> None:
    assert divisions.level_of("440111") == "district"
    assert divisions.level_of("440111001") == "town"
    assert divisions.level_of("440111001002") == "village"
    assert divisions.level_of("440111001002003") == "grid"
    assert divisions.level_of("44011100100") is None
    assert divisions.level_of("SQ-3-2") is None
    assert divisions.level_of(None) is None
    assert divisions.level_of(float("nan")) is None


def test_ancestors_of_a_grid_code() -> None:
    code = "310101013002905"
    assert divisions.ancestor(code, "village") == "310101013002"
    assert divisions.ancestor(code, "town") == "310101013"
    assert divisions.ancestor(code, "district") == "310101"
    assert divisions.ancestor("310101013002", "town") == "310101013"
    assert divisions.ancestor("310101013", "village") is None    # a town holds no village
    assert divisions.ancestor("SQ-3-2", "village") is None
    assert divisions.parent_code("310101013002905") == "310101013002"
    assert divisions.parent_code("310101013002") == "310101013"
    assert divisions.parent_code("310101013") == "310101"
    assert divisions.parent_code("310101") is None


def test_fill_parents_keeps_what_is_given() -> None:
    filled = divisions.fill_parents(["310101013002905", "310101013002906", "x", ""],
                                    ["", "999999999999", None, float("nan")], "village")
    assert filled == ["310101013002", "999999999999", "", ""]


def _square(x: float) -> shapely.Polygon:
    return shapely.box(113.2 + x, 23.1, 113.21 + x, 23.11)


def test_import_derives_parent_and_level_from_the_code() -> None:
    gdf = gpd.GeoDataFrame({
        "code": ["440111", "440111001", "440111001002"], "name": ["区", "街道", "社区"],
        "level": [None, None, "社区"], "parent_code": [None, None, None]},
        geometry=[_square(0)] * 3, crs=4326)
    out = check_layer("admin_areas", gdf, file="admin.geojson")
    assert list(out["level"]) == ["district", "town", "village"]
    assert list(out["parent_code"].fillna("")) == ["", "440111", "440111001"]


def test_route_fills_village_and_town_from_15_digit_grid_codes(tmp_path: Path) -> None:
    # A city's own grid layer: codes only, no village or town columns.
    grids = gpd.GeoDataFrame({"网格编码": ["440111001002001", "440111001003001"],
                              "name": ["一", "二"]},
                             geometry=[_square(0), _square(0.01)], crs=4326)
    grids_path = tmp_path / "grids.geojson"
    grids.to_file(grids_path)
    events = pd.DataFrame({"id": ["a", "b", "c"], "lon": [113.205, 113.215, 113.5],
                           "lat": [23.105, 23.105, 23.105]})
    src = tmp_path / "events.csv"
    events.to_csv(src, index=False)
    out = tmp_path / "routed.csv"
    result = CliRunner().invoke(app, ["route", str(src), "--grids", str(grids_path),
                                      "--code-field", "网格编码", "--coord-sys", "wgs84",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    back = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(back["grid_code"]) == ["440111001002001", "440111001003001", ""]
    assert list(back["village_code"]) == ["440111001002", "440111001003", ""]
    assert list(back["town_code"]) == ["440111001", "440111001", ""]
