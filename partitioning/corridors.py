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
#: A point building (an address point) blocks POINT_SHARE of the way to its nearest
#: neighbour around it, at least POINT_RADIUS_M and at most POINT_MAX_M (m).
POINT_RADIUS_M = 4.0
POINT_SHARE = 0.3
POINT_MAX_M = 12.0


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
    main_angle: np.ndarray      # (n,) direction of each building's longest wall, mod π/2
    area: np.ndarray            # (n,) footprint area (m²; points: 0)

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
        point = np.flatnonzero(shapely.get_type_id(geoms) == 0)
        if len(point) >= 2:
            # Address points have no walls: the way to each one's nearest neighbour stands
            # for one (points of a row, or of a column, line up), and a point keeps lines
            # away by a share of that distance (a building around it, of unknown shape).
            pts = geoms[point]
            src, nn = shapely.STRtree(pts).query_nearest(pts, exclusive=True,
                                                         all_matches=False)
            step = shapely.get_coordinates(pts[nn]) - shapely.get_coordinates(pts[src])
            reach = np.hypot(step[:, 0], step[:, 1])
            radius[point[src]] = np.clip(POINT_SHARE * reach, POINT_RADIUS_M, POINT_MAX_M)
            d = np.concatenate([d, step])
            w_owner = np.concatenate([w_owner, point[src]])
            order = np.argsort(w_owner, kind="stable")
            d, w_owner = d[order], w_owner[order]
        length = np.hypot(d[:, 0], d[:, 1])
        ok = length > 0.5
        angle = np.mod(np.arctan2(d[ok, 1], d[ok, 0]), np.pi / 2)
        w_owner = w_owner[ok]
        wall_start = np.searchsorted(w_owner, np.arange(n + 1))
        main = np.full(n, np.nan)
        if len(angle):
            order = np.lexsort((-length[ok], w_owner))
            first = np.unique(w_owner[order], return_index=True)[1]
            main[w_owner[order][first]] = angle[order][first]
        return cls(xy=xy, start=start, radius=radius, wall_angle=angle,
                   wall_length=length[ok], wall_start=wall_start, geoms=geoms,
                   main_angle=main, area=shapely.area(geoms))


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
    #: How much the gap looks like a street (0..1, :func:`street_likeness`).
    likeness: float = 0.0

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


#: Buildings whose edge lies this close (m) to a gap line the gap (its flanks).
FLANK_M = 4.0
#: The two flanks of a gap whose buildings' ends are more than ALIGN_SLACK_M apart along
#: it (fully so at ALIGN_SLACK_M + ALIGN_M), or whose walls turn by more than TURN_SLACK
#: (fully at TURN_SLACK + TURN), belong to different street blocks: a street. Within one
#: compound, rows are parallel to a fraction of a degree and start or end together.
ALIGN_SLACK_M = 6.0
ALIGN_M = 14.0
#: Two sides whose buildings' median footprints differ by more than SIZE_SLACK times
#: (fully at SIZE_SLACK + SIZE) are two compounds.
SIZE_SLACK = 1.5
SIZE = 1.0
TURN_SLACK = np.radians(0.5)
TURN = np.radians(2.5)


def street_likeness(fp: Footprints, members: np.ndarray, angle: float, lo: np.ndarray,
                    hi: np.ndarray, g_lo: np.ndarray, g_hi: np.ndarray,
                    which: np.ndarray | None = None) -> np.ndarray:
    """How much each gap (between ``g_lo`` and ``g_hi`` on the normal of ``angle``; ``lo``
    and ``hi`` are the members' projections) looks like a street, 0..1: the buildings on
    its two sides are laid out differently — their ends do not line up along the gap, or
    their walls turn — as across a street between two blocks, not between two rows of
    one compound (which line up: same columns, same direction)."""
    out = np.zeros(len(g_lo))
    todo = np.arange(len(g_lo)) if which is None else np.flatnonzero(which)
    if not len(todo):
        return out
    along = np.array([np.cos(angle), np.sin(angle)])
    u_lo, u_hi = _intervals(fp, members, along)
    turn = fp.main_angle[members]
    area = fp.area[members]
    for k in todo.tolist():
        below = np.flatnonzero((hi <= g_lo[k] + 1e-6) & (hi >= g_lo[k] - FLANK_M))
        above = np.flatnonzero((lo >= g_hi[k] - 1e-6) & (lo <= g_hi[k] + FLANK_M))
        if not len(below) or not len(above):
            out[k] = 1.0
            continue

        # Each building against those facing it across the gap (overlapping it along the
        # gap): in one compound they line up, across a street they mostly do not.
        facing = (u_lo[below][:, None] < u_hi[above][None, :]) & \
            (u_hi[below][:, None] > u_lo[above][None, :])
        d = np.abs(u_lo[below][:, None] - u_lo[above][None, :]) + \
            np.abs(u_hi[below][:, None] - u_hi[above][None, :])
        d = np.where(facing, d, np.inf)
        pairs = np.concatenate([d.min(axis=1), d.min(axis=0)])
        pairs = pairs[np.isfinite(pairs)]
        columns = _middle(pairs) if len(pairs) else ALIGN_M
        # Rows of one compound start (or end) together even when their buildings differ.
        ends = min(abs(float(u_lo[below].min() - u_lo[above].min())),
                   abs(float(u_hi[below].max() - u_hi[above].max())))
        error = min(columns, ends)
        ta, tb = turn[below], turn[above]
        ta, tb = ta[np.isfinite(ta)], tb[np.isfinite(tb)]
        bend = 0.0
        if len(ta) and len(tb):
            diff = (_middle(ta) - _middle(tb) + np.pi / 4) % (np.pi / 2) - np.pi / 4
            bend = abs(float(diff))
        # Buildings of different kinds or sizes (slabs and towers, shops and homes) on the
        # two sides: two compounds.
        size_a, size_b = _middle(area[below]), _middle(area[above])
        ratio = max(size_a, size_b) / max(min(size_a, size_b), 1.0)
        # The turn is the surest sign (a compound's rows are parallel to a fraction of a
        # degree; measured on street-first fabrics, 3 in 4 compound gaps turn 0°, 3 in 4
        # streets more than 3°); ends and sizes count half.
        out[k] = max(float(np.clip((bend - TURN_SLACK) / TURN, 0.0, 1.0)),
                     0.5 * float(np.clip((error - ALIGN_SLACK_M) / ALIGN_M, 0.0, 1.0)),
                     0.5 * float(np.clip((ratio - SIZE_SLACK) / SIZE, 0.0, 1.0)))
    return out


def _middle(values: np.ndarray) -> float:
    """The median of a short array (np.median's overhead dominates at this size)."""
    ordered = sorted(values.tolist())
    n = len(ordered)
    return float(ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2)


def best_line(piece: shapely.Geometry, fp: Footprints, members: np.ndarray,
              weights: np.ndarray, *, street_width: float, min_share: float = 0.1,
              angles: np.ndarray | None = None) -> Line | None:
    """The best straight cut of ``piece`` between its ``members`` (building ids).

    Clear lines (crossing no building) come first: the gap most like a street (the
    buildings on its two sides laid out differently, :func:`street_likeness`), then the
    widest, up to ``street_width``, then the most balanced; a gap must leave at least
    ``min_share`` of the weight (households, or buildings when there are none) on each
    side, or else the most balanced gap is taken. With no clear line, the line crossing
    the fewest buildings near the middle, which then keep to one side. ``angles``: the
    directions to try (default: :func:`directions` of the piece)."""
    if len(members) < 2:
        return None
    w = weights.astype(float)
    if float(w.sum()) <= 0:
        w = np.ones(len(members))
    total = float(w.sum())
    if angles is None:
        angles = directions(piece, fp, members)
    cand: list[tuple[float, float, float, float, float]] = []   # angle, lo, hi, share, like
    for angle in angles:
        g_lo, g_hi, below, _ = clear_gaps(fp, members, w, float(angle))
        if not len(g_lo):
            continue
        share = np.minimum(below, total - below) / total
        normal = np.array([-np.sin(angle), np.cos(angle)])
        lo, hi = _intervals(fp, members, normal)
        # (Only the gaps that can win: wide enough for a street, with a fair share each side.)
        like = street_likeness(fp, members, float(angle), lo, hi, g_lo, g_hi,
                               which=(g_hi - g_lo > 4.0) & (share >= min_share - 1e-12))
        cand.extend(zip(np.full(len(g_lo), float(angle)).tolist(), g_lo.tolist(),
                        g_hi.tolist(), share.tolist(), like.tolist(), strict=True))
    if not cand:
        return _crossing_line(piece, fp, members, w, angles)
    arr = np.array(cand, dtype=float)
    angle_c, lo_c, hi_c, share_c, like_c = arr.T
    width = hi_c - lo_c
    like_c = like_c * np.clip((width - 4.0) / 8.0, 0.0, 1.0)   # a street is a few m wide
    balanced = share_c >= min_share - 1e-12
    if balanced.any():
        score = np.where(balanced, like_c + 0.3 * np.minimum(width, street_width)
                         / street_width + share_c / 0.5 * 0.5, -np.inf)
    else:
        # Only lopsided gaps: the most balanced one (the rest is cut again).
        score = share_c + 1e-3 * np.minimum(width, street_width)
    i = int(np.argmax(score))
    angle = float(angle_c[i])
    normal = np.array([-np.sin(angle), np.cos(angle)])
    lo, _ = _intervals(fp, members, normal)
    offset = float((lo_c[i] + hi_c[i]) / 2)
    return Line(angle, offset, float(width[i]), members[lo < offset],
                np.array([], dtype=np.int64), float(score[i]), float(like_c[i]))


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
