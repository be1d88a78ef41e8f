"""Smoothing: a needle block goes to the grid along its long sides, by a move or a swap,
never out of the band, never splitting a grid, never across a river."""

from __future__ import annotations

import numpy as np

from partitioning.regions import Graph
from partitioning.smooth import smooth

LO, HI = 300, 500


def graph(households: list[int], edges: list[tuple[int, int, float, float]],
          strong: frozenset[tuple[int, int]] = frozenset()) -> Graph:
    """Blocks with ``households``; edges (a, b, shared metres, barrier strength)."""
    a, b, length, strength = (np.array(x) for x in zip(*edges, strict=True))
    return Graph(households=np.array(households), area=np.full(len(households), 1e4),
                 a=a.astype(np.int64), b=b.astype(np.int64), length=length.astype(float),
                 strength=strength.astype(float),
                 strong=np.array([(x, y) in strong for x, y in zip(a, b, strict=True)]))


#: Grid 0 = blocks 0, 1; grid 1 = blocks 2, 3 and the needle 4, which touches grid 1 by a
#: short end (20 m) and runs 600 m along block 0 and 600 m along block 1 (streets, 0.45).
NEEDLE = [(0, 1, 200.0, 0.0), (1, 2, 300.0, 0.6), (2, 3, 200.0, 0.0), (0, 4, 600.0, 0.45),
          (1, 4, 600.0, 0.45), (3, 4, 20.0, 0.0)]


def smoothed(households: list[int]) -> tuple[int, list[int]]:
    """Smooth grid 0 = blocks 0, 1 and grid 1 = blocks 2, 3 and the needle 4 (:data:`NEEDLE`)
    with these households: how many blocks it moved, and each block's grid after."""
    label = np.array([0, 0, 1, 1, 1])
    moved = smooth(graph(households, NEEDLE), label, np.array([True, True]), LO, HI)
    return moved, label.tolist()


def test_an_empty_needle_moves_to_the_grid_along_its_long_sides() -> None:
    assert smoothed([200, 200, 200, 200, 0]) == (1, [0, 0, 1, 1, 0])


def test_a_needle_the_band_holds_back_is_swapped_for_a_block_of_as_many_households() -> None:
    # Grid 1 holds 300 with the needle's 10: moving it alone would leave 290. Block 1
    # (10 households, beside grid 1) goes the other way.
    households = [290, 10, 145, 145, 10]
    moved, label = smoothed(households)
    assert (moved, label) == (2, [0, 1, 1, 1, 0])
    sums = np.bincount(label, weights=households)
    assert all(LO <= s <= HI for s in sums)


def test_no_move_takes_a_grid_out_of_the_band_or_splits_it() -> None:
    # Grid 0 holds 298 (2 under), grid 1 300. The needle's 10 would leave grid 1 at 290,
    # and no block of grid 0 has about 10 to give back (block 1 has 3): nothing moves.
    assert smoothed([295, 3, 145, 145, 10]) == (0, [0, 0, 1, 1, 1])


def test_a_move_that_would_split_its_grid_is_not_made() -> None:
    # The needle (4) links grid 1's block 2 to its blocks 5 and 3: without it they fall
    # apart.
    edges = [(0, 1, 200.0, 0.0), (1, 2, 300.0, 0.6), (0, 4, 600.0, 0.45), (1, 4, 600.0, 0.45),
             (2, 4, 20.0, 0.0), (4, 5, 20.0, 0.0), (3, 5, 200.0, 0.0)]
    g = graph([200, 200, 200, 100, 0, 0], edges)
    label = np.array([0, 0, 1, 1, 1, 1])
    smooth(g, label, np.array([True, True]), LO, HI)
    assert label[4] == 1


def test_no_block_moves_across_a_river_or_into_a_fixed_grid() -> None:
    g = graph([200, 200, 200, 200, 0], NEEDLE, strong=frozenset({(0, 4), (1, 4)}))
    label = np.array([0, 0, 1, 1, 1])
    assert smooth(g, label, np.array([True, True]), LO, HI) == 0
    g = graph([200, 200, 200, 200, 0], NEEDLE)
    assert smooth(g, label, np.array([False, True]), LO, HI) == 0
    assert label.tolist() == [0, 0, 1, 1, 1]
