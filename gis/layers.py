"""Read a territory's layers from files; check, repair and reproject them to the contract."""

from __future__ import annotations

import io
import lzma
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError
from pyproj.exceptions import ProjError

from gis import crs as crsmod
from gis import divisions
from gis.errors import (
    CoordinateError,
    CRSError,
    GridmapError,
    LayerError,
    LimitExceeded,
    gdal_reason,
)
from gis.osm import read_osm
from gis.settings import Settings, get_settings

#: Shapely geometry type ids by family (0 Point ... 7 GeometryCollection).
FAMILIES: dict[str, frozenset[int]] = {
    "point": frozenset({0, 4}),
    "line": frozenset({1, 5}),
    "polygon": frozenset({3, 6}),
}
TYPE_NAMES = {
    0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon",
    4: "MultiPoint", 5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection",
}


#: The optional address of a building or address point (docs/data-format.md, "Addresses"):
#: the whole address as written, and/or its parts — road, house number (门牌号), compound
#: (小区), building number (栋). The geocoder (events.geocode) indexes them.
ADDRESS_FIELDS = ("address", "road", "house_number", "compound", "building_no")


@dataclass(frozen=True)
class LayerSpec:
    """One row of the layer contract (docs/data-format.md)."""

    name: str
    families: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    description: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional


LAYERS: dict[str, LayerSpec] = {
    spec.name: spec
    for spec in (
        LayerSpec("admin_areas", ("polygon",), ("code", "name", "level"),
                  ("parent_code", "kind"), "district, town and village/community boundaries"),
        LayerSpec("roads", ("line",), ("class",), ("name",), "roads with their class"),
        LayerSpec("water", ("line", "polygon"), (), ("name",), "rivers, canals, lakes"),
        LayerSpec("ridges", ("line",), (), ("name",), "ridge lines"),
        LayerSpec("railways", ("line",), (), ("name",), "railway lines"),
        LayerSpec("buildings", ("polygon", "point"), (),
                  ("households", "population", "floors", "height", "use", *ADDRESS_FIELDS),
                  "buildings or address points with household counts (and their address)"),
        LayerSpec("facilities", ("point", "polygon"), ("kind",), ("name",),
                  "schools, hospitals, markets: never a grid of their own"),
        LayerSpec("dedicated_areas", ("polygon",), ("name", "kind"), (),
                  "industrial parks, campuses, scenic areas: dedicated grids"),
        LayerSpec("landuse", ("polygon",), ("use",), ("name",),
                  "land use (residential, commercial, industrial, public, …): which "
                  "footprints without a count hold households"),
    )
}
#: Other names of a layer's required column, taken when the column itself is absent
#: (a land-use file's class is often called ``class``, ``landuse`` or 用地性质).
COLUMN_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "landuse": {"use": ("landuse", "class", "kind", "type", "用地性质", "用地类型", "用途")},
}
REQUIRED_LAYERS = ("admin_areas", "buildings")

#: Accepted spellings of admin levels, mapped to the contract's values.
LEVELS = {
    "district": "district", "county": "district", "区": "district", "县": "district",
    "市辖区": "district", "县级市": "district", "旗": "district",
    "town": "town", "street": "town", "township": "town", "镇": "town", "街道": "town",
    "乡": "town", "苏木": "town",
    "village": "village", "community": "village", "村": "village", "社区": "village",
    "居委会": "village", "村委会": "village", "嘎查": "village",
}
CODE_LENGTH = {lv: n for lv, n in divisions.CODE_LENGTH.items() if lv != "grid"}
KINDS = {"urban": "urban", "rural": "rural", "城镇": "urban", "城市": "urban", "社区": "urban",
         "农村": "rural", "乡村": "rural", "村": "rural"}
#: Chinese urban road classes (GB 50220) mapped to OSM highway values.
ROAD_CLASSES_ZH = {"快速路": "trunk", "主干路": "primary", "次干路": "secondary",
                   "支路": "tertiary", "街坊路": "residential", "小区路": "service",
                   "巷": "service", "胡同": "service", "步行道": "footway"}
USES_ZH = {"住宅": "residential", "居住": "residential", "商业": "commercial",
           "工业": "industrial", "公共": "public", "办公": "commercial"}
#: Land-use classes (GB 50137 names and common OSM values) mapped to the contract's.
LANDUSE_CLASSES = {
    **USES_ZH, "居住用地": "residential", "商住": "mixed", "商住混合": "mixed", "混合": "mixed",
    "商业服务业设施用地": "commercial", "商务": "commercial", "商业用地": "commercial",
    "retail": "commercial", "office": "commercial", "工业用地": "industrial",
    "物流仓储用地": "industrial", "仓储": "industrial", "warehouse": "industrial",
    "port": "industrial", "公共管理与公共服务设施用地": "public", "公共服务": "public",
    "education": "public", "religious": "public", "military": "public",
    "绿地": "green", "绿地与广场用地": "green", "公园": "green", "park": "green",
    "grass": "green", "recreation_ground": "green", "cemetery": "green",
    "农用地": "agricultural", "耕地": "agricultural", "farmland": "agricultural",
    "farmyard": "agricultural", "orchard": "agricultural", "forest": "green",
    "meadow": "green",
}

LON_NAMES = ("lon", "lng", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".csv")
OSM_SUFFIXES = (".pbf", ".osm")
#: Compression methods Python's zipfile unpacks (stored, deflate, bzip2, LZMA).
ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                         zipfile.ZIP_LZMA})
#: A member's unpacked/packed ratio is checked only above this unpacked size (bytes).
ZIP_RATIO_FROM = 2**20


@dataclass(frozen=True)
class ReadLimits:
    """What one upload or file may hold; the ``GRIDMAP_*`` settings of the same names."""

    max_features: int
    max_vertices: int
    max_feature_vertices: int
    max_unzipped_mb: int
    max_zip_ratio: int
    max_zip_members: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ReadLimits:
        s = settings or get_settings()
        return cls(s.max_features, s.max_vertices, s.max_feature_vertices, s.max_unzipped_mb,
                   s.max_zip_ratio, s.max_zip_members)


class Budget:
    """Features and vertices read so far from one upload, checked against :class:`ReadLimits`."""

    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits
        self.features = 0
        self.vertices = 0

    def rows_left(self) -> int:
        """How many more features may be read (read one more to tell "over" from "at")."""
        return max(self.limits.max_features - self.features, 0)

    def add_rows(self, n: int, *, file: str | None = None, layer: str | None = None,
                 what: str = "features") -> None:
        self.features += n
        if self.features > self.limits.max_features:
            raise LimitExceeded(f"the upload holds more than {self.limits.max_features:,} "
                                f"{what}; split it or clip the territory",
                                setting="max_features", limit=self.limits.max_features,
                                file=file, layer=layer)

    def add(self, geoms: np.ndarray, *, file: str | None = None,
            layer: str | None = None) -> None:
        """Count a layer's features and vertices; refuse a feature or an upload over a limit."""
        self.add_rows(len(geoms), file=file, layer=layer)
        counts = shapely.get_num_coordinates(np.asarray(geoms, dtype=object))
        per = self.limits.max_feature_vertices
        over = np.flatnonzero(counts > per)
        if over.size:
            row = int(over[0])
            raise LimitExceeded(
                f"a feature has {int(counts[row]):,} vertices, more than the "
                f"{per:,} one feature may have; simplify it (e.g. QGIS: Vector > Geometry "
                "Tools > Simplify) or split it", setting="max_feature_vertices", limit=per,
                file=file, layer=layer, row=row)
        self.vertices += int(counts.sum())
        if self.vertices > self.limits.max_vertices:
            raise LimitExceeded(f"the upload holds more than {self.limits.max_vertices:,} "
                                "vertices; simplify the geometries or clip the territory",
                                setting="max_vertices", limit=self.limits.max_vertices,
                                file=file, layer=layer)


@dataclass(frozen=True)
class Repair:
    """An invalid geometry that was repaired with ``make_valid``."""

    layer: str
    file: str
    row: int
    reason: str


@dataclass
class Territory:
    """The layers of one territory, checked and in WGS84 (EPSG:4326)."""

    name: str
    layers: dict[str, gpd.GeoDataFrame]
    sources: dict[str, str] = field(default_factory=dict)
    repairs: list[Repair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Feature count of each layer present."""
        return {name: len(gdf) for name, gdf in self.layers.items()}

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Extent of the admin areas in WGS84 (minx, miny, maxx, maxy)."""
        b = self.layers["admin_areas"].total_bounds
        return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))

    @property
    def metric_crs(self) -> CRS:
        """The CGCS2000 3-degree Gauss-Krüger zone of the territory."""
        return crsmod.metric_crs_for(self.bounds)

    def to_metric(self) -> dict[str, gpd.GeoDataFrame]:
        """Every layer reprojected into the territory's metric CRS."""
        target = self.metric_crs
        return {name: gdf.to_crs(target) for name, gdf in self.layers.items()}


# ---------------------------------------------------------------------------
# Finding the layers of a territory


@dataclass(frozen=True)
class _Source:
    layer: str
    path: str          # what GDAL opens
    label: str         # what the user sees in messages
    gdal_layer: str | None = None


def read_territory(
    path: str | Path,
    *,
    field_map: Mapping[str, str] | None = None,
    crs: str | int | Mapping[str, str | int] | None = None,
    encoding: str | None = None,
    limits: ReadLimits | None = None,
) -> Territory:
    """Read, check and reproject every layer of a territory.

    ``path`` is a GeoPackage, a folder (or ``.zip``) of GeoJSON / Shapefile /
    GeoPackage / CSV files named after their layer, or an OpenStreetMap
    ``.osm.pbf`` (alone or in the folder; a layer file beside it replaces the
    same layer taken from the PBF).

    ``field_map`` renames the user's columns to the contract's
    (``{"社区编码": "code"}``; ``{"admin_areas.名称": "name"}`` for one layer only).
    ``crs`` is the coordinate system of the input (anything
    :func:`gis.crs.parse_coord_sys` accepts, e.g. ``"gcj02"``): one for every
    layer, or ``{layer: crs}``. Where given it overrides what a file declares;
    a file that declares nothing needs it. ``encoding`` is the attribute
    encoding of Shapefiles without a ``.cpg`` (e.g. ``"GBK"``). ``limits`` bound
    what the files may hold (default: the ``GRIDMAP_MAX_*`` settings); a .zip is
    checked against them before anything in it is unpacked.

    Raises :class:`LayerError` (file, layer, row and reason; :class:`LimitExceeded`
    over a limit) or :class:`CRSError` / :class:`CoordinateError` on bad input.
    """
    root = Path(path)
    if not root.exists():
        raise LayerError(f"no such file or folder: {root}")
    # A wrong --crs is the user's option, not a file's fault: say so before reading anything.
    for given in (crs.values() if isinstance(crs, Mapping) else [crs]):
        if given is not None:
            crsmod.parse_coord_sys(given)
    budget = Budget(limits or ReadLimits.from_settings())
    with ExitStack() as stack:
        folder = root
        if root.is_file() and root.suffix.lower() == ".zip":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="gridmap-unzip-")))
            unzip(root, folder, budget.limits)
        sources, osm_path, notes = _discover(root, folder)
        layers: dict[str, gpd.GeoDataFrame] = {}
        labels: dict[str, str] = {}
        repairs: list[Repair] = []
        if osm_path is not None:
            osm_label = f"{Path(osm_path).name} (OpenStreetMap)"
            for name, gdf in read_osm(osm_path, notes, budget.limits.max_features).items():
                if name not in sources:
                    budget.add(gdf.geometry.to_numpy(), file=osm_label, layer=name)
                    layers[name] = gdf
                    labels[name] = osm_label
        for name, src in sources.items():
            layers[name] = _read_source(src, encoding, budget)
            labels[name] = src.label
    missing = [name for name in REQUIRED_LAYERS if name not in layers]
    if missing:
        found = ", ".join(sorted(layers)) or "none"
        raise LayerError(
            f"the territory has no {' and no '.join(missing)} layer (found: {found}). "
            "Name the files after their layer (admin_areas.gpkg, buildings.geojson, ...) "
            "or the layers inside a GeoPackage; see docs/data-format.md"
            + "".join(f". Note: {note}" for note in notes),
            file=root.name,
        )
    checked: dict[str, gpd.GeoDataFrame] = {}
    for name in LAYERS:
        if name not in layers:
            continue
        layer_crs = crs.get(name) if isinstance(crs, Mapping) else crs
        checked[name] = check_layer(
            name, layers[name], file=labels[name], field_map=field_map,
            crs=layer_crs, repairs=repairs,
        )
    _check_nesting(checked["admin_areas"], labels["admin_areas"])
    return Territory(root.stem.removesuffix(".osm"), checked, labels, repairs, notes)


# ---------------------------------------------------------------------------
# Archives and containers, checked before they are opened


def _zip_entry_count(path: Path) -> int | None:
    """The member count an archive's end record declares (read before Python parses the
    whole central directory, which a hostile archive can make huge); None if not found."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(size - (22 + 65_535), 0))
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        count = int(struct.unpack("<H", tail[at + 10:at + 12])[0])
        if count != 0xFFFF:
            return count
        loc = tail.rfind(b"PK\x06\x07", 0, at)  # ZIP64 end record locator
        if loc < 0 or loc + 20 > len(tail):
            return None
        offset = int(struct.unpack("<Q", tail[loc + 8:loc + 16])[0])
        if offset + 56 > size:
            return None
        fh.seek(offset)
        record = fh.read(56)
        if record[:4] != b"PK\x06\x06":
            return None
        return int(struct.unpack("<Q", record[32:40])[0])


def _member_path(name: str) -> tuple[str, ...] | None:
    """A member name as path parts inside the archive, or None if it points outside."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        return None
    parts = tuple(p for p in clean.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def unzip(archive: Path, dest: Path, limits: ReadLimits) -> list[str]:
    """Unpack a .zip into ``dest`` after checking it against ``limits``; the member names.

    Refused before anything is unpacked: more members than ``max_zip_members``, declared
    unpacked sizes over ``max_unzipped_mb`` in all, a member over 1 MB that unpacks more
    than ``max_zip_ratio`` times its packed size (a zip bomb), a member named outside the
    archive (``../``, an absolute path), a symbolic link, an encrypted member, an unknown
    compression method. While unpacking, no member may give more bytes than it declares.
    """
    label = archive.name
    declared = _zip_entry_count(archive)
    if declared is not None and declared > limits.max_zip_members:
        raise LimitExceeded(f"the archive has {declared:,} members", setting="max_zip_members",
                            limit=limits.max_zip_members, file=label)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise LayerError(f"cannot be read as a .zip archive: {exc}", file=label) from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and "__MACOSX" not in i.filename]
        if len(infos) > limits.max_zip_members:
            raise LimitExceeded(f"the archive has {len(infos):,} members",
                                setting="max_zip_members", limit=limits.max_zip_members,
                                file=label)
        max_bytes = limits.max_unzipped_mb * 2**20
        total = 0
        seen: set[str] = set()
        plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        for info in infos:
            where = f"{label}/{info.filename}"
            parts = _member_path(info.filename)
            if parts is None:
                raise LayerError("a member's name points outside the archive (../ or an "
                                 "absolute path); nothing was unpacked: make the archive "
                                 "again from the folder of layer files", file=where)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise LayerError("a member is a symbolic link; archives may hold only plain "
                                 "files: make the archive again without links", file=where)
            if info.flag_bits & 0x1:
                raise LayerError("a member is encrypted; upload the archive without a "
                                 "password", file=where)
            if info.compress_type not in ZIP_METHODS:
                raise LayerError(f"a member is packed with compression method "
                                 f"{info.compress_type}, which cannot be unpacked; use "
                                 "deflate (the usual .zip)", file=where)
            key = "/".join(parts).lower()
            if key in seen:
                raise LayerError("the archive holds this member twice; keep one",
                                 file=where)
            seen.add(key)
            total += info.file_size
            if total > max_bytes:
                raise LimitExceeded(f"the archive unpacks to more than "
                                    f"{limits.max_unzipped_mb:,} MB (declared sizes)",
                                    setting="max_unzipped_mb", limit=limits.max_unzipped_mb,
                                    file=label)
            if info.file_size > ZIP_RATIO_FROM and \
                    info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
                ratio = info.file_size / max(info.compress_size, 1)
                raise LimitExceeded(
                    f"a member unpacks {ratio:,.0f} times its packed size "
                    f"({info.compress_size:,} to {info.file_size:,} bytes): a zip bomb, or "
                    "data that is mostly padding", setting="max_zip_ratio",
                    limit=limits.max_zip_ratio, file=where)
            plan.append((info, parts))
        for info, parts in plan:
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(2**20):
                        written += len(chunk)
                        if written > info.file_size:
                            raise LayerError("a member unpacks to more bytes than the archive "
                                             "declares; the archive is damaged or forged",
                                             file=f"{label}/{info.filename}")
                        out.write(chunk)
            except LayerError:
                raise
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                    RuntimeError, NotImplementedError, struct.error, zlib.error,
                    lzma.LZMAError) as exc:
                raise LayerError(f"a member cannot be unpacked ({exc}); the archive is "
                                 "damaged", file=f"{label}/{info.filename}") from exc
        return ["/".join(parts) for _, parts in plan]


_CJK = re.compile("[^\x00-\x7f\u2000-\u206f\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def decode_text(raw: bytes, encoding: str | None, label: str,
                option: str = "--encoding") -> str:
    """A text file's bytes as text: in ``encoding`` if given, else UTF-8 (with or without a
    BOM) or GB18030/GBK. A file of UTF-8 lines with some GBK ones (two files pasted together,
    a line edited in another editor) is refused naming a line of each rather than read as
    mojibake: it is taken as mixed when the lines that are UTF-8 Chinese are as many as the
    others, or at least 3 and 1% of them (GBK text is valid UTF-8 only by rare accident)."""
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError as exc:
            raise GridmapError(f"unknown encoding {encoding!r} (e.g. utf-8, gbk)") from exc
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise LayerError(f"is not {encoding} text: byte {exc.start:,} (line {line}) cannot "
                             f"be decoded; say which encoding the file is in with {option} "
                             "(utf-8, gbk)", file=label) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    utf8_lines: list[int] = []
    other_lines: list[int] = []
    for number, row in enumerate(raw.splitlines(), start=1):
        if row.isascii():
            continue
        try:
            text = row.decode("utf-8")
        except UnicodeDecodeError:
            other_lines.append(number)
            continue
        if not _CJK.search(text):
            utf8_lines.append(number)
    n_utf8, n_other = len(utf8_lines), len(other_lines)
    if n_utf8 and n_other and (n_utf8 >= n_other or n_utf8 >= max(3, n_other // 100)):
        raise LayerError(f"mixes encodings: line {utf8_lines[0]} is UTF-8 but line "
                         f"{other_lines[0]} is not (GBK?), {n_other:,} such lines; save the "
                         "whole file in one encoding (UTF-8)", file=label)
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise LayerError(f"is neither UTF-8 ({utf8_error.reason} at byte {utf8_error.start:,}) "
                         f"nor GBK/GB18030 text ({exc.reason} at byte {exc.start:,}); say which "
                         f"encoding the file is in with {option}", file=label) from exc


def check_geopackage(path: Path, label: str) -> None:
    """Refuse a .gpkg that is not an SQLite database, or shorter than its header says."""
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
            size = fh.seek(0, 2)
    except OSError as exc:
        raise LayerError(f"cannot be read: {exc}", file=label) from exc
    if not header.startswith(b"SQLite format 3\x00"):
        raise LayerError("is not a GeoPackage: a GeoPackage is an SQLite database file, and "
                         "this file does not start like one; export the layers again as "
                         "GeoPackage", file=label)
    if len(header) < 100:
        raise LayerError("is cut short: the GeoPackage ends inside its header; upload the "
                         "whole file", file=label)
    page_size = int(struct.unpack(">H", header[16:18])[0])
    page_size = 65_536 if page_size == 1 else page_size
    pages, changed, valid_for = struct.unpack(">I", header[28:32])[0], \
        struct.unpack(">I", header[24:28])[0], struct.unpack(">I", header[92:96])[0]
    if changed == valid_for and pages and size < page_size * pages:
        raise LayerError(f"is cut short: {size:,} bytes of the {page_size * pages:,} its "
                         "header declares (an interrupted copy or upload); upload the whole "
                         "file", file=label)


def _check_shapefile(path: Path, label: str) -> None:
    """A Shapefile needs its .shx (index) and .dbf (attributes) beside the .shp, and the
    .dbf must hold what its header declares, one record per feature of the .shx: GDAL reads
    a cut .dbf as missing values, which would lose households without a word."""
    siblings = {p.name.lower(): p for p in path.parent.iterdir()}
    stem = path.name[: -len(".shp")].lower()
    for ext, what in ((".shx", "index"), (".dbf", "attribute table")):
        if f"{stem}{ext}" not in siblings:
            raise LayerError(
                f"the Shapefile has no {ext} file (its {what}); a Shapefile is several files: "
                "give the .shp, .shx, .dbf, .prj (and .cpg) together, e.g. zipped",
                file=label)
    dbf, shx = siblings[f"{stem}.dbf"], siblings[f"{stem}.shx"]
    with dbf.open("rb") as fh:
        header = fh.read(12)
        size = fh.seek(0, 2)
    if len(header) < 12:
        raise LayerError(f"the Shapefile's {dbf.name} is cut short ({size} bytes); give the "
                         "whole .dbf", file=label)
    records, header_len, record_len = struct.unpack("<IHH", header[4:12])
    if size < header_len + records * record_len:
        raise LayerError(f"the Shapefile's {dbf.name} is cut short: {size:,} bytes of the "
                         f"{header_len + records * record_len:,} its header declares for "
                         f"{records:,} records; give the whole .dbf", file=label)
    features = (shx.stat().st_size - 100) // 8
    if features >= 0 and records != features:
        raise LayerError(f"the Shapefile's {dbf.name} holds {records:,} records but its "
                         f"{shx.name} {features:,} features; the files do not belong "
                         "together or one is damaged: export the layer again", file=label)


def _discover(root: Path, folder: Path) -> tuple[dict[str, _Source], str | None, list[str]]:
    """Map layer names to the files holding them; find an OSM extract. ``folder`` is where
    a .zip ``root`` was unpacked (else ``root`` itself)."""
    notes: list[str] = []
    sources: dict[str, _Source] = {}
    osm: str | None = None

    def add(src: _Source) -> None:
        if src.layer in sources:
            raise LayerError(
                f"layer {src.layer} is given twice: {sources[src.layer].label} and {src.label}; "
                "keep one",
                layer=src.layer,
            )
        sources[src.layer] = src

    is_zip = folder != root
    if root.is_dir():
        entries = [(p, p.name) for p in sorted(root.iterdir()) if p.is_file()]
    elif is_zip:
        entries = [(p, p.relative_to(folder).as_posix())
                   for p in sorted(folder.rglob("*")) if p.is_file()]
    else:
        entries = [(root, root.name)]
    single = not root.is_dir() and not is_zip

    for file_path, label in entries:
        gdal_path = str(file_path)
        lower = file_path.name.lower()
        stem = lower.split(".")[0]
        if lower.endswith(OSM_SUFFIXES):
            if osm is not None:
                raise LayerError(f"two OpenStreetMap extracts: {osm} and {label}; keep one")
            osm = gdal_path
        elif lower.endswith(".gpkg") and (single or stem not in LAYERS):
            # A GeoPackage given alone is the whole territory, whatever its name.
            check_geopackage(file_path, label)
            try:
                listed = pyogrio.list_layers(gdal_path)
            except Exception as exc:  # not a GeoPackage at all (GDAL says why)
                raise LayerError(f"cannot be read: {gdal_reason(exc, gdal_path, label)}",
                                 file=label) from exc
            for layer_name, _ in listed:
                if str(layer_name) in LAYERS:
                    add(_Source(str(layer_name), gdal_path, f"{label}:{layer_name}",
                                str(layer_name)))
                else:
                    notes.append(f"ignored layer {layer_name} in {label}: not in the contract")
        elif lower.endswith(VECTOR_SUFFIXES):
            if stem in LAYERS and not single:
                if lower.endswith(".gpkg"):
                    check_geopackage(file_path, label)
                elif lower.endswith(".shp"):
                    _check_shapefile(file_path, label)
                add(_Source(stem, gdal_path, label))
            elif single:
                raise LayerError(
                    f"a single {Path(lower).suffix} file is one layer, not a territory: put it "
                    "in a folder with the others, each named after its layer "
                    "(admin_areas, buildings, roads, ...)",
                    file=label,
                )
            else:
                notes.append(f"ignored {label}: its name is not a layer of the contract")
        elif single:
            raise LayerError(
                "unsupported file type; give a GeoPackage, a folder or .zip of layer files, "
                "or an .osm.pbf",
                file=label,
            )
    return sources, osm, notes


def _read_source(src: _Source, encoding: str | None, budget: Budget) -> gpd.GeoDataFrame:
    if src.path.lower().endswith(".csv"):
        gdf = _read_layer_csv(src, budget.rows_left() + 1)
    else:
        kwargs: dict[str, Any] = {"max_features": budget.rows_left() + 1}
        if src.gdal_layer:
            kwargs["layer"] = src.gdal_layer
        if encoding and src.path.lower().endswith(".shp") and not _has_cpg(src):
            kwargs["encoding"] = encoding  # a .cpg says the encoding itself: it wins
        try:
            gdf = pyogrio.read_dataframe(src.path, **kwargs)
        except Exception as exc:  # GDAL's own message says what is broken
            raise LayerError(f"cannot be read: {gdal_reason(exc, src.path, src.label)}",
                             file=src.label, layer=src.layer) from exc
        gdf = gdf.reset_index(drop=True)
    budget.add(gdf.geometry.to_numpy(), file=src.label, layer=src.layer)
    return gdf


def _has_cpg(src: _Source) -> bool:
    """Whether the Shapefile has a .cpg (code page) file beside it."""
    shp = Path(src.path)
    stem = shp.name[: -len(".shp")].lower()
    return any(p.name.lower() == f"{stem}.cpg" for p in shp.parent.iterdir())


def _read_layer_csv(src: _Source, max_rows: int) -> gpd.GeoDataFrame:
    """A CSV of points with lon/lat columns; it has no CRS of its own."""
    text = decode_text(Path(src.path).read_bytes(), None, src.label)
    try:
        df = pd.read_csv(io.StringIO(text), nrows=max_rows)
    except Exception as exc:
        raise LayerError(f"cannot be read as CSV: {exc}", file=src.label,
                         layer=src.layer) from exc
    cols = {str(c).strip().lower(): c for c in df.columns}
    lon = next((cols[n] for n in LON_NAMES if n in cols), None)
    lat = next((cols[n] for n in LAT_NAMES if n in cols), None)
    if lon is None or lat is None:
        raise LayerError(
            f"a CSV needs lon and lat columns (found: {', '.join(map(str, df.columns))})",
            file=src.label, layer=src.layer,
        )
    x = pd.to_numeric(df[lon], errors="coerce").to_numpy(float)
    y = pd.to_numeric(df[lat], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size:
        raise LayerError(f"lon/lat is missing or not a number ({bad.size} rows)",
                         file=src.label, layer=src.layer, row=int(bad[0]))
    geometry = shapely.points(x, y)
    return gpd.GeoDataFrame(df.drop(columns=[lon, lat]), geometry=geometry, crs=None)


# ---------------------------------------------------------------------------
# Checking one layer against the contract


def check_layer(
    name: str,
    gdf: gpd.GeoDataFrame,
    *,
    file: str = "",
    field_map: Mapping[str, str] | None = None,
    crs: str | int | None = None,
    repairs: list[Repair] | None = None,
) -> gpd.GeoDataFrame:
    """Check one layer; return it repaired, typed and in WGS84.

    Rows keep their order, so row numbers in messages are feature indexes
    (0-based) of the file.
    """
    spec = LAYERS[name]
    gdf = _apply_field_map(name, gdf, field_map)
    gdf = gdf.reset_index(drop=True)
    # Shapefiles cut field names at 10 characters (parent_code -> parent_cod).
    gdf = gdf.rename(columns={f[:10]: f for f in spec.fields
                              if len(f) > 10 and f not in gdf.columns and f[:10] in gdf.columns})
    if len(gdf) == 0:
        raise LayerError("the layer is empty", file=file, layer=name)
    for column, others in COLUMN_ALIASES.get(name, {}).items():
        alias = next((o for o in others if o in gdf.columns), None)
        if column not in gdf.columns and alias is not None:
            gdf = gdf.rename(columns={alias: column})
    missing = [c for c in spec.required if c not in gdf.columns]
    if missing:
        raise LayerError(
            f"missing column(s) {', '.join(missing)} (found: "
            f"{', '.join(str(c) for c in gdf.columns if c != 'geometry') or 'none'}); "
            "rename yours with a field map, e.g. --field-map 社区编码=code",
            file=file, layer=name,
        )
    geoms = _check_geometry(spec, gdf.geometry.to_numpy(), file, repairs)
    gdf = gpd.GeoDataFrame(
        gdf[[c for c in spec.fields if c in gdf.columns]].copy(),
        geometry=geoms, crs=gdf.crs,
    )
    for col in spec.optional:
        if col not in gdf.columns:
            gdf[col] = None
    gdf = gdf[[*spec.fields, "geometry"]]
    gdf = _to_wgs84(name, gdf, file, crs)
    fixer = _FIELD_CHECKS.get(name)
    if fixer is not None:
        gdf = fixer(gdf, file)
    return gdf


def _apply_field_map(
    name: str, gdf: gpd.GeoDataFrame, field_map: Mapping[str, str] | None
) -> gpd.GeoDataFrame:
    if not field_map:
        return gdf
    renames: dict[str, str] = {}
    for source, target in field_map.items():
        layer, _, column = source.rpartition(".")
        if layer and layer in LAYERS:
            if layer == name:
                renames[column] = target
        else:
            renames.setdefault(source, target)
    present = {k: v for k, v in renames.items() if k in gdf.columns}
    if present:
        gdf = gdf.drop(columns=[v for v in present.values() if v in gdf.columns])
        gdf = gdf.rename(columns=present)
    return gdf


def _check_geometry(
    spec: LayerSpec, geoms: np.ndarray, file: str, repairs: list[Repair] | None
) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise LayerError(
            f"empty geometry ({int(empty.sum())} features); remove those features or draw them",
            file=file, layer=spec.name, row=row,
        )
    # GEOS cannot test or repair what has NaN or infinite vertices (it raises): say so first
    # (in slices, so that the vertices are not all copied at once).
    for start in range(0, len(geoms), 100_000):
        coords, owner = shapely.get_coordinates(geoms[start:start + 100_000],
                                                return_index=True)
        not_finite = ~np.isfinite(coords).all(axis=1)
        if not_finite.any():
            at = int(np.flatnonzero(not_finite)[0])
            raise LayerError(
                f"a vertex is not a finite number: ({coords[at, 0]}, {coords[at, 1]}); fix "
                "or remove the feature", file=file, layer=spec.name,
                row=start + int(owner[at]))
    allowed = frozenset().union(*(FAMILIES[f] for f in spec.families))
    type_ids = shapely.get_type_id(geoms)
    wrong = ~np.isin(type_ids, list(allowed))
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise LayerError(
            f"wrong geometry type {TYPE_NAMES.get(int(type_ids[row]), '?')}: "
            f"{spec.name} holds {' or '.join(spec.families)} geometries",
            file=file, layer=spec.name, row=row,
        )
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    if invalid.size:
        reasons = shapely.is_valid_reason(geoms[invalid])
        fixed = shapely.make_valid(geoms[invalid])
        fixed = _keep_family(fixed, shapely.get_type_id(geoms[invalid]))
        still_empty = shapely.is_empty(fixed)
        if still_empty.any():
            row = int(invalid[np.flatnonzero(still_empty)[0]])
            raise LayerError(
                "invalid geometry that collapses to nothing when repaired "
                f"({reasons[np.flatnonzero(still_empty)[0]]})",
                file=file, layer=spec.name, row=row,
            )
        geoms = geoms.copy()
        geoms[invalid] = fixed
        if repairs is not None:
            repairs.extend(
                Repair(spec.name, file, int(r), str(reason))
                for r, reason in zip(invalid, reasons, strict=True)
            )
    return geoms


def _keep_family(fixed: np.ndarray, original_types: np.ndarray) -> np.ndarray:
    """After make_valid, keep only the parts of the original dimension."""
    dims = np.where(np.isin(original_types, [3, 6]), 2, np.where(np.isin(original_types, [1, 5]),
                                                                 1, 0))
    out = fixed.copy()
    type_ids = shapely.get_type_id(fixed)
    mixed = np.flatnonzero(type_ids == 7)
    for i in mixed:  # rare: a handful of collections at most
        parts = shapely.get_parts(fixed[i])
        keep = parts[shapely.get_dimensions(parts) == dims[i]]
        out[i] = shapely.union_all(keep) if keep.size else shapely.Polygon()
    # A polygon with no area becomes a line (a line of one point, a point): nothing is left
    # of the original dimension, which the caller reports as collapsed.
    lower = (type_ids != 7) & (shapely.get_dimensions(fixed) != dims)
    out[lower] = shapely.Polygon()
    return out


def _to_wgs84(name: str, gdf: gpd.GeoDataFrame, file: str, given: str | int | None
              ) -> gpd.GeoDataFrame:
    if given is not None:
        source: Any = crsmod.parse_coord_sys(given)
    elif gdf.crs is not None:
        try:
            source = crsmod.parse_coord_sys(gdf.crs)
        except CRSError as exc:
            raise LayerError(f"the file's coordinate system is not usable: {exc.message}",
                             file=file, layer=name) from exc
    else:
        raise LayerError(
            "no coordinate system: the file declares none; say which with --crs "
            f"{name}=wgs84 (or cgcs2000, gcj02, bd09, EPSG:4547, ...)",
            file=file, layer=name,
        )
    geoms = gdf.geometry.to_numpy()
    what = f"layer {name} ({file}, read as {source.name})"

    def check(values: np.ndarray) -> None:
        bounds = shapely.bounds(values)
        crsmod.check_china(np.concatenate([bounds[:, 0], bounds[:, 2]]),
                           np.concatenate([bounds[:, 1], bounds[:, 3]]), what=what)

    try:
        if source.is_geographic:
            # Swapped axes or metres are plain on the raw values; a datum shift of
            # nonsense (lat 113) would only give a vaguer "cannot be transformed".
            check(geoms)
        out = crsmod.transform_geometries(geoms, source, crsmod.WGS84)
        check(out)
    except (CoordinateError, CRSError) as exc:
        raise LayerError(exc.message, file=file, layer=name) from exc
    except (ProjError, PyprojCRSError) as exc:  # e.g. a local engineering CRS in a .prj
        raise LayerError(
            f"cannot convert from the coordinate system {source.name} to WGS84 ({exc}); "
            f"say which coordinate system the data is in with --crs {name}=...",
            file=file, layer=name,
        ) from exc
    return gpd.GeoDataFrame(gdf.drop(columns="geometry"), geometry=out, crs=crsmod.WGS84)


def _as_text(series: pd.Series) -> pd.Series:
    """Codes and names as stripped strings; numbers like 4401110010.0 lose the '.0'."""
    text = series.astype("string").str.strip()
    text = text.str.replace(r"\.0$", "", regex=True)
    return text.mask(text == "")


def _integer(gdf: gpd.GeoDataFrame, col: str, file: str, layer: str,
             *, required: bool = False) -> pd.Series:
    values = pd.to_numeric(gdf[col], errors="coerce")
    raw_missing = gdf[col].isna()
    not_number = values.isna() & ~raw_missing
    bad = not_number | (values < 0) | (values.notna() & (values % 1 != 0))
    if required:
        bad |= raw_missing
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise LayerError(
            f"{col} must be a whole number >= 0, got {gdf[col].iloc[row]!r}"
            + (" (required for points: an address point has no footprint to estimate from)"
               if required and raw_missing.iloc[row] else ""),
            file=file, layer=layer, row=row,
        )
    return values.astype("Int64")


def _check_admin(gdf: gpd.GeoDataFrame, file: str) -> gpd.GeoDataFrame:
    layer = "admin_areas"
    gdf["code"] = _as_text(gdf["code"])
    gdf["name"] = _as_text(gdf["name"])
    raw_level = _as_text(gdf["level"]).str.lower()
    # An empty level is the one the code's length says (a 9-digit code is a town).
    by_length = gdf["code"].map(lambda c: divisions.level_of(c) if isinstance(c, str) else None)
    by_length = by_length.where(by_length.isin(list(CODE_LENGTH)), None)
    gdf["level"] = raw_level.map(lambda v: LEVELS.get(v) if isinstance(v, str) else None)
    gdf["level"] = gdf["level"].where(raw_level.notna(), by_length)
    for col, what in (("code", "a code"), ("name", "a name")):
        bad = gdf[col].isna().to_numpy()
        if bad.any():
            raise LayerError(f"every area needs {what}", file=file, layer=layer,
                             row=int(np.flatnonzero(bad)[0]))
    bad_level = gdf["level"].isna().to_numpy()
    if bad_level.any():
        row = int(np.flatnonzero(bad_level)[0])
        if pd.isna(raw_level.iloc[row]):
            raise LayerError(
                "every area needs a level (district, town or village), or a 6-, 9- or "
                "12-digit statistical code that says it", file=file, layer=layer, row=row)
        raise LayerError(
            f"unknown level {raw_level.iloc[row]!r}: use district, town or village "
            "(区/县, 镇/街道/乡, 村/社区)",
            file=file, layer=layer, row=row,
        )
    expected = gdf["level"].map(CODE_LENGTH)
    ok = gdf["code"].str.fullmatch(r"\d+").fillna(False) & (gdf["code"].str.len() == expected)
    if not ok.all():
        row = int(np.flatnonzero(~ok.to_numpy())[0])
        raise LayerError(
            f"code {gdf['code'].iloc[row]!r} is not a {expected.iloc[row]}-digit statistical "
            f"division code for a {gdf['level'].iloc[row]}",
            file=file, layer=layer, row=row,
        )
    dup = gdf["code"].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise LayerError(f"code {gdf['code'].iloc[row]} appears twice", file=file, layer=layer,
                         row=row)
    derived = pd.Series([divisions.parent_code(c) for c in gdf["code"]], index=gdf.index,
                        dtype="string")
    given = _as_text(gdf["parent_code"])
    mismatch = given.notna() & derived.notna() & (given != derived)
    if mismatch.any():
        row = int(np.flatnonzero(mismatch.to_numpy())[0])
        raise LayerError(
            f"parent_code {given.iloc[row]} does not match code {gdf['code'].iloc[row]} "
            f"(a statistical code starts with its parent's: expected {derived.iloc[row]})",
            file=file, layer=layer, row=row,
        )
    gdf["parent_code"] = given.fillna(derived)
    raw_kind = _as_text(gdf["kind"]).str.lower()
    kind = raw_kind.map(lambda v: KINDS.get(v) if isinstance(v, str) else None)
    unknown = raw_kind.notna() & kind.isna()
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise LayerError(f"unknown kind {raw_kind.iloc[row]!r}: use urban or rural",
                         file=file, layer=layer, row=row)
    # NBS village codes: serial 001-199 is a residents' committee (urban),
    # 200-399 a villagers' committee (rural).
    serial = pd.to_numeric(gdf["code"].str[-3:], errors="coerce")
    by_code = np.where(serial >= 200, "rural", "urban")
    is_village = gdf["level"] == "village"
    gdf["kind"] = kind.where(~is_village | kind.notna(), pd.Series(by_code, index=gdf.index))
    gdf.loc[~is_village, "kind"] = None
    return gdf


def _check_nesting(gdf: gpd.GeoDataFrame, file: str) -> None:
    """A parent named by parent_code must be in the layer when its level is."""
    codes = set(gdf["code"])
    levels_present = set(gdf["level"])
    parent_level = {"town": "district", "village": "town"}
    for row, (lv, parent) in enumerate(zip(gdf["level"], gdf["parent_code"], strict=True)):
        pl = parent_level.get(lv)
        if pl in levels_present and parent not in codes:
            raise LayerError(
                f"parent {parent} of this {lv} is not among the {pl}s of the layer",
                file=file, layer="admin_areas", row=row,
            )


def _check_roads(gdf: gpd.GeoDataFrame, file: str) -> gpd.GeoDataFrame:
    cls = _as_text(gdf["class"])
    if cls.isna().any():
        row = int(np.flatnonzero(cls.isna().to_numpy())[0])
        raise LayerError("every road needs a class (primary, residential, 主干路, 巷, ...)",
                         file=file, layer="roads", row=row)
    gdf["class"] = cls.map(lambda v: ROAD_CLASSES_ZH.get(v, v.lower()))
    gdf["name"] = _as_text(gdf["name"])
    return gdf


def _check_named(gdf: gpd.GeoDataFrame, file: str) -> gpd.GeoDataFrame:
    gdf["name"] = _as_text(gdf["name"])
    return gdf


def _check_buildings(gdf: gpd.GeoDataFrame, file: str) -> gpd.GeoDataFrame:
    is_point = np.isin(shapely.get_type_id(gdf.geometry.to_numpy()), [0, 4])
    gdf["households"] = _integer(gdf, "households", file, "buildings")
    missing_points = is_point & gdf["households"].isna().to_numpy()
    if missing_points.any():
        row = int(np.flatnonzero(missing_points)[0])
        raise LayerError(
            "households is missing for an address point (only building footprints can have "
            "their households estimated)",
            file=file, layer="buildings", row=row,
        )
    gdf["population"] = _integer(gdf, "population", file, "buildings")
    gdf["floors"] = _integer(gdf, "floors", file, "buildings")
    height = pd.to_numeric(gdf["height"], errors="coerce")
    gdf["height"] = height.where(height > 0)
    use = _as_text(gdf["use"])
    gdf["use"] = use.map(lambda v: USES_ZH.get(v, v.lower()) if isinstance(v, str) else None)
    for col in ADDRESS_FIELDS:
        gdf[col] = _address_text(gdf[col])
    return gdf


def _address_text(values: pd.Series) -> pd.Series:
    """An address column as stripped text, numbers (a house number read as 88.0) as integers,
    blanks as missing."""
    def one(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        text = str(v).strip()
        return text[:200] or None
    return values.astype(object).map(one)


def _check_kinded(layer: str) -> Any:
    def check(gdf: gpd.GeoDataFrame, file: str) -> gpd.GeoDataFrame:
        kind = _as_text(gdf["kind"])
        if kind.isna().any():
            row = int(np.flatnonzero(kind.isna().to_numpy())[0])
            raise LayerError("every feature needs a kind", file=file, layer=layer, row=row)
        gdf["kind"] = kind.str.lower()
        gdf["name"] = _as_text(gdf["name"])
        return gdf
    return check


def _check_landuse(gdf: gpd.GeoDataFrame, file: str) -> gpd.GeoDataFrame:
    use = _as_text(gdf["use"])
    if use.isna().any():
        row = int(np.flatnonzero(use.isna().to_numpy())[0])
        raise LayerError("every land-use area needs its use (residential, commercial, "
                         "industrial, public, green, 居住, 商业, …)", file=file,
                         layer="landuse", row=row)
    gdf["use"] = use.map(lambda v: LANDUSE_CLASSES.get(v, LANDUSE_CLASSES.get(v.lower(),
                                                                              v.lower())))
    gdf["name"] = _as_text(gdf["name"])
    return gdf


_FIELD_CHECKS = {
    "admin_areas": _check_admin,
    "roads": _check_roads,
    "water": _check_named,
    "ridges": _check_named,
    "railways": _check_named,
    "buildings": _check_buildings,
    "facilities": _check_kinded("facilities"),
    "dedicated_areas": _check_kinded("dedicated_areas"),
    "landuse": _check_landuse,
}


def parse_field_map(items: list[str] | None) -> dict[str, str]:
    """``["社区编码=code", "buildings.户数=households"]`` -> a field map."""
    out: dict[str, str] = {}
    for item in items or []:
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise GridmapError(f"field map entry {item!r} must look like SOURCE=TARGET")
        out[source.strip()] = target.strip()
    return out


def parse_crs_option(items: list[str] | None) -> str | dict[str, str] | None:
    """``["gcj02"]`` (every layer) or ``["buildings=gcj02", ...]`` (per layer)."""
    if not items:
        return None
    per_layer: dict[str, str] = {}
    overall: str | None = None
    for item in items:
        layer, sep, value = item.partition("=")
        if sep and re.fullmatch(r"[a-z_]+", layer) and layer in LAYERS:
            per_layer[layer] = value
        else:
            overall = item
    if overall is not None and not per_layer:
        return overall
    if overall is not None:
        return {**dict.fromkeys(LAYERS, overall), **per_layer}
    return per_layer


# ---------------------------------------------------------------------------
# Preview: what an upload holds, before it is checked (the workspace's upload form)

#: Column names people give the contract's fields (lower case; Chinese names are matched
#: when the column contains them), in order of preference: the reader's suggestions.
FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "code": ("code", "adcode", "xzqdm", "dm", "区划代码", "行政区划代码", "编码", "代码", "编号"),
    "name": ("name", "mc", "xzqmc", "名称", "名字", "村名", "社区名"),
    "level": ("level", "jb", "级别", "层级", "行政级别"),
    "parent_code": ("parent_code", "parent_cod", "parent", "pcode", "sjdm", "上级编码",
                    "上级代码", "父级编码", "所属编码"),
    "kind": ("kind", "type", "lx", "城乡", "类型", "类别", "性质"),
    "class": ("class", "fclass", "highway", "dj", "道路等级", "等级", "级别"),
    "households": ("households", "hs", "hh", "户数", "住户数", "户"),
    "population": ("population", "pop", "rk", "人口", "人数"),
    "floors": ("floors", "cs", "层数", "楼层"),
    "height": ("height", "gd", "高度"),
    "use": ("use", "landuse", "yt", "用途", "用地性质", "用地类型", "性质"),
    "address": ("address", "addr", "dz", "地址", "门牌地址", "标准地址"),
    "road": ("road", "street", "addr:street", "jlx", "街路巷", "道路名称", "路名"),
    "house_number": ("house_number", "housenumber", "addr:housenumber", "mph", "门牌号",
                     "门牌"),
    "compound": ("compound", "xq", "小区", "小区名称"),
    "building_no": ("building_no", "ldh", "楼栋号", "栋号", "楼号"),
}
#: Values shown per column in a preview.
SAMPLE_VALUES = 3


def _suggest(spec: LayerSpec, columns: list[str]) -> dict[str, str]:
    """The contract fields missing from ``columns`` -> the column most likely to hold each
    (each column suggested at most once)."""
    out: dict[str, str] = {}
    taken = {c for c in columns if c in spec.fields}
    for fname in spec.fields:
        if fname in columns:
            continue
        for word in FIELD_SYNONYMS.get(fname, ()):
            ascii_word = word.isascii()
            hit = next((c for c in columns if c not in taken and (
                c.strip().lower() == word if ascii_word else word in c)), None)
            if hit is not None:
                out[fname] = hit
                taken.add(hit)
                break
    return out


def _samples(frame: pd.DataFrame) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for col in frame.columns:
        if col == "geometry":
            continue
        values = [str(v) for v in frame[col].tolist() if v is not None and str(v) != "nan"]
        out[str(col)] = [v[:60] for v in values[:SAMPLE_VALUES]]
    return out


def _preview_source(src: _Source, encoding: str | None, max_rows: int) -> dict[str, Any]:
    """One layer of an upload: its columns with a few values, count, CRS, geometry."""
    spec = LAYERS[src.layer]
    if src.path.lower().endswith(".csv"):
        text = decode_text(Path(src.path).read_bytes(), None, src.label)
        try:
            frame = pd.read_csv(io.StringIO(text), nrows=max_rows)
        except Exception as exc:
            raise LayerError(f"cannot be read as CSV: {exc}", file=src.label,
                             layer=src.layer) from exc
        count, declared, geometry = len(frame), None, "Point (lon/lat)"
        cpg = True
    else:
        kwargs: dict[str, Any] = {}
        if src.gdal_layer:
            kwargs["layer"] = src.gdal_layer
        cpg = not src.path.lower().endswith(".shp") or _has_cpg(src)
        if encoding and not cpg:
            kwargs["encoding"] = encoding
        try:
            info = pyogrio.read_info(src.path, force_feature_count=True, **kwargs)
            frame = pyogrio.read_dataframe(src.path, max_features=SAMPLE_VALUES,
                                           read_geometry=False, **kwargs)
        except Exception as exc:
            raise LayerError(f"cannot be read: {gdal_reason(exc, src.path, src.label)}",
                             file=src.label, layer=src.layer) from exc
        count, declared, geometry = int(info["features"]), info["crs"], info["geometry_type"]
    columns = [str(c) for c in frame.columns if c != "geometry"]
    return {
        "layer": src.layer, "file": src.label, "features": count, "crs": declared,
        "geometry": geometry, "columns": columns, "samples": _samples(frame.head(SAMPLE_VALUES)),
        "required": list(spec.required), "optional": list(spec.optional),
        "missing": [f for f in spec.required if f not in columns and not any(
            o in columns for o in COLUMN_ALIASES.get(src.layer, {}).get(f, ()))],
        "suggested": _suggest(spec, columns),
        # A Shapefile without a .cpg needs its encoding named (GBK for most Chinese data).
        "needs_encoding": not cpg,
        "needs_crs": declared is None,
    }


def preview_territory(path: str | Path, *, encoding: str | None = None,
                      limits: ReadLimits | None = None) -> dict[str, Any]:
    """What an upload holds, read before any check: the layers found (file, feature count,
    declared CRS, geometry type, columns with a few values, the contract's fields missing
    and the reader's suggested field map), the layers the contract needs and are absent,
    and what was ignored. The same discovery as :func:`read_territory` (a bad archive or
    an unreadable file is the same :class:`LayerError`)."""
    root = Path(path)
    limits = limits or ReadLimits.from_settings()
    with ExitStack() as stack:
        folder = root
        if root.is_file() and root.suffix.lower() == ".zip":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="gridmap-unzip-")))
            unzip(root, folder, limits)
        sources, osm_path, notes = _discover(root, folder)
        layers = [_preview_source(src, encoding, limits.max_features)
                  for name, src in sources.items()]
        if osm_path is not None:
            osm_label = f"{Path(osm_path).name} (OpenStreetMap)"
            for name, gdf in read_osm(osm_path, notes, limits.max_features).items():
                if name not in sources:
                    layers.append({
                        "layer": name, "file": osm_label, "features": len(gdf),
                        "crs": "EPSG:4326", "geometry": ", ".join(sorted(
                            set(gdf.geometry.geom_type.dropna()))),
                        "columns": [c for c in gdf.columns if c != "geometry"],
                        "samples": _samples(gdf.head(SAMPLE_VALUES)),
                        "required": list(LAYERS[name].required),
                        "optional": list(LAYERS[name].optional), "missing": [],
                        "suggested": {}, "needs_encoding": False, "needs_crs": False})
    order = list(LAYERS)
    layers.sort(key=lambda entry: order.index(entry["layer"]))
    found = {entry["layer"] for entry in layers}
    return {"layers": layers, "missing_layers": [n for n in REQUIRED_LAYERS if n not in found],
            "notes": notes,
            "contract": {n: {"required": list(s.required), "optional": list(s.optional),
                             "description": s.description} for n, s in LAYERS.items()}}
