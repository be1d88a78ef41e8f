"""Figures of the grid lines a partition draws: where they run, how they turn, what they cut.

The same functions serve the synthetic-fabric benchmark (bench/lines_bench.py) and the
real-data evaluations (bench/real_hangzhou.py). All geometry is in one metric CRS.

How the lines are formed (:func:`classify_boundaries`):

1. the **grid-boundary network** is the union of the grids' boundaries, noded, each
   shared edge once (coordinates snapped to 1 mm, the precision of the engine's blocks);
2. the parts within ``SNAP_M`` (1 m) of a community (village) boundary are **community**
   lines (the territory's outer edge is one too);
3. of the rest, the parts within ``GIVEN_M`` (12 m) of a given line (a road, the water
   layer's lines and polygon edges, a railway, a ridge, a dedicated area's edge) are
   **given** lines;
4. the rest are the lines drawn **where no road was given** ("free" lines). They are
   merged into maximal lines between junctions (``shapely.line_merge``: pieces are
   joined where exactly two meet; a junction of three or more, or an end where a free
   piece meets a community or given line, ends a line).

**Turns** (:func:`count_turns`): each line is simplified (Douglas–Peucker, ``SIMPLIFY_M``
= 2 m), and every vertex where the direction changes by more than ``TURN_DEG`` (30°) is a
turn (on a closed line, its closing vertex too). Turns per km = turns of all lines ÷
their length in km.

**Buildings cut** (:func:`buildings_cut`): a footprint lies in a grid where their
intersection is over max(``CUT_MIN_M2`` = 1 m², ``CUT_MIN_SHARE`` = 1 % of the footprint);
a footprint in two or more grids is cut. A cut footprint that itself crosses a given
line or a community boundary (its interior, shrunk by 0.5 m, meets the line) is cut
"across a given line" (allowed); the rest are cut for no reason in the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

SNAP_M = 1.0
GIVEN_M = 12.0
SIMPLIFY_M = 2.0
TURN_DEG = 30.0
CUT_MIN_M2 = 1.0
CUT_MIN_SHARE = 0.01
#: Coordinates of the grid-boundary network are snapped to this grid (m).
PRECISION_M = 1e-3

Geom = Any


def boundary_network(grids: np.ndarray) -> Geom:
    """The grids' boundaries as one noded (Multi)LineString, each shared edge once."""
    lines = shapely.boundary(np.asarray(grids, dtype=object))
    return shapely.union_all(lines, grid_size=PRECISION_M)


def _lines_only(geom: Geom) -> Geom:
    """The linear parts of an overlay result (points from touching are dropped)."""
    parts = shapely.get_parts(geom)
    parts = parts[np.isin(shapely.get_type_id(parts), [1, 2])]
    return shapely.multilinestrings(parts) if len(parts) else shapely.MultiLineString()


def classify_boundaries(grids: np.ndarray, community_lines: Geom, given_lines: Geom,
                        *, given_m: float = GIVEN_M, snap_m: float = SNAP_M) -> dict[str, Geom]:
    """The grid-boundary network split into ``community``, ``given`` and ``free`` lines
    (see the module docstring), with the whole ``network``."""
    network = boundary_network(grids)
    near_community = shapely.buffer(community_lines, snap_m)
    community = _lines_only(shapely.intersection(network, near_community))
    rest = _lines_only(shapely.difference(network, near_community))
    if given_lines is None or shapely.is_empty(given_lines):
        given = shapely.MultiLineString()
        free = rest
    else:
        near_given = shapely.buffer(given_lines, given_m)
        given = _lines_only(shapely.intersection(rest, near_given))
        free = _lines_only(shapely.difference(rest, near_given))
    return {"network": network, "community": community, "given": given, "free": free}


def merge_lines(geom: Geom) -> np.ndarray:
    """Maximal lines between junctions: the LineStrings of ``shapely.line_merge``."""
    if geom is None or shapely.is_empty(geom):
        return np.array([], dtype=object)
    merged = shapely.line_merge(geom) if geom.geom_type == "MultiLineString" else geom
    parts = shapely.get_parts(merged)
    return parts[(shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 0)]


def count_turns(line: Geom, *, tolerance: float = SIMPLIFY_M, angle_deg: float = TURN_DEG
                ) -> int:
    """Vertices of the simplified line where the direction changes by more than
    ``angle_deg`` (a closed line's closing vertex included)."""
    simple = shapely.simplify(line, tolerance, preserve_topology=False)
    xy = shapely.get_coordinates(simple)
    if len(xy) < 3:
        return 0
    closed = bool((xy[0] == xy[-1]).all())
    step = np.diff(xy, axis=0)
    step = step[np.hypot(step[:, 0], step[:, 1]) > 0]
    if closed:
        step = np.vstack([step, step[:1]])
    if len(step) < 2:
        return 0
    a, b = step[:-1], step[1:]
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    dot = (a * b).sum(axis=1)
    change = np.degrees(np.abs(np.arctan2(cross, dot)))
    return int((change > angle_deg).sum())


def turns_per_km(lines: np.ndarray, **kwargs: float) -> dict[str, float]:
    """Turns of all ``lines`` per km of their length."""
    lines = np.asarray(lines, dtype=object)
    turns = sum(count_turns(line, **kwargs) for line in lines)
    km = float(shapely.length(lines).sum()) / 1e3 if len(lines) else 0.0
    return {"lines": len(lines), "km": round(km, 3), "turns": int(turns),
            "turns_per_km": round(turns / km, 3) if km > 0 else 0.0}


def share_near(lines: Geom, targets: Geom, distance: float) -> float:
    """Share of the length of ``lines`` within ``distance`` of ``targets`` (0 if no line)."""
    total = float(shapely.length(lines)) if lines is not None else 0.0
    if total <= 0:
        return 0.0
    if targets is None or shapely.is_empty(targets):
        return 0.0
    near = shapely.length(shapely.intersection(lines, shapely.buffer(targets, distance)))
    return float(near) / total


def buildings_cut(footprints: np.ndarray, grids: np.ndarray, allowed_lines: Geom | None,
                  *, min_m2: float = CUT_MIN_M2, min_share: float = CUT_MIN_SHARE
                  ) -> dict[str, Any]:
    """Footprints lying in two or more grids, split into those that cross an allowed line
    (a given line or a community boundary) and the rest."""
    footprints = np.asarray(footprints, dtype=object)
    grids = np.asarray(grids, dtype=object)
    polys = np.isin(shapely.get_type_id(footprints), [3, 6])
    footprints = footprints[polys]
    n = len(footprints)
    crossing = np.zeros(n, dtype=bool)
    if allowed_lines is not None and not shapely.is_empty(allowed_lines) and n:
        inner = shapely.buffer(footprints, -0.5)
        shapely.prepare(allowed_lines)
        crossing = shapely.intersects(allowed_lines, inner)
    grids_in = np.zeros(n, dtype=np.int64)
    if n and len(grids):
        fi, gi = shapely.STRtree(grids).query(footprints, predicate="intersects")
        area = shapely.area(shapely.intersection(footprints[fi], grids[gi]))
        threshold = np.maximum(min_m2, min_share * shapely.area(footprints[fi]))
        grids_in = np.bincount(fi[area > threshold], minlength=n)
    cut = grids_in >= 2
    free = ~crossing
    return {
        "buildings": n,
        "buildings_crossing_given": int(crossing.sum()),
        "cut": int(cut.sum()),
        "cut_across_given": int((cut & crossing).sum()),
        "cut_other": int((cut & free).sum()),
        "cut_other_share": round(float((cut & free).sum()) / max(int(free.sum()), 1), 5),
        "cut_index": np.flatnonzero(cut),
    }


def best_iou(reference: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """For each reference polygon, the largest intersection-over-union with any of ours."""
    reference = np.asarray(reference, dtype=object)
    ours = np.asarray(ours, dtype=object)
    out = np.zeros(len(reference))
    if not len(reference) or not len(ours):
        return out
    ri, oi = shapely.STRtree(ours).query(reference, predicate="intersects")
    inter = shapely.area(shapely.intersection(reference[ri], ours[oi]))
    union = shapely.area(reference[ri]) + shapely.area(ours[oi]) - inter
    iou = np.divide(inter, union, out=np.zeros(len(inter)), where=union > 0)
    np.maximum.at(out, ri, iou)
    return out


def given_lines_of(layers: dict[str, Any]) -> Geom:
    """Every line given in a territory's (metric) layers: roads, water lines and polygon
    edges, railways, ridges and dedicated areas' edges, as one geometry."""
    parts: list[np.ndarray] = []
    for name in ("roads", "water", "railways", "ridges", "dedicated_areas"):
        gdf = layers.get(name)
        if gdf is None or gdf.empty:
            continue
        geoms = gdf.geometry.to_numpy()
        polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
        parts.append(np.where(polygonal, shapely.boundary(geoms), geoms))
    if not parts:
        return shapely.MultiLineString()
    return shapely.union_all(np.concatenate(parts))


def line_figures(grids: np.ndarray, villages: np.ndarray, given_lines: Geom,
                 truth_lines: Geom | None, footprints: np.ndarray | None,
                 *, truth_m: float = GIVEN_M) -> dict[str, Any]:
    """The lines figures of one partition (lengths in km, shares in [0, 1])."""
    community_lines = shapely.union_all(shapely.boundary(np.asarray(villages, dtype=object)))
    parts = classify_boundaries(grids, community_lines, given_lines)
    km = {k: round(float(shapely.length(v)) / 1e3, 3) for k, v in parts.items()}
    free_lines = merge_lines(parts["free"])
    out: dict[str, Any] = {
        "network_km": km["network"], "community_km": km["community"],
        "given_km": km["given"], "free_km": km["free"],
        "free_near_withheld_share": round(share_near(parts["free"], truth_lines, truth_m), 4)
        if truth_lines is not None else None,
        "free_turns": turns_per_km(free_lines),
    }
    if footprints is not None:
        allowed = shapely.union_all([given_lines, community_lines])
        cut = buildings_cut(footprints, grids, allowed)
        cut.pop("cut_index")
        out["buildings_cut"] = cut
    return out
