"""The layer contract: what each layer of a territory holds, and the checks that make a layer so."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError
from pyproj.exceptions import ProjError

from gis import crs as crsmod
from gis import divisions
from gis.china import check_china
from gis.errors import CoordinateError, CRSError, LayerError
from gis.zones import metric_crs_for

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
        return metric_crs_for(self.bounds)

    def to_metric(self) -> dict[str, gpd.GeoDataFrame]:
        """Every layer reprojected into the territory's metric CRS."""
        target = self.metric_crs
        return {name: gdf.to_crs(target) for name, gdf in self.layers.items()}


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
        check_china(np.concatenate([bounds[:, 0], bounds[:, 2]]),
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
    """Codes and names as stripped strings; numbers like 4401110010.0 lose the '.0'. (The
    work is done once per distinct value: a column of 175,000 buildings holds a few.)"""
    text = series.astype("string")
    codes, uniques = pd.factorize(text)
    clean = pd.Series(uniques, dtype="string").str.strip().str.replace(r"\.0$", "", regex=True)
    clean = clean.mask(clean == "")
    return pd.Series(clean.array.take(codes, allow_fill=True), index=series.index,
                     dtype="string", name=series.name)


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
    out = np.full(len(values), None, dtype=object)
    given = values.notna().to_numpy()
    if given.any():                     # (a layer without addresses: no call per row)
        out[given] = [one(v) for v in values.to_numpy(dtype=object)[given]]
    return pd.Series(out, index=values.index, dtype=object)


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
