"""The demo territory generator: determinism, the layer contract and the realism rules."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from data.demo import LAYERS, DemoTerritory, generate

METRIC = "EPSG:4547"
SMALL, MEDIUM = 10_000, 60_000

FIELDS: dict[str, dict[str, str]] = {
    "admin_areas": {
        "code": "str",
        "name": "str",
        "level": "str",
        "parent_code": "str",
        "kind": "str",
    },
    "roads": {"class": "str", "name": "str"},
    "water": {"name": "str"},
    "ridges": {"name": "str"},
    "railways": {"name": "str"},
    "buildings": {"households": "int", "population": "int", "floors": "int", "use": "str",
                  "address": "str", "road": "str", "house_number": "str", "compound": "str",
                  "building_no": "str"},
    "facilities": {"kind": "str", "name": "str"},
    "dedicated_areas": {"name": "str", "kind": "str"},
}
GEOM_TYPES: dict[str, set[str]] = {
    "admin_areas": {"Polygon", "MultiPolygon"},
    "roads": {"LineString"},
    "water": {"LineString", "Polygon"},
    "ridges": {"LineString"},
    "railways": {"LineString"},
    "buildings": {"Polygon"},
    "facilities": {"Point"},
    "dedicated_areas": {"Polygon"},
}
CJK = re.compile(r"^[\u4e00-\u9fff]+$")

ROAD_CLASSES = {"primary", "secondary", "tertiary", "residential", "service", "footway"}


@pytest.fixture(scope="module")
def small() -> DemoTerritory:
    return generate(SMALL, seed=7)


@pytest.fixture(scope="module")
def medium() -> DemoTerritory:
    return generate(MEDIUM, seed=7)


@pytest.fixture(scope="module", params=[SMALL, MEDIUM], ids=["10k", "60k"])
def territory(request: pytest.FixtureRequest) -> DemoTerritory:
    return request.getfixturevalue("small" if request.param == SMALL else "medium")


@pytest.fixture(scope="module")
def metric(territory: DemoTerritory) -> dict[str, gpd.GeoDataFrame]:
    return {name: gdf.to_crs(METRIC) for name, gdf in territory.layers.items()}


def _requested(t: DemoTerritory) -> int:
    return SMALL if t.households < 30_000 else MEDIUM


def _admin(m: dict[str, gpd.GeoDataFrame]) -> tuple[gpd.GeoDataFrame, ...]:
    adm = m["admin_areas"]
    return (adm[adm.level == "district"], adm[adm.level == "town"], adm[adm.level == "village"])


def _extent(geom: shapely.Geometry) -> float:
    """Largest distance between two vertices."""
    xy = shapely.get_coordinates(shapely.convex_hull(geom))
    return float(np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]).max())


def _village_households(m: dict[str, gpd.GeoDataFrame]) -> pd.Series:
    """Households of the buildings whose centroid lies in each village/community."""
    _, _, vil = _admin(m)
    b = m["buildings"]
    pi, vi = shapely.STRtree(vil.geometry.values).query(
        shapely.centroid(b.geometry.values), predicate="intersects"
    )
    hh = np.bincount(vi, weights=b["households"].to_numpy()[pi], minlength=len(vil))
    return pd.Series(hh, index=vil.index)


# -- determinism and size ------------------------------------------------------------------


def test_same_seed_gives_identical_layers(small: DemoTerritory) -> None:
    again = generate(SMALL, seed=7)
    assert again.households == small.households
    for name in LAYERS:
        a, b = small.layers[name], again.layers[name]
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all(), name


def test_other_seed_gives_another_territory(small: DemoTerritory) -> None:
    other = generate(SMALL, seed=8)
    a, b = small.layers["buildings"], other.layers["buildings"]
    assert len(a) != len(b) or not shapely.equals_exact(a.geometry.values, b.geometry.values).all()
    assert (
        small.layers["admin_areas"]["name"].tolist() != other.layers["admin_areas"]["name"].tolist()
    )


def test_households_close_to_request(territory: DemoTerritory) -> None:
    wanted = _requested(territory)
    assert abs(territory.households - wanted) <= 0.05 * wanted
    assert territory.households == int(territory.layers["buildings"]["households"].sum())


def test_too_small_is_refused() -> None:
    with pytest.raises(ValueError):
        generate(100)


def test_area_scales_with_households(small: DemoTerritory, medium: DemoTerritory) -> None:
    def urban_area(t: DemoTerritory) -> float:
        adm = t.layers["admin_areas"].to_crs(METRIC)
        return float(adm[adm.kind == "urban"].area.sum())

    assert urban_area(medium) > 3 * urban_area(small)


# -- the layer contract ------------------------------------------------------------------


def test_layers_fields_and_dtypes(territory: DemoTerritory) -> None:
    assert tuple(territory.layers) == LAYERS
    for name, fields in FIELDS.items():
        gdf = territory.layers[name]
        assert len(gdf) > 0, name
        assert gdf.crs is not None and gdf.crs.to_epsg() == 4326, name
        assert set(gdf.columns) - {"geometry"} == set(fields), name
        for col, kind in fields.items():
            if kind == "int":
                assert pd.api.types.is_integer_dtype(gdf[col]), (name, col, gdf[col].dtype)
            else:
                values = gdf[col].dropna()
                assert values.map(lambda v: isinstance(v, str)).all(), (name, col)
        assert set(gdf.geom_type) <= GEOM_TYPES[name], (name, set(gdf.geom_type))


def test_geometries_valid_nonempty_and_in_china(territory: DemoTerritory) -> None:
    for name, gdf in territory.layers.items():
        g = gdf.geometry.values
        assert shapely.is_valid(g).all(), name
        assert not shapely.is_empty(g).any(), name
        x0, y0, x1, y1 = gdf.total_bounds
        assert 112 < x0 < x1 < 115 and 22 < y0 < y1 < 24.5, (name, gdf.total_bounds)
    district = territory.layers["admin_areas"].iloc[0].geometry
    c = district.centroid
    assert abs(c.x - 113.30) < 0.05 and abs(c.y - 23.25) < 0.05


def test_attribute_values(territory: DemoTerritory) -> None:
    L = territory.layers
    assert set(L["admin_areas"]["level"]) == {"district", "town", "village"}
    assert set(L["roads"]["class"]) <= ROAD_CLASSES
    b = L["buildings"]
    assert set(b["use"]) == {"residential", "commercial", "industrial", "public"}
    assert (
        (b["households"] >= 0).all() and (b["population"] >= 0).all() and (b["floors"] >= 1).all()
    )
    assert (b["population"] >= b["households"]).all()
    assert (b.loc[b["use"] != "residential", "households"] == 0).all()
    assert set(L["facilities"]["kind"]) == {"school", "hospital", "market"}
    assert "industrial" in set(L["dedicated_areas"]["kind"])
    assert set(L["dedicated_areas"]["kind"]) <= {"industrial", "campus", "scenic"}


def test_chinese_names(territory: DemoTerritory) -> None:
    L = territory.layers
    for name in ("admin_areas", "water", "ridges", "railways", "facilities", "dedicated_areas"):
        assert L[name]["name"].map(lambda s: bool(CJK.match(s))).all(), name
    roads = L["roads"]
    named = roads[roads["class"].isin(["primary", "secondary", "tertiary", "residential"])]
    assert named["name"].notna().all()
    assert named["name"].map(lambda s: bool(CJK.match(s))).all()
    assert named["name"].str.contains(r"(?:路|大道|街|巷|里)$").all()
    assert L["water"]["name"].str.contains(r"(?:河|涌|水库)$").all()
    assert L["railways"]["name"].str.endswith("铁路").all()
    assert L["ridges"]["name"].str.endswith("山脊").all()


# -- administrative hierarchy ------------------------------------------------------------


def test_admin_codes_and_nesting(territory: DemoTerritory) -> None:
    adm = territory.layers["admin_areas"]
    dist, towns, vil = (adm[adm.level == lv] for lv in ("district", "town", "village"))
    assert len(dist) == 1
    d = dist.iloc[0]
    assert d.code == "440111" and pd.isna(d.parent_code) and pd.isna(d.kind)
    assert d["name"].endswith("区")
    assert adm["code"].is_unique
    # towns and streets
    assert len(towns) >= 2
    assert towns["code"].str.fullmatch(r"440111\d{3}").all()
    assert (towns["parent_code"] == "440111").all() and towns["kind"].isna().all()
    serial = towns["code"].str[6:].astype(int)
    streets, rural_towns = towns[serial.between(1, 99)], towns[serial.between(100, 199)]
    assert len(streets) + len(rural_towns) == len(towns)
    assert len(streets) >= 1 and len(rural_towns) >= 1
    assert (
        streets["name"].str.endswith("街道").all() and rural_towns["name"].str.endswith("镇").all()
    )
    # villages and communities
    assert vil["code"].str.fullmatch(r"\d{12}").all()
    assert (vil["code"].str[:9] == vil["parent_code"]).all()
    assert set(vil["parent_code"]) == set(towns["code"])
    vserial = vil["code"].str[9:].astype(int)
    urban, rural = vil["kind"] == "urban", vil["kind"] == "rural"
    assert (urban | rural).all()
    assert vserial[urban].between(1, 199).all() and vserial[rural].between(200, 399).all()
    assert vil.loc[urban, "name"].str.endswith("社区").all()
    assert vil.loc[rural, "name"].str.endswith("村").all()
    assert set(vil.loc[urban, "parent_code"]) == set(streets["code"])
    assert set(vil.loc[rural, "parent_code"]) == set(rural_towns["code"])


def test_villages_tile_towns_and_towns_tile_the_district(
    metric: dict[str, gpd.GeoDataFrame],
) -> None:
    dist, towns, vil = _admin(metric)
    for _, town in towns.iterrows():
        parts = vil[vil.parent_code == town.code].geometry.values
        union = shapely.union_all(parts)
        area = town.geometry.area
        assert union.symmetric_difference(town.geometry).area / area < 1e-6, town.code
        assert (shapely.area(parts).sum() - union.area) / area < 1e-6, town.code  # no overlaps
    d = dist.geometry.iloc[0]
    union = shapely.union_all(towns.geometry.values)
    assert union.symmetric_difference(d).area / d.area < 1e-6
    assert (towns.area.sum() - union.area) / d.area < 1e-6
    # shared edges are identical: a clean polygon coverage
    assert shapely.coverage_is_valid(vil.geometry.values)


# -- buildings -----------------------------------------------------------------------------


def test_buildings_do_not_overlap_or_cross_lines(metric: dict[str, gpd.GeoDataFrame]) -> None:
    b = metric["buildings"].geometry.values
    i, j = shapely.STRtree(b).query(b, predicate="intersects")
    assert (i < j).sum() == 0
    for name in ("roads", "water", "railways"):
        hits, _ = shapely.STRtree(metric[name].geometry.values).query(b, predicate="intersects")
        assert len(hits) == 0, name
    district = _admin(metric)[0].geometry.iloc[0]
    assert shapely.within(b, district.buffer(0.01)).all()


def test_urban_buildings(territory: DemoTerritory) -> None:
    b = territory.layers["buildings"]
    multi = b[b["households"] >= 20]
    regular = multi[multi["households"] <= 200]
    assert len(regular) > 0
    assert regular["floors"].between(6, 33).all()
    towers = (b["households"] > 500).sum()
    assert towers >= max(1, int(2 * territory.households / 100_000))
    assert (b[b["households"] > 500]["floors"] > 20).all()
    zero = b[b["households"] == 0]
    assert {"commercial", "public", "industrial"} <= set(zero["use"])


def test_urban_density_and_communities(metric: dict[str, gpd.GeoDataFrame]) -> None:
    _, _, vil = _admin(metric)
    hh = _village_households(metric)
    urban = vil.kind == "urban"
    density = hh[urban].sum() / (vil[urban].area.sum() / 1e6)
    assert 5_000 < density < 30_000  # gross, including parks, schools and roads
    assert 1_500 <= hh[urban].median() <= 6_000


def test_rural_part(territory: DemoTerritory, metric: dict[str, gpd.GeoDataFrame]) -> None:
    _, _, vil = _admin(metric)
    rural = vil[vil.kind == "rural"]
    assert max(_extent(g) for g in rural.geometry) > 5_000
    hh = _village_households(metric)
    share = hh[vil.kind == "rural"].sum() / hh.sum()
    assert 0.10 <= share <= 0.20
    assert (hh[vil.kind == "rural"] > 0).all()
    b = territory.layers["buildings"]
    houses = b[b["households"].between(1, 4)]
    assert len(houses) > 0.8 * hh[vil.kind == "rural"].sum() / 4
    assert houses["floors"].between(1, 3).all()
    assert (houses["households"] == 1).mean() > 0.7


def test_rural_village_sizes_vary(medium: DemoTerritory) -> None:
    m = {name: gdf.to_crs(METRIC) for name, gdf in medium.layers.items()}
    _, _, vil = _admin(m)
    hh = _village_households(m)[vil.kind == "rural"]
    assert (hh < 300).any() and (hh > 500).any()


# -- natural features, facilities, dedicated areas ---------------------------------------


def test_river_ridge_and_railway(metric: dict[str, gpd.GeoDataFrame]) -> None:
    dist = _admin(metric)[0].geometry.iloc[0]
    water = metric["water"]
    rivers = water[(water.geom_type == "LineString") & water["name"].str.endswith("河")]
    assert len(rivers) >= 1 and rivers.length.max() > 3_000
    assert (water.geom_type == "Polygon").any()
    ridges = metric["ridges"]
    assert len(ridges) >= 1 and ridges.length.max() > 1_000
    rail = metric["railways"]
    assert len(rail) >= 1
    line = rail.geometry.iloc[int(np.argmax(rail.length))]
    ends = shapely.points(shapely.get_coordinates(line)[[0, -1]])
    assert (shapely.distance(ends, dist.boundary) < 1.0).all()  # crosses the whole district


def test_facilities(metric: dict[str, gpd.GeoDataFrame]) -> None:
    dist, towns, _ = _admin(metric)
    f = metric["facilities"]
    assert shapely.within(f.geometry.values, dist.geometry.iloc[0]).all()
    for _, town in towns.iterrows():
        inside = f[shapely.within(f.geometry.values, town.geometry)]
        assert len(inside) >= 2, town.code
    assert f.loc[f.kind == "school", "name"].str.contains("学").all()
    assert f.loc[f.kind == "hospital", "name"].str.contains("(?:医院|卫生)").all()
    assert f.loc[f.kind == "market", "name"].str.endswith("市场").all()


def test_dedicated_areas(metric: dict[str, gpd.GeoDataFrame]) -> None:
    _, towns, _ = _admin(metric)
    da = metric["dedicated_areas"]
    park = da[da.kind == "industrial"]
    assert len(park) >= 1 and park["name"].str.endswith("工业园").all()
    b = metric["buildings"]
    industrial = b[b["use"] == "industrial"]
    assert len(industrial) > 0 and (industrial["households"] == 0).all()
    inside = shapely.within(
        shapely.centroid(industrial.geometry.values), shapely.union_all(park.geometry.values)
    )
    assert inside.all()
    for _, area in da.iterrows():
        holders = [
            t
            for t in towns.geometry
            if area.geometry.difference(t).area < 1e-6 * area.geometry.area
        ]
        assert len(holders) == 1, area["name"]


def test_road_hierarchy(medium: DemoTerritory) -> None:
    roads = medium.layers["roads"]
    assert set(roads["class"]) == ROAD_CLASSES


# -- writing ---------------------------------------------------------------------------------


def test_write_round_trip(small: DemoTerritory, tmp_path: Path) -> None:
    path = tmp_path / "demo.gpkg"
    assert small.write(path) == path
    assert small.write(path) == path  # overwrites
    layers = pyogrio.list_layers(path)
    assert tuple(layers[:, 0]) == LAYERS
    for name in LAYERS:
        assert pyogrio.read_info(path, layer=name)["features"] == len(small.layers[name]), name
    back = pyogrio.read_dataframe(path, layer="buildings")
    assert int(back["households"].sum()) == small.households
    assert back.crs is not None and back.crs.to_epsg() == 4326


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    t = generate(SMALL, seed=3, progress=True)
    assert t.households > 0
    out = capsys.readouterr().out
    assert "dedicated areas" in out and "8/8" in out   # the last stage, all stages done
