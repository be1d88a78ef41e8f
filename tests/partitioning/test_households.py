"""Household estimates a planner believes: which footprints are estimated, and the bounds."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from conftest import tiny_layers, write_layers
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli import app
from gis.io.territory import read_territory
from partitioning.engine import partition_territory
from partitioning.households import building_households, land_use_at
from partitioning.params import PartitionParams

CRS = "EPSG:4547"


def _sq(x: float, side: float = 20.0) -> shapely.Polygon:
    return shapely.box(x, 0, x + side, side)


#: name: (use tag, height m, floors, footprint side m, x); land use: residential on
#: x < 1000, commercial on 1000 <= x < 2000, none beyond.
CASES = {
    "tagged_res": ("residential", None, 6, 20, 2100),
    "untagged_low": (None, 12.0, None, 20, 2200),
    "untagged_tower": (None, 300.0, None, 20, 2300),
    "tagged_office": ("commercial", None, 10, 20, 2400),
    "untagged_in_res_land": (None, 60.0, None, 20, 100),
    "untagged_in_commercial_land": (None, 9.0, None, 20, 1100),
    "tagged_res_tower_in_commercial_land": ("residential", 150.0, None, 20, 1200),
    "untagged_large_hall": (None, 10.0, None, 70, 2500),
}


def _buildings(households: dict[str, int] | None = None) -> gpd.GeoDataFrame:
    given_hh = households or {}
    return gpd.GeoDataFrame({
        "households": [given_hh.get(k) for k in CASES],
        "use": [c[0] for c in CASES.values()],
        "height": [c[1] for c in CASES.values()],
        "floors": [c[2] for c in CASES.values()],
    }, geometry=[_sq(c[4], c[3]) for c in CASES.values()], crs=CRS)


LANDUSE = gpd.GeoDataFrame({"use": ["residential", "commercial"], "name": ["小区", "商务区"]},
                           geometry=[shapely.box(0, -10, 1000, 100),
                                     shapely.box(1000, -10, 2000, 100)], crs=CRS)


def _by_case(values: np.ndarray) -> dict[str, int]:
    return {k: int(v) for k, v in zip(CASES, values, strict=True)}


def test_residential_mode_estimates_only_homes() -> None:
    hh, _pop, est, counts = building_households(_buildings(), PartitionParams(), LANDUSE)
    got = _by_case(hh)
    # 400 m² × 6 floors ÷ 90 m².
    assert got["tagged_res"] == 27
    assert got["untagged_low"] == 18          # 400 × 4 floors (12 m ÷ 3 m) ÷ 90
    assert got["untagged_in_res_land"] == 89  # 400 × 20 floors ÷ 90: land use says homes
    for name in ("untagged_tower", "tagged_office", "untagged_in_commercial_land",
                 "tagged_res_tower_in_commercial_land", "untagged_large_hall"):
        assert got[name] == 0, name
    assert _by_case(est) == {k: int(k in ("tagged_res", "untagged_low",
                                         "untagged_in_res_land")) for k in CASES}
    assert counts.estimated == 3 and counts.households_estimated == 27 + 18 + 89
    assert counts.largest_estimate == 89
    assert counts.by_rule["tall in non-residential land use"] == 1
    assert counts.by_rule["untagged high-rise or large"] == 2


def test_given_counts_are_kept_whatever_the_use() -> None:
    hh, _pop, est, counts = building_households(
        _buildings({"tagged_office": 12, "untagged_tower": 0}), PartitionParams(), LANDUSE)
    assert _by_case(hh)["tagged_office"] == 12
    assert not _by_case(est)["tagged_office"] and counts.given == 2


def test_all_mode_estimates_every_untagged_footprint_bounded() -> None:
    hh, _pop, _est, _counts = building_households(_buildings(),
                                                  PartitionParams(estimate="all"), LANDUSE)
    got = _by_case(hh)
    assert got["untagged_tower"] == round(400 * 100 / 90)   # 300 m ÷ 3 m = 100 floors
    assert got["untagged_in_commercial_land"] == round(400 * 3 / 90)
    assert got["tagged_office"] == 0


def test_off_mode_estimates_nothing() -> None:
    hh, _pop, est, counts = building_households(
        _buildings({"tagged_res": 40}), PartitionParams(estimate="off"), LANDUSE)
    assert _by_case(hh) == {k: 40 if k == "tagged_res" else 0 for k in CASES}
    assert not est.any() and counts.households_estimated == 0


def test_an_estimate_never_exceeds_floor_area_over_the_smallest_dwelling() -> None:
    params = PartitionParams(dwelling_m2=30.0, min_dwelling_m2=50.0)
    hh, _pop, _est, counts = building_households(_buildings(), params, LANDUSE)
    assert _by_case(hh)["tagged_res"] == 400 * 6 // 50
    assert counts.capped == 3


def test_without_land_use_the_height_rule_decides() -> None:
    hh, *_ = building_households(_buildings(), PartitionParams(), None)
    got = _by_case(hh)
    assert got["untagged_in_res_land"] == 0        # 60 m, untagged, no land use: not a home
    assert got["untagged_in_commercial_land"] == round(400 * 3 / 90)   # 9 m: a home
    assert got["tagged_res_tower_in_commercial_land"] == round(400 * 50 / 90)


def test_land_use_at_prefers_the_smallest_area() -> None:
    land = gpd.GeoDataFrame({"use": ["commercial", "residential"]},
                            geometry=[shapely.box(0, 0, 100, 100), shapely.box(10, 10, 30, 30)])
    points = shapely.points([(20, 20), (50, 50), (500, 500)])
    assert list(land_use_at(points, land)) == ["residential", "commercial", None]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(5, 200), st.one_of(st.none(), st.integers(1, 120)),
                          st.one_of(st.none(), st.floats(1, 700)),
                          st.sampled_from([None, "residential", "commercial"])),
                min_size=1, max_size=12),
       st.sampled_from(["residential", "all"]), st.floats(20, 150), st.floats(20, 100))
def test_no_estimate_over_its_floor_area(rows: list, mode: str, dwelling: float,
                                         smallest: float) -> None:
    frame = gpd.GeoDataFrame({
        "households": [None] * len(rows), "floors": [r[1] for r in rows],
        "height": [r[2] for r in rows], "use": [r[3] for r in rows]},
        geometry=[shapely.box(i * 300, 0, i * 300 + r[0], r[0]) for i, r in enumerate(rows)],
        crs=CRS)
    params = PartitionParams(estimate=mode, dwelling_m2=dwelling, min_dwelling_m2=smallest)
    hh, _pop, est, _counts = building_households(frame, params)
    floors = np.array([r[1] if r[1] is not None else
                       (max(1, round(r[2] / 3)) if r[2] is not None else 1) for r in rows])
    floor_area = np.array([r[0] ** 2 for r in rows]) * floors
    assert (hh <= np.floor(floor_area / smallest) + 1e-9).all()
    assert (hh[~est] == 0).all()


def _territory_with_land_use(tmp_path: Path) -> Path:
    layers = tiny_layers()
    b = layers["buildings"]
    ox, oy = 113.30, 23.20
    tower = shapely.box(ox + 0.0061, oy + 0.0061, ox + 0.0066, oy + 0.0066)
    extra = gpd.GeoDataFrame({"households": [None, None], "population": [None, None],
                              "floors": [None, 2], "use": [None, None]},
                             geometry=[tower, shapely.box(ox + 0.0011, oy + 0.0071,
                                                          ox + 0.0013, oy + 0.0073)],
                             crs=b.crs)
    extra["height"] = [240.0, None]
    layers["buildings"] = gpd.GeoDataFrame(
        __import__("pandas").concat([b, extra], ignore_index=True), crs=b.crs)
    layers["landuse"] = gpd.GeoDataFrame(
        {"用地性质": ["居住用地", "商业"], "name": ["景泰小区", "商务区"]},
        geometry=[shapely.box(ox, oy + 0.0055, ox + 0.0045, oy + 0.0085),
                  shapely.box(ox + 0.0055, oy + 0.0055, ox + 0.0095, oy + 0.0085)],
        crs=b.crs)
    return write_layers(layers, tmp_path / "t", "GPKG")


def test_engine_counts_estimated_households_per_grid(tmp_path: Path) -> None:
    territory = read_territory(_territory_with_land_use(tmp_path))
    assert set(territory.layers["landuse"]["use"]) == {"residential", "commercial"}
    result = partition_territory(territory, PartitionParams())
    grids, report = result.grids, result.report
    assert int(grids["households_estimated"].sum()) == report["households_estimated"] > 0
    assert (grids["households_estimated"] <= grids["households"]).all()
    assert int(result.blocks["households_estimated"].sum()) == report["households_estimated"]
    # The untagged 240 m tower in commercial land use holds nobody.
    assert report["estimate_rules"]["tall in non-residential land use"] == 1
    off = partition_territory(territory, PartitionParams(estimate="off"))
    assert off.report["households_estimated"] == 0
    assert int(off.grids["households_estimated"].sum()) == 0
    assert off.report["households"] == report["households"] - report["households_estimated"]


@pytest.mark.parametrize("mode", ["residential", "off"])
def test_cli_summary_says_how_many_households_are_estimated(tmp_path: Path, mode: str) -> None:
    src = _territory_with_land_use(tmp_path)
    result = CliRunner().invoke(app, ["partition", str(src), "--out", str(tmp_path / "out"),
                                      "--estimate", mode])
    assert result.exit_code == 0, result.output
    grids = gpd.read_file(tmp_path / "out" / "grids.gpkg")
    total = int(grids["households_estimated"].sum())
    if mode == "off":
        assert total == 0 and "未估算" in result.output
    else:
        assert total > 0
        assert f"其中 {total:,} 户为估算" in result.output
        assert f"{total:,} households estimated" in result.output


def test_cli_refuses_an_unknown_estimate_mode(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["partition", str(_territory_with_land_use(tmp_path)),
                                      "--out", str(tmp_path / "out"), "--estimate", "some"])
    assert result.exit_code != 0 and "estimate must be one of" in result.output
