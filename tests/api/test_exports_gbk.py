"""GBK Shapefiles for ArcGIS 10.x / SuperMap / MapGIS: read by GDAL (with and without being
told the encoding) and by a plain dBASE parser; field names within 10 bytes, never cut
through a character; the field map in the zip."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
import pytest
import shapely
from demo_plan import DemoStore, assert_matches_plan
from fastapi.testclient import TestClient

from gis.exports.formats import write_export
from gis.exports.options import Options
from gis.exports.shapefile import DBF_NAMES_ZH, DBF_TEXT_BYTES, dbf_field_name, shapefile_fields
from gis.exports.table import TABLE_FIELDS


def read_dbf(raw: bytes, codec: str) -> tuple[int, list[str], list[dict[str, str]]]:
    """A dBASE III file parsed by hand: (language driver id, field names, records as text)."""
    n_records, header_len, record_len = struct.unpack("<IHH", raw[4:12])
    ldid = raw[29]
    fields: list[tuple[str, int]] = []
    pos = 32
    while raw[pos] != 0x0D:
        name = raw[pos:pos + 11].split(b"\0", 1)[0].decode(codec)
        fields.append((name, raw[pos + 16]))
        pos += 32
    records = []
    for i in range(n_records):
        rec = raw[header_len + i * record_len: header_len + (i + 1) * record_len]
        assert rec[:1] == b" "  # not deleted
        cursor, row = 1, {}
        for name, width in fields:
            row[name] = rec[cursor:cursor + width].decode(codec).strip()
            cursor += width
        records.append(row)
    return ldid, [name for name, _ in fields], records


def _download(client: TestClient, store: DemoStore, tmp_path: Path, **params: str) -> Path:
    response = client.get(f"/plans/{store.plan_id}/export.shp.zip",
                          params={"encoding": "gbk", **params})
    assert response.status_code == 200, response.text
    path = tmp_path / "grids.shp.zip"
    path.write_bytes(response.content)
    return path


def test_gbk_shapefile_read_by_gdal_and_a_plain_dbf_reader(
        client: TestClient, store: DemoStore, tmp_path: Path) -> None:
    path = _download(client, store, tmp_path, crs="cgcs2000")
    fields = shapefile_fields("gbk")
    with zipfile.ZipFile(path) as zf:
        assert zf.read("grids.cpg").decode("ascii") == "936"
        raw = zf.read("grids.dbf")
        field_map = zf.read("grids_fields.txt").decode("utf-8-sig")
        assert zf.read("grids.prj").decode("ascii").startswith(
            'GEOGCS["GCS_China_Geodetic_Coordinate_System_2000"')
    ldid, names, records = read_dbf(raw, "gbk")
    assert ldid == 0x4D                         # code page 936 for readers without .cpg
    assert names == list(fields.values())
    assert all(len(n.encode("gbk")) <= 10 for n in names)
    assert names[:2] == ["网格编码", "网格名称"]
    want = store.grids.set_index("code")
    assert sorted(r[fields["code"]] for r in records) == sorted(want.index)
    for r in records:
        assert r[fields["name"]] == want.loc[r[fields["code"]], "name"]
        assert r[fields["boundary_text"]] == want.loc[r[fields["code"]], "boundary_text"]
    for field, dbf in fields.items():
        assert f"{dbf}\t{field}\t" in field_map
    assert "GBK" in field_map and "EPSG:4490" in field_map
    back = {v: k for k, v in fields.items()}
    for encoding in ("gbk", None):               # told, or from the .cpg
        frame = pyogrio.read_dataframe(f"/vsizip/{path}/grids.shp", encoding=encoding)
        assert list(frame.columns[:-1]) == names
        assert_matches_plan(frame.to_crs(4326), store, tolerance=1e-6, columns=back)


def test_unknown_encoding_is_422(client: TestClient, store: DemoStore) -> None:
    response = client.get(f"/plans/{store.plan_id}/export.shp.zip",
                          params={"encoding": "latin-1"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("name", "taken", "want"), [
    ("网格内河流/山脊/铁路(米)", set(), "网格内河流"),       # 5 characters = 10 bytes
    ("a网格内河流", set(), "a网格内河"),                     # 9 bytes: 流 would break at 11
    ("网格内河流山", {"网格内河流"}, "网格内河1"),
    ("boundary_text", set(), "boundary_t"),
    ("boundary_text", {"boundary_t", "BOUNDARY_1"}, "boundary_2"),
    ("1st-name", set(), "f1stname"),
])
def test_field_names_cut_on_a_character(name: str, taken: set[str], want: str) -> None:
    got = dbf_field_name(name, "gbk", taken)
    assert got == want
    assert len(got.encode("gbk")) <= 10


def test_chinese_names_fit_as_written() -> None:
    assert set(DBF_NAMES_ZH) == set(TABLE_FIELDS)
    assert shapefile_fields("gbk") == DBF_NAMES_ZH


def _one_grid(**values: Any) -> gpd.GeoDataFrame:
    row: dict[str, Any] = {field: ["x"] for field in TABLE_FIELDS}
    row.update({"households": [400], "population": [1000]})
    row.update({k: [v] for k, v in values.items()})
    return gpd.GeoDataFrame(row, geometry=[shapely.box(113.3, 23.2, 113.31, 23.21)], crs=4326)


def test_gbk_text_cut_at_254_bytes_and_characters_gbk_lacks_listed(tmp_path: Path) -> None:
    long_text = "东至" + "很长的道路名称" * 40          # 282 characters, 564 GBK bytes
    table = _one_grid(boundary_text=long_text, name="𠀾家村第1网格")
    path = write_export(table, "shp.zip", tmp_path / "g.shp.zip", options=Options(
        encoding="gbk"))
    frame = pyogrio.read_dataframe(f"/vsizip/{path}/grids.shp", encoding="gbk")
    got = frame["四至"].iloc[0]
    assert got.endswith("…") and long_text.startswith(got[:-1])
    assert DBF_TEXT_BYTES - 2 <= len(got.encode("gbk")) <= DBF_TEXT_BYTES
    assert frame["网格名称"].iloc[0] == "?家村第1网格"
    with zipfile.ZipFile(path) as zf:
        assert "𠀾" in zf.read("grids_fields.txt").decode("utf-8-sig")
