"""The household band: one default, one class rule (Python and SQL); one plan status table."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from api.routes.territories import PartitionRequest
from gis import band
from gis.models.plans import PLAN_STATUSES
from gis.names import PLAN_STATUS_NAMES, plan_status_name
from gis.plans import PlanInfo
from gis.settings import Settings
from maps.planner import PlannerPage
from maps.tiles import status_of
from partitioning import flags, quality
from partitioning.params import PartitionParams
from partitioning.plan import Neighbourhood


def test_every_default_of_the_band_is_the_one_in_gis_band() -> None:
    params = PartitionParams()
    request = PartitionRequest()
    settings = Settings()
    assert band.DEFAULT_BAND == (300, 500) and band.TARGET_HOUSEHOLDS == 400
    assert params.band == band.DEFAULT_BAND
    assert (settings.min_households, settings.max_households) == band.DEFAULT_BAND
    assert (request.min_households, request.max_households) == band.DEFAULT_BAND
    assert params.target_households == settings.target_households == \
        request.target_households == band.TARGET_HOUSEHOLDS
    assert Neighbourhood.__dataclass_fields__["band"].default == band.DEFAULT_BAND
    assert PlannerPage.__dataclass_fields__["band"].default == band.DEFAULT_BAND


@pytest.mark.parametrize("kind, households, expected", [
    ("comprehensive", 0, "below"), ("comprehensive", 299, "below"),
    ("comprehensive", 300, "in_band"), ("comprehensive", 400, "in_band"),
    ("comprehensive", 500, "in_band"), ("comprehensive", 501, "above"),
    ("dedicated", 10, "dedicated"), ("dedicated", 9000, "dedicated"),
])
def test_classify_in_python_and_sql_agree(kind: str, households: int, expected: str) -> None:
    lo, hi = 300, 500
    assert band.classify(kind, households, (lo, hi)) == expected
    assert status_of(kind, households, (lo, hi)) == expected
    # The statement the PostGIS tiles run, on SQLite's engine here (the tiles' test runs it
    # on PostGIS): the same class for the same grid.
    with sqlite3.connect(":memory:") as conn:
        got = conn.execute(
            f"SELECT {band.classify_sql('k', 'h')} FROM (SELECT :kind AS k, :h AS h)",
            {"kind": kind, "h": households, "lo": lo, "hi": hi}).fetchone()[0]
    assert got == expected
    assert bool(band.in_band(households, (lo, hi))) == (expected == "in_band" or (
        kind == "dedicated" and lo <= households <= hi))


def test_the_pages_class_is_classify_with_the_plans_own_band() -> None:
    kinds = ["comprehensive"] * 4 + ["dedicated"]
    households = [349, 350, 450, 451, 400]
    assert band.classify_all(kinds, households, (350, 450)) == \
        ["below", "in_band", "in_band", "above", "dedicated"]
    info = PlanInfo(id=1, territory_id=1, version=1, status="draft", note=None,
                    parameters={"min_households": 350, "max_households": 450},
                    parent_id=None, created_by=None, created_at=None, published_at=None,
                    n_grids=0)
    assert info.band(band.DEFAULT_BAND) == (350, 450)
    assert replace(info, parameters={}).band((280, 520)) == (280, 520)


def test_band_flags_follow_the_class() -> None:
    assert flags.band_flag("comprehensive", 299, (300, 500)) == "below_min"
    assert flags.band_flag("comprehensive", 501, (300, 500)) == "above_max"
    assert flags.band_flag("comprehensive", 300, (300, 500)) is None
    assert flags.band_flag("dedicated", 9000, (300, 500)) is None
    assert flags.misses_band("comprehensive", 120, ["below_min"], (300, 500))
    assert not flags.misses_band("comprehensive", 120, ["village_below_min"], (300, 500))


def test_regular_grids_and_the_band_counted_once_for_the_reports() -> None:
    kinds = ["comprehensive", "comprehensive", "comprehensive", "dedicated"]
    households = np.array([299, 400, 650, 20])
    grid_flags = [["below_min"], [], ["single_building"], []]
    regular, within = flags.regular_in_band(kinds, households, grid_flags, (300, 500))
    assert regular.tolist() == [True, True, False, False]
    assert within.tolist() == [False, True, False, False]
    frame = pd.DataFrame({"code": ["a", "b", "c", "d"], "kind": kinds,
                          "households": households, "flags": grid_flags,
                          "area_m2": 1.0, "compactness": 1.0})
    report = quality.plan_report(frame, 4.0, 4.0, 300, 500)
    assert report["in_range_share"] == 0.5 and report["n_forced"] == 1


def test_plan_statuses_have_one_chinese_name_each() -> None:
    assert tuple(PLAN_STATUS_NAMES) == PLAN_STATUSES
    assert [plan_status_name(s) for s in PLAN_STATUSES] == ["草稿", "已发布", "已归档"]
    assert plan_status_name("unknown") == "unknown"
