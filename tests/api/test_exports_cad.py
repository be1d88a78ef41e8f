"""DXF for AutoCAD and KML for Google Earth / 奥维: read back by GDAL and compared with the plan
(closed polylines on a layer per village, code labels, outlines within 1 cm)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
from demo_plan import DemoStore, assert_matches_plan
from fastapi.testclient import TestClient

from gis.exports.cad import LABEL_LAYER_SUFFIX, cad_layer
from gis.exports.formats import write_export
from gis.exports.options import Options
from gis.zones import output_crs

CM = 0.01


def _get(client: TestClient, store: DemoStore, fmt: str, tmp_path: Path,
         **params: str) -> Path:
    response = client.get(f"/plans/{store.plan_id}/export.{fmt}", params=params)
    assert response.status_code == 200, response.text
    path = tmp_path / f"grids.{fmt}"
    path.write_bytes(response.content)
    return path


def dxf_entities(raw: bytes) -> list[dict[str, list[str]]]:
    """The ENTITIES section of a DXF as group-code → values, one dict per entity."""
    lines = raw.decode("gbk").splitlines()
    pairs = [(lines[i].strip(), lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
    start = pairs.index(("2", "ENTITIES"))
    out: list[dict[str, list[str]]] = []
    for code, value in pairs[start + 1:]:
        if code == "0":
            if value == "ENDSEC":
                break
            out.append({"0": [value]})
        elif out:
            out[-1].setdefault(code, []).append(value)
    return out


def _layers(store: DemoStore) -> dict[str, str]:
    """Grid code → the DXF layer of its village."""
    return {code: cad_layer(*store.village_of(code)[1::-1])
            for code in store.grids["code"]}


@pytest.mark.parametrize("crs", [None, "cgcs2000"])
def test_dxf_has_closed_polylines_per_village_and_code_labels(
        client: TestClient, store: DemoStore, tmp_path: Path, crs: str | None) -> None:
    path = _get(client, store, "dxf", tmp_path, **({"crs": crs} if crs else {}))
    raw = path.read_bytes()
    assert b"$DWGCODEPAGE\n  3\nANSI_936" in raw
    entities = dxf_entities(raw)
    polylines = [e for e in entities if e["0"] == ["LWPOLYLINE"]]
    assert polylines and all(e["70"] == ["1"] for e in polylines)  # closed
    # the same file as GDAL reads it (the ANSI_936 code page decoded): default = metres
    # of the territory's zone, which the file cannot say, so the test says it
    epsg = store.metric_epsg if crs is None else 4490
    frame = pyogrio.read_dataframe(path).set_crs(epsg)
    lines = frame[frame.geometry.geom_type == "LineString"]
    labels = frame[frame["Text"].notna() & (frame.geometry.geom_type == "Point")]
    layer_of = _layers(store)
    assert set(lines["Layer"]) == set(layer_of.values())
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in layer) for layer in lines["Layer"])
    # every label is its grid's code, inside the grid, on the village's label layer
    assert sorted(labels["Text"]) == sorted(store.grids["code"])
    grids = store.grids.set_index("code").geometry
    inside = labels.to_crs(4326).geometry.to_numpy()
    assert shapely.within(inside, grids.loc[labels["Text"]].to_numpy()).all()
    assert [layer_of[c] + LABEL_LAYER_SUFFIX for c in labels["Text"]] == list(labels["Layer"])
    # every ring of every grid is one closed polyline of its village's layer, within 1 cm
    metric = lines.to_crs(store.metric_epsg)
    rings = grids.to_crs(store.metric_epsg)
    n_rings = 0
    for code, polygon in rings.items():
        parts = polygon.geoms if isinstance(polygon, shapely.MultiPolygon) else [polygon]
        mine = metric[metric["Layer"] == layer_of[str(code)]].geometry.to_numpy()
        for part in parts:
            for ring in [part.exterior, *part.interiors]:
                n_rings += 1
                gap = shapely.hausdorff_distance(mine, shapely.LineString(ring.coords))
                assert float(np.min(gap)) < CM, (code, float(np.min(gap)))
    assert n_rings == len(lines) == len(polylines)


def test_kml_has_a_folder_per_village_and_the_plan(client: TestClient, store: DemoStore,
                                                   tmp_path: Path) -> None:
    path = _get(client, store, "kml", tmp_path)
    text = path.read_text(encoding="utf-8")
    villages = {store.village_of(c)[0] for c in store.grids["code"]}
    assert text.count("<Folder>") == len(villages)
    # GDAL's KML reader makes a layer of each folder: read them all
    folders = [pyogrio.read_dataframe(path, layer=name) for name, _ in pyogrio.list_layers(path)]
    assert len(folders) == len(villages)
    assert all(pyproj.CRS(f.crs).equals(pyproj.CRS.from_epsg(4326), ignore_axis_order=True)
               for f in folders)
    every = pd_concat(folders).rename(columns={"Name": "name"})
    assert_matches_plan(every, store, tolerance=1e-4)  # (the 1 cm test is below)
    want = store.grids.set_index("code").geometry.to_crs(store.metric_epsg)
    got = every.set_index("code").geometry.to_crs(store.metric_epsg).loc[want.index]
    assert float(np.max(shapely.hausdorff_distance(got.to_numpy(), want.to_numpy()))) < CM


def pd_concat(frames: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    joined = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(joined.drop(columns="geometry"),
                            geometry=shapely.force_2d(joined.geometry.to_numpy()), crs=4326)


def test_kml_in_another_crs_is_422(client: TestClient, store: DemoStore) -> None:
    response = client.get(f"/plans/{store.plan_id}/export.kml", params={"crs": "auto"})
    assert response.status_code == 422
    assert "KML" in response.json()["detail"]


def test_dxf_escapes_what_gbk_lacks(tmp_path: Path) -> None:
    table = gpd.GeoDataFrame({"code": ["440111001001001"], "village_code": ["440111001001"],
                              "village_name": ["𠀾家村"]},
                             geometry=[shapely.box(113.3, 23.2, 113.31, 23.21)], crs=4326)
    path = write_export(table, "dxf", tmp_path / "g.dxf", options=Options(
        output_crs("auto", bounds=(113.3, 23.2, 113.31, 23.21), zone_epsg=4547)))
    raw = path.read_bytes()
    assert "440111001001_\\U+2003E家村".encode("gbk") in raw
