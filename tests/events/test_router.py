"""Routing points to grids: the edge rule, near-boundary candidates, outside distances, the
coordinate systems, agreement with shapely's STRtree, bad input, and `gridmap route`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from typer.testing import CliRunner

from api.cli import app
from data.demo import generate
from events.files import ADDED_COLUMNS
from events.router import GridRouter, Routed
from gis.contract import Territory
from gis.crs import SZ2000, WGS84, transform
from gis.errors import CoordinateError, CRSError, LayerError
from partitioning.engine import partition_territory
from partitioning.output import write_partition

U = 0.001  # one unit of the hand-made layout, in degrees (~102 m east, ~111 m north)
GUANGZHOU = (113.30, 23.20)
SUZHOU = (120.70, 31.30)
# Rows deliberately not in code order: the rule goes by code, not by row.
LAYOUT: list[tuple[str, list[tuple[float, float, float, float]], list[tuple[float, ...]]]] = [
    ("B2", [(1, 1, 2, 2)], []),
    ("A2", [(1, 0, 2, 1)], []),
    ("D", [(7, 0, 8, 1), (7, 2, 8, 3)], []),              # two parts
    ("B1", [(0, 1, 1, 2)], []),
    ("C", [(3, 0, 6, 3)], [(4, 1, 5, 2)]),                # a hole, not covered by any grid
    ("A1", [(0, 0, 1, 1)], []),
    ("G", [(0, 3, 1, 4)], []),
    ("H", [(0, 4.08, 1, 5)], []),                         # ~8.8 m gap to G
]


def at(origin: tuple[float, float], ux: float, uy: float) -> tuple[float, float]:
    """Layout units to lon/lat: the one expression used for vertices and test points."""
    return origin[0] + ux * U, origin[1] + uy * U


def _box(origin: tuple[float, float], b: tuple[float, ...]) -> shapely.Polygon:
    x0, y0 = at(origin, b[0], b[1])
    x1, y1 = at(origin, b[2], b[3])
    return shapely.box(x0, y0, x1, y1)


def layout_grids(origin: tuple[float, float] = GUANGZHOU) -> gpd.GeoDataFrame:
    geoms = []
    for _code, parts, holes in LAYOUT:
        polys = [_box(origin, b) for b in parts]
        if holes:
            polys = [shapely.Polygon(polys[0].exterior.coords,
                                     [_box(origin, h).exterior.coords for h in holes])]
        geoms.append(shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0])
    return gpd.GeoDataFrame({"code": [c for c, _, _ in LAYOUT],
                             "name": [f"{c} 网格" for c, _, _ in LAYOUT]},
                            geometry=geoms, crs=WGS84)


@pytest.fixture(scope="module")
def router() -> GridRouter:
    return GridRouter.from_grids(layout_grids())


def _route_at(r: GridRouter, *units: tuple[float, float],
              origin: tuple[float, float] = GUANGZHOU) -> Routed:
    lon, lat = zip(*(at(origin, ux, uy) for ux, uy in units), strict=True)
    return r.route(np.array(lon), np.array(lat))


def _code(r: GridRouter, row: int) -> str | None:
    return None if row < 0 else str(r.codes[row])


def reference_index(grids: gpd.GeoDataFrame, lon: NDArray[np.float64],
                    lat: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """The answer by plain shapely: STRtree `within`; on an edge (`intersects` only) or in
    several grids, the smallest code (then the first row)."""
    geoms = grids.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    codes = grids["code"].astype(str).to_numpy()
    rank = np.empty(len(codes), dtype=np.int64)
    rank[np.lexsort((np.arange(len(codes)), codes))] = np.arange(len(codes))
    pts = shapely.points(lon, lat)
    out = np.full(len(lon), -1, dtype=np.int64)
    edge = np.zeros(len(lon), dtype=bool)
    for predicate in ("within", "intersects"):
        todo = np.flatnonzero(out < 0)
        pi, gi = tree.query(pts[todo], predicate=predicate)
        for p, g in zip(pi.tolist(), gi.tolist(), strict=True):
            row = todo[p]
            if out[row] < 0 or rank[g] < rank[out[row]]:
                out[row] = g
                edge[row] = predicate == "intersects"
    return out, edge


def reference_distances(r: GridRouter, lon: NDArray[np.float64], lat: NDArray[np.float64]
                        ) -> NDArray[np.float64]:
    """Distance (m) from every point to every grid, by shapely in the router's metric CRS."""
    x, y = transform(lon, lat, WGS84, r.metric_crs)
    metric = r.grids.to_crs(r.metric_crs).geometry.to_numpy()
    return np.asarray(shapely.distance(shapely.points(x, y)[:, None], metric[None, :]))


def clear_of_boundaries(r: GridRouter, lon: NDArray[np.float64], lat: NDArray[np.float64],
                        tol_m: float = 0.01) -> NDArray[np.bool_]:
    """Points more than ``tol_m`` from every grid boundary."""
    x, y = transform(lon, lat, WGS84, r.metric_crs)
    rings = shapely.boundary(r.grids.to_crs(r.metric_crs).geometry.to_numpy())
    tree = shapely.STRtree(rings)
    near, _ = tree.query(shapely.points(x, y), predicate="dwithin", distance=tol_m)
    clear = np.ones(len(lon), dtype=bool)
    clear[near] = False
    return clear


def check_against_shapely(r: GridRouter, lon: NDArray[np.float64], lat: NDArray[np.float64],
                          routed: Routed, tol_m: float = 0.01) -> None:
    """index and on_edge == the STRtree answer (exactly); outside: the nearest grid and its
    distance; other: the nearest grid of another code within near_m (ties by code).

    Containment is decided on the WGS84 polygons; distances are measured in the metric CRS,
    where an edge is straight between the projected vertices and so lies up to a fraction of a
    millimetre off the WGS84 edge: distances are compared to ``tol_m``.
    """
    index, edge = reference_index(r.grids, lon, lat)
    np.testing.assert_array_equal(routed.index, index)
    assert [("on_edge" in f) for f in routed.flags] == edge.tolist()
    assert [("outside" in f) for f in routed.flags] == (index < 0).tolist()
    dist = reference_distances(r, lon, lat)
    dmin = dist.min(axis=1)
    outside = index < 0
    np.testing.assert_allclose(routed.distance_m[outside], dmin[outside], atol=tol_m)
    assert (routed.distance_m[~outside] == 0).all()
    np.testing.assert_array_equal(routed.nearest[~outside], index[~outside])
    nearest_d = dist[np.arange(len(lon)), routed.nearest]
    assert (nearest_d - dmin <= tol_m)[outside].all()
    codes = r.codes.astype(str)
    own = codes[routed.nearest]
    masked = np.where(codes[None, :] == own[:, None], np.inf, dist)
    best = masked.min(axis=1)
    has = routed.other >= 0
    assert has[best < r.near_m - tol_m].all()
    assert not has[best >= r.near_m + tol_m].any()
    got = masked[np.arange(len(lon)), np.maximum(routed.other, 0)]
    assert (np.abs(got - best)[has] <= tol_m).all()
    assert [("near_boundary" in f) for f in routed.flags] == has.tolist()


# --- the rules on a hand-made layout -----------------------------------------------------------


def test_inside_points_answer_plainly(router: GridRouter) -> None:
    routed = _route_at(router, (0.5, 0.5), (1.5, 1.5), (4.5, 0.5), (7.5, 2.5))
    assert [_code(router, i) for i in routed.index] == ["A1", "B2", "C", "D"]
    assert routed.flags == [[], [], [], []]
    assert (routed.distance_m == 0).all()
    np.testing.assert_array_equal(routed.nearest, routed.index)
    assert (routed.other == -1).all()


def test_outside_gives_nearest_grid_and_distance(router: GridRouter) -> None:
    routed = _route_at(router, (2.3, 0.5), (-0.5, 1.5), (7.5, 1.5))
    assert (routed.index == -1).all()
    assert [_code(router, i) for i in routed.nearest] == ["A2", "B1", "D"]
    assert all(f == ["outside"] for f in routed.flags)
    lon, lat = zip(*(at(GUANGZHOU, *p) for p in ((2.3, 0.5), (-0.5, 1.5), (7.5, 1.5))),
                   strict=True)
    dist = reference_distances(router, np.array(lon), np.array(lat)).min(axis=1)
    np.testing.assert_allclose(routed.distance_m, dist, atol=1e-6)
    assert 25 < routed.distance_m[0] < 35  # 0.3 units east of A2, about 31 m


def test_far_outside_the_index_still_gets_the_nearest_grid(router: GridRouter) -> None:
    lon, lat = np.array([113.45, 113.10]), np.array([23.35, 23.05])
    routed = router.route(lon, lat)
    check_against_shapely(router, lon, lat, routed)
    assert routed.distance_m.min() > 10_000


def test_shared_edge_goes_to_the_smaller_code(router: GridRouter) -> None:
    routed = _route_at(router, (1, 0.5), (1, 1.5), (0.5, 1), (1.5, 1))
    assert [_code(router, i) for i in routed.index] == ["A1", "B1", "A1", "A2"]
    assert [_code(router, i) for i in routed.other] == ["A2", "B2", "B1", "B2"]
    for flags in routed.flags:
        assert "on_edge" in flags and "near_boundary" in flags and "outside" not in flags
    assert (routed.distance_m == 0).all()


def test_the_rule_does_not_depend_on_row_order() -> None:
    grids = layout_grids()
    shuffled = grids.iloc[np.random.default_rng(3).permutation(len(grids))]
    points = ((1, 0.5), (1, 1), (1.5, 1), (0.5, 0.5), (2.3, 0.5))
    a = _route_at(GridRouter.from_grids(grids), *points)
    r2 = GridRouter.from_grids(shuffled)
    b = _route_at(r2, *points)
    r1 = GridRouter.from_grids(grids)
    assert [_code(r1, i) for i in a.index] == [_code(r2, i) for i in b.index]
    assert [_code(r1, i) for i in a.other] == [_code(r2, i) for i in b.other]


def test_vertex_shared_by_four_grids(router: GridRouter) -> None:
    routed = _route_at(router, (1, 1))
    assert _code(router, routed.index[0]) == "A1"
    # All three others touch it (distance 0): the smallest of their codes is the candidate.
    assert _code(router, routed.other[0]) == "A2"
    assert sorted(routed.flags[0]) == ["near_boundary", "on_edge"]


def test_near_a_boundary_names_both_candidates(router: GridRouter) -> None:
    m_per_unit = 0.001 * 111_320 * np.cos(np.radians(23.2))  # east-west metres per unit
    d3 = 3 / m_per_unit
    d30 = 30 / m_per_unit
    routed = _route_at(router, (1 - d3, 0.5), (1 + d3, 0.5), (1 - d30, 0.5), (0 + d3, 0.5))
    assert [_code(router, i) for i in routed.index] == ["A1", "A2", "A1", "A1"]
    assert [_code(router, i) for i in routed.other] == ["A2", "A1", None, None]
    assert routed.flags == [["near_boundary"], ["near_boundary"], [], []]  # last: outer edge


def test_gap_between_two_grids_outside_with_both(router: GridRouter) -> None:
    routed = _route_at(router, (0.5, 4.03))  # ~3.3 m above G, ~5.5 m below H
    assert routed.index[0] == -1
    assert _code(router, routed.nearest[0]) == "G"
    assert _code(router, routed.other[0]) == "H"
    assert routed.flags[0] == ["outside", "near_boundary"]
    assert 3.0 < routed.distance_m[0] < 3.7


def test_hole_and_its_ring(router: GridRouter) -> None:
    routed = _route_at(router, (4.5, 1.5), (4, 1.5), (3.9, 1.5))
    assert routed.index[0] == -1 and _code(router, routed.nearest[0]) == "C"
    assert 45 < routed.distance_m[0] < 56  # half a unit to the hole's ring
    assert _code(router, routed.index[1]) == "C" and routed.flags[1] == ["on_edge"]
    assert routed.other[1] == -1  # nobody across a hole's ring
    assert _code(router, routed.index[2]) == "C" and routed.flags[2] == []


def test_multipolygon_parts_and_between(router: GridRouter) -> None:
    routed = _route_at(router, (7.5, 0.5), (7.5, 2.5), (7.5, 1.5))
    assert [_code(router, i) for i in routed.index] == ["D", "D", None]
    assert _code(router, routed.nearest[2]) == "D"


def test_overlapping_grids_smaller_code_wins() -> None:
    grids = gpd.GeoDataFrame({"code": ["Q2", "Q1"]},
                             geometry=[_box(GUANGZHOU, (0, 0, 2, 1)),
                                       _box(GUANGZHOU, (1, 0, 3, 1))], crs=WGS84)
    r = GridRouter.from_grids(grids)
    routed = _route_at(r, (1.5, 0.5), (0.5, 0.5), (2.5, 0.5))
    assert [_code(r, i) for i in routed.index] == ["Q1", "Q2", "Q1"]
    assert _code(r, routed.other[0]) == "Q2" and routed.flags[0] == ["near_boundary"]


def test_rows_sharing_a_code_are_one_grid() -> None:
    grids = gpd.GeoDataFrame({"code": ["S", "S", "T"]},
                             geometry=[_box(GUANGZHOU, (0, 0, 1, 1)),
                                       _box(GUANGZHOU, (1, 0, 2, 1)),
                                       _box(GUANGZHOU, (2, 0, 3, 1))], crs=WGS84)
    r = GridRouter.from_grids(grids)
    routed = _route_at(r, (1, 0.5), (1.01, 0.5), (2, 0.5))
    assert routed.index.tolist() == [0, 1, 1]
    assert routed.flags[0] == ["on_edge"] and routed.other[0] == -1
    assert routed.flags[1] == []  # near the S|S edge: no second candidate
    assert _code(r, routed.other[2]) == "T"


def test_grids_in_a_projected_crs_and_attributes_kept() -> None:
    grids = layout_grids().to_crs("EPSG:4547")
    r = GridRouter.from_grids(grids)
    assert r.grids.crs.to_epsg() == 4326
    assert list(r.grids["name"]) == [f"{c} 网格" for c, _, _ in LAYOUT]
    assert r.metric_crs.to_epsg() == 4547
    routed = _route_at(r, (0.5, 0.5), (1.5, 0.5))
    assert [_code(r, i) for i in routed.index] == ["A1", "A2"]


# --- coordinate systems ------------------------------------------------------------------------


@pytest.mark.parametrize(("coord_sys", "origin"), [
    ("gcj02", GUANGZHOU), ("bd09", GUANGZHOU), ("EPSG:4547", GUANGZHOU), (4547, GUANGZHOU),
    ("cgcs2000", GUANGZHOU), ("2000sz", SUZHOU),
])
def test_every_coordinate_system_routes_to_the_same_grid(
        coord_sys: str | int, origin: tuple[float, float]) -> None:
    r = GridRouter.from_grids(layout_grids(origin))
    rng = np.random.default_rng(11)
    lon, lat = at(origin, 0, 0)
    lon = lon + rng.uniform(-1, 9, 4000) * U
    lat = lat + rng.uniform(-1, 6, 4000) * U
    truth = r.route(lon, lat)
    # Leave out points within 1 cm of a boundary: the conversions round trip to a millimetre.
    clear = clear_of_boundaries(r, lon, lat)
    x, y = transform(lon, lat, WGS84, SZ2000 if coord_sys == "2000sz" else coord_sys)
    if coord_sys in ("gcj02", "bd09"):
        assert np.abs(x - lon).max() > 1e-3  # the shift is real (hundreds of metres)
    routed = r.route_points(x, y, coord_sys)
    np.testing.assert_array_equal(routed.index[clear], truth.index[clear])
    assert clear.sum() > 3500
    # Taken as WGS84, obfuscated points land in other grids.
    if coord_sys in ("gcj02", "bd09"):
        wrong = r.route(x, y)
        inside = truth.index >= 0
        assert (wrong.index[inside] != truth.index[inside]).mean() > 0.5


# --- identical to shapely's STRtree --------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_grids() -> gpd.GeoDataFrame:
    """A small demo partition (about 30 grids) in WGS84, as written to grids.gpkg."""
    from partitioning.output import grid_table

    territory = generate(10_000, 3)
    return grid_table(partition_territory(Territory("demo", territory.layers)))


@pytest.fixture(scope="module")
def demo_router(demo_grids: gpd.GeoDataFrame) -> GridRouter:
    return GridRouter.from_grids(demo_grids)


def _vertices(grids: gpd.GeoDataFrame) -> NDArray[np.float64]:
    return shapely.get_coordinates(grids.geometry.to_numpy())


_ROUTERS: dict[float, GridRouter] = {}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_vertices=st.integers(0, 300),
       near_m=st.sampled_from([0.0, 10.0, 35.0]))
def test_identical_to_strtree_on_random_points(demo_grids: gpd.GeoDataFrame, seed: int,
                                               n_vertices: int, near_m: float) -> None:
    if near_m not in _ROUTERS:
        _ROUTERS[near_m] = GridRouter.from_grids(demo_grids, near_m=near_m)
    router = _ROUTERS[near_m]
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = demo_grids.total_bounds
    pad = 0.01
    n = 3000
    lon = rng.uniform(minx - pad, maxx + pad, n)
    lat = rng.uniform(miny - pad, maxy + pad, n)
    # Points exactly on vertices (on edges shared by two or more grids) and a hair off them.
    verts = _vertices(demo_grids)
    pick = verts[rng.integers(0, len(verts), n_vertices)]
    jitter = rng.choice([0.0, 1e-9, -1e-9, 1e-7], size=(n_vertices, 2))
    lon = np.concatenate([lon, pick[:, 0] + jitter[:, 0]])
    lat = np.concatenate([lat, pick[:, 1] + jitter[:, 1]])
    routed = router.route(lon, lat)
    check_against_shapely(router, lon, lat, routed)
    np.testing.assert_array_equal(router.locate(lon, lat), routed.index)


def test_identical_to_strtree_on_two_million_points(demo_router: GridRouter,
                                                    demo_grids: gpd.GeoDataFrame) -> None:
    rng = np.random.default_rng(2024)
    minx, miny, maxx, maxy = demo_grids.total_bounds
    n = 2_000_000
    lon = rng.uniform(minx - 0.005, maxx + 0.005, n)
    lat = rng.uniform(miny - 0.005, maxy + 0.005, n)
    tree = shapely.STRtree(demo_router.grids.geometry.to_numpy())
    pi, gi = tree.query(shapely.points(lon, lat), predicate="within")
    expected = np.full(n, -1, dtype=np.int64)
    expected[pi] = gi
    assert len(np.unique(pi)) == len(pi)  # the partition has no overlaps
    np.testing.assert_array_equal(demo_router.locate(lon, lat), expected)
    routed = demo_router.route(lon[:500_000], lat[:500_000])
    np.testing.assert_array_equal(routed.index, expected[:500_000])
    assert 0.05 < (expected < 0).mean() < 0.9  # both kinds of answer were exercised


def test_one_point_at_a_time_answers_as_a_batch(demo_router: GridRouter,
                                                 demo_grids: gpd.GeoDataFrame) -> None:
    """A single point (a request) takes a shortcut through its cell: the same answers."""
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = demo_grids.total_bounds
    verts = _vertices(demo_grids)
    pick = verts[rng.integers(0, len(verts), 300)]
    jitter = rng.choice([0.0, 1e-9, -1e-9, 1e-7, 3e-5], size=(300, 2))
    lon = np.concatenate([rng.uniform(minx - 0.003, maxx + 0.003, 1500),
                          pick[:, 0] + jitter[:, 0]])
    lat = np.concatenate([rng.uniform(miny - 0.003, maxy + 0.003, 1500),
                          pick[:, 1] + jitter[:, 1]])
    batch = demo_router.route(lon, lat)
    for i in range(len(lon)):
        one = demo_router.route(lon[i:i + 1], lat[i:i + 1])
        assert (one.index[0], one.nearest[0], one.other[0], one.distance_m[0], one.flags[0]) == (
            batch.index[i], batch.nearest[i], batch.other[i], batch.distance_m[i],
            batch.flags[i]), i
        assert one.index.dtype == one.nearest.dtype == one.other.dtype == np.int64


def test_on_edge_points_of_a_real_partition(demo_router: GridRouter,
                                            demo_grids: gpd.GeoDataFrame) -> None:
    verts = _vertices(demo_grids)
    lon, lat = verts[:, 0], verts[:, 1]
    routed = demo_router.route(lon, lat)
    index, edge = reference_index(demo_router.grids, lon, lat)
    np.testing.assert_array_equal(routed.index, index)
    assert [("on_edge" in f) for f in routed.flags] == edge.tolist()
    # Nearly every vertex is on an edge (a few lie a hair inside a neighbour: the partition's
    # shared edges are not always bit-identical).
    assert edge.mean() > 0.95
    shared = np.array(["near_boundary" in f for f in routed.flags])
    assert shared.mean() > 0.5  # most vertices are shared by two or more grids


# --- bad input ---------------------------------------------------------------------------------


def test_grids_without_a_code_column() -> None:
    grids = layout_grids().rename(columns={"code": "网格编号"})
    with pytest.raises(LayerError, match=r"`code`.*网格编号"):
        GridRouter.from_grids(grids)


def test_grids_without_crs_rows_without_code_or_polygon() -> None:
    grids = layout_grids()
    with pytest.raises(CRSError, match="no coordinate system"):
        GridRouter.from_grids(grids.set_crs(None, allow_override=True))
    no_code = grids.copy()
    no_code.loc[[2, 5], "code"] = None
    with pytest.raises(LayerError, match=r"2 grids have no code \(rows 2, 5\)"):
        GridRouter.from_grids(no_code)
    points = grids.copy()
    points.loc[3, "geometry"] = shapely.Point(113.3, 23.2)
    with pytest.raises(LayerError, match=r"not polygons \(rows 3\)"):
        GridRouter.from_grids(points)


def test_invalid_polygons_are_repaired() -> None:
    bowtie = shapely.Polygon([at(GUANGZHOU, 0, 0), at(GUANGZHOU, 1, 1), at(GUANGZHOU, 1, 0),
                              at(GUANGZHOU, 0, 1)])
    grids = gpd.GeoDataFrame({"code": ["X"]}, geometry=[bowtie], crs=WGS84)
    r = GridRouter.from_grids(grids)
    routed = _route_at(r, (0.5, 0.2), (0.2, 0.5))
    assert routed.index.tolist() == [-1, 0]  # the bow tie has a left and a right wing


def test_bad_points_name_their_rows(router: GridRouter) -> None:
    lon, lat = at(GUANGZHOU, 0.5, 0.5)
    x = np.array([lon, np.nan, lon, np.inf])
    y = np.array([lat, lat, lat, lat])
    with pytest.raises(CoordinateError, match=r"2 of 4 points .* rows 1, 3"):
        router.route_points(x, y, "gcj02")
    with pytest.raises(CoordinateError, match=r"rows 11, 13"):
        router.route_points(x, y, "gcj02", row_numbers=[10, 11, 12, 13])
    with pytest.raises(CoordinateError, match=r"outside China .* rows 1"):
        router.route_points([lon, 10.0], [lat, 50.0], "wgs84")
    with pytest.raises(CoordinateError, match="swap"):
        router.route_points([lat, lat], [lon, lon], "wgs84")
    with pytest.raises(CoordinateError, match=r"rows 0"):  # metres given as degrees
        router.route_points([38_500_000.0, lon], [2_560_000.0, lat], "wgs84")
    with pytest.raises(CoordinateError, match=r"outside China"):  # degrees given as metres
        router.route_points([lon], [lat], "EPSG:4547")
    with pytest.raises(CRSError, match="unknown coordinate system"):
        router.route_points([lon], [lat], "gcj03")
    with pytest.raises(CoordinateError, match="rows 0"):
        router.route([np.nan], [lat])


def test_route_of_nothing(router: GridRouter) -> None:
    routed = router.route(np.array([]), np.array([]))
    assert len(routed) == 0 and routed.flags == []


# --- gridmap route ------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(scope="module")
def grids_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    territory = generate(10_000, 3)
    result = partition_territory(Territory("demo", territory.layers))
    return write_partition(result, tmp_path_factory.mktemp("plan"))["grids"]


def _events(grids_gpkg: Path, n: int = 2000) -> tuple[pd.DataFrame, NDArray[np.float64],
                                                      NDArray[np.float64]]:
    grids = gpd.read_file(grids_gpkg)
    minx, miny, maxx, maxy = grids.total_bounds
    rng = np.random.default_rng(5)
    lon = rng.uniform(minx - 0.002, maxx + 0.002, n)
    lat = rng.uniform(miny - 0.002, maxy + 0.002, n)
    gx, gy = transform(lon, lat, WGS84, "gcj02")
    frame = pd.DataFrame({"事件编号": [f"E{i:05d}" for i in range(n)],
                          "编码": ["007"] * n, "描述": ["井盖缺失 manhole"] * n,
                          "lon": [f"{v:.9f}" for v in gx], "lat": [f"{v:.9f}" for v in gy]})
    return frame, lon, lat


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["route", *map(str, args)])
    return result.exit_code, result.output


def test_cli_routes_a_csv_end_to_end(grids_gpkg: Path, tmp_path: Path) -> None:
    frame, lon, lat = _events(grids_gpkg)
    src = tmp_path / "events.csv"
    frame.to_csv(src, index=False, encoding="utf-8")
    out = tmp_path / "routed.csv"
    code, output = _invoke(src, "--grids", grids_gpkg, "--coord-sys", "gcj02", "--out", out)
    assert code == 0, output
    assert "routed" in output and "outside" in output and "near boundary" in output
    back = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(back.columns) == [*frame.columns, *ADDED_COLUMNS]
    pd.testing.assert_frame_equal(back[frame.columns], frame)  # every column kept as is
    router = GridRouter.from_grids(gpd.read_file(grids_gpkg))
    truth = router.route(lon, lat)
    clear = clear_of_boundaries(router, lon, lat)
    expected = np.where(truth.index >= 0, router.codes_at(truth.index), "")
    agree = back["grid_code"].to_numpy() == expected
    assert agree[clear].all()  # the GCJ-02 round trip is mm-exact; points on edges aside
    inside = back["grid_code"] != ""
    assert inside.any() and (~inside).any()
    assert (back.loc[inside, "town_code"] == back.loc[inside, "village_code"].str[:9]).all()
    assert back.loc[inside, "village_name"].str.len().min() > 0
    assert (back.loc[~inside, "flags"].str.contains("outside")).all()
    assert (back.loc[~inside, "distance_m"].astype(float) > 0).all()


def test_cli_gbk_other_column_names_geojson_out(grids_gpkg: Path, tmp_path: Path) -> None:
    frame, lon, lat = _events(grids_gpkg, 300)
    frame = frame.rename(columns={"lon": "高德经度", "lat": "高德纬度"})
    src = tmp_path / "events_gbk.csv"
    frame.to_csv(src, index=False, encoding="gbk")
    out = tmp_path / "routed.geojson"
    code, output = _invoke(src, "--grids", grids_gpkg, "--coord-sys", "gcj02", "--out", out,
                           "--lon", "高德经度", "--lat", "高德纬度")
    assert code == 0, output
    back = gpd.read_file(out)
    assert len(back) == 300 and back["描述"].iloc[0] == "井盖缺失 manhole"
    np.testing.assert_allclose(back.geometry.x, lon, atol=1e-7)  # de-obfuscated, WGS84
    np.testing.assert_allclose(back.geometry.y, lat, atol=1e-7)


def test_cli_uses_a_citys_own_grid_file(tmp_path: Path) -> None:
    grids = layout_grids().rename(columns={"code": "网格编号", "name": "所属组织"})
    path = tmp_path / "city_grids.geojson"
    grids.to_file(path, driver="GeoJSON", engine="pyogrio")
    lon, lat = at(GUANGZHOU, 0.5, 0.5)
    src = tmp_path / "e.csv"
    pd.DataFrame({"id": [1, 2], "lng": [lon, lon + 1.5 * U], "lat": [lat, lat]}).to_csv(
        src, index=False)
    out = tmp_path / "r.csv"
    code, output = _invoke(src, "--grids", path, "--coord-sys", "wgs84", "--out", out)
    assert code == 1 and "网格编号" in output and "--code-field" in output
    assert not out.exists()
    code, output = _invoke(src, "--grids", path, "--coord-sys", "wgs84", "--out", out,
                           "--code-field", "网格编号", "--field-map", "所属组织=name")
    assert code == 0, output
    back = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert back["grid_code"].tolist() == ["A1", "A2"]
    assert back["grid_name"].tolist() == ["A1 网格", "A2 网格"]


@pytest.mark.parametrize(("change", "args", "message"), [
    (None, [], "--coord-sys is required"),
    (None, ["--coord-sys", "gcj2"], "unknown coordinate system"),
    (lambda f: f.assign(lat=f["lat"].where(f.index != 4, "")), ["--coord-sys", "gcj02"],
     "rows 6"),
    (lambda f: f.assign(lon=f["lon"].where(f.index != 2, "東經")), ["--coord-sys", "gcj02"],
     "rows 4"),
    (lambda f: f.assign(lon="10.5"), ["--coord-sys", "gcj02"], "outside China"),
    (lambda f: f.drop(columns="lat"), ["--coord-sys", "gcj02"], "has no column"),
    (None, ["--coord-sys", "gcj02", "--code-field", "网格编号"], "网格编号"),
    (None, ["--coord-sys", "gcj02", "--layer", "blocks"], "no layer"),
])
def test_cli_bad_input_is_a_clear_error_and_nothing_is_written(
        grids_gpkg: Path, tmp_path: Path, change: Callable[[pd.DataFrame], pd.DataFrame] | None,
        args: list[str], message: str) -> None:
    frame, _, _ = _events(grids_gpkg, 20)
    if change is not None:
        frame = change(frame)
    src = tmp_path / "events.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "routed.csv"
    code, output = _invoke(src, "--grids", grids_gpkg, "--out", out, *args)
    assert code == 1, output          # bad input (README: exit codes)
    assert message in " ".join(output.split()), output
    assert "Traceback" not in output
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_flags_are_shared_and_read_only(router: GridRouter) -> None:
    routed = _route_at(router, (2.3, 0.5), (2.4, 0.5), (0.5, 0.5))
    assert routed.flags[0] == ["outside"] and routed.flags[0] is routed.flags[1]
    with pytest.raises(TypeError, match="read-only"):
        routed.flags[2].append("checked")
    mine = list(routed.flags[2])
    mine.append("checked")
    assert routed.flags[2] == [] and mine == ["checked"]


def test_many_grids_use_wider_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 2**14 grids the fine cells take four bytes; the answers stay the same."""
    lon, lat = np.meshgrid(np.linspace(-1, 9, 60), np.linspace(-1, 6, 40))
    x, y = (GUANGZHOU[0] + lon.ravel() * U), (GUANGZHOU[1] + lat.ravel() * U)
    small = GridRouter.from_grids(layout_grids())
    monkeypatch.setattr("events.router_index._NEAR_BIT16", 4)
    wide = GridRouter.from_grids(layout_grids())
    assert small._fine.dtype == np.int16 and wide._fine.dtype == np.int32
    a, b = small.route(x, y), wide.route(x, y)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.other, b.other)
    assert a.flags == b.flags


def test_one_router_serves_several_threads(demo_router: GridRouter,
                                           demo_grids: gpd.GeoDataFrame) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(8)
    minx, miny, maxx, maxy = demo_grids.total_bounds
    batches = [(rng.uniform(minx, maxx, 20_000), rng.uniform(miny, maxy, 20_000))
               for _ in range(8)]
    alone = [demo_router.route(x, y) for x, y in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda b: demo_router.route(*b), batches))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a.index, b.index)
        np.testing.assert_array_equal(a.other, b.other)
        np.testing.assert_array_equal(a.distance_m, b.distance_m)


def test_cli_reads_geojson_events(grids_gpkg: Path, tmp_path: Path) -> None:
    frame, lon, lat = _events(grids_gpkg, 200)
    gx, gy = frame["lon"].astype(float), frame["lat"].astype(float)
    events = gpd.GeoDataFrame(frame.drop(columns=["lon", "lat"]),
                              geometry=gpd.points_from_xy(gx, gy), crs=WGS84)
    src = tmp_path / "events.geojson"
    events.to_file(src, driver="GeoJSON", engine="pyogrio")
    out = tmp_path / "routed.csv"
    code, output = _invoke(src, "--grids", grids_gpkg, "--coord-sys", "gcj02", "--out", out)
    assert code == 0, output
    back = pd.read_csv(out, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    router = GridRouter.from_grids(gpd.read_file(grids_gpkg))
    truth = router.route(lon, lat)
    expected = np.where(truth.index >= 0, router.codes_at(truth.index), "")
    clear = clear_of_boundaries(router, lon, lat)
    assert (back["grid_code"].to_numpy() == expected)[clear].all()
    assert back["事件编号"].tolist() == frame["事件编号"].tolist()
    lines = events.copy()
    lines.loc[3, "geometry"] = shapely.LineString([(gx[0], gy[0]), (gx[1], gy[1])])
    lines.to_file(src, driver="GeoJSON", engine="pyogrio")
    code, output = _invoke(src, "--grids", grids_gpkg, "--coord-sys", "gcj02", "--out", out)
    assert code == 1 and "not points" in output and "features 3" in output
