"""Reading a layer from a GDAL vector file (GeoPackage, GeoJSON, Shapefile), checked first."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio

from gis.errors import LayerError, gdal_reason
from gis.io.csv import _read_layer_csv
from gis.io.limits import Budget

#: Files read as one layer each (a .csv by gis.io.csv, the others by GDAL).
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".csv")


@dataclass(frozen=True)
class _Source:
    """Where one layer of an upload is: the file (and its layer inside a GeoPackage)."""

    layer: str
    path: str          # what GDAL opens
    label: str         # what the user sees in messages
    gdal_layer: str | None = None


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


def _read_source(src: _Source, encoding: str | None, budget: Budget) -> gpd.GeoDataFrame:
    if src.path.lower().endswith(".csv"):
        gdf = _read_layer_csv(src.path, src.label, src.layer, budget.rows_left() + 1)
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
