"""The grid-line metrics (bench/lines_metrics.py) on tiny exact fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
import shapely.affinity

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from lines_metrics import (
    best_iou,
    buildings_cut,
    classify_boundaries,
    count_turns,
    line_figures,
    merge_lines,
    share_near,
    turns_per_km,
)


def staircase(tread: float, riser: float, run: float) -> shapely.LineString:
    """Treads of ``tread`` m and risers of ``riser`` m until ``run`` m along x."""
    xy = [(0.0, 0.0)]
    x = y = 0.0
    while x < run - 1e-9:
        x += tread
        xy.append((x, y))
        if x < run - 1e-9:
            y += riser
            xy.append((x, y))
    return shapely.LineString(xy)


def test_a_straight_line_has_no_turn() -> None:
    assert count_turns(shapely.LineString([(0, 0), (50, 0), (100, 0), (400, 0)])) == 0


def test_a_staircase_of_20_m_steps_over_100_m_turns_at_every_corner() -> None:
    line = staircase(20.0, 20.0, 100.0)
    # 5 treads and 4 risers: 8 corners of 90°.
    assert len(line.coords) == 10
    assert count_turns(line) == 8
    figures = turns_per_km(np.array([line]))
    assert figures["km"] == pytest.approx(0.18)
    assert figures["turns"] == 8
    assert figures["turns_per_km"] == pytest.approx(8 / 0.18, abs=1e-3)


def test_steps_under_the_simplification_tolerance_are_no_turns() -> None:
    # 1 m risers stay within 2 m of the simplified line: no vertex survives.
    assert count_turns(staircase(20.0, 1.0, 100.0)) == 0
    # 5 m risers do not.
    assert count_turns(staircase(20.0, 5.0, 100.0)) == 8


def test_only_bends_over_30_degrees_count() -> None:
    def bend(deg: float) -> shapely.LineString:
        a = np.radians(deg)
        return shapely.LineString([(0, 0), (100, 0), (100 + 100 * np.cos(a),
                                                       100 * np.sin(a))])

    assert count_turns(bend(20.0)) == 0
    assert count_turns(bend(29.0)) == 0
    assert count_turns(bend(31.0)) == 1
    assert count_turns(bend(90.0)) == 1
    assert count_turns(bend(-135.0)) == 1


def test_a_closed_line_turns_at_its_closing_vertex_too() -> None:
    ring = shapely.LineString([(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)])
    assert count_turns(ring) == 4


def test_turns_do_not_depend_on_where_the_line_lies() -> None:
    # Gauss–Krüger coordinates are large: a U whose ends are 10 m apart is not closed.
    far = (500_000.0, 2_500_000.0)
    u_shape = shapely.LineString([(0, 0), (100, 0), (100, 10), (0, 10)])
    assert count_turns(u_shape) == 2
    assert count_turns(shapely.affinity.translate(u_shape, *far)) == 2
    stairs = staircase(20.0, 20.0, 100.0)
    assert count_turns(shapely.affinity.translate(stairs, *far)) == 8


def test_a_smooth_arc_does_not_turn() -> None:
    t = np.linspace(0, np.pi / 2, 200)
    arc = shapely.LineString(np.column_stack([300 * np.cos(t), 300 * np.sin(t)]))
    assert count_turns(arc) == 0


def test_lines_are_merged_between_junctions() -> None:
    # A T: three arms meet at (100, 0); the two-piece arm is one line.
    net = shapely.MultiLineString([[(0, 0), (50, 0)], [(50, 0), (100, 0)],
                                   [(100, 0), (200, 0)], [(100, 0), (100, 80)]])
    lines = merge_lines(net)
    assert sorted(round(float(g.length)) for g in lines) == [80, 100, 100]
    assert len(merge_lines(shapely.MultiLineString())) == 0


def four_grids() -> np.ndarray:
    """A 200 m square village cut into four 100 m grids."""
    return np.array([shapely.box(x, y, x + 100, y + 100) for x in (0, 100) for y in (0, 100)])


def test_the_boundary_network_is_split_into_community_given_and_free_lines() -> None:
    village = shapely.box(0, 0, 200, 200)
    road = shapely.LineString([(100, -50), (100, 250)])  # a given road along x = 100
    parts = classify_boundaries(four_grids(), village.boundary, road)
    length = {k: float(shapely.length(v)) for k, v in parts.items()}
    assert length["network"] == pytest.approx(1200.0)
    # The outer edge, plus 1 m at each end of the two inner lines.
    assert length["community"] == pytest.approx(804.0)
    # The x = 100 line less its ends, and 12 m either side of it along y = 100.
    assert length["given"] == pytest.approx(198.0 + 24.0)
    assert length["free"] == pytest.approx(200.0 - 2.0 - 24.0)
    assert sum(length[k] for k in ("community", "given", "free")) == \
        pytest.approx(length["network"])
    free = merge_lines(parts["free"])
    assert len(free) == 2 and turns_per_km(free)["turns"] == 0


def test_with_no_given_line_every_inner_line_is_free() -> None:
    village = shapely.box(0, 0, 200, 200)
    parts = classify_boundaries(four_grids(), village.boundary, shapely.MultiLineString())
    assert float(shapely.length(parts["free"])) == pytest.approx(396.0)
    assert float(shapely.length(parts["given"])) == 0.0


def test_share_near() -> None:
    line = shapely.LineString([(0, 0), (100, 0)])
    half = shapely.LineString([(0, 5), (50, 5)])
    # Within 12 m of the half-length target: x up to 50 + sqrt(12² - 5²) (the buffer's
    # round cap is a polygon, a little inside the circle).
    assert share_near(line, half, 12.0) == pytest.approx((50 + np.sqrt(144 - 25)) / 100,
                                                         abs=1e-3)
    assert share_near(line, shapely.LineString([(0, 30), (100, 30)]), 12.0) == 0.0
    assert share_near(shapely.MultiLineString(), half, 12.0) == 0.0


def test_a_square_footprint_split_by_a_grid_line_is_cut() -> None:
    grids = np.array([shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
    inside = shapely.box(10, 10, 30, 30)
    split = shapely.box(90, 40, 110, 60)  # 200 m² on each side
    sliver = shapely.box(60, 10, 100.04, 30)  # 0.8 m² over the line: under 1 m²
    big_sliver = shapely.box(0, 50, 100.5, 90)  # 20 m² over the line, 0.5 % of it
    got = buildings_cut(np.array([inside, split, sliver, big_sliver]), grids, None)
    assert got["buildings"] == 4
    assert got["cut"] == 1 and got["cut_other"] == 1 and got["cut_across_given"] == 0
    assert got["cut_index"].tolist() == [1]
    assert got["cut_other_share"] == pytest.approx(0.25)


def test_a_footprint_across_a_given_line_is_cut_but_allowed() -> None:
    grids = np.array([shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
    road = shapely.LineString([(100, -10), (100, 110)])
    across = shapely.box(90, 40, 110, 60)
    beside = shapely.box(100, 70, 120, 90)  # touches the road, does not cross it
    got = buildings_cut(np.array([across, beside]), grids, road)
    assert got["buildings_crossing_given"] == 1
    assert got["cut"] == 1 and got["cut_across_given"] == 1 and got["cut_other"] == 0
    assert got["cut_other_share"] == 0.0


def test_points_are_never_cut() -> None:
    grids = np.array([shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
    got = buildings_cut(np.array([shapely.Point(100, 50)]), grids, None)
    assert got["buildings"] == 0 and got["cut"] == 0


def test_best_iou_per_reference_polygon() -> None:
    ref = np.array([shapely.box(0, 0, 100, 100), shapely.box(200, 0, 300, 100),
                    shapely.box(500, 500, 510, 510)])
    ours = np.array([shapely.box(0, 0, 100, 100), shapely.box(250, 0, 350, 100),
                     shapely.box(200, 0, 250, 100)])
    iou = best_iou(ref, ours)
    assert iou[0] == pytest.approx(1.0)
    assert iou[1] == pytest.approx(0.5)  # the half of it that one of ours is
    assert iou[2] == 0.0


def test_line_figures_of_a_tiny_partition() -> None:
    village = shapely.box(0, 0, 200, 200)
    truth = shapely.LineString([(-10, 100), (210, 100)])  # a withheld street along y = 100
    road = shapely.LineString([(100, -50), (100, 250)])
    fp = np.array([shapely.box(20, 20, 60, 40), shapely.box(95, 150, 105, 160)])
    got = line_figures(four_grids(), np.array([village]), road, truth, fp)
    assert got["network_km"] == pytest.approx(1.2)
    assert got["free_km"] == pytest.approx(0.174)
    assert got["free_near_withheld_share"] == pytest.approx(1.0)
    assert got["free_turns"]["turns"] == 0
    # The second footprint straddles x = 100, which is a given road: cut, but allowed.
    assert got["buildings_cut"]["cut"] == 1
    assert got["buildings_cut"]["cut_across_given"] == 1
