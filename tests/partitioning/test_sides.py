"""四至: a side says 辖区边界 only where it lies on the territory's outer edge."""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from data.demo import generate
from gis.contract import Territory
from partitioning import boundaries
from partitioning.engine import partition_territory
from partitioning.params import PartitionParams

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from real_common import territory_edge_sides

CODES = np.array(["440111001001001", "440111001001002", "440111001001003"])
NO_BARRIERS = gpd.GeoDataFrame({"name": []}, geometry=[])


def texts(grids: list[shapely.Geometry],
          barriers: gpd.GeoDataFrame = NO_BARRIERS) -> list[str]:
    geoms = np.array(grids, dtype=object)
    seg = boundaries.boundary_segments(geoms)
    return list(boundaries.boundary_texts(seg, boundaries.follow(seg, barriers), barriers,
                                          boundaries.neighbours(seg, geoms),
                                          CODES[: len(grids)], len(grids)))


def test_a_triangle_names_the_grid_its_slanted_edge_faces() -> None:
    # The lower triangle has no edge facing east (its hypotenuse faces north-east): its
    # east is the upper triangle across that edge, not the territory's edge.
    lower = shapely.Polygon([(0, 0), (100, 0), (0, 100)])
    upper = shapely.Polygon([(100, 0), (100, 100), (0, 100)])
    low, up = texts([lower, upper])
    assert low == f"东至{CODES[1]}网格，南至辖区边界，西至辖区边界，北至{CODES[1]}网格"
    assert up == f"东至辖区边界，南至{CODES[0]}网格，西至{CODES[0]}网格，北至辖区边界"


def test_a_slanted_edge_along_a_named_road_names_the_road() -> None:
    lower = shapely.Polygon([(0, 0), (100, 0), (0, 100)])
    upper = shapely.Polygon([(100, 0), (100, 100), (0, 100)])
    road = gpd.GeoDataFrame({"name": ["斜街"]},
                            geometry=[shapely.LineString([(-5, 105), (105, -5)])])
    low, _ = texts([lower, upper], road)
    assert low == "东至斜街，南至辖区边界，西至辖区边界，北至斜街"


def test_a_grid_across_a_gap_is_a_neighbour() -> None:
    # A 4 m road corridor that no village holds lies between the two grids.
    west, east = shapely.box(0, 0, 100, 100), shapely.box(104, 0, 200, 100)
    w, e = texts([west, east])
    assert w == "东至440111001001002网格，南至辖区边界，西至辖区边界，北至辖区边界"
    assert e == "东至辖区边界，南至辖区边界，西至440111001001001网格，北至辖区边界"


def test_a_grid_far_across_stays_the_territory_edge() -> None:
    west, east = shapely.box(0, 0, 100, 100), shapely.box(150, 0, 250, 100)
    w, _ = texts([west, east])
    assert w.startswith("东至辖区边界")


def test_a_diamond_inside_four_grids_has_no_territory_edge() -> None:
    diamond = shapely.Polygon([(50, 0), (100, 50), (50, 100), (0, 50)])
    square = shapely.box(0, 0, 100, 100)
    ring = shapely.difference(square, diamond)
    (text,) = texts([diamond, ring])[:1]
    assert "辖区边界" not in text
    assert text == "，".join(f"{d}至{CODES[1]}网格" for d in boundaries.DIRECTIONS)


def test_the_demo_has_no_inner_side_called_the_territory_edge() -> None:
    territory = Territory("demo", generate(10_000, 3).layers)
    result = partition_territory(territory, PartitionParams(seed=1))
    sides = territory_edge_sides(result.grids)
    assert sides["sides_territory_edge_inner"] == 0
