"""Stage 4: cut blocks over the maximum between balanced clusters of their buildings."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import shapely

from partitioning.blocks import PRECISION_M
from partitioning.params import PartitionParams


def balanced_clusters(xy: np.ndarray, w: np.ndarray, k: int, hi: float) -> np.ndarray:
    """Cluster label per point: ``k`` groups of near-equal weight, by recursive
    bisection along the longer axis at the weighted quantile. Points heavier
    than ``hi`` each get a group of their own, and a group over ``hi`` with
    several points is halved again (only a single point can exceed ``hi``)."""
    labels = np.zeros(len(w), dtype=np.int64)
    next_label = 0

    def rec(idx: np.ndarray, parts: int) -> None:
        nonlocal next_label
        heavy = idx[w[idx] > hi]
        if len(heavy) and len(heavy) == len(idx):
            for h in heavy:       # several oversize buildings never share a group
                labels[h] = next_label
                next_label += 1
            return
        if len(idx) <= 1 or (parts <= 1 and float(w[idx].sum()) <= hi):
            labels[idx] = next_label
            next_label += 1
            return
        if len(heavy):
            # Peel one oversize building off as its own group.
            h = heavy[:1]
            labels[h] = next_label
            next_label += 1
            rest = np.setdiff1d(idx, h)
            rec(rest, max(1, parts - max(1, round(float(w[h].sum()) / hi))))
            return
        parts = max(parts, 2)
        span = np.ptp(xy[idx], axis=0)
        axis = int(np.argmax(span))
        order = idx[np.argsort(xy[idx, axis], kind="stable")]
        left_parts = parts // 2
        share = np.cumsum(w[order]) / max(float(w[order].sum()), 1e-9)
        goal = left_parts / parts
        # The cut whose left share is nearest the goal (i points on the left).
        i = int(np.searchsorted(share, goal))
        cut = i if i >= 1 and goal - share[i - 1] <= share[min(i, len(share) - 1)] - goal \
            else i + 1
        cut = min(max(cut, 1), len(order) - 1)
        rec(order[:cut], left_parts)
        rec(order[cut:], parts - left_parts)

    rec(np.arange(len(w)), k)
    return labels


def split_oversized(blocks: gpd.GeoDataFrame, points: np.ndarray, owner: np.ndarray,
                    households: np.ndarray, params: PartitionParams, *,
                    threshold: float | None = None, piece: float | None = None,
                    villages: set[str] | None = None
                    ) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray]:
    """Replace each block over ``threshold`` households (default: the maximum) by
    Voronoi-cut pieces of balanced building clusters of about ``piece``
    households (default: the target), optionally only in ``villages``.

    Returns the new blocks, the new block of every building, and the new
    position of every old block (-1 where it was cut; pieces come last).
    Blocks with a single building keep their shape (that building becomes a
    grid of its own later, and is reported).
    """
    threshold = params.max_households if threshold is None else threshold
    piece = params.target_households if piece is None else piece
    block_hh = np.bincount(owner, weights=households, minlength=len(blocks))
    counts = np.bincount(owner, minlength=len(blocks))
    chosen = (block_hh > threshold) & (counts > 1)
    if villages is not None:
        chosen &= blocks["village_code"].isin(villages).to_numpy()
    over = np.flatnonzero(chosen)
    unchanged = np.arange(len(blocks))
    if over.size == 0:
        return blocks, owner, unchanged
    geoms = blocks.geometry.to_numpy()
    village = blocks["village_code"].to_numpy()
    owner = owner.copy()
    by_block = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[by_block], np.arange(len(blocks) + 1))
    xy_all = shapely.get_coordinates(points)
    # The building clusters of each block (plain Python: small recursive bisections).
    plan: list[tuple[int, np.ndarray, np.ndarray]] = []
    for blk in over:
        members = by_block[starts[blk]:starts[blk + 1]]
        k = max(2, math.ceil(block_hh[blk] / piece))
        labels = balanced_clusters(xy_all[members], households[members].astype(float), k,
                                   params.max_households)
        if len(np.unique(labels)) >= 2:
            plan.append((int(blk), members, labels))
    if not plan:
        return blocks, owner, unchanged
    # The geometry for all blocks at once: Voronoi cells of the buildings (identical
    # points make one cell: duplicates are nudged apart), one union per cluster.
    size = np.array([len(m) for _, m, _ in plan])
    blks = np.array([b for b, _, _ in plan])
    xy = np.concatenate([xy_all[m] + _jitter(xy_all[m]) for _, m, _ in plan])
    cells_of = shapely.voronoi_polygons(
        shapely.multipoints(xy, indices=np.repeat(np.arange(len(plan)), size)),
        extend_to=geoms[blks], ordered=True)
    cells, cell_plan = shapely.get_parts(cells_of, return_index=True)
    complete = np.bincount(cell_plan, minlength=len(plan)) == size
    first_cell = np.concatenate([[0], np.cumsum(np.bincount(cell_plan, minlength=len(plan)))])
    unions: list[object] = []
    union_plan: list[int] = []
    for i, (_, _, labels) in enumerate(plan):
        if not complete[i]:
            continue
        mine = cells[first_cell[i]:first_cell[i + 1]]
        for lab in np.unique(labels):
            # Voronoi cells tile the plane edge to edge: a coverage union is exact and fast.
            unions.append(shapely.coverage_union_all(mine[labels == lab]))
            union_plan.append(i)
    plan_of = np.asarray(union_plan, dtype=np.int64)
    pieces = shapely.intersection(np.asarray(unions, dtype=object), geoms[blks[plan_of]])
    parts, part_of = shapely.get_parts(pieces, return_index=True)
    polygonal = shapely.get_dimensions(parts) == 2
    parts, part_plan = parts[polygonal], plan_of[part_of[polygonal]]
    parts = shapely.set_precision(parts, PRECISION_M)
    full = ~shapely.is_empty(parts)
    parts, part_plan = parts[full], part_plan[full]
    cut = np.bincount(part_plan, minlength=len(plan)) >= 2
    if not cut.any():
        return blocks, owner, unchanged
    parts, part_plan = parts[cut[part_plan]], part_plan[cut[part_plan]]
    # Each building goes to the piece of its block holding its point (the first one on
    # an edge between two), else the nearest piece of its block.
    moved_pts = np.concatenate([m for (_, m, _), c in zip(plan, cut, strict=True) if c])
    pt_plan = np.repeat(np.flatnonzero(cut), size[cut])
    tree = shapely.STRtree(parts)
    hit_pt, hit_part = tree.query(points[moved_pts], predicate="intersects")
    same = part_plan[hit_part] == pt_plan[hit_pt]
    hit_pt, hit_part = hit_pt[same], hit_part[same]
    order = np.lexsort((hit_part, hit_pt))
    hit_pt, hit_part = hit_pt[order], hit_part[order]
    first = np.unique(hit_pt, return_index=True)[1]
    piece_of = np.full(len(moved_pts), -1, dtype=np.int64)
    piece_of[hit_pt[first]] = hit_part[first]
    for lost in np.flatnonzero(piece_of < 0).tolist():
        own = np.flatnonzero(part_plan == pt_plan[lost])
        piece_of[lost] = own[int(np.argmin(shapely.distance(parts[own], points[moved_pts[lost]])))]
    owner[moved_pts] = len(blocks) + piece_of
    drop = np.zeros(len(blocks), dtype=bool)
    drop[blks[cut]] = True
    all_geoms = np.concatenate([geoms, parts])
    all_village = np.concatenate([village, village[blks[part_plan]]])
    keep = np.concatenate([~drop, np.ones(len(parts), dtype=bool)])
    remap = np.cumsum(keep) - 1
    out = gpd.GeoDataFrame({"village_code": all_village[keep]}, geometry=all_geoms[keep],
                           crs=blocks.crs)
    out.insert(0, "block_id", np.arange(len(out)))
    return out, remap[owner], np.where(drop, -1, remap[: len(blocks)])


def _jitter(xy: np.ndarray) -> np.ndarray:
    """A deterministic millimetre offset for repeated points."""
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    same = np.all(xy[order][1:] == xy[order][:-1], axis=1)
    dup_sorted = np.zeros(len(xy), dtype=bool)
    dup_sorted[1:] |= same
    dup_sorted[:-1] |= same
    dup = np.zeros(len(xy), dtype=bool)
    dup[order] = dup_sorted
    out = np.zeros_like(xy)
    out[dup, 0] = (np.arange(dup.sum()) % 97) * 1e-3
    out[dup, 1] = (np.arange(dup.sum()) // 97) * 1e-3
    return out
