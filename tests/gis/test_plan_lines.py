"""A plan's inferred streets in the store, on PostGIS and SpatiaLite: written with the plan,
read back as they were, copied with it, deleted with it; grids keep their flag reason and
the metres of river inside them."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, delete, func, select

from data.fabric import generate
from gis.contract import Territory
from gis.edits import copy_plan
from gis.errors import GridmapError
from gis.io.territory import read_territory
from gis.models.base import SRID
from gis.models.plans import Plan, PlanLine
from gis.plans import add_lines, lines_frame, read_grids, read_lines, write_plan
from gis.store import delete_territory, import_territory
from partitioning.engine import PartitionResult, partition_territory
from partitioning.output import grid_table


@functools.cache
def _fabric() -> tuple[Territory, PartitionResult]:
    """A street-first fabric with every minor street withheld and a river, read as an
    upload is: the partition finds streets between the buildings, and a side of the
    river too small for a grid makes a grid cross it."""
    fabric = generate(2, households=2_000, density="low", withhold=1.0, river=True)
    folder = Path(tempfile.mkdtemp(prefix="gridmap-lines-"))
    territory = read_territory(fabric.write(folder / "fabric.gpkg"))
    return territory, partition_territory(territory)


def _store(engine: Engine) -> tuple[int, int, PartitionResult]:
    territory, result = _fabric()
    territory_id = import_territory(engine, territory, name="巷道测试")
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(SRID)
    plan_id = write_plan(engine, territory_id, grid_table(result), blocks, result.report,
                         {"seed": 0}, lines=result.streets)
    return territory_id, plan_id, result


def _count(engine: Engine, plan_id: int | None = None) -> int:
    query = select(func.count()).select_from(PlanLine)
    if plan_id is not None:
        query = query.where(PlanLine.plan_id == plan_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_the_streets_are_stored_with_the_plan_as_they_were(engine: Engine) -> None:
    _, plan_id, result = _store(engine)
    streets = result.streets
    assert len(streets) >= 3 and result.report["inferred_streets"] == len(streets)
    lines = read_lines(engine, plan_id, kind="inferred_street")
    assert list(lines["line_no"]) == list(range(len(streets)))
    assert set(lines["kind"]) == {"inferred_street"}
    assert list(lines["name"]) == list(streets["name"])
    assert list(lines["village_code"]) == list(streets["village_code"])
    assert np.allclose(lines["width_m"].astype(float), streets["width_m"], atol=0.005)
    assert np.allclose(lines["likeness"].astype(float), streets["likeness"], atol=0.005)
    back = lines.to_crs(streets.crs).geometry.to_numpy()
    assert set(shapely.get_type_id(back)) == {5}                  # MultiLineString
    assert float(shapely.hausdorff_distance(back, streets.geometry.to_numpy()).max()) < 0.01
    # By bbox (the spatial index): the street and not those far away.
    first = lines.geometry.iloc[0]
    near = read_lines(engine, plan_id, bbox=first.buffer(1e-5).bounds)
    far = shapely.distance(lines.geometry.to_numpy(), first) > 1e-3
    assert 0 in set(near["line_no"]) and not set(near["line_no"]) & set(lines["line_no"][far])
    # Areas: the lines of villages within the account's areas.
    village = str(lines["village_code"].iloc[0])
    mine = read_lines(engine, plan_id, areas=(village,))
    assert set(mine["village_code"]) == {village}
    assert read_lines(engine, plan_id, areas=("440999",)).empty


def test_grids_keep_their_reason_and_the_river_inside_them(engine: Engine) -> None:
    _, plan_id, result = _store(engine)
    grids = read_grids(engine, plan_id).set_index("code")
    want = result.grids.set_index("code")
    crossing = [c for c, f in want["flags"].items() if "crosses_barrier" in f]
    assert crossing, "the fabric's river must make a grid cross it"
    for code in want.index:
        assert grids.loc[code, "flag_reason"] == want.loc[code, "flag_reason"]
        assert grids.loc[code, "barrier_inside_m"] == pytest.approx(
            float(want.loc[code, "barrier_inside_m"]))
    assert all("crosses" in grids.loc[c, "flag_reason"] for c in crossing)


def test_a_copy_has_them_and_they_go_with_their_plan_and_territory(engine: Engine) -> None:
    territory_id, plan_id, result = _store(engine)
    copy = copy_plan(engine, plan_id)
    a, b = read_lines(engine, plan_id), read_lines(engine, copy)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert all(x.equals(y) for x, y in zip(a.geometry, b.geometry, strict=True))
    copied = read_grids(engine, copy).set_index("code")
    assert copied["flag_reason"].equals(read_grids(engine, plan_id).set_index("code")[
        "flag_reason"])
    with engine.begin() as conn:              # a plan deleted (a job's discarded plan)
        conn.execute(delete(Plan).where(Plan.id == plan_id))
    assert _count(engine, plan_id) == 0 and _count(engine, copy) == len(result.streets)
    delete_territory(engine, territory_id)
    assert _count(engine) == 0


def test_only_lines_are_stored_and_a_plan_may_have_none(engine: Engine) -> None:
    territory_id, plan_id, result = _store(engine)
    frame = gpd.GeoDataFrame(
        {"name": ["一", "二", "三"], "width_m": [12.0, 15.0, 20.0]},
        geometry=[shapely.LineString([(113.3, 23.2), (113.301, 23.2)]),
                  shapely.box(113.3, 23.2, 113.301, 23.201),          # not a line: dropped
                  shapely.LineString([(113.3, 23.2), (113.3, 23.2)])],  # no length: dropped
        crs=4326)
    assert list(lines_frame(frame)["name"]) == ["一"]
    assert add_lines(engine, plan_id, frame) == 1
    assert read_lines(engine, plan_id)["line_no"].max() == len(result.streets)
    with pytest.raises(GridmapError, match="coordinate system"):
        add_lines(engine, plan_id, frame.set_crs(None, allow_override=True))
    assert _count(engine, plan_id) == len(result.streets) + 1   # nothing half-written
    blocks = result.blocks[["village_code", "households", "population", "grid_code",
                            "geometry"]].to_crs(SRID)
    bare = write_plan(engine, territory_id, grid_table(result), blocks, {}, {})
    assert read_lines(engine, bare).empty
