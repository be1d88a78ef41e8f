"""Read an OpenStreetMap extract (PBF or XML) into the layers of the contract, tags mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from gis.errors import LayerError, LimitExceeded, gdal_reason

#: File names of an OpenStreetMap extract (PBF or XML).
OSM_SUFFIXES = (".pbf", ".osm")


def _osm_layer(path: str, layer: str, max_features: int | None = None) -> gpd.GeoDataFrame:
    conf = str(Path(__file__).with_name("osmconf.ini"))
    pyogrio.set_gdal_config_options({"OSM_CONFIG_FILE": conf})
    try:
        gdf = pyogrio.read_dataframe(
            path, layer=layer, max_features=None if max_features is None else max_features + 1)
    except Exception as exc:
        raise LayerError("cannot be read as OpenStreetMap data: "
                         f"{gdal_reason(exc, path, Path(path).name)}",
                         file=Path(path).name) from exc
    finally:
        pyogrio.set_gdal_config_options({"OSM_CONFIG_FILE": None})
    if max_features is not None and len(gdf) > max_features:
        raise LimitExceeded(f"the extract holds more than {max_features:,} {layer}",
                            setting="max_features", limit=max_features, file=Path(path).name)
    return gdf


def _col(gdf: pd.DataFrame, name: str) -> pd.Series:
    if name in gdf.columns:
        return gdf[name]
    return pd.Series([None] * len(gdf), index=gdf.index, dtype=object)


def _osm_key(frame: gpd.GeoDataFrame, key: str) -> str:
    """An OSM tag's column as GDAL names it (``addr:street`` or, laundered, ``addr_street``)."""
    return key if key in frame.columns else key.replace(":", "_")


def _number(series: pd.Series) -> pd.Series:
    """Leading number of an OSM tag value ("12", "12.5 m", "3;4")."""
    text = series.astype("string").str.extract(r"^\s*([0-9]+(?:\.[0-9]+)?)")[0]
    return pd.to_numeric(text, errors="coerce")


OSM_RESIDENTIAL = {"residential", "apartments", "house", "detached", "dormitory", "terrace",
                   "semidetached_house", "bungalow", "farm"}
OSM_USE = {
    **dict.fromkeys(OSM_RESIDENTIAL, "residential"),
    **dict.fromkeys(("commercial", "retail", "office", "hotel", "kiosk", "supermarket",
                     "mall", "shop", "bank", "restaurant", "company"), "commercial"),
    **dict.fromkeys(("industrial", "warehouse", "factory", "manufacture", "parking",
                     "garage", "garages", "service", "transportation"), "industrial"),
    **dict.fromkeys(("school", "hospital", "university", "public", "government", "civic",
                     "kindergarten", "train_station", "church", "temple", "college",
                     "stadium", "sports_hall", "fire_station", "mosque", "shrine",
                     "museum"), "public"),
}
#: OSM tags of areas mapped into the landuse layer (the household estimate reads it).
OSM_LANDUSE = {
    "residential": "residential",
    **dict.fromkeys(("commercial", "retail"), "commercial"),
    **dict.fromkeys(("industrial", "port", "depot", "warehouse"), "industrial"),
    **dict.fromkeys(("education", "religious", "military", "institutional"), "public"),
    **dict.fromkeys(("grass", "recreation_ground", "cemetery", "forest", "meadow",
                     "village_green", "park"), "green"),
    **dict.fromkeys(("farmland", "farmyard", "orchard", "vineyard", "greenhouse_horticulture",
                     "aquaculture"), "agricultural"),
}
OSM_AMENITY_LAND = dict.fromkeys(("school", "university", "college", "kindergarten",
                                  "hospital", "clinic", "townhall", "courthouse",
                                  "police", "fire_station", "place_of_worship"), "public")
OSM_LEISURE_LAND = {**dict.fromkeys(("park", "garden", "nature_reserve", "golf_course"),
                                    "green"),
                    **dict.fromkeys(("pitch", "stadium", "sports_centre", "track"), "public")}
OSM_FACILITY = {"school": "school", "kindergarten": "school", "college": "school",
                "hospital": "hospital", "clinic": "hospital", "marketplace": "market"}
OSM_WATERWAY_LINES = {"river", "stream", "canal", "drain", "ditch"}
OSM_RAILWAYS = {"rail", "light_rail", "narrow_gauge", "monorail"}
OSM_ADMIN_LEVELS = {"6": "district", "7": "district", "8": "town", "9": "village",
                    "10": "village"}


def read_osm(path: str, notes: list[str] | None = None, max_features: int | None = None
             ) -> dict[str, gpd.GeoDataFrame]:
    """The contract's layers from an OpenStreetMap extract (GDAL's OSM driver).

    Buildings carry their ``building:levels``/``height`` and the household
    count when tagged (``households``); admin areas are kept only when their
    ``ref`` is a statistical division code. ``max_features`` bounds each of GDAL's
    layers (lines, multipolygons, points) as read.
    """
    notes = notes if notes is not None else []
    out: dict[str, gpd.GeoDataFrame] = {}
    lines = _osm_layer(path, "lines", max_features)
    polys = _osm_layer(path, "multipolygons", max_features)
    points = _osm_layer(path, "points", max_features)

    def frame(src: gpd.GeoDataFrame, mask: pd.Series, **columns: Any) -> gpd.GeoDataFrame:
        sub = src.loc[mask.fillna(False).to_numpy(bool)]
        data = {k: (v.loc[sub.index] if isinstance(v, pd.Series) else v)
                for k, v in columns.items()}
        return gpd.GeoDataFrame(data, geometry=sub.geometry.to_numpy(), crs=src.crs)

    highway = _col(lines, "highway")
    out["roads"] = frame(lines, highway.notna(), **{"class": highway, "name": _col(lines, "name")})
    waterway = _col(lines, "waterway")
    water_lines = frame(lines, waterway.isin(OSM_WATERWAY_LINES), name=_col(lines, "name"))
    water_polys = frame(
        polys,
        (_col(polys, "natural") == "water") | (_col(polys, "waterway") == "riverbank")
        | _col(polys, "landuse").isin({"reservoir", "basin"}),
        name=_col(polys, "name"),
    )
    out["water"] = pd.concat([water_lines, water_polys], ignore_index=True)
    out["railways"] = frame(lines, _col(lines, "railway").isin(OSM_RAILWAYS),
                            name=_col(lines, "name"))
    out["ridges"] = frame(lines, _col(lines, "natural").isin({"ridge", "arete"}),
                          name=_col(lines, "name"))

    building = _col(polys, "building")
    has_building = building.notna() & (building != "no")
    # GDAL launders "building:levels" into "building_levels".
    levels_col = "building:levels" if "building:levels" in polys.columns else "building_levels"
    floors = _number(_col(polys, levels_col))
    out["buildings"] = frame(
        polys, has_building,
        households=_number(_col(polys, "households")),
        floors=floors,
        height=_number(_col(polys, "height")),
        use=building.map(OSM_USE),
        # GDAL launders "addr:street" into "addr_street" unless told otherwise.
        address=_col(polys, _osm_key(polys, "addr:full")),
        road=_col(polys, _osm_key(polys, "addr:street")),
        house_number=_col(polys, _osm_key(polys, "addr:housenumber")),
    )

    amenity_pt = _col(points, "amenity").map(OSM_FACILITY)
    amenity_poly = _col(polys, "amenity").map(OSM_FACILITY)
    out["facilities"] = pd.concat([
        frame(points, amenity_pt.notna(), kind=amenity_pt, name=_col(points, "name")),
        frame(polys, amenity_poly.notna() & ~has_building, kind=amenity_poly,
              name=_col(polys, "name")),
    ], ignore_index=True)

    landuse = _col(polys, "landuse")
    land_class = landuse.map(OSM_LANDUSE)
    for key, table in (("amenity", OSM_AMENITY_LAND), ("leisure", OSM_LEISURE_LAND)):
        land_class = land_class.fillna(_col(polys, key).map(table))
    out["landuse"] = frame(polys, land_class.notna() & ~has_building, use=land_class,
                           name=_col(polys, "name"))
    dedicated_kind = pd.Series(None, index=polys.index, dtype=object)
    dedicated_kind[(_col(polys, "amenity") == "university").to_numpy(bool)] = "campus"
    dedicated_kind[(landuse == "industrial").to_numpy(bool)] = "industrial"
    out["dedicated_areas"] = frame(polys, dedicated_kind.notna(), name=_col(polys, "name"),
                                   kind=dedicated_kind)

    level = _col(polys, "admin_level").astype("string").map(OSM_ADMIN_LEVELS)
    admin_mask = (_col(polys, "boundary") == "administrative") & level.notna()
    ref = _col(polys, "ref").astype("string")
    coded = admin_mask & ref.str.fullmatch(r"\d{6}|\d{9}|\d{12}").fillna(False)
    if coded.any():
        out["admin_areas"] = frame(polys, coded, code=ref, name=_col(polys, "name"),
                                   level=level)
    elif admin_mask.any():
        notes.append(
            f"the OpenStreetMap extract has {int(admin_mask.sum())} administrative boundaries "
            "but none carries a statistical division code in ref; give admin_areas as a file"
        )
    return {name: gdf for name, gdf in out.items() if len(gdf)}
