"""Event and grid files for routing without a database: read grids and events, write results."""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import re
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
from gis import divisions
from gis.errors import CRSError, GridmapError, LayerError, LimitExceeded, gdal_reason
from gis.io.csv import LAT_NAMES, LON_NAMES
from gis.io.encoding import decode_text
from gis.io.limits import Budget, ReadLimits
from gis.io.vector import check_geopackage

__all__ = ["ADDED_COLUMNS", "EventTable", "check_text", "decode_text", "event_frame",
           "read_events", "read_grids", "routed_table", "write_routed"]

#: Columns the router adds to every event, in this order.
ADDED_COLUMNS = ("grid_code", "grid_name", "village_code", "village_name", "town_code",
                 "town_name", "distance_m", "flags", "other_grid")
CSV_SUFFIXES = (".csv", ".txt")
GEOJSON_SUFFIXES = (".geojson", ".json")


# ================================================================================================
# Grids


def read_grids(path: Path, *, layer: str | None = None, code_field: str = "code",
               field_map: Mapping[str, str] | None = None,
               crs: str | None = None, limits: ReadLimits | None = None) -> gpd.GeoDataFrame:
    """Read a polygon layer of grids and name its code column ``code``.

    ``code_field`` names the column holding the grid code (e.g. ``网格编号``); ``field_map``
    renames other columns (``{"所属组织": "name"}``); ``crs`` is the layer's coordinate system
    when the file declares none (or declares it wrongly). A file with several layers needs
    ``layer`` unless one is called ``grids``. ``limits`` bound its features and vertices
    (default: the ``GRIDMAP_MAX_*`` settings).
    """
    label = str(path)
    if not path.exists():
        raise LayerError("no such file", file=label)
    if path.suffix.lower() == ".gpkg":
        check_geopackage(path, label)
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:
        raise LayerError(f"cannot be read: {gdal_reason(exc, path, label)}",
                         file=label) from exc
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
    budget = Budget(limits or ReadLimits.from_settings())
    try:
        grids = pyogrio.read_dataframe(path, layer=layer, max_features=budget.rows_left() + 1)
    except Exception as exc:
        raise LayerError(f"cannot be read: {gdal_reason(exc, path, label)}", file=label,
                         layer=layer) from exc
    budget.add(grids.geometry.to_numpy(), file=label, layer=layer)
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
        return _read_events_csv(path, lon, lat, encoding)
    if lon or lat:
        raise GridmapError("--lon/--lat name CSV columns; a vector file has point geometries")
    if path.suffix.lower() == ".gpkg":
        check_geopackage(path, label)
    try:
        gdf = pyogrio.read_dataframe(path)
    except Exception as exc:
        raise LayerError(f"cannot be read: {gdal_reason(exc, path, label)}",
                         file=label) from exc
    if len(gdf) == 0:
        raise LayerError("holds no events (no features)", file=label)
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


def _csv_frame(data: bytes, label: str, encoding: str | None, max_rows: int | None = None,
               option: str = "--encoding") -> pd.DataFrame:
    """A CSV's rows, every value as text; an empty file or a header alone is an error. The
    bytes go to pandas as they are (UTF-8, or the encoding given); only a file that does not
    decode so is decoded here first, which says why (:func:`gis.io.encoding.decode_text`)."""
    if not data.removeprefix(codecs.BOM_UTF8).strip():
        raise LayerError("is empty: a CSV of events needs a header line (lon,lat,...) and "
                         "one line per event", file=label)
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False,
                               "nrows": None if max_rows is None else max_rows + 1}
    try:
        try:
            frame = pd.read_csv(io.BytesIO(data), encoding=encoding or "utf-8-sig", **options)
        except (UnicodeDecodeError, LookupError):
            text = decode_text(data, encoding, label, option)
            frame = pd.read_csv(io.StringIO(text), **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError,
            OverflowError) as exc:
        raise LayerError(f"cannot be read as CSV: {exc}", file=label) from exc
    frame.columns = [str(c) for c in frame.columns]
    if frame.empty:
        raise LayerError(f"has a header ({', '.join(frame.columns)}) but no events: one line "
                         "per event under the header", file=label)
    if max_rows is not None and len(frame) > max_rows:
        raise LimitExceeded(f"the file holds more than {max_rows:,} events; split it",
                            setting="max_features", limit=max_rows, file=label)
    return frame


def _read_events_csv(path: Path, lon: str | None, lat: str | None, encoding: str | None
              ) -> EventTable:
    label = str(path)
    frame = _csv_frame(path.read_bytes(), label, encoding)
    lon_col = _column(frame, lon, LON_NAMES, "--lon", label)
    lat_col = _column(frame, lat, LAT_NAMES, "--lat", label)
    x = pd.to_numeric(frame[lon_col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    y = pd.to_numeric(frame[lat_col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    return EventTable(frame=frame, x=x, y=y,
                      row_numbers=np.arange(2, len(frame) + 2, dtype=np.int64),
                      row_label="lines of the file (the header is line 1)", source=label)


def event_frame(data: bytes, filename: str, *, encoding: str | None = None,
                max_rows: int | None = None, keep: tuple[str, ...] | None = None
                ) -> pd.DataFrame:
    """An uploaded event file as a table of text: a CSV (every column), or GeoJSON points
    (columns ``x``, ``y`` from the geometry and the properties named in ``keep``, or all).

    Broken input is a :class:`LayerError` that says what to fix: not text in one encoding,
    not CSV, an empty file or a header alone, not JSON, JSON that is not GeoJSON, a feature
    that is not a Point or has no usable coordinates, properties that are not an object;
    more than ``max_rows`` events is a :class:`LimitExceeded`.
    """
    label = filename
    if filename.lower().endswith(GEOJSON_SUFFIXES):
        return _geojson_frame(decode_text(data, encoding, label, "encoding"), label,
                              max_rows, keep)
    return _csv_frame(data, label, encoding, max_rows, "encoding")


def _geojson_frame(text: str, label: str, max_rows: int | None,
                   keep: tuple[str, ...] | None) -> pd.DataFrame:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        short = " (the file seems cut short)" if exc.pos >= len(text.rstrip()) else ""
        raise LayerError(f"is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                         f"{exc.colno}{short}", file=label) from exc
    except RecursionError as exc:
        raise LayerError("cannot be read as JSON: it is nested too deeply (GeoJSON needs a "
                         "few levels)", file=label) from exc
    except ValueError as exc:  # e.g. a number of 5,000 digits
        raise LayerError(f"cannot be read as JSON: {str(exc).split(';')[0][:200]}",
                         file=label) from exc
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        features: Any = [doc]
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise LayerError('is a FeatureCollection without a "features" list', file=label)
    else:
        raise LayerError('is JSON but not GeoJSON: expected {"type": "FeatureCollection", '
                         '"features": [...]} of Point features', file=label)
    if not features:
        raise LayerError("holds no events (no features)", file=label)
    if max_rows is not None and len(features) > max_rows:
        raise LimitExceeded(f"the file holds {len(features):,} events; split it",
                            setting="max_features", limit=max_rows, file=label)
    xs = np.empty(len(features), dtype=np.float64)
    ys = np.empty(len(features), dtype=np.float64)
    rows: list[dict[str, str]] = []
    for i, feature in enumerate(features):
        def bad(what: str, i: int = i) -> LayerError:
            return LayerError(f"feature {i} (counting from 0) {what}", file=label)
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise bad('is not a GeoJSON Feature ({"type": "Feature", "geometry": ..., '
                      '"properties": ...})')
        geom = feature.get("geometry")
        if geom is None:
            raise bad("has no geometry (null): every event needs a Point")
        kind = geom.get("type") if isinstance(geom, dict) else None
        if kind != "Point":
            raise bad(f"is a {kind if isinstance(kind, str) else 'malformed geometry'}, "
                      "not a Point: give each event as one point")
        coords = geom.get("coordinates")
        if not isinstance(coords, list) or len(coords) < 2:
            raise bad("has a Point without coordinates [x, y] (an empty point)")
        for axis, value, out in (("x", coords[0], xs), ("y", coords[1], ys)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(f"has {axis} = {json.dumps(value, ensure_ascii=False)[:50]}, not a "
                          "number")
            try:
                out[i] = float(value)
            except OverflowError:  # an integer with hundreds of digits
                out[i] = math.inf
        props = feature.get("properties")
        if props is None:
            props = {}
        elif not isinstance(props, dict):
            raise bad("has properties that are not an object ({...})")
        rows.append({str(k): _text(v) for k, v in props.items()
                     if keep is None or k in keep})
    frame = pd.DataFrame.from_records(rows, index=range(len(rows))).fillna("").astype(str) \
        if any(rows) else pd.DataFrame(index=range(len(rows)))
    frame["x"] = xs
    frame["y"] = ys
    return frame


def _text(value: Any) -> str:
    """A GeoJSON property value as the text a CSV would have held."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def check_text(frame: pd.DataFrame, columns: tuple[str, ...], label: str,
               first_row: int = 1) -> None:
    """Refuse text that cannot be stored: a NUL character, or half of a UTF-16 surrogate pair
    (a JSON escape like \\ud800 alone). Names the row (``first_row`` numbers the first)."""
    for col in columns:
        if col not in frame.columns:
            continue
        values = frame[col].astype(str)
        joined = "\x1f".join(values.tolist())
        if "\x00" not in joined:
            try:
                joined.encode("utf-8")
                continue
            except UnicodeEncodeError:
                pass
        bad = values.str.contains(_BAD_TEXT, regex=True).to_numpy(dtype=bool)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise LayerError(f"column {col} holds a character that cannot be stored (a NUL "
                             "or a broken \\u escape); remove it", file=label,
                             row=row + first_row)


def coordinate_columns(frame: pd.DataFrame, label: str, lon_names: tuple[str, ...],
                       lat_names: tuple[str, ...]) -> tuple[str, str]:
    """The columns of longitude/x and latitude/y, found by name (any case, spaces ignored)."""
    by_name = {str(c).strip().lower(): str(c) for c in frame.columns}
    found = [next((by_name[n] for n in names if n in by_name), None)
             for names in (lon_names, lat_names)]
    if found[0] is None or found[1] is None:
        raise LayerError(
            f"has no {'longitude' if found[0] is None else 'latitude'} column (columns: "
            f"{', '.join(map(str, frame.columns))}); name the coordinate columns "
            f"{' or '.join(lon_names)} and {' or '.join(lat_names)} in the header line",
            file=label)
    return found[0], found[1]


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
    ``town_code``/``town_name`` columns when they have them; where they are empty, a
    15-digit statistical grid code (统计用区划代码 + serial) gives its village's 12 digits
    and a 12-digit village code its town's 9 (:mod:`gis.divisions`).
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

    grid_code = np.where(inside, router.codes_at(idx), "")
    # Parents a file leaves out come from the statistical codes: the first 12 digits of a
    # 15-digit grid code are its village, the first 9 of a village code its town.
    village_code = np.array(divisions.fill_parents(grid_code, attr("village_code"), "village"),
                            dtype=object)
    town_code = np.array(divisions.fill_parents(village_code, attr("town_code"), "town"),
                         dtype=object)
    other = np.full(len(idx), "", dtype=object)
    has_other = routed.other >= 0
    other[has_other] = router.codes[routed.other[has_other]]
    added = {
        "grid_code": grid_code,
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
