"""Property-based fuzz of the file readers: mutated small files are read or refused cleanly.

Valid small files (a territory's GeoJSON, Shapefile set, GeoPackage and CSV layers; event CSV
and GeoJSON) are mutated (bytes flipped, inserted or deleted, cut at random points, JSON
values replaced by hostile ones) and fed to the readers, directly and over HTTP. The only
allowed outcomes are a result or a gridmap error (:mod:`gis.errors`, a 4xx problem over
HTTP) — never another exception, never a 500 — and nothing is stored when refused.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import tempfile
import zipfile
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import shapely
import shapely.geometry
from conftest import ORIGIN, tiny_layers, write_layers
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from events.files import event_frame, read_events
from gis.errors import GridmapError
from gis.io.limits import ReadLimits
from gis.io.territory import read_territory
from gis.models.base import Base

#: Examples per reader; FUZZ_EXAMPLES=2000 for a longer hunt (random rather than the fixed
#: sequence the suite runs).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or 120
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize="FUZZ_EXAMPLES" not in os.environ, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
#: Small limits, so that a mutation that makes a huge number cannot make a slow test.
LIMITS = ReadLimits(max_features=500, max_vertices=20_000, max_feature_vertices=5_000,
                    max_unzipped_mb=20, max_zip_ratio=500, max_zip_members=50)
#: What a JSON value may be replaced with.
HOSTILE = [None, "", "abc", "113.3", 0, -1, 1e308, -1e308, math.inf, -math.inf, math.nan,
           10**40, True, [], {}, [[[[[]]]]], {"type": "Point"}, [1e308, 1e308],
           "\u0000", "井盖缺失", ["a", None, {}], {"type": "Polygon", "coordinates": [[1]]}]


# ------------------------------------------------------------------------------------------
# Valid seeds


@lru_cache
def seeds() -> dict[str, Any]:
    """The valid small files every mutation starts from."""
    tiny = tiny_layers()
    out: dict[str, Any] = {
        "admin_geojson": tiny["admin_areas"].to_json(ensure_ascii=False).encode(),
        "buildings_geojson": tiny["buildings"].to_json(ensure_ascii=False).encode(),
    }
    pts = tiny["buildings"][tiny["buildings"].geom_type == "Polygon"].geometry.centroid
    out["buildings_csv"] = ("lon,lat,households,名称\n" + "".join(
        f"{p.x:.6f},{p.y:.6f},{10 + i},楼{i}\n" for i, p in enumerate(pts))).encode("gbk")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_layers({k: tiny[k] for k in ("admin_areas", "buildings")},
                              Path(tmp) / "shp", "ESRI Shapefile")
        out["shapefiles"] = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
        gpkg = write_layers({k: tiny[k] for k in ("admin_areas", "buildings", "roads")},
                            Path(tmp) / "gpkg", "GPKG")
        out["gpkg"] = gpkg.read_bytes()
    out["events_csv"], out["events_geojson"] = event_seeds(ORIGIN[0], ORIGIN[1] + 0.002)
    return out


def event_seeds(x0: float, y0: float) -> tuple[bytes, bytes]:
    """Five events near (x0, y0) as CSV and as GeoJSON."""
    rows = [(x0 + 0.0002 * i, y0, "sanitation", f"井盖缺失{i}") for i in range(5)]
    csv = ("lon,lat,category,description\n" + "".join(
        f"{x:.6f},{y:.6f},{c},{d}\n" for x, y, c, d in rows)).encode()
    geojson = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
         "properties": {"category": c, "description": d}} for x, y, c, d in rows]},
        ensure_ascii=False).encode()
    return csv, geojson


# ------------------------------------------------------------------------------------------
# Mutations


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with 1-4 of: a byte flipped, bytes inserted, a slice deleted or repeated,
    the file cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "truncate"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[at:at + draw(st.integers(1, 64))]
        elif op == "repeat":
            out[at:at] = out[at:at + draw(st.integers(1, 64))]
        else:
            del out[at:]
    return bytes(out)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    paths = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            paths += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            paths += _paths(v, (*prefix, i))
    return paths


@st.composite
def mutated_json(draw: st.DrawFn, data: bytes) -> bytes:
    """A JSON document with 1-3 values (anywhere, the root included) replaced by hostile
    ones, or a key renamed."""
    doc = json.loads(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        new = copy.deepcopy(draw(st.sampled_from(HOSTILE)))
        if not path:
            doc = new
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent[draw(st.sampled_from(["type", "geometry", "properties", "coordinates",
                                         "features", "x"]))] = parent.pop(path[-1])
        else:
            parent[path[-1]] = new
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode()


def hostile(data: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_bytes(data), mutated_json(data))


# ------------------------------------------------------------------------------------------
# The readers, directly


def read_or_refuse(path: Path, outcomes: Counter[str], **kwargs: Any) -> None:
    """Read a territory: a result or a gridmap error that says something, nothing else."""
    try:
        read_territory(path, limits=LIMITS, **kwargs)
        outcomes["read"] += 1
    except GridmapError as exc:
        assert exc.message.strip(), "an error must say something"
        outcomes[type(exc).__name__] += 1


def assert_both(outcomes: Counter[str]) -> None:
    """The mutations made files that were read and files that were refused."""
    assert outcomes["read"] > 0 and sum(outcomes.values()) > outcomes["read"], outcomes


def fuzz_territory(files: st.SearchStrategy[dict[str, bytes]], target: str = "",
                   **kwargs: Any) -> None:
    """Each drawn set of files (name → content), written to a fresh folder, is read or
    refused cleanly (:func:`read_or_refuse` on the file ``target`` in it, or on the
    folder); some sets are read and some refused (:func:`assert_both`)."""
    outcomes: Counter[str] = Counter()

    @FUZZ
    @given(drawn=files)
    def run(drawn: dict[str, bytes]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in drawn.items():
                (Path(tmp) / name).write_bytes(content)
            read_or_refuse(Path(tmp) / target, outcomes, **kwargs)

    run()
    assert_both(outcomes)


@st.composite
def geojson_layers(draw: st.DrawFn) -> dict[str, bytes]:
    """The admin areas and buildings as GeoJSON, one of them made hostile."""
    s = seeds()
    which = draw(st.sampled_from(["admin_areas", "buildings"]))
    files = {"admin_areas.geojson": s["admin_geojson"],
             "buildings.geojson": s["buildings_geojson"]}
    seed = s["admin_geojson" if which == "admin_areas" else "buildings_geojson"]
    files[f"{which}.geojson"] = draw(hostile(seed))
    return files


@st.composite
def zipped_shapefiles(draw: st.DrawFn) -> dict[str, bytes]:
    """The Shapefile set zipped, one of its files mutated, sometimes the archive too."""
    files = dict(seeds()["shapefiles"])
    victim = draw(st.sampled_from(sorted(files)))
    files[victim] = draw(mutated_bytes(files[victim]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
    archive = buf.getvalue()
    if draw(st.integers(0, 3)) == 0:  # the archive itself damaged
        archive = draw(mutated_bytes(archive))
    return {"territory.zip": archive}


def test_geojson_layers() -> None:
    fuzz_territory(geojson_layers())


def test_zipped_shapefiles() -> None:
    fuzz_territory(zipped_shapefiles(), "territory.zip")


def test_geopackage() -> None:
    fuzz_territory(mutated_bytes(seeds()["gpkg"]).map(lambda c: {"territory.gpkg": c}),
                   "territory.gpkg")


def test_csv_layer() -> None:
    fuzz_territory(mutated_bytes(seeds()["buildings_csv"]).map(
        lambda c: {"admin_areas.geojson": seeds()["admin_geojson"], "buildings.csv": c}),
        crs="wgs84")


@pytest.mark.parametrize("kind", ["csv", "geojson"])
def test_event_files(kind: str) -> None:
    s = seeds()
    outcomes: Counter[str] = Counter()

    @FUZZ
    @given(content=mutated_bytes(s["events_csv"]) if kind == "csv"
           else hostile(s["events_geojson"]))
    def run(content: bytes) -> None:
        # The HTTP import's reader...
        try:
            frame = event_frame(content, f"events.{kind}", max_rows=100,
                                keep=("category", "description"))
            assert len(frame) > 0 and {"x", "y"} <= set(frame.columns) if kind == "geojson" \
                else len(frame) > 0
            outcomes["read"] += 1
        except GridmapError as exc:
            assert exc.message.strip()
            outcomes[type(exc).__name__] += 1
        # ...and the command line's.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"events.{kind}"
            path.write_bytes(content)
            try:
                table = read_events(path)
                assert len(table.x) == len(table.y) == len(table.frame) > 0
            except GridmapError as exc:
                assert exc.message.strip()

    run()
    assert_both(outcomes)


# ------------------------------------------------------------------------------------------
# Over HTTP: a 4xx problem or success, and nothing stored when refused


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in Base.metadata.sorted_tables
                if t.name != "audit_log"}  # refusals are recorded there, on purpose


def _answer(client: TestClient, url: str, files: Any, form: dict[str, str]) -> tuple[int, Any]:
    engine: Engine = client.app.state.engine
    before = _counts(engine)
    r = client.post(url, files=files, data=form)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["detail"]
        assert _counts(engine) == before
    return r.status_code, r.json()


@pytest.mark.parametrize("kind", ["csv", "geojson"])
def test_event_import_over_http(client: TestClient, kind: str) -> None:
    engine: Engine = client.app.state.engine
    # Events inside the published demo plan, so that the files as they are import.
    plan = next(p for p in client.get("/plans").json() if p["status"] == "published")
    grid = client.get(f"/plans/{plan['id']}/grids").json()["features"][0]
    inside = shapely.point_on_surface(shapely.geometry.shape(grid["geometry"]))
    seed = event_seeds(inside.x, inside.y)[0 if kind == "csv" else 1]
    seen: dict[int, int] = {}

    @settings(FUZZ, max_examples=EXAMPLES // 2)
    @given(content=mutated_bytes(seed) if kind == "csv" else hostile(seed))
    def run(content: bytes) -> None:
        before = _counts(engine)["events"]
        status, body = _answer(client, "/events/import",
                               {"file": (f"events.{kind}", content, "text/plain")},
                               {"coord_sys": "wgs84"})
        seen[status] = seen.get(status, 0) + 1
        if status == 200:
            assert _counts(engine)["events"] == before + body["imported"]

    run()
    assert client.get("/readyz").status_code == 200
    assert seen.get(200, 0) > 0 and sum(v for k, v in seen.items() if k >= 400) > 0, seen


def test_territory_upload_over_http(client: TestClient) -> None:
    s = seeds()

    @settings(FUZZ, max_examples=EXAMPLES // 3)
    @given(content=hostile(s["admin_geojson"]))
    def run(content: bytes) -> None:
        status, body = _answer(client, "/territories", [
            ("files", ("admin_areas.geojson", content, "application/geo+json")),
            ("files", ("buildings.geojson", s["buildings_geojson"], "application/geo+json"))],
            {"name": "fuzz"})
        if status == 201:
            assert client.delete(f"/territories/{body['id']}").status_code == 204

    run()
    assert client.get("/readyz").status_code == 200
