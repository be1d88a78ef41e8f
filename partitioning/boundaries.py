"""Stages 7–8 (shared geometry): each grid's boundary segments, what they follow, and its 四至."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

#: A boundary segment follows a barrier lying within this distance (m) of its midpoint.
FOLLOW_M = 12.0
#: A segment with no grid on its other side looks this far (m) outward for one across a
#: gap (a road or strip that no village holds, a district line cut out).
GAP_M = (1.0, 6.0, FOLLOW_M)
DIRECTIONS = ("东", "南", "西", "北")
#: The outward angle (degrees, 0 = east, 90 = north) at the centre of each direction.
CENTRES = np.array([0.0, -90.0, 180.0, 90.0])


def boundary_segments(grids: np.ndarray) -> pd.DataFrame:
    """Every edge of every grid ring: owner, midpoint, length and outward direction.

    Rings are oriented (exteriors counter-clockwise), so the outward normal
    of an edge (dx, dy) is (dy, -dx). ``direction`` is 0 east, 1 south, 2 west, 3 north.
    """
    oriented = shapely.orient_polygons(grids, exterior_cw=False)
    rings, ring_owner = shapely.get_rings(shapely.get_parts(oriented), return_index=True)
    parts_owner = shapely.get_parts(oriented, return_index=True)[1]
    owner_of_ring = parts_owner[ring_owner]
    coords, ci = shapely.get_coordinates(rings, return_index=True)
    same = ci[1:] == ci[:-1]
    x0, y0 = coords[:-1][same, 0], coords[:-1][same, 1]
    x1, y1 = coords[1:][same, 0], coords[1:][same, 1]
    ring = ci[:-1][same]
    dx, dy = x1 - x0, y1 - y0
    length = np.hypot(dx, dy)
    nx, ny = dy, -dx
    angle = np.degrees(np.arctan2(ny, nx))   # 0 = east, 90 = north
    direction = np.select([(angle >= -45) & (angle < 45), (angle >= 45) & (angle < 135),
                           (angle >= -135) & (angle < -45)], [0, 3, 1], default=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux, uy = nx / length, ny / length
    frame = pd.DataFrame({
        "grid": owner_of_ring[ring], "mx": (x0 + x1) / 2, "my": (y0 + y1) / 2,
        "length": length, "direction": direction, "angle": angle, "nx": ux, "ny": uy})
    return frame[frame["length"] > 0].reset_index(drop=True)


def follow(segments: pd.DataFrame, barriers: gpd.GeoDataFrame) -> np.ndarray:
    """Position of the barrier each segment follows (the nearest within FOLLOW_M), or -1.

    Barriers are searched as their single straight pieces (a long road is one
    box in a spatial index otherwise, and a distance to it walks every vertex);
    where two barriers are equally near (a road on a village boundary), the
    first one wins. Two grids sharing an edge ask once for its midpoint.
    """
    out = np.full(len(segments), -1, dtype=np.int64)
    if len(segments) == 0 or len(barriers) == 0:
        return out
    pieces, owner = _straight_pieces(barriers.geometry.to_numpy())
    mxy = segments[["mx", "my"]].to_numpy()
    uniq, inverse = np.unique(mxy, axis=0, return_inverse=True)
    mids = shapely.points(uniq)
    (idx, hit), dist = shapely.STRtree(pieces).query_nearest(
        mids, max_distance=FOLLOW_M, return_distance=True, all_matches=True)
    if len(idx) == 0:
        return out
    order = np.lexsort((owner[hit], dist, idx))
    first = np.ones(len(order), dtype=bool)
    first[1:] = idx[order][1:] != idx[order][:-1]
    best = np.full(len(uniq), -1, dtype=np.int64)
    best[idx[order][first]] = owner[hit][order][first]
    return best[inverse.ravel()]


def _straight_pieces(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every two-point piece of ``lines`` (lines or multilines), and the line it came from."""
    parts, part_owner = shapely.get_parts(lines, return_index=True)
    coords, ci = shapely.get_coordinates(parts, return_index=True)
    same = ci[1:] == ci[:-1]
    start = coords[:-1][same]
    end = coords[1:][same]
    pieces = np.asarray(shapely.linestrings(np.stack([start, end], axis=1)))
    return pieces, part_owner[ci[:-1][same]]


def neighbours(segments: pd.DataFrame, grids: np.ndarray) -> np.ndarray:
    """The other grid across each segment (just outside its midpoint; failing that, the
    first one met going outward up to GAP_M, across a gap no grid covers), or -1."""
    out = np.full(len(segments), -1, dtype=np.int64)
    if len(segments) == 0:
        return out
    tree = shapely.STRtree(grids)
    owner = segments["grid"].to_numpy()
    mids = shapely.points(segments["mx"].to_numpy(), segments["my"].to_numpy())
    si, gi = tree.query(mids, predicate="dwithin", distance=0.5)
    other = gi != owner[si]
    si, gi = si[other], gi[other]
    first = np.unique(si, return_index=True)[1]
    out[si[first]] = gi[first]
    if "nx" in segments:
        for step in GAP_M:
            lost = np.flatnonzero(out < 0)
            if not lost.size:
                break
            probe = shapely.points(segments["mx"].to_numpy()[lost]
                                   + segments["nx"].to_numpy()[lost] * step,
                                   segments["my"].to_numpy()[lost]
                                   + segments["ny"].to_numpy()[lost] * step)
            pi, gi = tree.query(probe, predicate="intersects")
            other = gi != owner[lost[pi]]
            pi, gi = pi[other], gi[other]
            first = np.unique(pi, return_index=True)[1]
            out[lost[pi[first]]] = gi[first]
    return out


def boundary_texts(segments: pd.DataFrame, followed: np.ndarray, barriers: gpd.GeoDataFrame,
                   neighbour: np.ndarray, codes: np.ndarray, n_grids: int) -> np.ndarray:
    """四至 per grid: "东至…，南至…，西至…，北至…".

    For each side, the named barrier running longest along it; failing
    that, the neighbouring grid with the longest shared edge on that side
    ("…网格"); failing that (the territory's edge), "辖区边界".

    A side is the grid's edges facing that way (outward normal within 45° of it). A grid
    with no edge facing one way (a triangle, a diamond) takes for that side the edges
    facing partly that way (within 90°), weighted by how much they face it, so that a
    side says 辖区边界 only where the edges it stands for lie on the territory's edge.
    """
    names = barriers["name"].to_numpy(dtype=object) if len(barriers) else np.array([])
    seg_name = np.full(len(segments), None, dtype=object)
    has = followed >= 0
    seg_name[has] = names[followed[has]]
    frame = segments.assign(name=seg_name, neighbour=neighbour)
    named = frame[frame["name"].notna() & (frame["name"] != "")]
    best_name = (named.groupby(["grid", "direction", "name"])["length"].sum()
                 .reset_index().sort_values(["grid", "direction", "length", "name"],
                                            ascending=[True, True, False, True])
                 .drop_duplicates(["grid", "direction"]))
    by_side = {(int(g), int(d)): str(n) for g, d, n in
               zip(best_name["grid"], best_name["direction"], best_name["name"], strict=True)}
    nb = frame[frame["neighbour"] >= 0]
    best_nb = (nb.groupby(["grid", "direction", "neighbour"])["length"].sum().reset_index()
               .sort_values(["grid", "direction", "length"], ascending=[True, True, False])
               .drop_duplicates(["grid", "direction"]))
    nb_side = {(int(g), int(d)): f"{codes[int(o)]}网格" for g, d, o in
               zip(best_nb["grid"], best_nb["direction"], best_nb["neighbour"], strict=True)}
    present = set(zip(frame["grid"].tolist(), frame["direction"].tolist(), strict=True))
    missing = [(g, d) for g in range(n_grids) for d in range(4) if (g, d) not in present]
    if missing and "angle" in frame:
        by_grid = frame.groupby("grid").indices
        for g, d in missing:
            rows = frame.iloc[by_grid.get(g, np.array([], dtype=int))]
            facing = np.cos(np.radians(rows["angle"].to_numpy() - CENTRES[d]))
            rows = rows.assign(weight=rows["length"].to_numpy() * facing)[facing > 1e-9]
            name = _heaviest(rows[rows["name"].notna() & (rows["name"] != "")], "name")
            other = _heaviest(rows[rows["neighbour"] >= 0], "neighbour")
            if name is not None:
                by_side[(g, d)] = str(name)
            elif other is not None:
                by_side[(g, d)] = f"{codes[int(str(other))]}网格"
    out = np.empty(n_grids, dtype=object)
    for g in range(n_grids):
        sides = [by_side.get((g, d)) or nb_side.get((g, d)) or "辖区边界" for d in range(4)]
        out[g] = "，".join(f"{DIRECTIONS[d]}至{sides[d]}" for d in range(4))
    return out


def _heaviest(rows: pd.DataFrame, column: str) -> object | None:
    """The value of ``column`` with the most ``weight`` (ties: the smallest), or None."""
    if rows.empty:
        return None
    sums = rows.groupby(column)["weight"].sum()
    return sums.sort_index().idxmax()


def named_lines(barriers: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The barriers with a name (what a 四至 text can say a boundary follows; a department
    unit's boundary taken as a barrier is no place name)."""
    if len(barriers):
        barriers = barriers[barriers["name"].notna() & (barriers["name"].astype(str) != "")]
        if "kind" in barriers:
            barriers = barriers[barriers["kind"] != "overlay"]
    return barriers.reset_index(drop=True)


def sides(geoms: np.ndarray, grid_codes: np.ndarray, barriers: gpd.GeoDataFrame,
          which: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The boundary segments of the grids ``which`` (positions in ``geoms``, metric; every
    grid by default) and the 四至 texts of all grids (those of the others empty): what each
    side follows among the named ``barriers``, else the grids across it. The engine and the
    edits describe grids with this one function."""
    segments = boundary_segments(geoms if which is None else geoms[which])
    if which is not None:
        segments["grid"] = which[segments["grid"].to_numpy()]
    named = named_lines(barriers)
    followed = follow(segments, named)
    across = neighbours(segments, geoms)
    texts = boundary_texts(segments, followed, named, across, grid_codes, len(geoms))
    return segments, texts


def followed_kinds(segments: pd.DataFrame, barriers: gpd.GeoDataFrame,
                   village_lines: np.ndarray, crs: object) -> np.ndarray:
    """The kind of barrier each segment follows (``admin`` for a village boundary, "" for
    none): what the barrier share counts. ``barriers`` and ``village_lines`` in ``crs``."""
    admin = gpd.GeoDataFrame({"kind": np.full(len(village_lines), "admin", dtype=object)},
                             geometry=village_lines, crs=crs)
    kinds_frame = barriers[["kind", "geometry"]] if len(barriers) else \
        gpd.GeoDataFrame({"kind": []}, geometry=[], crs=crs)
    follow_set = pd.concat([kinds_frame, admin], ignore_index=True)
    followed_any = follow(segments, follow_set)
    return np.where(followed_any >= 0, follow_set["kind"].to_numpy(dtype=object)[
        np.maximum(followed_any, 0)], "")
