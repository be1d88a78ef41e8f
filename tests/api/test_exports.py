"""Plan exports: every format read back (pyogrio, pandas, openpyxl) holds the plan, intact."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote

import geopandas as gpd
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely
from demo_plan import DEMO_NAME, DemoStore, assert_matches_plan
from fastapi.testclient import TestClient

from gis.exports.formats import write_export
from gis.exports.plan import content_disposition, export_filename
from gis.exports.shapefile import DBF_TEXT_BYTES, SHAPEFILE_FIELDS
from gis.exports.sheets import SHEET_COLUMNS, heading

BOM = b"\xef\xbb\xbf"
MEDIA_TYPES = {
    "gpkg": "application/geopackage+sqlite3",
    "shp.zip": "application/zip",
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: The sheet's columns by field: "网格编码 Grid code", ...
HEADINGS = {field: heading(zh, en) for field, zh, en in SHEET_COLUMNS}


def download(client: TestClient, store: DemoStore, fmt: str, folder: Path) -> Path:
    """GET the export, check its headers, save it under its plain file name."""
    response = client.get(f"/plans/{store.plan_id}/export.{fmt}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPES[fmt]
    ascii_name = f"grids_{store.territory_id}_v{store.version}.{fmt}"
    full_name = f"grids_{DEMO_NAME}_v{store.version}.{fmt}"
    assert response.headers["content-disposition"] == (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(full_name)}")
    path = folder / ascii_name
    path.write_bytes(response.content)
    return path


def test_geopackage_holds_the_plan(client: TestClient, store: DemoStore,
                                   tmp_path: Path) -> None:
    path = download(client, store, "gpkg", tmp_path)
    assert [str(name) for name, _ in pyogrio.list_layers(path)] == ["grids"]
    info = pyogrio.read_info(path, layer="grids")
    assert info["ogr_types"][list(info["fields"]).index("households")] == "OFTInteger64"
    assert_matches_plan(pyogrio.read_dataframe(path, layer="grids"), store)


def test_shapefile_zip_has_utf8_cpg_prj_and_short_field_names(
        client: TestClient, store: DemoStore, tmp_path: Path) -> None:
    path = download(client, store, "shp.zip", tmp_path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == [f"grids.{ext}" for ext in
                                         ("cpg", "dbf", "prj", "shp", "shx")] + [
                                             "grids_fields.txt"]
        assert zf.read("grids.cpg").decode("ascii").strip().upper() == "UTF-8"
        assert "WGS" in zf.read("grids.prj").decode("ascii")
    shp = f"/vsizip/{path}/grids.shp"
    fields = list(pyogrio.read_info(shp)["fields"])
    assert fields == list(SHAPEFILE_FIELDS.values())
    assert max(len(f) for f in fields) <= 10
    frame = pyogrio.read_dataframe(shp)
    assert_matches_plan(frame, store, columns={v: k for k, v in SHAPEFILE_FIELDS.items()})


def test_shapefile_cuts_text_over_254_bytes_on_a_character(tmp_path: Path) -> None:
    long_text = "东至" + "很长的道路名称" * 40          # 282 characters, 846 bytes
    table = gpd.GeoDataFrame(
        {field: ["x"] for field in SHAPEFILE_FIELDS if field not in ("households",)}
        | {"households": [400], "boundary_text": [long_text]},
        geometry=[shapely.box(113.3, 23.2, 113.31, 23.21)], crs=4326)
    path = write_export(table, "shp.zip", tmp_path / "long.shp.zip")
    got = pyogrio.read_dataframe(f"/vsizip/{path}/grids.shp")["boundary"].iloc[0]
    assert got.endswith("…") and long_text.startswith(got[:-1])
    assert DBF_TEXT_BYTES - 3 <= len(got.encode("utf-8")) <= DBF_TEXT_BYTES


def test_geojson_holds_the_plan_with_codes_as_ids(client: TestClient, store: DemoStore,
                                                  tmp_path: Path) -> None:
    path = download(client, store, "geojson", tmp_path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    assert doc["plan"]["version"] == store.version and doc["plan"]["territory"] == DEMO_NAME
    assert [f["id"] for f in doc["features"]] == [f["properties"]["code"]
                                                  for f in doc["features"]]
    # 7 decimals (about 1 cm) move a small grid's outline by up to ~0.02 % of its area
    assert_matches_plan(pyogrio.read_dataframe(path), store, tolerance=1e-3)


def test_csv_opens_in_excel_with_chinese_intact(client: TestClient, store: DemoStore,
                                                tmp_path: Path) -> None:
    path = download(client, store, "csv", tmp_path)
    assert path.read_bytes().startswith(BOM)
    codes = {HEADINGS[f]: str for f in ("code", "village_code", "town_code")}
    frame = pd.read_csv(path, encoding="utf-8-sig", dtype=codes, keep_default_na=False)
    assert list(frame.columns) == [*HEADINGS.values(), "WKT"]
    frame = frame.rename(columns={v: k for k, v in HEADINGS.items()})
    assert set(frame["crs"]) == {"EPSG:4326"}
    frame = gpd.GeoDataFrame(frame, geometry=store.grids.set_index("code").geometry.loc[
        frame["code"]].to_numpy(), crs=4326)
    assert_matches_plan(frame, store)
    kinds = dict(zip(store.grids["code"], store.grids["kind"], strict=True))
    assert [{"comprehensive": "综合网格", "dedicated": "专属网格"}[kinds[c]]
            for c in frame["code"]] == list(frame["kind"])
    assert frame["households"].dtype.kind == "i"


def test_xlsx_has_a_formatted_sheet_and_an_about_sheet(client: TestClient, store: DemoStore,
                                                       tmp_path: Path) -> None:
    path = download(client, store, "xlsx", tmp_path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["网格 grids", "说明 about"]
    sheet = book["网格 grids"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(HEADINGS.values())
    assert sheet.freeze_panes == "C2"
    last = chr(ord("A") + len(HEADINGS) - 1)    # one column per heading
    assert sheet.auto_filter.ref == f"A1:{last}{len(store.grids) + 1}"
    col = {field: i for i, field in enumerate(HEADINGS)}
    letter = {field: chr(ord("A") + i) for field, i in col.items()}
    assert sheet.column_dimensions[letter["boundary_text"]].width > \
        sheet.column_dimensions[letter["households"]].width
    first = sheet[2]
    assert first[col["households"]].number_format == "#,##0"
    assert first[col["code"]].data_type == "s" and first[col["code"]].number_format == "@"
    frame = pd.DataFrame(rows[1:], columns=list(HEADINGS))
    frame = gpd.GeoDataFrame(frame, geometry=store.grids.set_index("code").geometry.loc[
        frame["code"]].to_numpy(), crs=4326)
    assert_matches_plan(frame, store)
    about = dict(book["说明 about"].iter_rows(values_only=True))
    assert about["方案 plan"] == f"{store.plan_id} v{store.version}"
    assert about["状态 status"] == "published"


def test_missing_plan_and_unknown_format_are_problems_and_leave_no_files(
        client: TestClient, store: DemoStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    missing = client.get(f"/plans/{store.plan_id + 100}/export.gpkg")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == f"no plan {store.plan_id + 100}"
    unknown = client.get(f"/plans/{store.plan_id}/export.kmz")
    assert unknown.status_code == 422 and "shp.zip" in unknown.json()["detail"]
    ok = client.get(f"/plans/{store.plan_id}/export.xlsx")
    assert ok.status_code == 200 and ok.content.startswith(b"PK")
    assert list(tmp_path.iterdir()) == []  # the export's temporary folder is gone


@pytest.mark.parametrize(("name", "full", "header"), [
    ("白云示范区", "grids_白云示范区_v3.gpkg",
     "attachment; filename=\"grids_7_v3.gpkg\"; "
     "filename*=UTF-8''grids_%E7%99%BD%E4%BA%91%E7%A4%BA%E8%8C%83%E5%8C%BA_v3.gpkg"),
    ("Baiyun demo", "grids_Baiyun_demo_v3.gpkg",
     'attachment; filename="grids_Baiyun_demo_v3.gpkg"'),
    ('../a"b;c', "grids_a_b_c_v3.gpkg", 'attachment; filename="grids_a_b_c_v3.gpkg"'),
    ("///", "grids_7_v3.gpkg", 'attachment; filename="grids_7_v3.gpkg"'),
])
def test_file_names_are_safe_and_rfc5987_for_chinese(name: str, full: str,
                                                     header: str) -> None:
    filename, ascii_name = export_filename(7, name, 3, "gpkg")
    assert filename == full and ascii_name.isascii()
    assert content_disposition(filename, ascii_name) == header
