"""A synthetic lattice city for benchmarks: square street blocks, heavy-tailed households.

``lattice_city(45)`` is the issue's instance: 45 × 45 = 2,025 street blocks of
100–150 m near Guangzhou (built in CGCS2000 Gauss–Krüger EPSG:4547, returned in
WGS84), 243,000 households, heavy-tailed per block so that 22 blocks hold over
500 on their own, 3–12 building footprints per block whose ``households`` sum to
the block's, every 5th street primary (the rest residential), one district, one
town and communities of ``community`` × ``community`` blocks bounded by primary
streets. The layers pass the layer contract's checks (``gis.contract.check_layer``).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from gis.contract import check_layer

METRIC_CRS = "EPSG:4547"  # CGCS2000 3° Gauss–Krüger, central meridian 114°E
ORIGIN_LONLAT = (113.30, 23.20)
DISTRICT_CODE = "440199"
HOUSEHOLDS_PER_BLOCK = 120  # 243,000 / 2,025
OVER_SHARE = 22 / 2025  # blocks over the maximum on their own, as in the issue


def lattice_city(n: int = 45, households: int | None = None, n_over: int | None = None,
                 community: int = 15, seed: int = 2025, max_households: int = 500
                 ) -> dict[str, gpd.GeoDataFrame]:
    """Layers (WGS84) of an ``n`` × ``n`` lattice city; see the module docstring."""
    if n % community:
        raise ValueError(f"community size {community} must divide the lattice size {n}")
    if community % 5:
        raise ValueError("community lines must follow primary streets (every 5th)")
    rng = np.random.default_rng(seed)
    total = households if households is not None else HOUSEHOLDS_PER_BLOCK * n * n
    over = n_over if n_over is not None else round(OVER_SHARE * n * n)
    ox, oy = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True).transform(
        *ORIGIN_LONLAT)
    xs = ox + np.concatenate([[0.0], np.cumsum(rng.uniform(100, 150, n))])
    ys = oy + np.concatenate([[0.0], np.cumsum(rng.uniform(100, 150, n))])
    block_hh = _heavy_tailed(rng, n * n, total, over, max_households)

    layers = {
        "admin_areas": _admin(xs, ys, community),
        "roads": _roads(xs, ys),
        "buildings": _buildings(rng, xs, ys, block_hh),
    }
    out: dict[str, gpd.GeoDataFrame] = {}
    for name, gdf in layers.items():
        out[name] = check_layer(name, gdf, file=f"lattice-{n}")
    return out


def _heavy_tailed(rng: np.random.Generator, n: int, total: int, over: int, hi: int
                  ) -> np.ndarray:
    """``n`` lognormal block totals summing to ``total`` with exactly ``over`` above ``hi``
    (the lognormal's spread is bisected until the count matches; nearest count if none)."""
    z = rng.standard_normal(n)

    def draw(sigma: float) -> np.ndarray:
        v = np.exp(sigma * z)
        return _round_to_total(v / v.sum() * total, total)

    lo_s, hi_s = 0.05, 3.0
    best = draw(lo_s)
    for _ in range(60):
        mid = (lo_s + hi_s) / 2
        values = draw(mid)
        count = int((values > hi).sum())
        if abs(count - over) < abs(int((best > hi).sum()) - over):
            best = values
        if count == over:
            return values
        if count < over:
            lo_s = mid
        else:
            hi_s = mid
    return best


def _round_to_total(values: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers summing to ``total`` (largest remainders round up)."""
    floor = np.floor(values).astype(np.int64)
    short = total - int(floor.sum())
    if short > 0:
        floor[np.argsort(floor - values)[:short]] += 1
    return floor


def _admin(xs: np.ndarray, ys: np.ndarray, community: int) -> gpd.GeoDataFrame:
    """One district, one town (街道) and the communities tiling it along primary streets."""
    whole = shapely.box(xs[0], ys[0], xs[-1], ys[-1])
    town = f"{DISTRICT_CODE}001"
    rows: list[tuple[shapely.Geometry, str, str, str, str | None, str | None]] = [
        (whole, DISTRICT_CODE, "格子区", "district", None, None),
        (whole, town, "格子街道", "town", DISTRICT_CODE, None)]
    cuts = range(0, len(xs) - 1, community)
    serial = 0
    for j in reversed(cuts):  # codes in reading order: north to south, west to east
        for i in cuts:
            serial += 1
            geom = shapely.box(xs[i], ys[j], xs[i + community], ys[j + community])
            rows.append((geom, f"{town}{serial:03d}", f"格子第{serial}社区", "village", town,
                         "urban"))
    return gpd.GeoDataFrame(
        {"code": [r[1] for r in rows], "name": [r[2] for r in rows],
         "level": [r[3] for r in rows], "parent_code": [r[4] for r in rows],
         "kind": [r[5] for r in rows]},
        geometry=[r[0] for r in rows], crs=METRIC_CRS)


def _roads(xs: np.ndarray, ys: np.ndarray) -> gpd.GeoDataFrame:
    """Every street across the city, with a vertex at every crossing; every 5th primary."""
    geoms, classes, names = [], [], []
    for i, x in enumerate(xs):
        geoms.append(shapely.linestrings(np.full(len(ys), x), ys))
        classes.append("primary" if i % 5 == 0 else "residential")
        names.append(f"经{i + 1}{'大道' if i % 5 == 0 else '街'}")
    for j, y in enumerate(ys):
        geoms.append(shapely.linestrings(xs, np.full(len(xs), y)))
        classes.append("primary" if j % 5 == 0 else "residential")
        names.append(f"纬{j + 1}{'大道' if j % 5 == 0 else '街'}")
    return gpd.GeoDataFrame({"class": classes, "name": names}, geometry=geoms, crs=METRIC_CRS)


def _buildings(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray,
               block_hh: np.ndarray) -> gpd.GeoDataFrame:
    """3–12 footprints per block on a grid of slots set back from the streets; the
    households of a block are split among its buildings (multinomial, Dirichlet shares)."""
    n = len(xs) - 1
    boxes: list[np.ndarray] = []
    households: list[np.ndarray] = []
    for b in range(n * n):
        i, j = b % n, b // n
        count = int(rng.integers(3, 13))
        rows = int(np.ceil(np.sqrt(count)))
        cols = int(np.ceil(count / rows))
        x0, x1 = xs[i] + 12, xs[i + 1] - 12
        y0, y1 = ys[j] + 12, ys[j + 1] - 12
        w, h = (x1 - x0) / cols, (y1 - y0) / rows
        slots = rng.choice(rows * cols, size=count, replace=False)
        cx = x0 + (slots % cols + 0.5) * w
        cy = y0 + (slots // cols + 0.5) * h
        half_w = w * rng.uniform(0.25, 0.4, count)
        half_h = h * rng.uniform(0.25, 0.4, count)
        boxes.append(np.column_stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h]))
        households.append(rng.multinomial(int(block_hh[b]), rng.dirichlet(np.full(count, 2.0))))
    xyxy = np.concatenate(boxes)
    hh = np.concatenate(households)
    geoms = shapely.box(xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3])
    return gpd.GeoDataFrame({"households": hh, "use": "residential"}, geometry=geoms,
                            crs=METRIC_CRS)
