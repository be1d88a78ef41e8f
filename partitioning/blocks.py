"""Stages 1–2: barrier lines with their strength, and the atomic blocks they cut villages into."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from partitioning.params import UNKNOWN_ROAD_STRENGTH, PartitionParams

#: Blocks are snapped to this precision grid (m): shared vertices snap alike, so the
#: coverage stays exact, and later overlays are robust.
PRECISION_M = 1e-3
#: Shared boundaries shorter than this (m) do not make two blocks neighbours.
MIN_SHARED_M = 1.0
#: Edges this close (m) count as shared (pieces cut out of blocks: see adjacency).
SHARED_TOLERANCE_M = 5 * 1e-3
#: A barrier counts for a shared boundary when it lies this close (m) to its midpoint.
SNAP_M = 1.0
#: Barriers a grid cut out of a village crosses only when forced, and then says so
#: (``overlay``: the unit boundaries of a department's grid named as a barrier class).
STRONG_KINDS = ("water", "ridge", "railway", "overlay")
#: A line lying for DUPLICATE_SHARE of its length within DUPLICATE_M (m) of a longer line
#: of the same kind (and name, for roads) is a copy of it (see drop_duplicates).
DUPLICATE_M = 15.0
DUPLICATE_SHARE = 0.9
#: Line ends are carried on this far (m) so that T-junctions node (see close_gaps).
OVERSHOOT_M = 0.05


def barrier_lines(layers: dict[str, gpd.GeoDataFrame], params: PartitionParams
                  ) -> gpd.GeoDataFrame:
    """Every barrier as single lines with ``kind``, ``class``, ``name`` and ``strength``."""
    parts: list[pd.DataFrame] = []

    def add(geoms: np.ndarray, kind: str, cls: np.ndarray, names: np.ndarray) -> None:
        if len(geoms) == 0:
            return
        lines, idx = shapely.get_parts(geoms, return_index=True)
        parts.append(pd.DataFrame({
            "kind": kind, "class": np.asarray(cls, dtype=object)[idx],
            "name": np.asarray(names, dtype=object)[idx], "geometry": lines}))

    if "roads" in layers:
        roads = layers["roads"]
        add(roads.geometry.to_numpy(), "road", roads["class"].to_numpy(),
            roads["name"].to_numpy())
    if "water" in layers:
        water = layers["water"]
        geoms = water.geometry.to_numpy()
        polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
        # A river drawn as an area: its banks (the river itself is its centre line, which
        # partitioning/water.py finds when it shares the water between the banks).
        cls = np.where(polygonal, "riverbank", "water").astype(object)
        geoms = np.where(polygonal, shapely.boundary(geoms), geoms)
        add(geoms, "water", cls, water["name"].to_numpy())
    for layer, kind in (("ridges", "ridge"), ("railways", "railway")):
        if layer in layers:
            gdf = layers[layer]
            add(gdf.geometry.to_numpy(), kind, np.full(len(gdf), kind, dtype=object),
                gdf["name"].to_numpy())
    if "overlay_lines" in layers:
        lines = layers["overlay_lines"]
        add(lines.geometry.to_numpy(), "overlay", np.full(len(lines), "overlay", dtype=object),
            lines["name"].to_numpy())
    if "dedicated_areas" in layers:
        ded = layers["dedicated_areas"]
        add(shapely.boundary(ded.geometry.to_numpy()), "dedicated",
            np.full(len(ded), "dedicated", dtype=object), ded["name"].to_numpy())
    crs = next(iter(layers.values())).crs
    if not parts:
        return gpd.GeoDataFrame({"kind": [], "class": [], "name": [], "strength": []},
                                geometry=[], crs=crs)
    frame = pd.concat(parts, ignore_index=True)
    strength = frame["class"].astype(str).map(params.strengths)
    frame["strength"] = strength.fillna(UNKNOWN_ROAD_STRENGTH).where(
        ~frame["kind"].isin(["dedicated", "overlay"]), 1.0).to_numpy(dtype=float)
    keep = shapely.get_type_id(frame["geometry"].to_numpy()) == 1
    return gpd.GeoDataFrame(frame[keep].reset_index(drop=True), geometry="geometry", crs=crs)


def drop_duplicates(barriers: gpd.GeoDataFrame, within: float = DUPLICATE_M,
                    share: float = DUPLICATE_SHARE) -> gpd.GeoDataFrame:
    """The barriers without the copies of a line given twice (a river in both the river and
    the road file, its two banks drawn as lines, a road digitised twice): a line lying for
    ``share`` of its length within ``within`` m of a longer line of the same kind — and, for
    roads, of the same name — is dropped. Two copies a few metres apart would otherwise
    enclose a long empty strip that some grid must take across the line."""
    if len(barriers) < 2:
        return barriers
    geoms = barriers.geometry.to_numpy()
    kind = barriers["kind"].astype(str).to_numpy()
    name = barriers["name"].astype(object).where(barriers["name"].notna(), "").astype(str) \
        .to_numpy()
    length = shapely.length(geoms)
    zone = shapely.buffer(geoms, within, cap_style="flat")
    a, b = shapely.STRtree(geoms).query(zone, predicate="intersects")
    same = (a != b) & (kind[a] == kind[b]) & (length[b] > length[a]) & (
        (kind[a] != "road") | ((name[a] == name[b]) & (name[a] != "")))
    a, b = a[same], b[same]
    if not len(a):
        return barriers
    covered = shapely.length(shapely.intersection(geoms[a], zone[b]))
    frame = pd.DataFrame({"a": a, "covered": covered})
    best = frame.groupby("a")["covered"].sum()
    drop = best.index[best.to_numpy() >= share * length[best.index.to_numpy()]].to_numpy()
    keep = np.ones(len(geoms), dtype=bool)
    keep[drop] = False
    return barriers[keep].reset_index(drop=True)


def close_gaps(barriers: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
               params: PartitionParams) -> gpd.GeoDataFrame:
    """The barriers, and for each line end that stops short of every other line (a stream
    a few metres from the river it runs into, a road short of the road it meets) a
    connector to the nearest line or village boundary: up to ``params.gap_strong_m`` for
    rivers, ridges and railways, ``params.gap_m`` for the rest. Without it the line ends
    inside a block and divides nothing."""
    if not len(barriers):
        return barriers
    geoms = barriers.geometry.to_numpy()
    rings = shapely.get_parts(shapely.boundary(villages.geometry.to_numpy()))
    targets = np.concatenate([geoms, rings])
    ends = np.concatenate([shapely.get_point(geoms, 0), shapely.get_point(geoms, -1)])
    owner = np.tile(np.arange(len(geoms)), 2)
    tree = shapely.STRtree(targets)
    # Ends touching another line (or a village boundary) are joined already.
    ti, hit = tree.query(ends, predicate="dwithin", distance=1e-3)
    joined = np.zeros(len(ends), dtype=bool)
    joined[ti[hit != owner[ti]]] = True
    strong = barriers["kind"].isin(STRONG_KINDS).to_numpy()[owner]
    reach = np.where(strong, params.gap_strong_m, params.gap_m)
    loose = np.flatnonzero(~joined & (reach > 0))
    if not len(loose):
        return _carried_on(barriers)
    li, cand = tree.query(ends[loose], predicate="dwithin", distance=reach[loose])
    other = cand != owner[loose[li]]
    li, cand = li[other], cand[other]
    if not len(li):
        return _carried_on(barriers)
    dist = shapely.distance(ends[loose[li]], targets[cand])
    order = np.lexsort((cand, dist, li))
    first = np.unique(li[order], return_index=True)[1]
    li, cand = li[order][first], cand[order][first]
    src = ends[loose[li]]
    to = shapely.line_interpolate_point(targets[cand], shapely.line_locate_point(
        targets[cand], src))
    links = shapely.linestrings(np.stack([shapely.get_coordinates(src),
                                          shapely.get_coordinates(to)], axis=1))
    keep = shapely.length(links) > 1e-3
    rows = barriers.iloc[owner[loose[li]][keep]].copy()
    rows = rows.set_geometry(np.asarray(links)[keep])
    return _carried_on(gpd.GeoDataFrame(pd.concat([barriers, rows], ignore_index=True),
                                        geometry="geometry", crs=barriers.crs))


def _carried_on(barriers: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A line ending on another (a T-junction) ends there only to floating-point precision,
    often a hair short: every end is carried on by OVERSHOOT_M so that the noding sees the
    crossing (the stub beyond divides nothing and is dropped with the dangles)."""
    return barriers.set_geometry(_overshoot(barriers.geometry.to_numpy(), OVERSHOOT_M))


def _overshoot(lines: np.ndarray, by: float) -> np.ndarray:
    """Each line with its two ends carried on straight by ``by`` metres."""
    xy, idx = shapely.get_coordinates(lines, return_index=True)
    if not len(xy):
        return lines
    first = np.searchsorted(idx, np.arange(len(lines)))
    last = np.searchsorted(idx, np.arange(len(lines)), side="right") - 1
    ok = last > first
    xy = xy.copy()
    for end, nxt in ((first[ok], first[ok] + 1), (last[ok], last[ok] - 1)):
        d = xy[end] - xy[nxt]
        norm = np.hypot(d[:, 0], d[:, 1])
        good = norm > 0
        xy[end[good]] += d[good] / norm[good, None] * by
    return np.asarray(shapely.linestrings(xy, indices=idx))


def make_blocks(villages: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame,
                params: PartitionParams) -> gpd.GeoDataFrame:
    """Polygonise each village with the barriers inside it; merge slivers.

    Every face lies in exactly one village (the village boundary is part of
    the noding), and the faces of a village cover it exactly.
    """
    vgeoms = villages.geometry.to_numpy()
    bgeoms = barriers.geometry.to_numpy()
    vi, bi = shapely.STRtree(bgeoms).query(vgeoms, predicate="intersects")
    order = np.argsort(vi, kind="stable")
    vi, bi = vi[order], bi[order]
    starts = np.searchsorted(vi, np.arange(len(vgeoms) + 1))
    faces: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for v, village in enumerate(vgeoms):
        # Node whole lines with the boundary (a line clipped to the village would
        # end a rounding error short of it and dangle), keep the faces inside.
        edges = np.concatenate([bgeoms[bi[starts[v]:starts[v + 1]]],
                                shapely.get_parts(shapely.boundary(village))])
        noded = shapely.union_all(edges)
        polys = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
        polys = polys[shapely.contains_properly(village, shapely.point_on_surface(polys))]
        polys = _merge_slivers(polys, params.sliver_area_m2)
        faces.append(polys)
        owners.append(np.full(len(polys), v))
    geoms = np.concatenate(faces) if faces else np.array([], dtype=object)
    owner = np.concatenate(owners) if owners else np.array([], dtype=int)
    geoms = shapely.set_precision(geoms, PRECISION_M)
    # A zero-width face (a needle between near-coincident lines, or a degenerate village)
    # collapses on the precision grid: it covered nothing, and an empty block would make
    # an empty grid.
    kept = ~shapely.is_empty(geoms)
    geoms, owner = geoms[kept], owner[kept]
    return gpd.GeoDataFrame(
        {"block_id": np.arange(len(geoms)),
         "village_code": villages["code"].to_numpy()[owner]},
        geometry=geoms, crs=villages.crs)


def _merge_slivers(polys: np.ndarray, min_area: float) -> np.ndarray:
    """Merge faces under ``min_area`` into the neighbour sharing most boundary."""
    if len(polys) < 2:
        return polys
    areas = shapely.area(polys)
    small = np.flatnonzero(areas < min_area)
    if small.size == 0:
        return polys
    tree = shapely.STRtree(polys)
    group = np.arange(len(polys))
    for s in small[np.argsort(areas[small])]:
        cand = tree.query(polys[s], predicate="intersects")
        cand = cand[(cand != s) & (areas[cand] >= min_area)]
        if cand.size == 0:
            continue
        shared = shapely.length(shapely.intersection(shapely.boundary(polys[s]),
                                                     shapely.boundary(polys[cand])))
        if shared.max() <= 0:
            continue
        group[s] = cand[int(np.argmax(shared))]
    # Follow chains (a sliver merged into a sliver) to their root.
    while True:
        nxt = group[group]
        if np.array_equal(nxt, group):
            break
        group = nxt
    roots, inverse = np.unique(group, return_inverse=True)
    if len(roots) == len(polys):
        return polys
    out = np.empty(len(roots), dtype=object)
    for r in range(len(roots)):
        members = polys[inverse == r]
        out[r] = members[0] if len(members) == 1 else shapely.union_all(members)
    return out


def dissolve(geoms: np.ndarray) -> Any:
    """The union of blocks (a grid's outline) on the precision grid. Blocks the adjacency
    finds sharing an edge within :data:`SHARED_TOLERANCE_M` but not exactly (a cut piece's
    edge off its neighbour's by a rounding error) would stay apart in a plain union: where
    the union falls in parts, those seams are closed (grown and shrunk back by the
    tolerance, mitred, so outer edges and corners stay where they were)."""
    union = shapely.union_all(geoms, grid_size=PRECISION_M)
    if shapely.get_num_geometries(union) < 2:
        return union
    step = 2 * SHARED_TOLERANCE_M
    grown = shapely.buffer(shapely.buffer(shapely.union_all(geoms), step, join_style="mitre",
                                          mitre_limit=10.0),
                           -step, join_style="mitre", mitre_limit=10.0)
    parts = shapely.get_parts(shapely.set_precision(shapely.make_valid(grown), PRECISION_M))
    parts = parts[shapely.get_type_id(parts) == 3]
    if len(parts) and len(parts) < shapely.get_num_geometries(union):
        return parts[0] if len(parts) == 1 else shapely.multipolygons(parts)
    return union


def adjacency(blocks: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame,
              among: np.ndarray | None = None) -> pd.DataFrame:
    """Pairs of blocks of the same village sharing a boundary (only the pairs with a
    block in ``among``, positions, when given).

    Columns ``a``, ``b`` (block positions, a < b), ``length`` (m of shared
    boundary), ``strength`` (of the strongest barrier along it, 0 where the
    boundary follows no barrier) and ``strong`` (the position in ``barriers`` of a
    strong barrier — river, ridge, railway, see :data:`STRONG_KINDS` — along it, or -1).
    """
    geoms = blocks.geometry.to_numpy()
    if among is None:
        a, b = shapely.STRtree(geoms).query(geoms, predicate="dwithin",
                                            distance=SHARED_TOLERANCE_M)
        keep = a < b
    else:
        hit, b = shapely.STRtree(geoms).query(geoms[among], predicate="dwithin",
                                              distance=SHARED_TOLERANCE_M)
        a = among[hit]
        both = np.zeros(len(geoms), dtype=bool)
        both[among] = True
        # A pair of two listed blocks is found from each side: keep it once.
        keep = (a != b) & (~both[b] | (a < b))
        a, b = np.minimum(a, b), np.maximum(a, b)
    village = blocks["village_code"].to_numpy()
    keep &= village[a] == village[b]
    a, b = a[keep], b[keep]
    order = np.lexsort((b, a))         # a canonical order (the tree's is arbitrary)
    a, b = a[order], b[order]
    # Each block's outline once (a block has several neighbours).
    outline = np.empty(len(geoms), dtype=object)
    used = np.unique(np.concatenate([a, b]))
    outline[used] = shapely.boundary(geoms[used])
    shared = shapely.intersection(outline[a], outline[b])
    length = shapely.length(shared)
    # A piece cut out of a block has a vertex where the cut meets the block's edge that its
    # neighbour across that edge lacks (off it by a rounding error): an exact overlay sees
    # the two edges cross at points instead of running together. Those pairs are measured
    # with a tolerance of a few precision steps.
    loose = np.flatnonzero(length < MIN_SHARED_M)
    if len(loose):
        near = shapely.intersection(
            outline[a[loose]],
            shapely.buffer(outline[b[loose]], SHARED_TOLERANCE_M, quad_segs=1))
        near_len = shapely.length(near)
        better = near_len > length[loose]
        shared = shared.copy()
        shared[loose[better]] = near[better]
        length = length.copy()
        length[loose[better]] = near_len[better]
    ok = length >= MIN_SHARED_M
    a, b, shared, length = a[ok], b[ok], shared[ok], length[ok]
    strength = np.zeros(len(a))
    strong = np.full(len(a), -1, dtype=np.int64)
    if len(a) and len(barriers):
        mid = shapely.line_interpolate_point(_longest_part(shared), 0.5, normalized=True)
        pi, li = shapely.STRtree(barriers.geometry.to_numpy()).query(
            mid, predicate="dwithin", distance=SNAP_M)
        np.maximum.at(strength, pi, barriers["strength"].to_numpy()[li])
        kinds = barriers["kind"] if "kind" in barriers else pd.Series([""] * len(barriers))
        is_strong = kinds.isin(STRONG_KINDS).to_numpy()[li]
        # The first strong barrier along the edge names it (ties: the lower position).
        order = np.lexsort((li[is_strong], pi[is_strong]))
        sp, sl = pi[is_strong][order], li[is_strong][order]
        first = np.unique(sp, return_index=True)[1]
        strong[sp[first]] = sl[first]
    return pd.DataFrame({"a": a, "b": b, "length": length, "strength": strength,
                         "strong": strong})


def _longest_part(lines: np.ndarray) -> np.ndarray:
    """The longest single line of each (multi)line, for a representative midpoint."""
    parts, idx = shapely.get_parts(lines, return_index=True)
    lengths = np.where(shapely.get_dimensions(parts) == 1, shapely.length(parts), -1.0)
    order = np.lexsort((-lengths, idx))
    first = np.ones(len(order), dtype=bool)
    first[1:] = idx[order][1:] != idx[order][:-1]
    out = np.empty(len(lines), dtype=object)
    out[idx[order][first]] = parts[order][first]
    return out
