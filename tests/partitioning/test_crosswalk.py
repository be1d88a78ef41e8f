"""The cross-walk and the aligned proposal on hand-made grids whose answers are known."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from partitioning.crosswalk import crosswalk, grid_adjacency, propose

EPSG = 4547  # CGCS2000 3° Gauss–Krüger, 114°E
X0, Y0 = 500_000.0, 2_560_000.0
SIZE = 100.0


def lattice(n: int, households: list[int] | None = None
            ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """n × n square grids of 100 m (codes G<row><col>), each one block of its households."""
    cells, codes = [], []
    for r in range(n):
        for c in range(n):
            cells.append(shapely.box(X0 + c * SIZE, Y0 + r * SIZE, X0 + (c + 1) * SIZE,
                                     Y0 + (r + 1) * SIZE))
            codes.append(f"G{r}{c}")
    hh = households or [100] * len(cells)
    grids = gpd.GeoDataFrame({"code": codes, "households": hh}, geometry=cells,
                             crs=EPSG).to_crs(4326)
    blocks = gpd.GeoDataFrame({"households": hh, "grid_code": codes}, geometry=cells,
                              crs=EPSG).to_crs(4326)
    return grids, blocks


def units_of(boxes: dict[str, tuple[float, float, float, float]]) -> gpd.GeoDataFrame:
    """Units from boxes in grid cells (col0, row0, col1, row1), in the metric CRS."""
    geoms = [shapely.box(X0 + a * SIZE, Y0 + b * SIZE, X0 + c * SIZE, Y0 + d * SIZE)
             for a, b, c, d in boxes.values()]
    return gpd.GeoDataFrame({"code": list(boxes), "name": [f"单元{k}" for k in boxes]},
                            geometry=geoms, crs=EPSG).to_crs(4326)


def test_exact_units_are_whole_and_nothing_moves() -> None:
    grids, blocks = lattice(4)
    units = units_of({"A": (0, 0, 2, 4), "B": (2, 0, 4, 4)})
    cw = crosswalk(grids, blocks, units, EPSG)
    assert cw.summary["share_units_whole"] == 1.0 and cw.summary["grids_split"] == 0
    assert cw.summary["slivers"] == 0
    p = propose(cw, grids, units, EPSG)
    assert p.summary["households_moved"] == pytest.approx(0, abs=1e-6)
    assert {g: u for g, u in p.assignment.items() if g[2] in "01"} == {
        f"G{r}{c}": "A" for r in range(4) for c in (0, 1)}


def test_a_shift_of_ten_metres_is_slivers_with_known_shares() -> None:
    grids, blocks = lattice(4)
    # A's east edge 10 m into the third column: every grid of that column has a 10% sliver.
    units = units_of({"A": (0, 0, 2.1, 4), "B": (2.1, 0, 4, 4)})
    cw = crosswalk(grids, blocks, units, EPSG)
    pieces = cw.pieces.set_index(["grid_code", "unit_code"])
    for r in range(4):
        assert pieces.loc[(f"G{r}2", "A"), "area_share"] == pytest.approx(0.1, abs=1e-3)
        assert pieces.loc[(f"G{r}2", "A"), "households"] == pytest.approx(10, abs=0.05)
        assert pieces.loc[(f"G{r}2", "B"), "area_share"] == pytest.approx(0.9, abs=1e-3)
    assert cw.summary["slivers"] == 0  # 10% is above the default 5% tolerance
    assert cw.summary["grids_split"] == 4
    assert cw.summary["households_in_split_grids"] == pytest.approx(400)
    loose = crosswalk(grids, blocks, units, EPSG, tolerance=0.15)
    assert loose.summary["slivers"] == 4 and loose.summary["grids_split"] == 0
    assert loose.summary["share_units_whole"] == 1.0
    p = propose(cw, grids, units, EPSG)
    assert p.summary["households_moved"] == pytest.approx(40, abs=0.2)  # 4 slivers of 10
    assert all(p.assignment[f"G{r}2"] == "B" for r in range(4))


def test_households_not_area_decide() -> None:
    # The third column's households all sit in grids whose larger part is A's by area?
    # No: area 60/40, households by block 100 each: a unit edge at 2.6 gives A 60% of the
    # area of column 2; with households in the grid spread evenly, A holds 60 of 100.
    hh = [100] * 16
    grids, blocks = lattice(4, hh)
    # Make the blocks of column 2 two halves: west half 10 households, east half 90.
    rows = []
    for r in range(4):
        for c in range(4):
            code = f"G{r}{c}"
            if c == 2:
                rows.append((code, 10, shapely.box(X0 + 200, Y0 + r * 100, X0 + 250,
                                                   Y0 + (r + 1) * 100)))
                rows.append((code, 90, shapely.box(X0 + 250, Y0 + r * 100, X0 + 300,
                                                   Y0 + (r + 1) * 100)))
            else:
                rows.append((code, 100, shapely.box(X0 + c * 100, Y0 + r * 100,
                                                    X0 + (c + 1) * 100, Y0 + (r + 1) * 100)))
    blocks = gpd.GeoDataFrame({"grid_code": [r[0] for r in rows],
                               "households": [r[1] for r in rows]},
                              geometry=[r[2] for r in rows], crs=EPSG).to_crs(4326)
    units = units_of({"A": (0, 0, 2.6, 4), "B": (2.6, 0, 4, 4)})
    cw = crosswalk(grids, blocks, units, EPSG)
    ours = propose(cw, grids, units, EPSG, by="households")
    by_area = propose(cw, grids, units, EPSG, by="area")
    # A holds 60% of each column-2 grid's area but only 10 + 90·0.2 = 28 of its households.
    assert all(ours.assignment[f"G{r}2"] == "B" for r in range(4))
    assert all(by_area.assignment[f"G{r}2"] == "A" for r in range(4))
    assert ours.summary["households_moved"] == pytest.approx(4 * 28, abs=0.5)
    assert by_area.summary["households_moved"] == pytest.approx(4 * 72, abs=0.5)


def test_contiguity_repaired_and_no_unit_vanishes() -> None:
    grids, blocks = lattice(4)
    # C is a small unit inside G11 (30% of it) — it must still get a grid; D is two
    # far-apart pieces (a MultiPolygon): its grids must end up in one piece.
    c = shapely.box(X0 + 100, Y0 + 100, X0 + 160, Y0 + 150)
    d = shapely.MultiPolygon([shapely.box(X0 + 300, Y0, X0 + 400, Y0 + 100),
                              shapely.box(X0 + 300, Y0 + 300, X0 + 400, Y0 + 400)])
    rest = shapely.box(X0, Y0, X0 + 400, Y0 + 400).difference(shapely.union_all([c, d]))
    units = gpd.GeoDataFrame({"code": ["C", "D", "R"], "name": ["c", "d", "r"]},
                             geometry=[c, d, rest], crs=EPSG).to_crs(4326)
    cw = crosswalk(grids, blocks, units, EPSG)
    p = propose(cw, grids, units, EPSG)
    assert set(p.assignment.values()) == {"C", "D", "R"}
    assert p.assignment["G11"] == "C"
    assert p.summary["units_not_contiguous"] == [] and p.summary["units_vanished"] == []
    metric = grids.to_crs(EPSG).set_index("code")
    for unit in ("C", "D", "R"):
        members = [g for g, u in p.assignment.items() if u == unit]
        assert shapely.union_all(metric.loc[members].geometry.to_numpy()).geom_type == "Polygon"
    # Households are conserved: moved + kept = all covered.
    assert p.units["households"].sum() == pytest.approx(1600)


def test_adjacency_needs_a_shared_edge_not_a_corner() -> None:
    grids, _ = lattice(2)
    neighbours = grid_adjacency(np.asarray(grids.to_crs(EPSG).geometry.to_numpy()))
    # G00 touches G01 and G10 along an edge, G11 only at a corner.
    assert set(neighbours[0]) == {1, 2}
    assert neighbours[0][1] == pytest.approx(SIZE, rel=1e-6)
