"""The address normaliser (events.address_text), parser and match levels of events.geocode, on a
territory (its roads, compounds and villages named as in Guangzhou) and on the demo's."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from data.demo import generate
from events.address_text import cn_to_int, normalise
from events.geocode import AddressIndex, at_least
from gis.contract import Territory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "want"), [
    ("同和路８８号", "同和路88号"),
    ("同和路88號3幢", "同和路88号3栋"),
    ("同和路八十八号三座", "同和路88号3栋"),
    ("鹤龙二横路与同和路交叉口", "鹤龙2横路与同和路交叉口"),
    ("云景花园 5号楼 2单元", "云景花园5栋2单元"),
    ("永泰村一百零五号", "永泰村105号"),
    ("（白云区）同和路，88号", "白云区同和路88号"),
    ("鹤龙居委会", "鹤龙社区"),
])
def test_normalise(text: str, want: str) -> None:
    assert normalise(text) == want


@pytest.mark.parametrize(("text", "n"), [("八十八", 88), ("十二", 12), ("二〇八", 208),
                                          ("一百零五", 105), ("三", 3), ("两千", 2000)])
def test_chinese_numerals(text: str, n: int) -> None:
    assert cn_to_int(text) == n


def _territory() -> dict[str, gpd.GeoDataFrame]:
    """A district, a street and two communities; 同和路 (east–west) crossed by 鹤龙二横路;
    doors 1–9 (odd, north side) and 2–10 (even, south side) 20 m apart; 云景花园 at 88号
    with three buildings; 永泰村 houses numbered within the village."""
    x0, y0 = 113.30, 23.25
    m = 1 / 111_000  # about a metre in degrees
    west = shapely.box(x0, y0 - 500 * m, x0 + 500 * m, y0 + 500 * m)
    east = shapely.box(x0 + 500 * m, y0 - 500 * m, x0 + 1000 * m, y0 + 500 * m)
    admin = gpd.GeoDataFrame({
        "code": ["440111", "440111001", "440111001001", "440111001201"],
        "name": ["白云区", "永泰街道", "鹤龙社区", "永泰村"],
        "level": ["district", "town", "village", "village"]},
        geometry=[shapely.union(west, east), shapely.union(west, east), west, east],
        crs=4326)
    roads = gpd.GeoDataFrame({"class": ["primary", "tertiary"], "name": ["同和路", "鹤龙二横路"]},
                             geometry=[shapely.LineString([(x0, y0), (x0 + 500 * m, y0)]),
                                       shapely.LineString([(x0 + 250 * m, y0 - 400 * m),
                                                           (x0 + 250 * m, y0 + 400 * m)])],
                             crs=4326)
    rows = []
    for k in range(5):
        rows.append(("同和路", str(2 * k + 1), None, None, x0 + (10 + 20 * k) * m, y0 + 15 * m))
        rows.append(("同和路", str(2 * k + 2), None, None, x0 + (10 + 20 * k) * m, y0 - 15 * m))
    for b in range(1, 4):
        rows.append(("同和路", "88", "云景花园", str(b), x0 + (380 + 20 * b) * m, y0 - 60 * m))
    for n in range(1, 4):
        rows.append((None, str(n), None, None, x0 + (700 + 30 * n) * m, y0 + 200 * m))
    # Lanes named after the village: 永泰一巷 (1, 3) and 永泰二巷 (5).
    for road, n, dx in (("永泰一巷", "1", 600), ("永泰一巷", "3", 620), ("永泰二巷", "5", 800)):
        rows.append((road, n, None, None, x0 + dx * m, y0 - 300 * m))
    buildings = gpd.GeoDataFrame(
        {"households": [1] * len(rows), "road": [r[0] for r in rows],
         "house_number": [r[1] for r in rows], "compound": [r[2] for r in rows],
         "building_no": [r[3] for r in rows], "address": [None] * len(rows)},
        geometry=[shapely.Point(r[4], r[5]) for r in rows], crs=4326)
    return {"admin_areas": admin, "roads": roads, "buildings": buildings}


@functools.cache
def _index() -> AddressIndex:
    layers = _territory()
    return AddressIndex(layers, Territory("t", layers).metric_crs)


@pytest.mark.parametrize(("text", "parts"), [
    ("广东省广州市白云区永泰街道鹤龙社区同和路88号云景花园3栋",
     {"areas": ["440111", "440111001", "440111001001"], "road": "同和路", "house_number": 88,
      "compound": "云景花园", "building_no": 3}),
    ("同和路88号3栋", {"road": "同和路", "house_number": 88, "building_no": 3}),
    ("云景花园3栋2单元", {"compound": "云景花园", "building_no": 3, "unit": 2}),
    ("同和路88-2号", {"road": "同和路", "house_number": 88, "sub_number": 2}),
    ("鹤龙二横路与同和路交叉口", {"intersection": ["鹤龙2横路", "同和路"]}),
    ("鹤龙2横路同和路路口", {"intersection": ["鹤龙2横路", "同和路"]}),
    ("同和路和鹤龙二横路交汇处往东50米", {"intersection": ["同和路", "鹤龙2横路"]}),
    ("永泰村3号", {"areas": ["440111001201"], "house_number": 3, "road": None}),
    ("白云永泰鹤龙同和路5号", {"areas": ["440111", "440111001", "440111001001"],
                       "road": "同和路", "house_number": 5}),
    ("同和路88号之2", {"road": "同和路", "house_number": 88, "sub_number": 2}),
    ("广州市白云区同和路88号云景花园3栋1单元", {"areas": ["440111"], "road": "同和路",
                                    "compound": "云景花园", "building_no": 3, "unit": 1}),
])
def test_parse(text: str, parts: dict[str, object]) -> None:
    got = _index().parse(text).as_dict()
    for key, value in parts.items():
        assert got[key] == value, (key, got)


@pytest.mark.parametrize(("text", "level", "conf_at_least", "near"), [
    ("同和路5号", "door", 0.95, (50, 15)),
    ("白云区鹤龙社区同和路６号", "door", 0.95, (50, -15)),
    ("同和路88号云景花园2栋", "door", 0.95, (420, -60)),
    ("云景花园2栋", "building", 0.9, (420, -60)),
    ("云景花园", "compound", 0.5, (420, -60)),
    ("同和路88号", "door", 0.9, (420, -60)),                   # the compound's door
    ("同和露5号", "door", 0.5, (50, 15)),                      # typo of the road
    ("同和路4号", "door", 0.95, (30, -15)),
    ("同和路7号", "door", 0.95, (70, 15)),
    ("同和路11号", "road", 0.5, (90, 15)),                    # beyond the last odd door
    ("鹤龙二横路与同和路交叉口", "intersection", 0.7, (250, 0)),
    ("永泰村2号", "door", 0.95, (760, 200)),
    ("永泰街同和路5号", "door", 0.9, (50, 15)),                # 街道 written 街
    ("同和路五号", "door", 0.95, (50, 15)),
    ("同和路5号附近的垃圾桶", "door", 0.95, (50, 15)),
    ("云景花园北门", "compound", 0.5, (420, -60)),
    ("同和路88号云景花园9栋", "door", 0.75, (420, -60)),      # no such building: the door
    ("鹤龙社区", "community", 0.1, None),
    ("月球基地", "none", 0.0, None),
])
def test_match_levels(text: str, level: str, conf_at_least: float,
                      near: tuple[float, float] | None) -> None:
    index = _index()
    a = index.geocode(text)
    assert a.level == level, (text, a)
    assert a.confidence >= conf_at_least
    if near is not None:
        out = index.to([a], "wgs84")[0]
        # The territory is laid out in 1/111,000° steps (a metre north–south, 0.92 m east–west).
        dx = (out["lon"] - 113.30) * 111_000
        dy = (out["lat"] - 23.25) * 111_000
        assert abs(dx - near[0]) < 12 and abs(dy - near[1]) < 12, (text, dx, dy)


def test_interpolation_between_doors_on_its_side() -> None:
    """A number between two known doors of its parity lies between them (the odd side)."""
    layers = _territory()
    b = layers["buildings"]
    layers["buildings"] = b[b["house_number"] != "5"].reset_index(drop=True)
    index = AddressIndex(layers, Territory("t", layers).metric_crs)
    a = index.geocode("同和路5号")
    assert a.level == "road" and 0.5 <= a.confidence < 0.9
    out = index.to([a], "wgs84")[0]
    assert abs((out["lon"] - 113.30) * 111_000 - 50) < 5
    assert out["lat"] > 23.25  # the north (odd) side


def test_address_column_alone_is_parsed() -> None:
    """Address points that carry only ``address`` (no parts) are indexed by parsing it."""
    layers = _territory()
    b = layers["buildings"].copy()
    b["address"] = [f"同和路{n}号" if r else None for r, n in zip(b["road"], b["house_number"],
                                                               strict=True)]
    b[["road", "house_number"]] = None
    layers["buildings"] = b
    index = AddressIndex(layers, Territory("t", layers).metric_crs)
    assert index.geocode("同和路3号").level == "door"


def test_a_lane_named_after_its_village_with_a_typo() -> None:
    """永泰巷5号: not the village 永泰 + 巷, but a lane of that name with a character lost;
    of the two lanes spelt as close, the one that has a 5."""
    index = _index()
    assert index.parse("永泰巷5号").road == "永泰巷"
    a = index.geocode("永泰巷5号")
    assert a.level == "door" and 0.5 < a.confidence < 0.9
    out = index.to([a], "wgs84")[0]
    assert abs((out["lon"] - 113.30) * 111_000 - 800) < 5
    both = index.geocode("永泰巷1号")   # only 永泰一巷 has a 1 as well
    assert both.level == "door" and both.confidence < 0.9


def test_levels_order() -> None:
    assert at_least("door", "road") and at_least("road", "road")
    assert not at_least("community", "road")


def test_demo_addresses_geocode_to_their_own_point() -> None:
    demo = generate(6_000, 3)
    b = demo.layers["buildings"]
    assert b["address"].notna().mean() > 0.9 and b["compound"].notna().any()
    index = AddressIndex(demo.layers, Territory("d", demo.layers).metric_crs)
    sample = b[b["address"].notna()].iloc[::25]
    answers = index.to(index.geocode_many(sample["address"]), "wgs84")
    pts = shapely.point_on_surface(sample.geometry.to_numpy())
    hits = sum(a["level"] == "door" and abs(a["lon"] - p.x) < 2e-4 and abs(a["lat"] - p.y) < 2e-4
               for a, p in zip(answers, pts, strict=True))
    assert hits / len(sample) > 0.9


def test_cli_geocode(tmp_path: Path) -> None:
    layers = _territory()
    for name, gdf in layers.items():
        gdf.to_file(tmp_path / "t.gpkg", layer=name, driver="GPKG")
    (tmp_path / "a.csv").write_text("id,地址\n1,同和路88号云景花园3栋\n2,无此地\n", encoding="gbk")
    proc = subprocess.run([sys.executable, "-m", "api.script", "geocode", str(tmp_path / "a.csv"),
                           "--territory", str(tmp_path / "t.gpkg"), "--out",
                           str(tmp_path / "o.csv"), "--coord-sys", "gcj02"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = (tmp_path / "o.csv").read_text(encoding="utf-8-sig").splitlines()
    assert out[0].startswith("id,地址,level,confidence,x,y")
    assert ",door,0.98," in out[1] and ",none,0.0," in out[2]
    bad = subprocess.run([sys.executable, "-m", "api.script", "geocode", str(tmp_path / "a.csv"),
                          "--territory", str(tmp_path / "t.gpkg"), "--out",
                          str(tmp_path / "o.csv"), "--column", "nope"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "--column" in bad.stdout + bad.stderr
