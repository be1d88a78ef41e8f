"""The street-first fabric generator: determinism, the layer contract, the withheld streets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from data.fabric import Fabric, generate
from gis.io.territory import read_territory

METRIC = "EPSG:4547"


@pytest.fixture(scope="module")
def fabric() -> Fabric:
    return generate(3, households=12_000, density="mid", river=True)


@pytest.fixture(scope="module")
def points() -> Fabric:
    return generate(3, households=12_000, density="mid", river=True, points=True)


def metric(gdf):  # type: ignore[no-untyped-def]
    return gdf.to_crs(METRIC).geometry.to_numpy()


def test_deterministic_by_seed() -> None:
    a = generate(5, households=8_000, density="low")
    b = generate(5, households=8_000, density="low")
    c = generate(6, households=8_000, density="low")
    for name in a.layers:
        assert a.layers[name].drop(columns="geometry").equals(
            b.layers[name].drop(columns="geometry")), name
        assert shapely.equals_exact(a.layers[name].geometry.to_numpy(),
                                    b.layers[name].geometry.to_numpy(), 0).all(), name
    assert shapely.equals_exact(a.withheld.geometry.to_numpy(),
                                b.withheld.geometry.to_numpy(), 0).all()
    assert len(a.footprints) != len(c.footprints) or not shapely.equals_exact(
        a.footprints.geometry.to_numpy(), c.footprints.geometry.to_numpy(), 0).all()


def test_layers_pass_the_contract_reader(fabric: Fabric, tmp_path: Path) -> None:
    territory = read_territory(fabric.write(tmp_path / "fabric.gpkg"))
    assert territory.repairs == []
    assert set(territory.layers) == {"admin_areas", "roads", "water", "buildings",
                                     "facilities"}
    admin = territory.layers["admin_areas"]
    assert admin["level"].value_counts().to_dict() == {
        "district": 1, "town": fabric.info["towns"], "village": fabric.info["communities"]}
    villages = admin[admin["level"] == "village"]
    assert villages["code"].str.fullmatch(r"\d{12}").all()
    assert (villages["kind"] == "urban").all()
    assert set(territory.layers["roads"]["class"]) >= {"primary", "tertiary", "residential",
                                                      "service"}
    buildings = territory.layers["buildings"]
    assert int(buildings["households"].sum()) == 12_000
    assert set(buildings["use"]) == {"residential", "commercial", "public"}
    assert str(territory.metric_crs.to_epsg()) == METRIC.split(":")[1]


def test_households_sum_as_asked() -> None:
    for seed, hh, density in ((1, 6_000, "mid"), (2, 25_000, "low"), (4, 41_234, "high")):
        f = generate(seed, households=hh, density=density)
        assert int(f.layers["buildings"]["households"].sum()) == hh
        assert int(f.footprints["households"].sum()) == hh
        assert f.info["communities"] == len(f.info["community_households"])
        assert all(1_500 <= c <= 10_000 for c in f.info["community_households"]), f.info


def test_small_fabrics_of_every_density() -> None:
    for density in ("low", "mid", "high"):
        for seed in (0, 1):
            f = generate(seed, households=1_000, density=density, river=seed == 1)
            assert int(f.footprints["households"].sum()) == 1_000
            assert f.info["communities"] == 1
    with pytest.raises(ValueError, match="at least 1,000"):
        generate(1, households=999)


def test_households_per_building_are_realistic(fabric: Fabric) -> None:
    fp = fabric.footprints
    towers = fp[fp["kind"] == "tower"]
    slabs = fp[fp["kind"] == "slab"]
    assert len(towers) and len(slabs)
    assert towers["households"].between(100, 300).all()
    # A slab: 2 flats per floor and unit, 2–5 units, within 0.8–1.25× for vacancies.
    assert (slabs["households"] >= 0.8 * 2 * 2 * slabs["floors"]).all()
    assert (slabs["households"] <= 1.25 * 2 * 5 * slabs["floors"] + 1).all()
    others = fp[fp["kind"].isin(["shop", "school"])]
    assert len(others) and (others["households"] == 0).all()
    assert set(others["use"]) <= {"commercial", "public"}


def test_withheld_streets_are_absent_from_the_roads_layer(fabric: Fabric) -> None:
    info = fabric.info
    assert info["minor_streets_withheld"] == round(2 / 3 * info["minor_streets"])
    assert len(fabric.withheld) == info["minor_streets_withheld"]
    roads = metric(fabric.layers["roads"])
    withheld = metric(fabric.withheld)
    # Roads only cross a withheld street (a few metres at each crossing), never run along it.
    near = shapely.length(shapely.intersection(
        withheld, shapely.buffer(shapely.union_all(roads), 1.0)))
    assert (near <= 0.1 * shapely.length(withheld) + 4.0).all()
    assert set(fabric.withheld["class"]) <= {"tertiary", "residential", "service"}
    assert fabric.withheld["width"].between(10.0, 25.0).all()
    # Every withheld street lies in the community it is said to be in.
    admin = fabric.layers["admin_areas"].to_crs(METRIC).set_index("code")
    for line, code in zip(withheld, fabric.withheld["community"], strict=True):
        assert shapely.covers(shapely.buffer(admin.geometry[code], 0.5), line)


def test_withhold_share() -> None:
    none = generate(2, households=6_000, withhold=0.0)
    every = generate(2, households=6_000, withhold=1.0)
    assert len(none.withheld) == 0
    assert len(every.withheld) == every.info["minor_streets"]
    assert set(every.layers["roads"]["class"]) <= {"primary", "secondary"}
    with pytest.raises(ValueError, match="withhold"):
        generate(2, households=6_000, withhold=1.5)
    with pytest.raises(ValueError, match="density"):
        generate(2, households=6_000, density="dense")


def test_no_building_overlaps_a_street_or_another_building(fabric: Fabric) -> None:
    fp = metric(fabric.footprints)
    streets = shapely.union_all(np.concatenate([metric(fabric.layers["roads"]),
                                                metric(fabric.withheld)]))
    # The narrowest street is 10 m between building lines: 5 m from its centre line.
    assert (shapely.distance(fp, streets) >= 5.0 - 1e-6).all()
    a, b = shapely.STRtree(fp).query(fp, predicate="intersects")
    assert (a == b).all()
    # Buildings stand back from the river too.
    water = shapely.union_all(metric(fabric.layers["water"]))
    assert (shapely.distance(fp, water) >= 15.0 - 1e-6).all()


def test_the_river_crosses_communities(fabric: Fabric) -> None:
    admin = fabric.layers["admin_areas"].to_crs(METRIC)
    villages = admin[admin["level"] == "village"].geometry.to_numpy()
    water = shapely.union_all(metric(fabric.layers["water"]))
    crossed = shapely.area(shapely.intersection(villages, water)) > 1_000
    assert crossed.sum() >= 1
    district = admin[admin["level"] == "district"].geometry.iloc[0]
    assert shapely.covers(shapely.buffer(district, 0.5), water)


def test_address_points_variant(fabric: Fabric, points: Fabric) -> None:
    pts = points.layers["buildings"]
    assert set(pts.geom_type) == {"Point"}
    assert len(pts) == len(fabric.footprints) == len(points.footprints)
    assert (pts["households"].to_numpy() == fabric.layers["buildings"]["households"]
            .to_numpy()).all()
    # Each point lies in its building's footprint.
    assert shapely.within(metric(pts), metric(points.footprints)).all()
    assert points.name.endswith("points-river") and fabric.name.endswith("footprints-river")
