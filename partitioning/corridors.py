"""Straight lines through the open space between buildings: the corridors (streets on the
ground that the roads layer lacks) and the cut a block is divided by.

A line in direction θ crosses no building when its offset along the normal falls in a
gap between the buildings' projections on that normal: the union of the projected
intervals leaves gaps, and each gap is a corridor running straight across the whole
block, as wide as the gap. Streets are the wide ones. The directions tried are those of
the buildings' walls and of the block's own edges (streets run along both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

#: Directions closer than this (radians) are the same direction.
SAME_DIRECTION = np.radians(6.0)
#: At most this many directions are tried per block (each with its perpendicular).
MAX_DIRECTIONS = 3
#: A point building (an address point) blocks this far around it (m).
POINT_RADIUS_M = 4.0


@dataclass(frozen=True)
class Footprints:
    """The buildings' outlines as coordinate rows: building ``i`` owns rows
    ``start[i]:start[i + 1]`` of ``xy``; its wall directions (mod 90°) and their lengths."""

    xy: np.ndarray              # (m, 2)
    start: np.ndarray           # (n + 1,)
    radius: np.ndarray          # (n,) extra half-width (points: POINT_RADIUS_M, else 0)
    wall_angle: np.ndarray      # (e,) direction of each wall, mod π/2
    wall_length: np.ndarray     # (e,)
    wall_start: np.ndarray      # (n + 1,) building i owns walls wall_start[i]:wall_start[i+1]
    geoms: np.ndarray           # (n,) the buildings as given

    def outline(self, ids: np.ndarray) -> np.ndarray:
        """The outlines of buildings ``ids`` as polygons (points: discs of their radius)."""
        g = self.geoms[ids]
        point = shapely.get_type_id(g) == 0
        return np.where(point, shapely.buffer(g, np.maximum(self.radius[ids], 0.5),
                                              quad_segs=4), g)

    @classmethod
    def of(cls, geoms: np.ndarray) -> Footprints:
        """From building geometries (polygons, or points for address points)."""
        geoms = np.asarray(geoms, dtype=object)
        rings = np.where(shapely.get_type_id(geoms) >= 3, shapely.boundary(geoms), geoms)
        xy, owner = shapely.get_coordinates(rings, return_index=True)
        n = len(geoms)
        start = np.searchsorted(owner, np.arange(n + 1))
        radius = np.where(shapely.get_type_id(geoms) == 0, POINT_RADIUS_M, 0.0)
        d = np.diff(xy, axis=0)
        same = owner[1:] == owner[:-1]
        d, w_owner = d[same], owner[1:][same]
        length = np.hypot(d[:, 0], d[:, 1])
        ok = length > 0.5
        angle = np.mod(np.arctan2(d[ok, 1], d[ok, 0]), np.pi / 2)
        w_owner = w_owner[ok]
        return cls(xy=xy, start=start, radius=radius, wall_angle=angle,
                   wall_length=length[ok], wall_start=np.searchsorted(w_owner, np.arange(n + 1)),
                   geoms=geoms)


def _dominant(angles: np.ndarray, weights: np.ndarray, k: int) -> list[float]:
    """Up to ``k`` dominant directions (mod π/2) of weighted wall directions."""
    if len(angles) == 0 or float(weights.sum()) <= 0:
        return []
    bins = 90
    hist = np.bincount(np.minimum((angles / (np.pi / 2) * bins).astype(int), bins - 1),
                       weights=weights, minlength=bins)
    # Circular smoothing over ±2°.
    smooth = np.sum([np.roll(hist, s) for s in range(-2, 3)], axis=0)
    out: list[float] = []
    for _ in range(k):
        i = int(np.argmax(smooth))
        if smooth[i] <= 0.15 * float(smooth.max() if not out else smooth.max() + 1e-9) and out:
            break
        if smooth[i] <= 0:
            break
        # The peak's exact direction: the weighted mean of the walls within ±2° of it.
        centre = (i + 0.5) * (np.pi / 2) / bins
        off = (angles - centre + np.pi / 4) % (np.pi / 2) - np.pi / 4
        near = np.abs(off) <= np.radians(2.5)
        out.append(float(centre + np.average(off[near], weights=weights[near]))
                   if weights[near].sum() > 0 else centre)
        for s in range(-6, 7):
            smooth[(i + s) % bins] = 0.0
    return out


def _gather(start: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start[i]:start[i + 1]`` of every member ``i``, concatenated, and each
    member's count."""
    counts = start[members + 1] - start[members]
    first = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) + np.repeat(start[members] - first, counts), counts


def directions(piece: shapely.Geometry, fp: Footprints, members: np.ndarray) -> np.ndarray:
    """Directions (radians in [0, π)) worth trying for lines across ``piece``: the main
    directions of its buildings' walls and of its own edges, each with its perpendicular."""
    walls, _ = _gather(fp.wall_start, members)
    found = _dominant(fp.wall_angle[walls], fp.wall_length[walls], 2)
    ring = shapely.get_coordinates(shapely.boundary(piece))
    d = np.diff(ring, axis=0)
    length = np.hypot(d[:, 0], d[:, 1])
    ok = length > 1.0
    edge = _dominant(np.mod(np.arctan2(d[ok, 1], d[ok, 0]), np.pi / 2), length[ok], 2)
    out: list[float] = []
    for a in [*found, *edge]:
        if all(abs(((a - b) + np.pi / 4) % (np.pi / 2) - np.pi / 4) > SAME_DIRECTION for b in out):
            out.append(a)
        if len(out) >= MAX_DIRECTIONS:
            break
    if not out:
        out = [0.0]
    both = np.mod(np.array([[a, a + np.pi / 2] for a in out]).ravel(), np.pi)
    return np.where(both > np.pi - 1e-9, 0.0, both)


@dataclass(frozen=True)
class Line:
    """A straight cut across a piece: direction, offset along the normal, how wide the gap
    it runs down is (0: it crosses buildings), and the buildings on its low side."""

    angle: float
    offset: float
    width: float
    low: np.ndarray             # members (building ids) on the low side
    crossed: np.ndarray         # members the line runs through (they keep to one side)
    score: float

    def normal(self) -> np.ndarray:
        return np.array([-np.sin(self.angle), np.cos(self.angle)])


def _intervals(fp: Footprints, members: np.ndarray, normal: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each member's projection on ``normal``: (low, high)."""
    rows, counts = _gather(fp.start, members)
    proj = fp.xy[rows] @ normal
    first = np.cumsum(counts) - counts
    lo = np.minimum.reduceat(proj, first) if len(proj) else np.zeros(len(members))
    hi = np.maximum.reduceat(proj, first) if len(proj) else np.zeros(len(members))
    r = fp.radius[members]
    return lo - r, hi + r


def clear_gaps(fp: Footprints, members: np.ndarray, weights: np.ndarray, angle: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gaps between the members' projections on the normal of ``angle``: for each gap
    its low and high offsets, the weight below it and the number of members below it.
    Only gaps with members on both sides are returned (not the margins)."""
    normal = np.array([-np.sin(angle), np.cos(angle)])
    lo, hi = _intervals(fp, members, normal)
    order = np.argsort(lo, kind="stable")
    lo, hi, w = lo[order], hi[order], weights[order]
    reach = np.maximum.accumulate(hi)
    gap = np.flatnonzero(lo[1:] > reach[:-1])
    below_w = np.cumsum(w)[gap]
    return reach[gap], lo[gap + 1], below_w, gap + 1


def best_line(piece: shapely.Geometry, fp: Footprints, members: np.ndarray,
              weights: np.ndarray, *, street_width: float, min_share: float = 0.1,
              angles: np.ndarray | None = None) -> Line | None:
    """The best straight cut of ``piece`` between its ``members`` (building ids).

    Clear lines (crossing no building) come first: the widest gap, up to
    ``street_width`` (a street), then the most balanced; a gap must leave at least
    ``min_share`` of the weight (households, or buildings when there are none) on each
    side, unless only two buildings are left. With no clear line, the line crossing the
    fewest buildings near the middle, which then keep to one side."""
    if len(members) < 2:
        return None
    w = weights.astype(float)
    if float(w.sum()) <= 0:
        w = np.ones(len(members))
    total = float(w.sum())
    if angles is None:
        angles = directions(piece, fp, members)
    cand: list[tuple[float, float, float, float]] = []   # angle, lo, hi, share
    for angle in angles:
        g_lo, g_hi, below, _ = clear_gaps(fp, members, w, float(angle))
        share = np.minimum(below, total - below) / total
        cand.extend(zip(np.full(len(g_lo), float(angle)).tolist(), g_lo.tolist(),
                        g_hi.tolist(), share.tolist(), strict=True))
    if not cand:
        return _crossing_line(piece, fp, members, w, angles)
    arr = np.array(cand, dtype=float)
    angle_c, lo_c, hi_c, share_c = arr.T
    width = hi_c - lo_c
    balanced = share_c >= min_share - 1e-12
    if balanced.any():
        score = np.where(balanced, np.minimum(width, street_width) / street_width
                         + share_c / 0.5 * 0.5, -np.inf)
    else:
        # Only lopsided gaps: the most balanced one (the rest is cut again).
        score = share_c + 1e-3 * np.minimum(width, street_width)
    i = int(np.argmax(score))
    angle = float(angle_c[i])
    normal = np.array([-np.sin(angle), np.cos(angle)])
    lo, _ = _intervals(fp, members, normal)
    offset = float((lo_c[i] + hi_c[i]) / 2)
    return Line(angle, offset, float(width[i]), members[lo < offset],
                np.array([], dtype=np.int64), float(score[i]))


def _crossing_line(piece: shapely.Geometry, fp: Footprints, members: np.ndarray,
                   w: np.ndarray, angles: np.ndarray) -> Line | None:
    """No clear line: the one crossing the fewest buildings within the middle half of the
    weight, nearest the middle."""
    total = float(w.sum())
    best: Line | None = None
    for angle in angles:
        normal = np.array([-np.sin(angle), np.cos(angle)])
        lo, hi = _intervals(fp, members, normal)
        centre = (lo + hi) / 2
        # Candidate offsets: every interval end (just outside it), within the middle.
        cand = np.unique(np.concatenate([lo - 0.01, hi + 0.01]))
        crossing = (lo[None, :] < cand[:, None]) & (hi[None, :] > cand[:, None])
        below = (np.where(crossing, centre[None, :] < cand[:, None], hi[None, :] <= cand[:, None])
                 * w[None, :]).sum(axis=1)
        share = np.minimum(below, total - below) / total
        ok = share >= 0.25 - 1e-12
        if not ok.any():
            ok = share >= share.max() - 1e-12
        n_cross = crossing.sum(axis=1)
        score = -n_cross.astype(float) + 0.5 * share / 0.5
        i = int(np.argmax(np.where(ok & (share > 0), score, -np.inf)))
        if not np.isfinite(np.where(ok & (share > 0), score, -np.inf)[i]):
            continue
        if best is None or score[i] > best.score:
            low = members[np.where(crossing[i], centre < cand[i], hi <= cand[i])]
            best = Line(float(angle), float(cand[i]), 0.0, low, members[crossing[i]],
                        float(score[i]))
    return best


def sides_of(line: Line, piece: shapely.Geometry) -> tuple[shapely.Geometry, shapely.Geometry]:
    """``piece`` cut by ``line``: its low and high sides (turned so that the line is level,
    clipped by rectangle — much faster than an overlay — and turned back)."""
    c, s = np.cos(line.angle), np.sin(line.angle)
    # Coordinates along the line (u) and along its normal (v): v is the line's offset.
    to_line = np.array([[c, -s], [s, c]])
    back = to_line.T
    turned = shapely.transform(piece, lambda xy: xy @ to_line)
    x0, y0, x1, y1 = shapely.bounds(turned)
    pad = 1.0
    low = shapely.clip_by_rect(turned, x0 - pad, y0 - pad, x1 + pad, line.offset)
    high = shapely.clip_by_rect(turned, x0 - pad, line.offset, x1 + pad, y1 + pad)
    return (shapely.transform(low, lambda xy: xy @ back),
            shapely.transform(high, lambda xy: xy @ back))


def segments(line: Line, piece: shapely.Geometry) -> shapely.Geometry:
    """The part of ``line`` inside ``piece`` (one or more segments)."""
    x0, y0, x1, y1 = shapely.bounds(piece)
    size = 2.0 * (abs(x1 - x0) + abs(y1 - y0)) + 10.0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    normal = line.normal()
    d = np.array([np.cos(line.angle), np.sin(line.angle)])
    origin = np.array([cx, cy]) + normal * (line.offset - float(np.dot([cx, cy], normal)))
    full = shapely.LineString([origin - d * size, origin + d * size])
    return shapely.intersection(full, piece)
