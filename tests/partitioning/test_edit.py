"""Edit operations on a hand-made neighbourhood: results, refusals, invariants (no database)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.errors import EditRefused, GridLocked
from partitioning import edit
from partitioning.blocks import barrier_lines
from partitioning.params import PartitionParams
from partitioning.plan import EditResult, Neighbourhood, next_codes, updated

CRS = "EPSG:4547"           # CGCS2000 / 3-degree Gauss-Kruger CM 114E (metres)
X0, Y0 = 500_000.0, 2_560_000.0
V1, V2 = "440111001001", "440111001002"
G1, G2, G3, G4 = f"{V1}001", f"{V1}002", f"{V1}003", f"{V2}001"
HH = 50                      # households per block


def block_no(col: int, row: int) -> int:
    return col * 4 + row


def _hood(used: frozenset[str] = frozenset()) -> Neighbourhood:
    """8 × 4 blocks of 100 m, 50 households each; village V1 = columns 0–5 (grids G1, G2,
    G3 of two columns each), V2 = columns 6–7 (G4). A primary road 白云大道 runs across the
    middle (y = 200), 北环路 along the top."""
    rows = []
    for col in range(8):
        for row in range(4):
            village = V1 if col < 6 else V2
            grid = G4 if col >= 6 else [G1, G2, G3][col // 2]
            rows.append({"block_no": block_no(col, row), "village_code": village,
                         "households": HH, "population": HH * 3, "grid_code": grid,
                         "geometry": shapely.box(X0 + col * 100, Y0 + row * 100,
                                                 X0 + col * 100 + 100, Y0 + row * 100 + 100)})
    blocks = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    grid_rows = []
    for code, cols in ((G1, (0, 1)), (G2, (2, 3)), (G3, (4, 5)), (G4, (6, 7))):
        geom = shapely.box(X0 + cols[0] * 100, Y0, X0 + cols[1] * 100 + 100, Y0 + 400)
        grid_rows.append({"code": code, "name": f"第{code[-1]}网格", "village_code": code[:12],
                          "kind": "comprehensive", "households": 400, "population": 1200,
                          "area_m2": 80_000.0, "compactness": 0.7, "barrier_share": 0.5,
                          "radius_m": 150.0, "boundary_text": "", "flags": [],
                          "locked": False, "geometry": geom})
    grids = gpd.GeoDataFrame(grid_rows, geometry="geometry", crs=CRS)
    roads = gpd.GeoDataFrame(
        {"class": ["primary", "secondary"], "name": ["白云大道", "北环路"]},
        geometry=[shapely.LineString([(X0 - 50, Y0 + 200), (X0 + 360, Y0 + 200)]),
                  shapely.LineString([(X0 - 50, Y0 + 400), (X0 + 850, Y0 + 400)])], crs=CRS)
    villages = gpd.GeoDataFrame(
        {"code": [V1, V2], "name": ["景泰社区", "三元里村"]},
        geometry=[shapely.box(X0, Y0, X0 + 600, Y0 + 400),
                  shapely.box(X0 + 600, Y0, X0 + 800, Y0 + 400)], crs=CRS)
    return Neighbourhood(blocks, grids, barrier_lines({"roads": roads}, PartitionParams()),
                              villages, CRS, used_codes=used)


def _by_code(result: EditResult) -> pd.DataFrame:
    return result.grids.set_index("code")


def _check_plan(hood: Neighbourhood) -> None:
    """Coverage, no overlap, nesting, contiguity and counts of a whole neighbourhood."""
    blocks, grids = hood.blocks, hood.grids.set_index("code")
    assert set(blocks["grid_code"]) == set(grids.index)            # no empty grid, no orphan
    assert int(blocks["households"].sum()) == 32 * HH == int(grids["households"].sum())
    union = shapely.union_all(grids.geometry.to_numpy())
    assert union.area == pytest.approx(800 * 400)
    assert float(shapely.area(grids.geometry.to_numpy()).sum()) == pytest.approx(800 * 400)
    for code, members in blocks.groupby("grid_code"):
        assert set(members["village_code"]) == {grids.loc[code, "village_code"]}
        outline = shapely.union_all(members.geometry.to_numpy())
        assert grids.loc[code].geometry.equals(outline)
        assert int(members["households"].sum()) == int(grids.loc[code, "households"])


def test_move_recounts_the_touched_grids_and_flags_out_of_band() -> None:
    hood = _hood()
    result = edit.move(hood, [block_no(2, 0)], G1)
    rows = _by_code(result)
    assert result.assignment == {block_no(2, 0): G1}
    assert result.previous == {block_no(2, 0): G2}
    assert rows.loc[G1, "households"] == 450 and rows.loc[G2, "households"] == 350
    assert rows.loc[G1, "flags"] == [] and rows.loc[G1, "area_m2"] == 90_000.0
    assert rows.loc[G1, "boundary_text"].startswith("东至440111001001002网格")
    assert "北至北环路" in rows.loc[G1, "boundary_text"]
    _check_plan(updated(hood, result))
    # Three more blocks: G1 over the band, G2 under it; allowed and flagged with a reason.
    more = edit.move(updated(hood, result), [block_no(2, 1), block_no(2, 2),
                                                   block_no(2, 3)], G1)
    rows = _by_code(more)
    assert rows.loc[G1, "households"] == 600 and rows.loc[G1, "flags"] == ["above_max"]
    assert rows.loc[G2, "flags"] == ["below_min"] and "低于下限 300" in \
        rows.loc[G2, "flag_reason"]


def test_move_refuses_a_break_in_contiguity_and_across_villages() -> None:
    hood = _hood()
    with pytest.raises(EditRefused, match=r"不再连通.*break grid 440111001001002 into 2"):
        edit.move(hood, [block_no(2, 1), block_no(3, 1)], G1)
    with pytest.raises(EditRefused, match="跨村"):
        edit.move(hood, [block_no(5, 0)], G4)
    with pytest.raises(EditRefused, match="不再连通"):          # not adjacent to the target
        edit.move(hood, [block_no(4, 0)], G1)
    with pytest.raises(EditRefused, match="merge it instead"):
        edit.move(hood, [block_no(c, r) for c in (4, 5) for r in range(4)], G2)
    with pytest.raises(EditRefused, match="no grid"):
        edit.move(hood, [block_no(2, 0)], G4 + "9")


def test_merge_keeps_the_larger_code_and_refreshes_neighbours() -> None:
    hood = _hood()
    first = updated(hood, edit.move(hood, [block_no(2, 0)], G1))
    result = edit.merge(first, G2, G1)                   # G1 has 450, G2 350
    rows = _by_code(result)
    assert result.removed == [G2]
    assert rows.loc[G1, "households"] == 800 and rows.loc[G1, "flags"] == ["above_max"]
    # G3's west side was G2, now the merged grid.
    assert "西至440111001001001网格" in rows.loc[G3, "boundary_text"]
    assert not rows.loc[G3, "reshaped"] and rows.loc[G1, "reshaped"]
    _check_plan(updated(first, result))
    # The merged grid is a 400 m square: the engine's figures for that outline (its
    # point on surface lies at (200, 150) between the blocks' vertices: 250 m to a corner
    # up and 200 m across).
    assert rows.loc[G1, ["area_m2", "compactness", "radius_m"]].tolist() == \
        [160_000.0, 0.7854, 320.2]
    with pytest.raises(EditRefused, match="不相邻"):
        edit.merge(hood, G1, G3)
    with pytest.raises(EditRefused, match="different villages"):
        edit.merge(hood, G3, G4)


def test_split_cuts_along_the_road_with_new_serials() -> None:
    hood = _hood(used=frozenset({f"{V1}007", f"{V1}901"}))      # 007 was used by an old plan
    merged = updated(hood, edit.merge(hood, G1, G2))
    result = edit.split(merged, G1)
    rows = _by_code(result)
    shaped = rows[rows["reshaped"]]
    assert sorted(shaped.index) == [G1, f"{V1}008"]
    assert rows.loc[f"{V1}008", "name"] == "景泰社区第8网格"
    assert list(shaped["households"]) == [400, 400]
    assert set(rows.index) - set(shaped.index) <= {G3}      # a neighbour's 四至 at most
    # Along 白云大道 (y = 200): one half is rows 0–1, the other rows 2–3.
    low = {block_no(c, r) for c in range(4) for r in (0, 1)}
    moved = set(result.assignment)
    assert moved in (low, {block_no(c, r) for c in range(4) for r in (2, 3)})
    after = updated(merged, result)
    _check_plan(after)
    with pytest.raises(EditRefused, match="stays one"):
        edit.split(after, G1)


def test_reshape_assigns_blocks_by_the_larger_side() -> None:
    hood = _hood()
    line = shapely.LineString([(X0 + 130, Y0 - 10), (X0 + 130, Y0 + 410)])
    result = edit.reshape(hood, line)
    rows = _by_code(result)
    # Column 1 lies 30 % west of the line, 70 % east: it goes to G2.
    assert result.assignment == {block_no(1, r): G2 for r in range(4)}
    assert (rows.loc[G1, "households"], rows.loc[G2, "households"]) == (200, 600)
    _check_plan(updated(hood, result))
    across = shapely.LineString([(X0 + 130, Y0 + 50), (X0 + 450, Y0 + 50)])
    with pytest.raises(EditRefused, match="crosses 3 grids"):
        edit.reshape(hood, across)
    short = shapely.LineString([(X0 + 130, Y0 + 50), (X0 + 130, Y0 + 150)])
    with pytest.raises(EditRefused, match="into 1 pieces"):
        edit.reshape(hood, short, [G1, G2])


def test_locked_grids_refuse_edits_until_unlocked() -> None:
    hood = _hood()
    locked = updated(hood, edit.lock(hood, [G1]))
    assert bool(locked.grids.set_index("code").loc[G1, "locked"])
    for attempt in (lambda h: edit.move(h, [block_no(2, 0)], G1),
                    lambda h: edit.merge(h, G1, G2), lambda h: edit.split(h, G1, 2),
                    lambda h: edit.rename(h, G1, "新名")):
        with pytest.raises(GridLocked, match="已锁定"):
            attempt(locked)
    free = updated(locked, edit.lock(locked, [G1], locked=False))
    renamed = edit.rename(free, G1, "景泰一格")
    assert _by_code(renamed).loc[G1, "name"] == "景泰一格"
    assert renamed.assignment == {}


def test_next_codes_never_reuse_a_retired_serial() -> None:
    assert next_codes(V1, 2, [f"{V1}001", f"{V1}004", f"{V1}902"]) == \
        [f"{V1}005", f"{V1}006"]
    with pytest.raises(EditRefused, match="no new"):
        next_codes(V1, 2, [f"{V1}899"])


@st.composite
def _moves(draw: st.DrawFn) -> list[tuple[int, int]]:
    return draw(st.lists(st.tuples(st.integers(0, 31), st.integers(0, 3)), min_size=1,
                         max_size=8))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_moves())
def test_random_moves_keep_the_plan_whole(moves: list[tuple[int, int]]) -> None:
    """Any sequence of moves either applies or is refused; the plan stays a partition of
    contiguous grids nested in villages with every household counted."""
    hood = _hood()
    for block, pick in moves:
        codes = sorted(set(hood.grids["code"]))
        target = codes[pick % len(codes)]
        try:
            result = edit.move(hood, [block], target)
        except EditRefused:
            continue
        hood = updated(hood, result)
        _check_plan(hood)
        parts = shapely.get_num_geometries(hood.grids.geometry.to_numpy())
        assert (np.asarray(parts) == 1).all()
