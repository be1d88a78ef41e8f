"""Reading a territory from a file, folder, .zip or OSM extract (checked), or previewing it."""

from __future__ import annotations

import io
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from gis import crs as crsmod
from gis.contract import (
    COLUMN_ALIASES,
    LAYERS,
    REQUIRED_LAYERS,
    LayerSpec,
    Repair,
    Territory,
    _check_nesting,
    check_layer,
)
from gis.errors import LayerError, gdal_reason
from gis.io.archive import unpacked
from gis.io.encoding import decode_text
from gis.io.limits import Budget, ReadLimits
from gis.io.osm import OSM_SUFFIXES, read_osm
from gis.io.vector import (
    VECTOR_SUFFIXES,
    _check_shapefile,
    _has_cpg,
    _read_source,
    _Source,
    check_geopackage,
)


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
        folder = unpacked(stack, root, budget.limits, "gridmap-unzip-")
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
        folder = unpacked(stack, root, limits, "gridmap-unzip-")
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
