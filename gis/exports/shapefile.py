"""Zipped Shapefile exports: dBASE field names and text cut to fit, UTF-8 or GBK, a field map."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from gis.exports.options import ENCODINGS, Options, projected
from gis.exports.table import TABLE_FIELDS

#: Shapefile (dBASE) field names are at most 10 characters: table field → Shapefile field.
SHAPEFILE_FIELDS = {
    "code": "code", "name": "name", "village_code": "vill_code", "village_name": "vill_name",
    "town_code": "town_code", "town_name": "town_name", "kind": "kind",
    "households": "households", "households_estimated": "hh_estim",
    "population": "population", "area_m2": "area_m2",
    "compactness": "compact", "barrier_share": "barr_share", "radius_m": "radius_m",
    "boundary_text": "boundary", "grid_worker": "grid_wkr", "flags": "flags",
    "flag_reason": "flag_rsn", "barrier_inside_m": "barr_in_m",
}


#: The most bytes a dBASE text field holds; longer text is cut (with "…") there.
DBF_TEXT_BYTES = 254


#: The most bytes a dBASE field name holds.
DBF_NAME_BYTES = 10


#: The Chinese field names of a GBK Shapefile (ArcGIS, SuperMap and MapGIS users read these),
#: each within 10 GBK bytes; :func:`shapefile_fields` checks and cuts them all the same.
DBF_NAMES_ZH = {
    "code": "网格编码", "name": "网格名称", "village_code": "村社区代码",
    "village_name": "村社区名称", "town_code": "镇街道代码", "town_name": "镇街道名称",
    "kind": "网格类型", "households": "户数", "households_estimated": "估算户数",
    "population": "人口", "area_m2": "面积平方米", "compactness": "紧凑度",
    "barrier_share": "沿障碍比例", "radius_m": "服务半径米", "boundary_text": "四至",
    "grid_worker": "网格员", "flags": "标记", "flag_reason": "标记原因",
    "barrier_inside_m": "内含障碍米",
}


#: What each table field holds, for the field map in a zipped Shapefile.
FIELD_MEANINGS = {
    "code": "网格编码 15-digit grid code", "name": "网格名称 grid name",
    "village_code": "村/社区代码 village/community code",
    "village_name": "村/社区 village/community name",
    "town_code": "镇/街道代码 town/street code", "town_name": "镇/街道 town/street name",
    "kind": "网格类型 comprehensive 综合网格 / dedicated 专属网格",
    "households": "户数 households",
    "households_estimated": "其中估算户数 of which estimated from footprints",
    "population": "人口 population", "area_m2": "面积(平方米) area m²",
    "compactness": "紧凑度 Polsby–Popper compactness 0–1",
    "barrier_share": "边界沿道路/河流/山脊/铁路的比例 share of the boundary on a barrier",
    "radius_m": "服务半径(米) service radius m",
    "boundary_text": "四至 boundaries", "grid_worker": "网格员 grid workers (、)",
    "flags": "标记 flags, comma-separated", "flag_reason": "标记原因 the flags' reason",
    "barrier_inside_m": "网格内河流/山脊/铁路(米) river, ridge or railway inside m",
}


def dbf_field_name(name: str, codec: str, taken: set[str] | frozenset[str] = frozenset()
                   ) -> str:
    """``name`` as a dBASE field name: at most 10 bytes in ``codec``, cut between characters
    (never through one), only letters, digits and ``_`` (what ArcGIS accepts; a Chinese
    character is a letter), and not one of ``taken`` (a digit replaces the last character
    until it is free)."""
    cleaned = re.sub(r"[^\w]+", "", name) or "field"
    if cleaned[0].isdigit() or cleaned[0] == "_":
        cleaned = "f" + cleaned

    def cut(text: str, limit: int) -> str:
        out = ""
        for ch in text:
            if len((out + ch).encode(codec, errors="replace")) > limit:
                break
            out += ch
        return out

    candidate = cut(cleaned, DBF_NAME_BYTES)
    serial = 1
    while candidate.lower() in {t.lower() for t in taken}:
        suffix = str(serial)
        candidate = cut(cleaned, DBF_NAME_BYTES - len(suffix)) + suffix
        serial += 1
    return candidate


def shapefile_fields(encoding: str = "utf-8") -> dict[str, str]:
    """Table field → ``.dbf`` field name: :data:`SHAPEFILE_FIELDS` (ASCII) for UTF-8, the
    Chinese names of :data:`DBF_NAMES_ZH` (each at most 10 GBK bytes) for GBK."""
    if encoding == "utf-8":
        return dict(SHAPEFILE_FIELDS)
    codec = ENCODINGS[encoding][0]
    out: dict[str, str] = {}
    for field in TABLE_FIELDS:
        out[field] = dbf_field_name(DBF_NAMES_ZH.get(field, field), codec, set(out.values()))
    return out


def _cut_text(text: Any, codec: str, limit: int = DBF_TEXT_BYTES,
              replaced: set[str] | None = None) -> Any:
    """``text`` as ``codec`` can hold it (characters it has no code for become "?", noted in
    ``replaced``), cut to at most ``limit`` bytes on a character boundary, marked "…"."""
    if not isinstance(text, str):
        return text
    raw = text.encode(codec, errors="replace")
    if replaced is not None and raw.decode(codec) != text:
        replaced.update(ch for ch in text if ch.encode(codec, errors="replace") == b"?"
                        and ch != "?")
        text = raw.decode(codec)
    if len(raw) <= limit:
        return text
    room = limit - len("…".encode(codec))
    return raw[:room].decode(codec, errors="ignore") + "…"


def field_map_text(fields: dict[str, str], options: Options, replaced: set[str]) -> str:
    """The zip's ``grids_fields.txt``: which ``.dbf`` field holds which table field."""
    lines = [
        "grids.shp 字段对照表 field map",
        f"编码 encoding: {ENCODINGS[options.encoding][1]} (.cpg); "
        f"坐标系 CRS: {options.crs.label} {options.crs.crs.name} (.prj)",
        "dBASE 字段名最多 10 字节 field names are at most 10 bytes; "
        f"文本最多 {DBF_TEXT_BYTES} 字节 text at most {DBF_TEXT_BYTES} bytes (cut with …)",
        "",
        "dbf\tfield\t说明 meaning",
    ]
    lines += [f"{dbf}\t{field}\t{FIELD_MEANINGS.get(field, '')}"
              for field, dbf in fields.items()]
    if replaced:
        lines += ["", f"{ENCODINGS[options.encoding][1]} 无法表示的字符已替换为 ? "
                      f"characters {options.encoding} cannot hold, written as ?: "
                      + " ".join(sorted(replaced)) + " (use encoding=utf-8 to keep them)"]
    return "\r\n".join(lines) + "\r\n"


#: The dBASE header's language driver id for code page 936 (GBK), for readers without .cpg.
_LDID = {"gbk": 0x4D}


def write_shapefile_zip(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
                        options: Options) -> None:
    """A zip of ``grids.shp`` and its sidecars and ``grids_fields.txt`` (the field map).

    ``.cpg`` says ``UTF-8`` or ``936`` (GBK, with the matching language driver id in the
    ``.dbf`` header); ``.prj`` is the ESRI WKT of the export's CRS. Field names follow
    :func:`shapefile_fields`; text over 254 bytes is cut.
    """
    codec, cpg = ENCODINGS[options.encoding]
    fields = shapefile_fields(options.encoding)
    folder = path.parent / (path.name + ".parts")
    folder.mkdir()
    frame = projected(table, options.crs).rename(columns=fields)
    replaced: set[str] = set()
    for column in frame.columns:
        if column != frame.geometry.name and not pd.api.types.is_numeric_dtype(
                frame[column].dtype):
            frame[column] = frame[column].map(
                lambda v: _cut_text(v, codec, replaced=replaced))
    pyogrio.write_dataframe(frame, folder / "grids.shp", driver="ESRI Shapefile",
                            encoding=codec.upper())
    (folder / "grids.prj").write_text(options.crs.esri_wkt(), encoding="ascii")
    (folder / "grids.cpg").write_text("936" if options.encoding == "gbk" else cpg,
                                      encoding="ascii")
    if options.encoding in _LDID:
        with (folder / "grids.dbf").open("r+b") as dbf:
            dbf.seek(29)
            dbf.write(bytes([_LDID[options.encoding]]))
    (folder / "grids_fields.txt").write_bytes(
        field_map_text(fields, options, replaced).encode("utf-8-sig"))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.iterdir()):
            zf.write(part, arcname=part.name)
            part.unlink()
    folder.rmdir()
