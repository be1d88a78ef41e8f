"""Stage 4: cut blocks with too many households along straight lines between their buildings,
down the open corridors first (the inferred streets), never through a building."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from partitioning.blocks import PRECISION_M
from partitioning.corridors import (
    Footprints,
    Line,
    best_line,
    directions,
    segments,
    sides_of,
)
from partitioning.params import PartitionParams

#: Pieces of a cut smaller than this (m²) with no building join a neighbouring piece.
CRUMB_M2 = 50.0
#: Around a building a crossing line keeps to one side of, the line stays this far (m).
DETOUR_M = 1.0
#: Inferred streets shorter than this (m) are not kept as a layer (they still cut).
MIN_STREET_M = 20.0


@dataclass
class Cut:
    """Blocks after cutting: the new blocks, each building's block, where each old block
    went (-1: cut; its pieces come last) and the inferred streets found on the way."""

    blocks: gpd.GeoDataFrame
    owner: np.ndarray
    moved: np.ndarray
    streets: gpd.GeoDataFrame = field(default_factory=lambda: empty_streets(None))

    def __iter__(self) -> Iterator[Any]:
        # (blocks, owner, moved) = split_oversized(...), as before streets were kept.
        return iter((self.blocks, self.owner, self.moved))


def empty_streets(crs: object) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"width_m": np.array([], dtype=float),
                             "likeness": np.array([], dtype=float),
                             "village_code": np.array([], dtype=object)},
                            geometry=np.array([], dtype=object), crs=crs)


def split_oversized(blocks: gpd.GeoDataFrame, points: np.ndarray, owner: np.ndarray,
                    households: np.ndarray, params: PartitionParams, *,
                    threshold: float | None = None, piece: float | None = None,
                    villages: set[str] | None = None,
                    footprints: Footprints | None = None,
                    only: np.ndarray | None = None) -> Cut:
    """Cut each block over ``threshold`` households (default: the maximum) with several
    buildings into pieces of at most ``piece`` households (default: the target), or
    single buildings, optionally only in ``villages``.

    Each cut is one straight line across the piece being cut (:func:`best_line`): down
    the widest gap between buildings (a street when it is wide), else the line crossing
    the fewest buildings, which then keep whole to one side (the line steps around
    them). ``footprints`` are the buildings' outlines (default: ``points``, as address
    points of a few metres); ``only``: a mask of the blocks that may be cut.
    """
    threshold = params.max_households if threshold is None else threshold
    piece = params.target_households if piece is None else piece
    block_hh = np.bincount(owner, weights=households, minlength=len(blocks))
    counts = np.bincount(owner, minlength=len(blocks))
    chosen = (block_hh > threshold) & (counts > 1)
    if villages is not None:
        chosen &= blocks["village_code"].isin(villages).to_numpy()
    if only is not None:
        chosen &= only
    unchanged = np.arange(len(blocks))
    over = np.flatnonzero(chosen)
    if over.size == 0:
        return Cut(blocks, owner, unchanged, empty_streets(blocks.crs))
    fp = footprints if footprints is not None else Footprints.of(points)
    geoms = blocks.geometry.to_numpy()
    village = blocks["village_code"].to_numpy()
    by_block = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[by_block], np.arange(len(blocks) + 1))
    hh = households.astype(float)
    new_geoms: list[shapely.Geometry] = []
    new_members: list[np.ndarray] = []
    new_of: list[int] = []
    street_lines: list[shapely.Geometry] = []
    street_width: list[float] = []
    street_like: list[float] = []
    street_village: list[str] = []
    cut_blocks: list[int] = []
    for blk in over.tolist():
        members = by_block[starts[blk]:starts[blk + 1]]
        pieces, streets = _cut_block(geoms[blk], members, hh, fp, points, piece, params)
        if len(pieces) < 2:
            continue
        cut_blocks.append(blk)
        for g, m in pieces:
            new_geoms.append(g)
            new_members.append(m)
            new_of.append(blk)
        for line, width, like in streets:
            street_lines.append(line)
            street_width.append(width)
            street_like.append(like)
            street_village.append(str(village[blk]))
    streets_frame = gpd.GeoDataFrame(
        {"width_m": np.round(np.asarray(street_width, dtype=float), 1),
         "likeness": np.round(np.asarray(street_like, dtype=float), 2),
         "village_code": np.asarray(street_village, dtype=object)},
        geometry=np.asarray(street_lines, dtype=object), crs=blocks.crs) \
        if street_lines else empty_streets(blocks.crs)
    if not cut_blocks:
        return Cut(blocks, owner, unchanged, streets_frame)
    owner = owner.copy()
    n_old = len(blocks)
    for i, m in enumerate(new_members):
        owner[m] = n_old + i
    drop = np.zeros(n_old, dtype=bool)
    drop[cut_blocks] = True
    parts = np.asarray(new_geoms, dtype=object)
    all_geoms = np.concatenate([geoms, parts])
    all_village = np.concatenate([village, village[np.asarray(new_of)]])
    keep = np.concatenate([~drop, np.ones(len(parts), dtype=bool)])
    remap = np.cumsum(keep) - 1
    out = gpd.GeoDataFrame({"village_code": all_village[keep]}, geometry=all_geoms[keep],
                           crs=blocks.crs)
    out.insert(0, "block_id", np.arange(len(out)))
    return Cut(out, remap[owner], np.where(drop, -1, remap[:n_old]), streets_frame)


Pieces = list[tuple[shapely.Geometry, np.ndarray]]


def _cut_block(geom: shapely.Geometry, members: np.ndarray, hh: np.ndarray, fp: Footprints,
               points: np.ndarray, piece: float, params: PartitionParams
               ) -> tuple[Pieces, list[tuple[shapely.Geometry, float, float]]]:
    """Recursive straight cuts of one block until every piece holds at most ``piece``
    households or one building; the pieces with their buildings, and the inferred streets
    (cuts down gaps at least ``params.street_min_width_m`` wide)."""
    done: list[tuple[shapely.Geometry, np.ndarray]] = []
    streets: list[tuple[shapely.Geometry, float, float]] = []
    todo: list[tuple[shapely.Geometry, np.ndarray]] = [(geom, members)]
    # The pieces of a block keep its directions (its streets, its buildings' walls).
    angles = directions(geom, fp, members) if len(members) > 1 else None
    while todo:
        g, m = todo.pop()
        if len(m) < 2 or float(hh[m].sum()) <= piece:
            done.append((g, m))
            continue
        line = best_line(g, fp, m, hh[m], street_width=params.street_width_m, angles=angles)
        if line is None:
            done.append((g, m))
            continue
        parts = _split(g, line, m, fp, points)
        if len(parts) < 2:
            done.append((g, m))
            continue
        # Every cut is a barrier as strong as it looks like a street; the ones that do
        # (and are wide enough) are the inferred streets.
        seg = segments(line, g)
        for s in shapely.get_parts(seg):
            if shapely.get_type_id(s) == 1 and shapely.length(s) >= 1.0:
                streets.append((s, line.width, line.likeness))
        todo.extend(parts)
    return done, streets


def _split(g: shapely.Geometry, line: Line, members: np.ndarray, fp: Footprints,
           points: np.ndarray) -> list[tuple[shapely.Geometry, np.ndarray]]:
    """``g`` cut by ``line`` into its polygons, each with the buildings it holds; buildings
    the line crosses keep whole to their side (the cut steps around them)."""
    low, high = sides_of(line, g)
    if len(line.crossed):
        low_set = set(line.low.tolist())
        zones = shapely.intersection(
            shapely.buffer(fp.outline(line.crossed), DETOUR_M, quad_segs=2), g)
        to_low = np.array([c in low_set for c in line.crossed.tolist()])
        if (~to_low).any():
            low = shapely.difference(low, shapely.union_all(zones[~to_low]))
        if to_low.any():
            low = shapely.union(low, shapely.union_all(zones[to_low]))
        low = shapely.set_precision(low, PRECISION_M)
        high = shapely.difference(g, low)
    else:
        low = shapely.set_precision(low, PRECISION_M)
    high = shapely.set_precision(high, PRECISION_M)
    polys = np.concatenate([_polygons(low), _polygons(high)])
    side = np.concatenate([np.zeros(len(_polygons(low)), dtype=bool),
                           np.ones(len(polys) - len(_polygons(low)), dtype=bool)])
    if len(polys) < 2 or side.all() or not side.any():
        return []
    # Each building to the polygon of its side holding its point (else the nearest).
    is_low = np.isin(members, line.low)
    pts = points[members]
    owner = np.full(len(members), -1)
    for s in (False, True):
        cand = np.flatnonzero(side == s)
        mine = np.flatnonzero(is_low != s)
        if not len(mine):
            continue
        if len(cand) == 1:
            owner[mine] = cand[0]
            continue
        d = shapely.distance(polys[cand][None, :], pts[mine][:, None])
        owner[mine] = cand[np.argmin(d, axis=1)]
    holders = np.bincount(owner, minlength=len(polys))
    area = shapely.area(polys)
    # Crumbs (small and empty) join the polygon they share most boundary with.
    crumbs = np.flatnonzero((holders == 0) & (area < CRUMB_M2))
    target = np.arange(len(polys))
    if len(crumbs):
        keep = np.setdiff1d(np.arange(len(polys)), crumbs)
        if len(keep) == 0:
            return []
        shared = shapely.length(shapely.intersection(
            shapely.boundary(polys[crumbs])[:, None], shapely.boundary(polys[keep])[None, :]))
        target[crumbs] = keep[np.argmax(shared, axis=1)]
    out: list[tuple[shapely.Geometry, np.ndarray]] = []
    for t in np.unique(target):
        geom = polys[t] if (target == t).sum() == 1 else \
            shapely.set_precision(shapely.union_all(polys[target == t]), PRECISION_M)
        out.append((geom, members[owner == t] if holders[t] else members[:0]))
    if sum(1 for _, m in out if len(m)) < 2:
        return []
    return out


def _polygons(geom: shapely.Geometry) -> np.ndarray:
    parts = shapely.get_parts(np.asarray([geom], dtype=object))
    parts = parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)]
    return parts


def street_frame_union(frames: list[gpd.GeoDataFrame], crs: object) -> gpd.GeoDataFrame:
    """Several cuts' inferred streets as one frame."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_streets(crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)
