"""Hostile and broken files against every file reader: territory upload, event import, the CLI.

Each case must be answered with a clear error that says what to fix (an RFC 9457 problem,
4xx, over HTTP; a one-line message and exit code 2 on the command line), with nothing stored
(the rows of every table counted before and after) and the service still answering. The
files are built here, in tmp_path or in memory: zip bombs, forged archives, cut Shapefile
indexes, truncated GeoPackages, a polygon of 10^6 vertices.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from conftest import ORIGIN, tiny_layers, write_layers
from fastapi.testclient import TestClient
from signin import admin_headers
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli_app
from gis.database import make_engine
from gis.errors import LayerError, LimitExceeded
from gis.io.archive import unzip
from gis.io.limits import ReadLimits
from gis.io.territory import read_territory
from gis.models.base import Base
from gis.store import read_layer

runner = CliRunner()
GIB = 2**30



# ------------------------------------------------------------------------------------------
# Helpers: counting, asserting a refusal, uploading


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows of every table of the store but the audit log (which records the refusal)."""
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in Base.metadata.sorted_tables
                if t.name != "audit_log"}  # refusals are recorded there, on purpose


def refused(client: TestClient, url: str, *, files: Any, data: dict[str, str] | None = None,
            says: tuple[str, ...] = (), status: int | None = None) -> dict[str, Any]:
    """POST a bad file: a 4xx problem that says ``says``, nothing stored, the service up."""
    engine: Engine = client.app.state.engine
    before = table_counts(engine)
    r = client.post(url, files=files, data=data or {})
    assert 400 <= r.status_code < 500, r.text
    if status is not None:
        assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == r.status_code and body["type"].startswith("/problems/")
    assert len(body["detail"]) > 20, body
    for word in says:
        assert word in body["detail"], body["detail"]
    assert table_counts(engine) == before
    assert client.get("/readyz").status_code == 200
    return body


def layer_files(**files: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in files.items()]


def geojson(gdf: gpd.GeoDataFrame) -> bytes:
    return gdf.to_json(ensure_ascii=False).encode()


@lru_cache
def good_layers() -> dict[str, bytes]:
    """The tiny territory's two required layers as GeoJSON files."""
    tiny = tiny_layers()
    return {"admin_areas.geojson": geojson(tiny["admin_areas"]),
            "buildings.geojson": geojson(tiny["buildings"])}


def with_admin(admin: bytes | dict[str, Any]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The tiny territory with its admin_areas file replaced."""
    data = admin if isinstance(admin, bytes) else json.dumps(admin).encode()
    return layer_files(**{"admin_areas.geojson": data,
                          "buildings.geojson": good_layers()["buildings.geojson"]})


def admin_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(good_layers()["admin_areas.geojson"])
    return doc


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------
# Forged archives: members written byte by byte, with whatever sizes and flags we declare


@dataclass
class Member:
    name: str
    packed: bytes                 # the member's bytes as stored (deflated unless method 0)
    size: int                     # the unpacked size declared
    crc: int
    method: int = 8
    flags: int = 0
    mode: int = 0o100644          # Unix file mode (0o120777: a symbolic link)


def forged_zip(members: list[Member]) -> bytes:
    out = io.BytesIO()
    central = io.BytesIO()
    for m in members:
        name = m.name.encode()
        offset = out.tell()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, m.flags, m.method, 0, 33,
                              m.crc, len(m.packed), m.size, len(name), 0))
        out.write(name)
        out.write(m.packed)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x031E, 20, m.flags,
                                  m.method, 0, 33, m.crc, len(m.packed), m.size, len(name),
                                  0, 0, 0, 0, m.mode << 16, offset))
        central.write(name)
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                          len(central.getvalue()), start, 0))
    return out.getvalue()


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@lru_cache
def zeros_deflated(n: int) -> tuple[bytes, int]:
    """``n`` zero bytes (whole MiB) deflated as in a .zip (~1,000:1), fast: with a full
    flush after each MiB every block is the same bytes. The CRC is left 0: a bomb is refused
    before anything is unpacked, which is what these tests show."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(2**20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (n // 2**20) + c.flush(), 0


def zip_bomb(members: int, each: int) -> bytes:
    """``members`` members named like layers, each ``each`` zero bytes: ~1,000:1."""
    packed, crc = zeros_deflated(each)
    names = ["admin_areas.geojson", "buildings.geojson"] + [f"extra{i}.geojson"
                                                           for i in range(members)]
    return forged_zip([Member(names[i], packed, each, crc) for i in range(members)])


# ------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def limited(client: TestClient) -> Iterator[TestClient]:
    """The same store with small limits, to show each limit's answer."""
    settings = client.app.state.settings.model_copy(update={
        "max_features": 12, "max_vertices": 80, "max_feature_vertices": 40,
        "max_unzipped_mb": 1, "max_zip_ratio": 50, "max_zip_members": 3,
        "escalation_interval_s": 0})
    engine = client.app.state.engine
    with TestClient(create_app(settings, engine), headers=admin_headers(engine)) as c:
        yield c


# ------------------------------------------------------------------------------------------
# 1. Malformed GeoJSON in a territory upload


def _admin_with(**geometry: Any) -> dict[str, Any]:
    doc = admin_doc()
    for f in doc["features"]:
        f["geometry"] = geometry.get("geometry", f["geometry"])
    return doc


def _first_coordinate(value: Any) -> dict[str, Any]:
    doc = admin_doc()
    doc["features"][2]["geometry"]["coordinates"][0][1][0] = value
    return doc


GEOJSON_CASES: dict[str, bytes | dict[str, Any]] = {
    "truncated": good_layers()["admin_areas.geojson"][:300],
    "not json": b"\x00\x01 these are not the layers you are looking for",
    "empty file": b"",
    "json array": b"[1, 2, 3]",
    "json string": b'"FeatureCollection"',
    "json null": b"null",
    "topojson": b'{"type": "Topology", "objects": {}, "arcs": []}',
    "features not a list": b'{"type": "FeatureCollection", "features": "abc"}',
    "features of garbage": b'{"type": "FeatureCollection", "features": [1, "a", null, []]}',
    "no features": b'{"type": "FeatureCollection", "features": []}',
    "points": _admin_with(geometry={"type": "Point", "coordinates": [113.3, 23.2]}),
    "null geometry": _admin_with(geometry=None),
    "empty polygon": _admin_with(geometry={"type": "Polygon", "coordinates": []}),
    "unknown type": _admin_with(geometry={"type": "Hexagon", "coordinates": [1, 2]}),
    "nested garbage": _admin_with(geometry={"type": "Polygon",
                                            "coordinates": [[[[[[[1]]]]], {"a": [None]}]]}),
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "huge number": _first_coordinate(1e308),
    "overflowing number": json.dumps(_first_coordinate(0.5)).replace("0.5", "1e400").encode(),
    "400-digit integer": json.dumps(_first_coordinate(0.5)).replace("0.5", "9" * 400).encode(),
    "negative huge": _first_coordinate(-1e308),
    "NaN literal": json.dumps(_first_coordinate(0.5)).replace("0.5", "NaN").encode(),
    "Infinity literal": json.dumps(_first_coordinate(0.5)).replace("0.5", "Infinity").encode(),
    "string coordinate": _first_coordinate("113.3"),
    "latitude out of range": json.dumps(_first_coordinate(0.5)).replace(
        "[0.5,", "[113.3, 95.0, ").encode(),
    "properties not an object": json.loads(json.dumps(admin_doc()).replace(
        '"properties": {', '"properties": [{').replace('}, "geometry"', '}], "geometry"')),
    "code as nested object": {**admin_doc(), "features": [
        {**f, "properties": {**f["properties"], "code": {"a": [1, {"b": None}]}}}
        for f in admin_doc()["features"]]},
}


@pytest.mark.parametrize("case", list(GEOJSON_CASES))
def test_malformed_geojson_layer_is_refused(client: TestClient, case: str) -> None:
    body = refused(client, "/territories", files=with_admin(GEOJSON_CASES[case]), status=422)
    assert "admin_areas" in body["detail"]
    assert "/tmp/" not in body["detail"]  # no server paths in the answer


# ------------------------------------------------------------------------------------------
# 2. Zip bombs and forged archives


def test_zip_bomb_is_refused_before_unpacking(client: TestClient, tmp_path: Path) -> None:
    # Three members of 1 GiB of zeros each: ~3 MB packed, 3 GiB declared.
    bomb = zip_bomb(3, GIB)
    assert len(bomb) < 4 * 2**20
    body = refused(client, "/territories", files=layer_files(**{"bomb.zip": bomb}),
                   says=("GRIDMAP_MAX_ZIP_RATIO", "zip bomb"), status=422)
    assert "admin_areas.geojson" in body["file"]


def test_zip_limits_each_say_their_setting(tmp_path: Path) -> None:
    packed, crc = zeros_deflated(64 * 2**20)
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(forged_zip([Member(f"m{i}.geojson", packed, 64 * 2**20, crc)
                                    for i in range(40)]))
    dest = tmp_path / "out"
    dest.mkdir()
    loose = ReadLimits(10, 10, 10, max_unzipped_mb=2_048, max_zip_ratio=10**6,
                       max_zip_members=100)
    # The total of the declared sizes (2.5 GiB), whatever the ratio.
    with pytest.raises(LimitExceeded, match="GRIDMAP_MAX_UNZIPPED_MB") as exc:
        unzip(archive, dest, loose)
    assert "2,048 MB" in str(exc.value)
    # The ratio of one member.
    with pytest.raises(LimitExceeded, match="GRIDMAP_MAX_ZIP_RATIO"):
        unzip(archive, dest, ReadLimits(10, 10, 10, 10**6, 500, 100))
    # The number of members, read from the end record before the archive is parsed.
    with pytest.raises(LimitExceeded, match="GRIDMAP_MAX_ZIP_MEMBERS") as exc:
        unzip(archive, dest, ReadLimits(10, 10, 10, 10**6, 10**6, 39))
    assert "40 members" in str(exc.value)
    assert list(dest.iterdir()) == []  # nothing was unpacked


def test_too_many_members_over_http(limited: TestClient) -> None:
    files = {f"note{i}.txt": b"x" for i in range(4)}
    refused(limited, "/territories", files=layer_files(**{"t.zip": zipped(files)}),
            says=("GRIDMAP_MAX_ZIP_MEMBERS", "4 members"), status=422)


def test_small_limits_over_http(limited: TestClient) -> None:
    # Unpacked size: 2 MB of text, packed small (the ratio stays under 50 with random data).
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, 2 * 2**20, dtype=np.uint8).tobytes()
    refused(limited, "/territories", files=layer_files(**{"t.zip": zipped({
        "admin_areas.geojson": noise})}), says=("GRIDMAP_MAX_UNZIPPED_MB",), status=422)
    # Features: the tiny territory has 4 admin areas and 5 buildings, then roads etc.
    tiny = tiny_layers()
    many = gpd.GeoDataFrame(
        {"households": [1] * 20},
        geometry=[shapely.Point(ORIGIN[0] + i * 1e-4, ORIGIN[1] + 1e-3) for i in range(20)],
        crs=4326)
    body = refused(limited, "/territories", files=layer_files(**{
        "admin_areas.geojson": geojson(tiny["admin_areas"]),
        "buildings.geojson": geojson(many)}), says=("GRIDMAP_MAX_FEATURES", "12"), status=422)
    assert body["layer"] == "buildings"
    # Vertices of one feature, and of the upload.
    ring = [(ORIGIN[0] + 0.001 * math.cos(t), ORIGIN[1] + 0.005 + 0.001 * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, 60)[:-1]]
    round_building = gpd.GeoDataFrame({"households": [10]}, geometry=[shapely.Polygon(ring)],
                                      crs=4326)
    body = refused(limited, "/territories", files=layer_files(**{
        "admin_areas.geojson": geojson(tiny["admin_areas"]),
        "buildings.geojson": geojson(round_building)}),
        says=("GRIDMAP_MAX_FEATURE_VERTICES", "60 vertices", "simplify"), status=422)
    assert body["row"] == 0
    squares = gpd.GeoDataFrame({"households": [1] * 6}, geometry=[
        shapely.box(ORIGIN[0] + i * 1e-3, ORIGIN[1], ORIGIN[0] + i * 1e-3 + 5e-4,
                    ORIGIN[1] + 5e-4).segmentize(1e-4) for i in range(6)], crs=4326)
    refused(limited, "/territories", files=layer_files(**{
        "admin_areas.geojson": geojson(tiny["admin_areas"]),
        "buildings.geojson": geojson(squares)}), says=("GRIDMAP_MAX_VERTICES",), status=422)


FORGED: dict[str, tuple[list[Member], str]] = {
    "parent traversal": ([Member("../../admin_areas.geojson", b"{}", 2, zlib.crc32(b"{}"), 0)],
                         "outside the archive"),
    "absolute path": ([Member("/etc/admin_areas.geojson", b"{}", 2, zlib.crc32(b"{}"), 0)],
                      "outside the archive"),
    "windows drive": ([Member("C:\\admin_areas.geojson", b"{}", 2, zlib.crc32(b"{}"), 0)],
                      "outside the archive"),
    "backslash traversal": ([Member("a\\..\\..\\x.geojson", b"{}", 2, zlib.crc32(b"{}"), 0)],
                            "outside the archive"),
    "symbolic link": ([Member("admin_areas.geojson", b"/etc/passwd", 11,
                              zlib.crc32(b"/etc/passwd"), 0, mode=0o120777)], "symbolic link"),
    "encrypted": ([Member("admin_areas.geojson", b"0123456789ab{}", 2, 0, 0, flags=1)],
                  "encrypted"),
    "unknown method": ([Member("admin_areas.geojson", b"{}", 2, zlib.crc32(b"{}"), 99)],
                       "compression method"),
    "larger than declared": ([Member("admin_areas.geojson", deflate(b"x" * 10_000), 100,
                                     zlib.crc32(b"x" * 10_000))], "damaged"),
    "bad CRC": ([Member("admin_areas.geojson", deflate(b"{}"), 2, 12345)], "damaged"),
    "corrupt deflate stream": ([Member("admin_areas.geojson", b"\xff\xfe\xfd" * 10, 100, 0)],
                               "damaged"),
    "twice the same member": ([Member("admin_areas.geojson", b"{}", 2, zlib.crc32(b"{}"), 0),
                               Member("ADMIN_AREAS.geojson", b"{}", 2, zlib.crc32(b"{}"), 0)],
                              "twice"),
}


@pytest.mark.parametrize("case", list(FORGED))
def test_forged_archive_is_refused(client: TestClient, case: str, tmp_path: Path) -> None:
    members, says = FORGED[case]
    refused(client, "/territories", files=layer_files(**{"t.zip": forged_zip(members)}),
            says=(says,), status=422)
    assert not (tmp_path.parent / "admin_areas.geojson").exists()


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 cut", b"PK\x05\x06" + b"\0" * 18,
                                  b"not a zip at all"], ids=["empty", "cut", "end only", "text"])
def test_a_zip_that_is_not_one(client: TestClient, data: bytes) -> None:
    refused(client, "/territories", files=layer_files(**{"t.zip": data}), status=422)


def test_a_good_zip_still_reads_after_the_checks(tmp_path: Path) -> None:
    archive = tmp_path / "t.zip"
    folder = write_layers(tiny_layers(), tmp_path / "shp", "ESRI Shapefile")
    archive.write_bytes(zipped({f"layers/{p.name}": p.read_bytes()
                                for p in sorted(folder.iterdir())}))
    territory = read_territory(archive)
    assert territory.counts()["admin_areas"] == 4
    assert territory.sources["admin_areas"] == "layers/admin_areas.shp"


# ------------------------------------------------------------------------------------------
# 3. Broken Shapefiles and GeoPackages


@pytest.fixture(scope="module")
def shapefile_set(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = write_layers(tiny_layers(), tmp_path_factory.mktemp("shp"), "ESRI Shapefile")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.stem in ("admin_areas", "buildings")}


def _shp_with(files: dict[str, bytes], **changes: bytes | None) -> dict[str, bytes]:
    out = dict(files)
    for name, data in changes.items():
        name = name.replace("_shx", ".shx").replace("_dbf", ".dbf").replace("_prj", ".prj") \
            .replace("_shp", ".shp")
        if data is None:
            out.pop(name)
        else:
            out[name] = data
    return out


def _shx_cases(files: dict[str, bytes]) -> dict[str, tuple[dict[str, bytes], str]]:
    shx = files["admin_areas.shx"]
    wrong_offsets = bytearray(shx)
    for i in range(100, len(shx), 8):  # every record's offset past the end of the .shp
        wrong_offsets[i:i + 4] = struct.pack(">i", 10**8)
    return {
        "shx cut in its header": (_shp_with(files, admin_areas_shx=shx[:50]), "admin_areas"),
        "shx cut in its records": (_shp_with(files, admin_areas_shx=shx[:100 + 8 + 3]),
                                   "admin_areas"),
        "shx empty": (_shp_with(files, admin_areas_shx=b""), "admin_areas"),
        "shx of garbage": (_shp_with(files, admin_areas_shx=b"\x13" * len(shx)),
                           "admin_areas"),
        "shx offsets past the end": (_shp_with(files, admin_areas_shx=bytes(wrong_offsets)),
                                     "admin_areas"),
        "shx missing": (_shp_with(files, admin_areas_shx=None), ".shx"),
        "dbf missing": (_shp_with(files, admin_areas_dbf=None), ".dbf"),
        "prj missing": (_shp_with(files, admin_areas_prj=None), "coordinate system"),
        "shp cut short": (_shp_with(files, admin_areas_shp=files["admin_areas.shp"][:150]),
                          "admin_areas"),
        "dbf cut short": (_shp_with(files, admin_areas_dbf=files["admin_areas.dbf"][:40]),
                          "admin_areas"),
    }


SHX_CASES = ["shx cut in its header", "shx cut in its records", "shx empty", "shx of garbage",
             "shx offsets past the end", "shx missing", "dbf missing", "prj missing",
             "shp cut short", "dbf cut short"]


@pytest.mark.parametrize("case", SHX_CASES)
def test_broken_shapefile_zipped_and_as_files(client: TestClient, shapefile_set: dict[str, bytes],
                                              case: str) -> None:
    files, says = _shx_cases(shapefile_set)[case]
    refused(client, "/territories", files=layer_files(**{"t.zip": zipped(files)}),
            says=(says,), status=422)
    refused(client, "/territories", files=layer_files(**files), says=(says,), status=422)


@pytest.fixture(scope="module")
def gpkg_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_layers(tiny_layers(), tmp_path_factory.mktemp("gpkg"), "GPKG").read_bytes()


@pytest.mark.parametrize("cut", [0.9, 0.5, 0.1, 0.01])
def test_truncated_geopackage(client: TestClient, gpkg_bytes: bytes, cut: float) -> None:
    data = gpkg_bytes[:int(len(gpkg_bytes) * cut)]
    refused(client, "/territories", files=layer_files(**{"t.gpkg": data}),
            says=("cut short", "whole file"), status=422)


@pytest.mark.parametrize("data", [b"", b"hello", b"PK\x03\x04" + b"\0" * 200,
                                  b'{"type": "FeatureCollection"}'],
                         ids=["empty", "text", "zip", "json"])
def test_a_gpkg_that_is_not_sqlite(client: TestClient, data: bytes) -> None:
    refused(client, "/territories", files=layer_files(**{"territory.gpkg": data}),
            says=("not a GeoPackage",), status=422)


def test_geopackage_with_a_damaged_page(client: TestClient, gpkg_bytes: bytes) -> None:
    # Same length as declared, but a stretch in the middle overwritten.
    data = bytearray(gpkg_bytes)
    mid = len(data) // 2
    data[mid:mid + 8192] = b"\xa5" * 8192
    refused(client, "/territories", files=layer_files(**{"t.gpkg": bytes(data)}), status=422)


# ------------------------------------------------------------------------------------------
# 4. Self-intersecting polygons: repaired, reported, stored valid


def test_bow_tie_polygons_are_repaired_and_said(client: TestClient) -> None:
    tiny = tiny_layers()
    ox, oy = ORIGIN
    bow_tie = shapely.Polygon([(ox + 0.0011, oy + 0.0011), (ox + 0.0019, oy + 0.0019),
                               (ox + 0.0019, oy + 0.0011), (ox + 0.0011, oy + 0.0019)])
    assert not bow_tie.is_valid
    buildings = tiny["buildings"].copy()
    buildings.loc[0, "geometry"] = bow_tie
    # A ring touching itself in a point (valid as two polygons, not as one).
    pinched = shapely.Polygon([(ox + 0.006, oy + 0.001), (ox + 0.007, oy + 0.001),
                               (ox + 0.0065, oy + 0.0015), (ox + 0.007, oy + 0.002),
                               (ox + 0.006, oy + 0.002), (ox + 0.0065, oy + 0.0015)])
    buildings.loc[1, "geometry"] = pinched
    engine: Engine = client.app.state.engine
    before = table_counts(engine)
    r = client.post("/territories", files=layer_files(**{
        "admin_areas.geojson": geojson(tiny["admin_areas"]),
        "buildings.geojson": geojson(buildings)}), data={"name": "bow tie"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["repairs"] == 2
    note = next(n for n in out["notes"] if "make_valid" in n)
    assert "buildings row 0: Self-intersection" in note and "buildings row 1" in note
    stored = read_layer(engine, out["id"], "buildings")
    assert stored.geometry.is_valid.all() and len(stored) == 5
    assert stored.geometry.area.sum() > 0
    assert client.delete(f"/territories/{out['id']}").status_code == 204
    assert table_counts(engine) == before


def test_polygon_collapsing_when_repaired_is_refused(client: TestClient) -> None:
    tiny = tiny_layers()
    ox, oy = ORIGIN
    flat = shapely.Polygon([(ox + 0.001, oy + 0.001), (ox + 0.002, oy + 0.001),
                            (ox + 0.003, oy + 0.001), (ox + 0.001, oy + 0.001)])
    buildings = tiny["buildings"].copy()
    buildings.loc[2, "geometry"] = flat
    body = refused(client, "/territories", files=layer_files(**{
        "admin_areas.geojson": geojson(tiny["admin_areas"]),
        "buildings.geojson": geojson(buildings)}), says=("collapses",), status=422)
    assert body["row"] == 2


# ------------------------------------------------------------------------------------------
# 5. A polygon of 10^6 vertices


@pytest.fixture(scope="module")
def million_vertex_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tiny = tiny_layers()
    n = 1_000_000
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    ox, oy = ORIGIN
    ring = np.column_stack([ox + 0.0105 + 0.004 * np.cos(t), oy + 0.005 + 0.004 * np.sin(t)])
    admin = tiny["admin_areas"].copy()
    admin.loc[3, "geometry"] = shapely.Polygon(ring)
    assert shapely.get_num_coordinates(admin.geometry.iloc[3]) == n + 1
    tiny["admin_areas"] = admin
    return write_layers(tiny, tmp_path_factory.mktemp("million"), "GPKG")


def test_million_vertex_polygon_is_refused_naming_the_limit(
        client: TestClient, million_vertex_gpkg: Path) -> None:
    body = refused(client, "/territories", files=layer_files(**{
        "t.gpkg": million_vertex_gpkg.read_bytes()}),
        says=("1,000,001 vertices", "250,000", "GRIDMAP_MAX_FEATURE_VERTICES"), status=422)
    assert body["layer"] == "admin_areas" and body["row"] == 3


def test_million_vertex_polygon_reads_when_the_limit_allows(million_vertex_gpkg: Path) -> None:
    limits = ReadLimits(100, 2_000_000, 2_000_000, 10, 10, 10)
    territory = read_territory(million_vertex_gpkg, limits=limits)
    assert shapely.get_num_coordinates(territory.layers["admin_areas"].geometry.iloc[3]) \
        == 1_000_001


# ------------------------------------------------------------------------------------------
# 6. Coordinates of 1e308, inf, NaN in CSV layers and in geometries


@pytest.mark.parametrize("lon,lat", [("1e308", "23.2"), ("-1e308", "23.2"), ("inf", "23.2"),
                                     ("nan", "23.2"), ("113.3", "1e308"), ("113.3", "95"),
                                     ("113.3", "-inf"), ("1e400", "23.2"), ("abc", "23.2")])
def test_bad_numbers_in_a_csv_layer(client: TestClient, lon: str, lat: str) -> None:
    ox, oy = ORIGIN
    csv = ("lon,lat,households\n"
           f"{ox + 0.001},{oy + 0.001},10\n{lon},{lat},10\n").encode()
    body = refused(client, "/territories", files=layer_files(**{
        "admin_areas.geojson": good_layers()["admin_areas.geojson"], "buildings.csv": csv},
        ), data={"crs": "wgs84"}, status=422)
    assert body["layer"] == "buildings"


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e308, -1e308])
def test_non_finite_vertices_in_a_geopackage(client: TestClient, tmp_path: Path,
                                             value: float) -> None:
    tiny = tiny_layers()
    ox, oy = ORIGIN
    buildings = tiny["buildings"].copy()
    buildings.loc[1, "geometry"] = shapely.Polygon(
        [(ox + 0.006, oy + 0.001), (value, oy + 0.001), (ox + 0.007, oy + 0.002),
         (ox + 0.006, oy + 0.001)])
    tiny["buildings"] = buildings
    data = write_layers(tiny, tmp_path, "GPKG").read_bytes()
    body = refused(client, "/territories", files=layer_files(**{"t.gpkg": data}), status=422)
    assert body["layer"] == "buildings"


# ------------------------------------------------------------------------------------------
# 7. Event files: encodings, columns, empty, header only; bad numbers; GeoJSON garbage


def _events_csv(rows: list[tuple[Any, Any]], header: str = "lon,lat,category,description"
                ) -> str:
    return header + "\n" + "".join(f"{x},{y},sanitation,井盖缺失\n" for x, y in rows)


@pytest.fixture(scope="module")
def inside(client: TestClient) -> tuple[float, float]:
    """A point inside a grid of the published demo plan."""
    plan = next(p for p in client.get("/plans").json() if p["status"] == "published")
    grid = client.get(f"/plans/{plan['id']}/grids").json()["features"][0]
    p = shapely.point_on_surface(shapely.geometry.shape(grid["geometry"]))
    return p.x, p.y


def _import(data: bytes, name: str = "events.csv", **form: str
            ) -> dict[str, Any]:
    return {"files": {"file": (name, data, "text/csv")},
            "data": {"coord_sys": "wgs84", **form}}


def _feature(coordinates: bytes, properties: bytes | None = b"{}",
             kind: bytes = b"Point") -> bytes:
    """A GeoJSON Feature written as bytes (so that it can be what no encoder writes), with
    ``properties`` (None: no properties member)."""
    tail = b"" if properties is None else b', "properties": ' + properties
    return (b'{"type": "Feature", "geometry": {"type": "' + kind + b'", "coordinates": '
            + coordinates + b"}" + tail + b"}")


EVENT_CASES: dict[str, tuple[bytes, str, dict[str, str], str]] = {
    "empty file": (b"", "events.csv", {}, "empty"),
    "blank lines": (b"\n\n  \n", "events.csv", {}, "empty"),
    "header only": (b"lon,lat,category\n", "events.csv", {}, "no events"),
    # (An address column alone is a file to geocode: tests/api/test_geocode_api.py.)
    "one column": (b"note\n1 Main St\n2 Main St\n", "events.csv", {}, "longitude"),
    "addresses, one missing": (b"address,category\n1 Main St,sanitation\n,sanitation\n",
                               "events.csv", {}, "row 2 has neither valid coordinates"),
    "no latitude": (b"lon,category\n113.3,sanitation\n", "events.csv", {}, "latitude"),
    "gbk given as utf-8": ("lon,lat,category,description\n113.3,23.2,sanitation,井盖缺失\n"
                           .encode("gbk"), "events.csv", {"encoding": "utf-8"},
                           "is not utf-8 text"),
    "utf-8 and gbk mixed": ("lon,lat,category,description\n113.3,23.2,sanitation,井盖缺失\n"
                            .encode() + "113.3,23.2,sanitation,路灯损坏\n".encode("gbk"),
                            "events.csv", {}, "mixes encodings: line 2 is UTF-8 but line 3"),
    "binary": (bytes(range(256)) * 4, "events.csv", {}, "events.csv"),
    "ragged rows": (b'lon,lat,category\n113.3,23.2,sanitation\n"unterminated,1,2\n',
                    "events.csv", {}, "CSV"),
    "NUL in text": (b"lon,lat,category,description\n113.3,23.2,sanitation,a\x00b\n",
                    "events.csv", {}, "NUL"),
    "geojson not json": (b'{"type": "FeatureCollection", "features": [',
                         "events.geojson", {}, "cut short"),
    "geojson not geojson": (b'{"rows": []}', "events.geojson", {}, "not GeoJSON"),
    "geojson features not a list": (b'{"type": "FeatureCollection", "features": 5}',
                                    "events.geojson", {}, "features"),
    "geojson empty": (b'{"type": "FeatureCollection", "features": []}', "events.geojson", {},
                      "no events"),
    "geojson null geometry": (b'{"type": "FeatureCollection", "features": [{"type": '
                              b'"Feature", "geometry": null, "properties": {}}]}',
                              "events.geojson", {}, "no geometry"),
    "geojson polygon": (_feature(b"[[[1, 2], [3, 4], [5, 6], [1, 2]]]", kind=b"Polygon"),
                        "events.geojson", {}, "not a Point"),
    "geojson empty point": (_feature(b"[]"), "events.geojson", {}, "empty point"),
    "geojson string coordinate": (_feature(b'["113.3", 23.2]'), "events.geojson", {},
                                  "not a number"),
    "geojson coordinates object": (_feature(b'{"x": 1}'), "events.geojson", {}, "coordinates"),
    "geojson properties list": (_feature(b"[113.3, 23.2]", b"[1]"), "events.geojson", {},
                                "properties"),
    "geojson 1e400": (_feature(b"[1e400, 23.2]", b'{"category": "sanitation"}'),
                      "events.geojson", {}, "no valid"),
    "geojson 5000 digits": (_feature(b"[" + b"9" * 5000 + b", 23.2]", None),
                            "events.geojson", {}, "cannot be read"),
    "geojson deep nesting": (b"[" * 100_000 + b"]" * 100_000, "events.geojson", {},
                             "events.geojson"),
    "geojson lone surrogate": (_feature(b"[113.3, 23.2]", b'{"category": "sanitation", '
                                        b'"description": "\\ud800"}'),
                               "events.geojson", {}, "cannot be stored"),
}


@pytest.mark.parametrize("case", list(EVENT_CASES))
def test_broken_event_files_are_refused(client: TestClient, case: str) -> None:
    data, name, form, says = EVENT_CASES[case]
    body = refused(client, "/events/import", **_import(data, name, **form), says=(says,))
    assert name in body["detail"] or body.get("file") == name


def test_odd_encodings_are_answered_not_failed(client: TestClient,
                                               inside: tuple[float, float]) -> None:
    """Codecs Python knows that are not text encodings, or not this text's: never a 500."""
    engine: Engine = client.app.state.engine
    csv = _events_csv([inside]).encode("gbk")
    for encoding in ("rot13", "base64", "hex", "utf-16", "utf-32", "unicode_escape", "idna",
                     "cp037", "utf-8-sig"):
        before = table_counts(engine)
        r = client.post("/events/import", **_import(csv, encoding=encoding))
        assert r.status_code < 500, (encoding, r.text)
        if r.status_code >= 400:
            assert r.json()["detail"] and table_counts(engine) == before, encoding


@pytest.mark.parametrize("x,y", [("1e308", "y"), ("-1e308", "y"), ("inf", "y"), ("nan", "y"),
                                 ("x", "1e308"), ("x", "95"), ("x", "-inf"), ("", "y"),
                                 ("1e400", "y"), ("一百", "y")])
def test_bad_numbers_in_an_event_csv(client: TestClient, inside: tuple[float, float],
                                     x: str, y: str) -> None:
    good = (inside[0], inside[1])
    bad = (inside[0] if x == "x" else x, inside[1] if y == "y" else y)
    csv = _events_csv([good, good, bad]).encode()
    body = refused(client, "/events/import", **_import(csv), status=422)
    assert re.search(r"\brows? 3\b", body["detail"]) and "nothing" in body["detail"], body


@pytest.mark.parametrize("coord_sys", ["EPSG:4547", "gcj02", "bd09", "cgcs2000"])
def test_huge_numbers_in_other_coordinate_systems(client: TestClient, coord_sys: str) -> None:
    csv = _events_csv([(1e308, 1e308), (-1e308, 3e7)]).encode()
    refused(client, "/events/import", **_import(csv, coord_sys=coord_sys), status=422)


def test_gbk_events_and_good_files_still_import(client: TestClient,
                                                inside: tuple[float, float]) -> None:
    engine: Engine = client.app.state.engine
    before = table_counts(engine)
    csv = _events_csv([inside, inside])
    r = client.post("/events/import", **_import(csv.encode("gbk")))
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 2
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(inside)},
         "properties": {"category": "sanitation", "description": {"nested": ["井盖"]},
                        "ignored": [1, 2, 3]}}]}
    r = client.post("/events/import",
                    **_import(json.dumps(doc).encode(), "events.geojson"))
    assert r.status_code == 200, r.text
    after = table_counts(engine)
    assert after["events"] == before["events"] + 3
    stored = client.get("/events", params={"limit": 1}).json()[0]
    assert stored["description"] == '{"nested": ["井盖"]}'
    # And a territory upload after all the refusals above.
    r = client.post("/territories", files=layer_files(**good_layers()), data={"name": "ok"})
    assert r.status_code == 201, r.text
    assert client.delete(f"/territories/{r.json()['id']}").status_code == 204


def test_event_import_row_limit(limited: TestClient, inside: tuple[float, float]) -> None:
    csv = _events_csv([inside] * 13).encode()
    refused(limited, "/events/import", **_import(csv),
            says=("more than 12 events", "GRIDMAP_MAX_FEATURES"), status=422)
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(inside)},
         "properties": {"category": "sanitation"}}] * 13}
    refused(limited, "/events/import", **_import(json.dumps(doc).encode(), "e.geojson"),
            says=("13 events", "GRIDMAP_MAX_FEATURES"), status=422)


def test_upload_file_names_that_cannot_be_files(client: TestClient) -> None:
    for name in ("a\x00b.geojson", "x" * 300 + ".geojson", "..", "../", "line\nbreak.gpkg"):
        refused(client, "/territories", files=layer_files(**{name: b"{}"}), status=422)


# ------------------------------------------------------------------------------------------
# The command line: gridmap route (files only) and gridmap import


@pytest.fixture(scope="module")
def grids_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ox, oy = ORIGIN
    grids = gpd.GeoDataFrame({"code": ["440111001001001", "440111001001002"]}, geometry=[
        shapely.box(ox, oy, ox + 0.01, oy + 0.01), shapely.box(ox + 0.01, oy, ox + 0.02,
                                                               oy + 0.01)], crs=4326)
    path = tmp_path_factory.mktemp("grids") / "grids.gpkg"
    grids.to_file(path, layer="grids", engine="pyogrio")
    return path


def route(events: Path, grids: Path, out: Path, *extra: str) -> Any:
    return runner.invoke(cli_app, ["route", str(events), "--grids", str(grids), "--out",
                                   str(out), "--coord-sys", "wgs84", *extra])


def assert_cli_error(result: Any, out: Path | None = None, says: str = "") -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = result.output.strip()
    assert message.startswith("错误 error:") and "\n" not in message, message
    assert says in message, message
    if out is not None:
        assert not out.exists()


CLI_EVENT_CASES: dict[str, tuple[bytes, str, tuple[str, ...], str]] = {
    "empty file": (b"", "e.csv", (), "empty"),
    "header only": (b"lon,lat\n", "e.csv", (), "no events"),
    "one column": (b"address\nsomewhere\n", "e.csv", (), "has no column"),
    "missing lat": (b"lon\n113.3\n", "e.csv", (), "--lat"),
    "mixed encodings": ("lon,lat,d\n113.301,23.201,井盖\n".encode()
                        + "113.301,23.201,路灯\n".encode("gbk"), "e.csv", (),
                        "mixes encodings"),
    "gbk as utf-8": ("lon,lat,d\n113.301,23.201,井盖\n".encode("gbk"), "e.csv",
                     ("--encoding", "utf-8"), "is not utf-8"),
    "1e308": (b"lon,lat\n113.301,23.201\n1e308,23.2\n", "e.csv", (), "line"),
    "inf": (b"lon,lat\n113.301,23.201\ninf,23.2\n", "e.csv", (), "3"),
    "nan": (b"lon,lat\nnan,23.201\n", "e.csv", (), "2"),
    "latitude 95": (b"lon,lat\n113.301,95\n", "e.csv", (), ""),
    "truncated geojson": (b'{"type": "FeatureCollection", "features": [{"type": "Fea',
                          "e.geojson", (), "e.geojson"),
    "geojson polygons": (b'{"type": "FeatureCollection", "features": [{"type": "Feature", '
                         b'"geometry": {"type": "Polygon", "coordinates": [[[113.3, 23.2], '
                         b'[113.31, 23.2], [113.31, 23.21], [113.3, 23.2]]]}, '
                         b'"properties": {}}]}', "e.geojson", (), "not points"),
    "geojson null geometry": (b'{"type": "FeatureCollection", "features": [{"type": '
                              b'"Feature", "geometry": null, "properties": {}}]}',
                              "e.geojson", (), "no geometry"),
    "geojson no features": (b'{"type": "FeatureCollection", "features": []}', "e.geojson",
                            (), "no events"),
    "not sqlite": (b"hello", "e.gpkg", (), "not a GeoPackage"),
}


@pytest.mark.parametrize("case", list(CLI_EVENT_CASES))
def test_route_cli_refuses_broken_event_files(grids_gpkg: Path, tmp_path: Path,
                                              case: str) -> None:
    data, name, extra, says = CLI_EVENT_CASES[case]
    events = tmp_path / name
    events.write_bytes(data)
    out = tmp_path / "out.csv"
    assert_cli_error(route(events, grids_gpkg, out, *extra), out, says)


def test_route_cli_refuses_broken_grid_files(grids_gpkg: Path, tmp_path: Path) -> None:
    events = tmp_path / "e.csv"
    events.write_bytes(b"lon,lat\n113.301,23.201\n")
    out = tmp_path / "out.csv"
    whole = grids_gpkg.read_bytes()
    for data, says in ((whole[:len(whole) // 2], "cut short"), (b"", "not a GeoPackage"),
                       (b"garbage" * 100, "not a GeoPackage")):
        broken = tmp_path / "grids.gpkg"
        broken.write_bytes(data)
        assert_cli_error(route(events, broken, out), out, says)
    broken = tmp_path / "grids.geojson"
    broken.write_bytes(b'{"type": "FeatureCollection", "features": [{"type": "Feature", "ge')
    assert_cli_error(route(events, broken, out), out, "grids.geojson")
    # A directory where a file belongs.
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    assert_cli_error(route(folder, grids_gpkg, out), out, "dir.csv")
    # And a good run afterwards.
    result = route(events, grids_gpkg, out)
    assert result.exit_code == 0, result.output
    assert "440111001001001" in out.read_text(encoding="utf-8-sig")


def test_route_cli_refuses_a_grid_of_too_many_vertices(grids_gpkg: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from gis.settings import get_settings

    events = tmp_path / "e.csv"
    events.write_bytes(b"lon,lat\n113.301,23.201\n")
    monkeypatch.setenv("GRIDMAP_MAX_FEATURE_VERTICES", "4")
    get_settings.cache_clear()
    try:
        result = route(events, grids_gpkg, tmp_path / "out.csv")
    finally:
        monkeypatch.delenv("GRIDMAP_MAX_FEATURE_VERTICES")
        get_settings.cache_clear()
    assert_cli_error(result, tmp_path / "out.csv", "GRIDMAP_MAX_FEATURE_VERTICES")


def test_import_cli_refuses_a_zip_bomb_and_stores_nothing(spatialite_url: str,
                                                          tmp_path: Path) -> None:
    engine = make_engine(spatialite_url)
    before = table_counts(engine)
    bomb = tmp_path / "territory.zip"
    bomb.write_bytes(zip_bomb(3, GIB))
    result = runner.invoke(cli_app, ["import", str(bomb), "--database-url", spatialite_url])
    assert_cli_error(result, None, "GRIDMAP_MAX_ZIP_RATIO")
    traversal = tmp_path / "evil.zip"
    traversal.write_bytes(forged_zip(FORGED["parent traversal"][0]))
    assert_cli_error(runner.invoke(cli_app, ["import", str(traversal), "--database-url",
                                             spatialite_url]), None, "outside the archive")
    assert not (tmp_path.parent / "admin_areas.geojson").exists()
    assert table_counts(engine) == before
    engine.dispose()


def test_reader_limits_directly(tmp_path: Path) -> None:
    folder = write_layers(tiny_layers(), tmp_path, "GeoJSON")
    with pytest.raises(LimitExceeded, match="GRIDMAP_MAX_FEATURES") as exc:
        read_territory(folder, limits=ReadLimits(10, 10**6, 10**6, 10, 10, 10))
    assert isinstance(exc.value, LayerError) and exc.value.setting == "GRIDMAP_MAX_FEATURES"
    with pytest.raises(LimitExceeded, match="GRIDMAP_MAX_VERTICES"):
        read_territory(folder, limits=ReadLimits(100, 30, 10**6, 10, 10, 10))
    territory = read_territory(folder, limits=ReadLimits(19, 10**6, 10**6, 10, 10, 10))
    assert sum(territory.counts().values()) == 19
