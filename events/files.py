"""Event and grid files for routing without a database: read grids and events, write results."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from numpy.typing import NDArray

from events.router import GridRouter, Routed
from gis import crs as crsmod
from gis.errors import CRSError, GridmapError, LayerError
from gis.layers import LAT_NAMES, LON_NAMES

__all__ = ["ADDED_COLUMNS", "EventTable", "read_events", "read_grids", "routed_table",
           "write_routed"]

#: Columns the router adds to every event, in this order.
ADDED_COLUMNS = ("grid_code", "grid_name", "village_code", "village_name", "town_code",
                 "town_name", "distance_m", "flags", "other_grid")
CSV_SUFFIXES = (".csv", ".txt")
GEOJSON_SUFFIXES = (".geojson", ".json")
#: Encodings tried in turn when none is given: UTF-8 (with or without a BOM), then GB18030
#: (a superset of GBK and GB2312, what Excel on a Chinese Windows writes).
ENCODINGS = ("utf-8-sig", "gb18030")


# ================================================================================================
# Grids


def read_grids(path: Path, *, layer: str | None = None, code_field: str = "code",
               field_map: Mapping[str, str] | None = None,
               crs: str | None = None) -> gpd.GeoDataFrame:
    """Read a polygon layer of grids and name its code column ``code``.

    ``code_field`` names the column holding the grid code (e.g. ``网格编号``); ``field_map``
    renames other columns (``{"所属组织": "name"}``); ``crs`` is the layer's coordinate system
    when the file declares none (or declares it wrongly). A file with several layers needs
    ``layer`` unless one is called ``grids``.
    """
    label = str(path)
    if not path.exists():
        raise LayerError("no such file", file=label)
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:
        raise LayerError(f"cannot be read: {exc}", file=label) from exc
    if layer is None:
        if len(layers) == 1:
            layer = layers[0]
        elif "grids" in layers:
            layer = "grids"
        else:
            raise LayerError(f"holds several layers ({', '.join(layers)}); say which holds "
                             "the grids with --layer", file=label)
    elif layer not in layers:
        raise LayerError(f"has no layer {layer!r} (layers: {', '.join(layers)})", file=label)
    try:
        grids = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:
        raise LayerError(f"cannot be read: {exc}", file=label, layer=layer) from exc
    renames = dict(field_map or {})
    if code_field != "code":
        renames[code_field] = "code"
    missing = [src for src in renames if src not in grids.columns]
    if missing or ("code" not in grids.columns and "code" not in renames.values()):
        fields = ", ".join(str(c) for c in grids.columns if c != grids.geometry.name)
        wanted = missing[0] if missing else "code"
        raise LayerError(f"has no field {wanted!r} (fields: {fields}); say which field holds "
                         "the grid code with --code-field", file=label, layer=layer)
    replaced = [target for target in renames.values() if target in grids.columns
                and target not in renames]
    grids = grids.drop(columns=replaced).rename(columns=renames)
    if crs is not None:
        try:
            given = crsmod.parse_coord_sys(crs)
        except CRSError as exc:
            raise LayerError(exc.message, file=label, layer=layer) from exc
        if given.crs is None:
            # Grids drawn on an AMap/Baidu base map: convert their vertices.
            geoms = crsmod.transform_geometries(grids.geometry.to_numpy(), given, crsmod.WGS84)
            grids = gpd.GeoDataFrame(grids.drop(columns=grids.geometry.name), geometry=geoms,
                                     crs=crsmod.WGS84)
        else:
            grids = grids.set_crs(given.crs, allow_override=True)
    elif grids.crs is None:
        raise LayerError("declares no coordinate system; say which with --grids-crs (wgs84, "
                         "cgcs2000, gcj02, bd09, 2000sz, EPSG:4547, ...)",
                         file=label, layer=layer)
    return grids


# ================================================================================================
# Events


@dataclass
class EventTable:
    """Events as read: every column kept as text, and the raw coordinates."""

    frame: pd.DataFrame
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    #: how to name each event in messages: CSV line numbers, or feature numbers
    row_numbers: NDArray[np.int64]
    row_label: str
    source: str


def read_events(path: Path, *, lon: str | None = None, lat: str | None = None,
                encoding: str | None = None) -> EventTable:
    """Read events: a CSV with longitude/latitude columns, or a vector file of points.

    CSV columns are found by name: ``lon``/``lat`` unless given, or the usual alternatives
    (lng, longitude, x, 经度 / latitude, y, 纬度). The encoding is UTF-8 (with or without a
    BOM) or GBK/GB18030, detected, unless ``encoding`` says. Coordinates that are not numbers
    become NaN here and are reported, by line number, when they are converted.
    """
    label = str(path)
    if not path.exists():
        raise LayerError("no such file", file=label)
    if path.suffix.lower() in CSV_SUFFIXES:
        return _read_csv(path, lon, lat, encoding)
    if lon or lat:
        raise GridmapError("--lon/--lat name CSV columns; a vector file has point geometries")
    try:
        gdf = pyogrio.read_dataframe(path)
    except Exception as exc:
        raise LayerError(f"cannot be read: {exc}", file=label) from exc
    geoms = np.asarray(gdf.geometry.to_numpy(), dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    not_point = ~missing & (shapely.get_type_id(geoms) != 0)
    for mask, what in ((missing, "have no geometry"), (not_point, "are not points")):
        if mask.any():
            rows = np.flatnonzero(mask)
            raise LayerError(f"{rows.size} features {what} (features {_first(rows)}, counting "
                             "from 0)", file=label)
    coords = shapely.get_coordinates(geoms)
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    return EventTable(frame=frame, x=coords[:, 0].copy(), y=coords[:, 1].copy(),
                      row_numbers=np.arange(len(frame), dtype=np.int64),
                      row_label="features (counting from 0)", source=label)


def _read_csv(path: Path, lon: str | None, lat: str | None, encoding: str | None
              ) -> EventTable:
    label = str(path)
    raw = path.read_bytes()
    frame: pd.DataFrame | None = None
    tried = [encoding] if encoding else list(ENCODINGS)
    error: Exception | None = None
    for enc in tried:
        try:
            frame = pd.read_csv(io.BytesIO(raw), encoding=enc, dtype=str, keep_default_na=False)
            break
        except LookupError as exc:
            raise GridmapError(f"unknown encoding {encoding!r} (e.g. utf-8, gbk)") from exc
        except UnicodeDecodeError as exc:
            error = exc
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise LayerError(f"cannot be read as CSV: {exc}", file=label) from exc
    if frame is None:
        raise LayerError(f"cannot be decoded as {' or '.join(tried)} ({error}); say which "
                         "encoding with --encoding", file=label)
    frame.columns = [str(c) for c in frame.columns]
    lon_col = _column(frame, lon, LON_NAMES, "--lon", label)
    lat_col = _column(frame, lat, LAT_NAMES, "--lat", label)
    x = pd.to_numeric(frame[lon_col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    y = pd.to_numeric(frame[lat_col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    return EventTable(frame=frame, x=x, y=y,
                      row_numbers=np.arange(2, len(frame) + 2, dtype=np.int64),
                      row_label="lines of the file (the header is line 1)", source=label)


def _column(frame: pd.DataFrame, given: str | None, names: tuple[str, ...], option: str,
            label: str) -> str:
    if given is not None:
        if given in frame.columns:
            return given
    else:
        by_name = {c.strip().lower(): c for c in frame.columns}
        found = next((by_name[n] for n in names if n in by_name), None)
        if found is not None:
            return found
    wanted = given if given is not None else " or ".join(names)
    raise LayerError(f"has no column {wanted} (columns: {', '.join(frame.columns)}); say "
                     f"which with {option}", file=label)


def _first(rows: NDArray[Any], limit: int = 10) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (f", … ({len(rows)} in all)" if len(rows) > limit else "")


# ================================================================================================
# Results


def routed_table(events: EventTable, router: GridRouter, routed: Routed) -> pd.DataFrame:
    """The events' own columns followed by :data:`ADDED_COLUMNS` (text, '' when unknown).

    Village and town come from the grids' ``village_code``/``village_name`` and
    ``town_code``/``town_name`` columns when they have them; a 12-digit statistical village
    code (统计用区划代码) also gives the 9-digit code of its town.
    """
    grids = router.grids
    idx = routed.index
    inside = idx >= 0

    def attr(column: str) -> NDArray[np.object_]:
        out = np.full(len(idx), "", dtype=object)
        if column in grids.columns:
            values = grids[column].astype("string").fillna("").to_numpy(dtype=object)
            out[inside] = values[idx[inside]]
        return out

    village_code = attr("village_code")
    town_code = attr("town_code")
    derived = np.array([len(v) == 12 and v.isdigit() for v in village_code], dtype=bool)
    fill = derived & (town_code == "")
    town_code[fill] = [v[:9] for v in village_code[fill]]
    other = np.full(len(idx), "", dtype=object)
    has_other = routed.other >= 0
    other[has_other] = router.codes[routed.other[has_other]]
    added = {
        "grid_code": np.where(inside, router.codes_at(idx), ""),
        "grid_name": attr("name"),
        "village_code": village_code,
        "village_name": attr("village_name"),
        "town_code": town_code,
        "town_name": attr("town_name"),
        "distance_m": np.round(routed.distance_m, 2),
        "flags": np.array([",".join(f) for f in routed.flags], dtype=object),
        "other_grid": other,
    }
    frame = events.frame.drop(columns=[c for c in ADDED_COLUMNS if c in events.frame.columns])
    frame = frame.reset_index(drop=True)
    return pd.concat([frame, pd.DataFrame(added)], axis=1)


def output_kind(out: Path) -> str:
    """``"csv"`` or ``"geojson"`` from the output file's suffix."""
    suffix = out.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in GEOJSON_SUFFIXES:
        return "geojson"
    raise GridmapError(f"output {out}: the suffix must be .csv or .geojson")


def write_routed(table: pd.DataFrame, lon: NDArray[np.float64], lat: NDArray[np.float64],
                 out: Path) -> Path:
    """Write the routed events as CSV (UTF-8 with a BOM, which Excel reads) or as GeoJSON
    points in WGS84 (the converted coordinates). Written to a temporary file first and then
    renamed, so a failure leaves no partial file."""
    kind = output_kind(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    try:
        if kind == "csv":
            table.to_csv(part, index=False, encoding="utf-8-sig")
        else:
            _write_geojson(table, lon, lat, part)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def _write_geojson(table: pd.DataFrame, lon: NDArray[np.float64], lat: NDArray[np.float64],
                   path: Path) -> None:
    records = table.to_dict(orient="records")
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "features": [\n')
        for i, (props, x, y) in enumerate(zip(records, lon.tolist(), lat.tolist(),
                                              strict=True)):
            feature = {"type": "Feature",
                       "geometry": {"type": "Point", "coordinates": [round(x, 8), round(y, 8)]},
                       "properties": {k: _json_value(v) for k, v in props.items()}}
            fh.write(("," if i else "")
                     + json.dumps(feature, ensure_ascii=False, default=str) + "\n")
        fh.write("]}\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT or value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
