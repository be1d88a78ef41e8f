"""Water in grids: which blocks are water, and how a river or lake is shared out between the
grids of its banks along its centre line — or, when large, is a water grid of its own
(水域专属网格), so that no comprehensive grid is mostly water."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import pygeoops
import shapely

from partitioning.blocks import PRECISION_M
from partitioning.params import PartitionParams

#: Shores are sampled this often (m) to share water out by nearest bank.
SHORE_STEP_M = 5.0
#: Water pieces smaller than this (m²) are dropped into their neighbour.
CRUMB_M2 = 1.0


def water_polygons(layers: dict[str, gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """The polygonal water (rivers drawn as areas, lakes, ponds) with its name."""
    water = layers.get("water")
    if water is None or water.empty:
        return gpd.GeoDataFrame({"name": []}, geometry=[], crs=None)
    geoms = water.geometry.to_numpy()
    poly = np.isin(shapely.get_type_id(geoms), [3, 6])
    names = water["name"].to_numpy(dtype=object) if "name" in water else \
        np.full(len(water), None, dtype=object)
    return gpd.GeoDataFrame({"name": names[poly]}, geometry=geoms[poly], crs=water.crs)


def water_blocks(blocks: gpd.GeoDataFrame, water: gpd.GeoDataFrame,
                 buildings: np.ndarray) -> np.ndarray:
    """Whether each block is water: a point on it lies in a water polygon and it holds no
    building."""
    out = np.zeros(len(blocks), dtype=bool)
    if water.empty or not len(blocks):
        return out
    pts = shapely.point_on_surface(blocks.geometry.to_numpy())
    hit, _ = shapely.STRtree(water.geometry.to_numpy()).query(pts, predicate="within")
    out[hit] = True
    return out & (buildings == 0)


@dataclass
class Shared:
    """Blocks after water was shared out: the new blocks, the grid of each, where each old
    block went (-1: a water block replaced by its pieces, which come last), and the water
    grids made (their village and name)."""

    blocks: gpd.GeoDataFrame
    label: np.ndarray
    moved: np.ndarray
    water_grids: list[tuple[str, str, np.ndarray]]   # village, name, blocks
    #: The centre lines water was split along (single lines), with the water's name.
    centres: list[tuple[shapely.Geometry, str | None]]


def share_water(blocks: gpd.GeoDataFrame, label: np.ndarray, is_water: np.ndarray,
                grid_kind: list[str], water: gpd.GeoDataFrame, params: PartitionParams
                ) -> Shared:
    """Each village's water blocks re-cut: every stretch of water is split along its centre
    line, and each half shared between the comprehensive grids of its bank (each point of
    water to the grid whose shore is nearest). A stretch of water of at least
    ``params.water_grid_m2`` in a village, and the water that would make a grid more than
    ``params.water_share_max`` water, form the village's water grid instead."""
    n = len(blocks)
    geoms = blocks.geometry.to_numpy()
    village = blocks["village_code"].to_numpy()
    kind = np.asarray(grid_kind, dtype=object)
    # Water inside a dedicated area stays with it.
    is_water = is_water & (kind[label] == "comprehensive")
    new_geoms: list[shapely.Geometry] = []
    new_label: list[int] = []
    new_village: list[str] = []
    water_grids: list[tuple[str, str, list[int]]] = []
    replaced = np.zeros(n, dtype=bool)
    centre_lines: list[tuple[shapely.Geometry, str | None]] = []
    names_tree = shapely.STRtree(water.geometry.to_numpy()) if len(water) else None
    centres = _centre_lines(water, geoms[is_water], names_tree)
    for v in np.unique(village[is_water]).tolist():
        in_v = village == v
        wv = np.flatnonzero(in_v & is_water)
        land = np.flatnonzero(in_v & ~is_water)
        grids = np.unique(label[land])
        grids = grids[kind[grids] == "comprehensive"]
        shores: dict[int, shapely.Geometry] = {
            int(g): shapely.union_all(geoms[land[label[land] == g]], grid_size=PRECISION_M)
            for g in grids}
        region = shapely.union_all(geoms[wv], grid_size=PRECISION_M)
        # (geometry, grid or -1: the water grid)
        pieces: list[tuple[shapely.Geometry, int]] = []
        parts = shapely.get_parts(region)
        name = _name(parts[int(np.argmax(shapely.area(parts)))], water, names_tree) \
            if len(parts) else None
        for part in parts:
            # (A village with no land grid — its part of the river only — is all water grid.)
            if shapely.area(part) >= params.water_grid_m2 or not shores:
                pieces.append((part, -1))
                continue
            halves = _halves(part, centres)
            if len(halves) > 1:
                part_name = _name(part, water, names_tree)
                centre_lines.extend((line, part_name)
                                    for line in _lines(shapely.intersection(centres, part)))
            for half in halves:
                pieces.extend(_by_nearest_shore(half, shores))
        # Water that would make a grid mostly water goes to the water grid.
        water_area: dict[int, float] = {}
        for g_, lab in pieces:
            if lab >= 0:
                water_area[lab] = water_area.get(lab, 0.0) + float(shapely.area(g_))
        too_wet = {g for g, a in water_area.items()
                   if a > params.water_share_max * (a + float(shapely.area(shores[g])))}
        pieces = [(g_, -1 if lab in too_wet else lab) for g_, lab in pieces]
        replaced[wv] = True
        wet: list[int] = []
        for g_, lab in pieces:
            for p in shapely.get_parts(shapely.set_precision(g_, PRECISION_M)):
                if shapely.get_type_id(p) != 3 or shapely.area(p) < CRUMB_M2:
                    continue
                if lab < 0:
                    wet.append(len(new_geoms))
                new_geoms.append(p)
                new_label.append(lab)
                new_village.append(v)
        if wet:
            water_grids.append((v, name or "", wet))
    if not replaced.any():
        return Shared(blocks, label, np.arange(n), [], [])
    keep = ~replaced
    remap = np.cumsum(keep) - 1
    out_geoms = np.concatenate([geoms[keep], np.asarray(new_geoms, dtype=object)])
    out_village = np.concatenate([village[keep], np.asarray(new_village, dtype=object)])
    out_label = np.concatenate([label[keep], np.asarray(new_label, dtype=np.int64)])
    offset = int(keep.sum())
    out = gpd.GeoDataFrame({"village_code": out_village}, geometry=out_geoms, crs=blocks.crs)
    out.insert(0, "block_id", np.arange(len(out)))
    grids_out = [(v, nm, np.asarray(idx, dtype=np.int64) + offset) for v, nm, idx in water_grids]
    return Shared(out, out_label, np.where(keep, remap, -1), grids_out, centre_lines)


def _name(part: shapely.Geometry, water: gpd.GeoDataFrame, tree: shapely.STRtree | None
          ) -> str | None:
    """The name of the water body most of ``part`` lies in."""
    if tree is None:
        return None
    idx = tree.query(part, predicate="intersects")
    if not len(idx):
        return None
    areas = shapely.area(shapely.intersection(water.geometry.to_numpy()[idx], part))
    names = water["name"].to_numpy(dtype=object)[idx]
    order = np.argsort(-areas, kind="stable")
    for i in order:
        if isinstance(names[i], str) and names[i]:
            return names[i]
    return None


def _centre_lines(water: gpd.GeoDataFrame, wet: np.ndarray,
                  tree: shapely.STRtree | None) -> shapely.Geometry:
    """The centre lines (extended to their ends) of the water polygons holding ``wet``
    blocks, as one geometry; computed once per water body, not per village."""
    if tree is None or not len(wet):
        return shapely.GeometryCollection()
    used = np.unique(tree.query(wet, predicate="intersects")[1])
    lines: list[shapely.Geometry] = []
    for geom in water.geometry.to_numpy()[used]:
        for poly in shapely.get_parts(geom):
            try:
                centre = pygeoops.centerline(poly, extend=True)
            except Exception:   # a shape the centre-line search cannot handle: no split
                continue
            if isinstance(centre, shapely.Geometry) and not shapely.is_empty(centre):
                lines.append(centre)
    return shapely.union_all(lines) if lines else shapely.GeometryCollection()


def _halves(part: shapely.Geometry, centres: shapely.Geometry) -> list[shapely.Geometry]:
    """``part`` cut along the centre lines of its water (the sides of a river; a lake in
    two)."""
    centre = shapely.intersection(centres, part)
    if shapely.is_empty(centre) or shapely.length(centre) <= 0:
        return [part]
    edges = shapely.union_all([shapely.boundary(part), centre])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    faces = faces[shapely.contains_properly(part, shapely.point_on_surface(faces))] \
        if len(faces) else faces
    if len(faces) < 2:
        return [part]
    return list(faces)


def _by_nearest_shore(half: shapely.Geometry, shores: dict[int, shapely.Geometry]
                      ) -> list[tuple[shapely.Geometry, int]]:
    """``half`` shared between the grids whose land touches it: each point to the grid whose
    shore is nearest (a Voronoi of points along the shores); with no grid touching it, to
    the nearest grid."""
    near = shapely.buffer(half, 0.5)
    sample_xy: list[np.ndarray] = []
    sample_grid: list[np.ndarray] = []
    for g, land in shores.items():
        shore = shapely.intersection(shapely.boundary(land), near)
        length = float(shapely.length(shore))
        if length < 1.0:
            continue
        xy = shapely.get_coordinates(_points_along(shore, max(2, int(length / SHORE_STEP_M))))
        sample_xy.append(xy)
        sample_grid.append(np.full(len(xy), g))
    if not sample_xy:
        dist = {g: float(shapely.distance(half, land)) for g, land in shores.items()}
        return [(half, min(dist, key=lambda g: (dist[g], g)))]
    grids = np.concatenate(sample_grid)
    if len(np.unique(grids)) == 1:
        return [(half, int(grids[0]))]
    xy = np.concatenate(sample_xy)
    xy, first = np.unique(np.round(xy, 3), axis=0, return_index=True)
    grids = grids[first]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy),
                                                       extend_to=half, ordered=True))
    out: list[tuple[shapely.Geometry, int]] = []
    frame = pd.DataFrame({"grid": grids[: len(cells)]})
    for g, idx in frame.groupby("grid").indices.items():
        piece = shapely.intersection(shapely.coverage_union_all(cells[idx]), half)
        if not shapely.is_empty(piece):
            out.append((piece, int(g)))
    return out


def _lines(geom: shapely.Geometry) -> np.ndarray:
    """The single lines of any geometry, merged where they join."""
    parts = shapely.get_parts(np.asarray([geom], dtype=object))
    parts = parts[shapely.get_type_id(parts) == 1]
    if not len(parts):
        return parts
    return shapely.get_parts(shapely.line_merge(shapely.multilinestrings(parts)))


def _points_along(lines: shapely.Geometry, k: int) -> np.ndarray:
    """About ``k`` points spread along a (multi)line by length."""
    parts = shapely.get_parts(lines)
    parts = parts[shapely.get_type_id(parts) == 1]
    total = float(shapely.length(parts).sum()) or 1.0
    out = [shapely.line_interpolate_point(p, np.linspace(0, 1, max(2, int(k * p.length / total)
                                                                     + 1)), normalized=True)
           for p in parts]
    return np.concatenate(out) if out else np.array([], dtype=object)
