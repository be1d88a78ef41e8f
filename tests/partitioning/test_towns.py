"""Towns as pieces of work (partitioning/towns.py): the cut, the join, the 四至 across town
edges, and a multi-district territory against its districts alone — here, without a
cluster (tests/api/test_cluster_jobs.py runs the same on one)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import shapely

from data.demo import generate, generate_province
from gis.contract import Territory
from partitioning.boundaries import DIRECTIONS
from partitioning.params import PartitionParams
from partitioning.towns import EDGE, join, partition_piece, partition_pieces, split_territory

SIDES = re.compile(r"^东至(.*)，南至(.*)，西至(.*)，北至(.*)$")


@pytest.fixture(scope="module")
def district() -> Territory:
    demo = generate(30_000, 11)
    return Territory("demo", demo.layers)


@pytest.fixture(scope="module")
def province() -> Territory:
    demo = generate_province(3, 8_000, 4)
    return Territory("province", demo.layers)


def test_the_cut_puts_every_village_and_building_in_one_piece(district: Territory) -> None:
    admin = district.layers["admin_areas"]
    villages = admin.loc[admin["level"] == "village", "code"].astype(str)
    split = split_territory(district, group_households=8_000)
    seen = Counter(v for p in split.pieces for v in p.villages)
    assert set(seen) == set(villages) and set(seen.values()) == {1}
    buildings = sum(len(p.territory.layers["buildings"]) for p in split.pieces)
    assert buildings == len(district.layers["buildings"])
    assert sum(p.households for p in split.pieces) == int(
        district.layers["buildings"]["households"].sum())
    # A town over the group size is cut into groups of its villages, keyed town/n.
    grouped = [p for p in split.pieces if "/" in p.key]
    assert grouped and all(p.key.split("/")[0] == p.town for p in grouped)
    assert all(p.households <= 2 * 8_000 or len(p.villages) == 1 for p in split.pieces)
    # Largest first (the cluster starts the long ones first), each in the territory's CRS.
    sizes = [p.households for p in split.pieces]
    assert sizes == sorted(sizes, reverse=True)
    assert {p.territory.metric_crs for p in split.pieces} == {district.metric_crs}
    # Context reaches out of a piece by the margin only: no piece holds a whole river.
    whole = shapely.length(district.layers["water"].to_crs(district.metric_crs)
                           .boundary.to_numpy()).sum()
    for piece in split.pieces:
        water = piece.territory.layers["water"]
        if len(water):
            assert shapely.length(water.to_crs(district.metric_crs).boundary
                                  .to_numpy()).sum() < whole



def test_a_piece_collects_garbage_rarely_and_puts_the_collector_back(
        district: Territory) -> None:
    """While the engine runs a piece the collector's thresholds are ENGINE_GC (seen at each
    stage's check), and the process's own are back after it."""
    import gc

    from partitioning.towns import ENGINE_GC

    smallest = split_territory(district, group_households=8_000, lazy=True)
    piece = smallest.piece(len(smallest) - 1)
    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []
    partition_piece(piece, PartitionParams(), lambda: seen.append(gc.get_threshold()))
    assert seen and set(seen) == {ENGINE_GC}
    assert gc.get_threshold() == before


def test_a_lazy_cut_gives_the_same_pieces_cut_when_asked(district: Territory) -> None:
    """``lazy=True`` only plans the cut (the CLI sends each piece as it is cut): the sizes
    are known at once, a piece is cut when first asked for (once), and the pieces are
    those of the eager cut, also after pickling (a pickled split carries them all)."""
    import pickle

    eager = split_territory(district, group_households=8_000)
    lazy = split_territory(district, group_households=8_000, lazy=True)
    assert lazy.sizes == eager.sizes == [(p.key, p.households) for p in eager.pieces]
    assert len(lazy) == len(eager) and not lazy._pieces
    last = lazy.piece(len(lazy) - 1)
    assert lazy.piece(len(lazy) - 1) is last and list(lazy._pieces) == [len(lazy) - 1]
    copy = pickle.loads(pickle.dumps(lazy))
    for got in (lazy.pieces, copy.pieces):
        for a, b in zip(got, eager.pieces, strict=True):
            assert (a.key, a.town, a.district, a.villages, a.households) == \
                (b.key, b.town, b.district, b.villages, b.households)
            for name, layer in b.territory.layers.items():
                other = a.territory.layers[name]
                assert list(other.columns) == list(layer.columns), name
                assert shapely.equals_exact(other.geometry.to_numpy(),
                                            layer.geometry.to_numpy(), 0).all(), name
    assert lazy._cut is None          # all cut: the planning state is let go

def test_the_join_is_one_partition(district: Territory) -> None:
    params = PartitionParams(seed=2)
    result = partition_pieces(district, params)
    grids, report = result.grids, result.report
    assert grids["code"].is_unique and grids["code"].is_monotonic_increasing
    admin = district.layers["admin_areas"]
    villages = set(admin.loc[admin["level"] == "village", "code"].astype(str))
    assert set(grids["village_code"]) == villages
    assert report["households"] == int(district.layers["buildings"]["households"].sum()) \
        == int(grids["households"].sum()) == int(result.blocks["households"].sum())
    assert report["n_grids"] == len(grids) and report["n_villages"] == len(villages)
    assert report["coverage_share"] > 0.999 and report["in_range_share"] >= 0.99
    assert result.blocks["block_id"].tolist() == list(range(len(result.blocks)))
    assert set(result.blocks["grid_code"]) == set(grids["code"])
    assert [p["key"] for p in report["pieces"]] and report["pieces_seconds"] > 0
    # Every piece's grids are as its own run made them (the join changes only 四至 sides
    # on a piece's edge).
    split = split_territory(district)
    piece = split.pieces[0]
    alone = partition_piece(piece, params).grids.set_index("code")
    joined = grids.set_index("code").loc[alone.index]
    assert (joined["households"] == alone["households"]).all()
    assert all(shapely.equals_exact(a, b, 0) for a, b in zip(joined.geometry, alone.geometry,
                                                              strict=True))


def _two_towns() -> Territory:
    """Two towns of one village each, side by side, the line between them on no road; 400
    households in each (one grid per village)."""
    import geopandas as gpd

    ox, oy = 113.30, 23.20

    def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
        return shapely.box(ox + x0 * 1e-3, oy + y0 * 1e-3, ox + x1 * 1e-3, oy + y1 * 1e-3)

    admin = gpd.GeoDataFrame(
        {"code": ["440111", "440111001", "440111002", "440111001001", "440111002001"],
         "name": ["白云示范区", "甲街道", "乙街道", "甲社区", "乙社区"],
         "level": ["district", "town", "town", "village", "village"],
         "parent_code": [None, "440111", "440111", "440111001", "440111002"],
         "kind": [None, None, None, "urban", "urban"]},
        geometry=[box(0, 0, 8, 4), box(0, 0, 4, 4), box(4, 0, 8, 4), box(0, 0, 4, 4),
                  box(4, 0, 8, 4)], crs="EPSG:4326")
    buildings = gpd.GeoDataFrame(
        {"households": [100] * 8, "population": [250] * 8, "floors": [12] * 8,
         "use": ["residential"] * 8},
        geometry=[box(x + 0.5, y + 0.5, x + 1.0, y + 1.0) for x in (0, 2, 4, 6)
                  for y in (0, 2)], crs="EPSG:4326")
    # A road north of the district: within the pieces' margin, named by no side.
    roads = gpd.GeoDataFrame({"class": ["primary"], "name": ["北环路"]},
                             geometry=[shapely.LineString([(ox, oy + 4.5e-3),
                                                           (ox + 8e-3, oy + 4.5e-3)])],
                             crs="EPSG:4326")
    return Territory("two towns", {"admin_areas": admin, "buildings": buildings,
                                   "roads": roads})


def test_sides_on_a_town_edge_name_the_grid_across() -> None:
    """Each town alone says 辖区边界 for the side on the line between them; joined, that
    side names the other town's grid, and the district's own edge stays 辖区边界."""
    territory = _two_towns()
    split = split_territory(territory)
    assert sorted(p.key for p in split.pieces) == ["440111001", "440111002"]
    alone = {p.key: partition_piece(p, PartitionParams()) for p in split.pieces}
    a = alone["440111001"].grids
    b = alone["440111002"].grids
    assert len(a) == len(b) == 1
    assert SIDES.match(a["boundary_text"].iloc[0]).group(1) == EDGE    # east, alone
    joined = join(list(alone.values()), split.crs, PartitionParams()).grids.set_index("code")
    east = SIDES.match(joined.loc[a["code"].iloc[0], "boundary_text"]).groups()
    west = SIDES.match(joined.loc[b["code"].iloc[0], "boundary_text"]).groups()
    assert east[0] == f"{b['code'].iloc[0]}网格" and west[2] == f"{a['code'].iloc[0]}网格"
    assert east[1:] == (EDGE, EDGE, EDGE) and (west[0], west[1], west[3]) == (EDGE,) * 3


def test_only_the_district_edge_says_edge(district: Territory) -> None:
    """In the demo district, towns joined: 辖区边界 is said only by grids at its edge."""
    result = partition_pieces(district)
    admin = district.layers["admin_areas"].to_crs(district.metric_crs)
    edge = shapely.boundary(admin.loc[admin["level"] == "district"].geometry.iloc[0])
    for code, text, geom in zip(result.grids["code"], result.grids["boundary_text"],
                                result.grids.geometry, strict=True):
        sides = SIDES.match(text)
        assert sides, text
        if EDGE in sides.groups():
            assert shapely.distance(geom, edge) < 15, (code, text)
    assert DIRECTIONS == ("东", "南", "西", "北")


def test_a_multi_district_territory_gives_each_district_its_grids(province: Territory
                                                                  ) -> None:
    params = PartitionParams(seed=5)
    whole = partition_pieces(province, params)
    admin = province.layers["admin_areas"]
    codes = sorted(admin.loc[admin["level"] == "district", "code"].astype(str))
    assert codes == ["440111", "440112", "440113"]
    reports = []
    for code in codes:
        area = admin.loc[admin["code"].astype(str) == code].geometry.iloc[0]
        layers = {name: (gdf[gdf["code"].astype(str).str.startswith(code)]
                         if name == "admin_areas" else gdf[gdf.intersects(area)])
                  for name, gdf in province.layers.items()}
        alone = partition_pieces(Territory(code, layers), params)
        reports.append(alone.report)
        mine = whole.grids[whole.grids["code"].str.startswith(code)].reset_index(drop=True)
        theirs = alone.grids.reset_index(drop=True)
        columns = ["code", "households", "boundary_text", "flags", "area_m2", "compactness",
                   "barrier_share", "flag_reason"]
        pd.testing.assert_frame_equal(mine[columns], theirs[columns])
        assert shapely.equals_exact(mine.geometry.to_numpy(), theirs.geometry.to_numpy(),
                                    0).all()
    for key in ("n_grids", "households", "n_forced", "n_blocks", "buildings", "n_villages",
                "blocks_cut_between_buildings"):
        assert whole.report[key] == sum(r[key] for r in reports), key
    weights = np.array([sum(shapely.length(g) for g in whole.grids.geometry[
        whole.grids["code"].str.startswith(c)]) for c in codes])
    shares = np.array([r["barrier_boundary_share"] for r in reports])
    assert abs(whole.report["barrier_boundary_share"]
               - float((shares * weights).sum() / weights.sum())) < 1e-3


def test_the_join_of_no_piece_is_refused(district: Territory) -> None:
    from gis.errors import GridmapError

    with pytest.raises(GridmapError, match="no village"):
        join([], district.metric_crs, PartitionParams())
