"""The block graph the baselines get: our blocks stage over the whole territory, households
per block, contiguity edges, components joined by one nearest-centroid link each."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from bench.baselines_metrics import HI

Layers = dict[str, gpd.GeoDataFrame]


@dataclass
class BlockGraph:
    """Blocks (metric CRS) with households, and their contiguity edges."""

    geoms: np.ndarray
    households: np.ndarray
    a: np.ndarray
    b: np.ndarray
    info: dict[str, Any]


def block_graph(layers: Layers, name: str) -> BlockGraph:
    """The whole territory's block graph from our blocks stage (village lines ignored)."""
    from gis.contract import Territory
    from partitioning.blocks import adjacency, barrier_lines, make_blocks
    from partitioning.households import assign_to_blocks, building_households
    from partitioning.params import PartitionParams

    started = time.perf_counter()
    params = PartitionParams()
    metric = Territory(name, layers).to_metric()
    admin = metric["admin_areas"]
    villages = admin[admin["level"] == "village"].reset_index(drop=True)
    barriers = barrier_lines(metric, params)
    blocks = make_blocks(villages, barriers, params)
    # The blocks stage can leave a sliver snapped to nothing (empty, no area): drop it.
    empty = shapely.is_empty(blocks.geometry.to_numpy())
    blocks = blocks[~empty].reset_index(drop=True)
    hh, _pop, _est, _counts = building_households(metric["buildings"], params)
    owner = assign_to_blocks(metric["buildings"], blocks)
    households = np.bincount(owner, weights=hh, minlength=len(blocks)).astype(np.int64)
    adj = adjacency(blocks.assign(village_code="whole"), barriers)
    geoms = blocks.geometry.to_numpy()
    a, b = adj["a"].to_numpy(), adj["b"].to_numpy()
    a, b, n_components = _join_components(geoms, a, b)
    info = {
        "blocks": len(blocks), "edges": len(a), "households": int(households.sum()),
        "blocks_over_max": int((households > HI).sum()),
        "block_households_max": int(households.max()),
        "blocks_without_households": int((households == 0).sum()),
        "components_joined": n_components - 1,
        "empty_blocks_dropped": int(empty.sum()),
        "buildings": len(metric["buildings"]),
        "villages": len(villages),
        "build_s": round(time.perf_counter() - started, 2),
    }
    return BlockGraph(geoms, households, a, b, info)


def _join_components(geoms: np.ndarray, a: np.ndarray, b: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Add one edge from each smaller component to the nearest block (by centroid) of
    the largest, as spopt's ``policy="single"`` does; return the edges and the count of
    components found."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(geoms)
    m = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    count, label = connected_components(m, directed=False)
    if count == 1:
        return a, b, 1
    centre = shapely.centroid(geoms)
    xy = np.column_stack([shapely.get_x(centre), shapely.get_y(centre)])
    main = int(np.argmax(np.bincount(label)))
    in_main = np.flatnonzero(label == main)
    tree = cKDTree(xy[in_main])
    extra_a, extra_b = [], []
    for c in range(count):
        if c == main:
            continue
        members = np.flatnonzero(label == c)
        dist, near = tree.query(xy[members])
        k = int(np.argmin(dist))
        extra_a.append(members[k])
        extra_b.append(in_main[near[k]])
    return np.concatenate([a, extra_a]), np.concatenate([b, extra_b]), count
