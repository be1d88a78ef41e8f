"""Geometry and sampling helpers of the demo district's generator."""

from __future__ import annotations

import math

import numpy as np
import shapely

from data.demo.common import FArr, Geom, IArr


def _wiggle(rng: np.random.Generator, a: FArr, b: FArr, amp: float, seg: float = 150.0) -> FArr:
    """A gently meandering polyline from a to b (offsets vanish at both ends)."""
    d = b - a
    length = float(math.hypot(d[0], d[1]))
    n = max(2, int(length // seg) + 1)
    t = np.linspace(0.0, 1.0, n + 1)
    if length == 0:
        return np.vstack([a, b])
    nrm = np.array([-d[1], d[0]]) / length
    k1, k2 = rng.uniform(1.0, 3.0), rng.uniform(3.0, 6.0)
    p1, p2 = rng.uniform(0, 2 * math.pi, 2)
    off = (
        amp
        * np.sin(np.pi * t)
        * (0.7 * np.sin(k1 * np.pi * t + p1) + 0.3 * np.sin(k2 * np.pi * t + p2))
    )
    pts: FArr = a + t[:, None] * d + off[:, None] * nrm
    return pts


def _blob(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    a: float,
    b: float,
    rough: float = 0.1,
    n: int = 360,
) -> Geom:
    """A smooth irregular ellipse."""
    th = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 8):
        r += rng.uniform(0, rough) / k**0.8 * np.cos(k * th + rng.uniform(0, 2 * math.pi))
    return shapely.Polygon(np.column_stack([cx + a * r * np.cos(th), cy + b * r * np.sin(th)]))


def _longest_part(geom: Geom) -> Geom:
    parts = shapely.get_parts(geom)
    if len(parts) == 0:
        return shapely.LineString()
    return parts[int(np.argmax(shapely.length(parts)))]


def _lines_of(geom: Geom, min_length: float = 1.0) -> list[Geom]:
    """The LineString parts of a (clipped) linear geometry."""
    parts = shapely.get_parts(
        shapely.line_merge(geom) if geom.geom_type == "MultiLineString" else geom
    )
    return [p for p in parts if p.geom_type == "LineString" and p.length >= min_length]


def _polys_of(geom: Geom, min_area: float = 1.0) -> list[Geom]:
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area >= min_area]


def _kmeans(rng: np.random.Generator, xy: FArr, w: FArr, k: int, iters: int) -> tuple[FArr, IArr]:
    """Weighted k-means, seeded by a weighted draw of k distinct points."""
    n = len(xy)
    k = max(1, min(k, n))
    init = rng.choice(n, size=k, replace=False, p=w / w.sum())
    centres = xy[np.sort(init)].astype(float)
    lab = np.zeros(n, dtype=np.int64)
    for _ in range(iters + 1):
        d = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        lab = d.argmin(1).astype(np.int64)
        sw = np.bincount(lab, weights=w, minlength=k)
        ok = sw > 0
        for dim in range(2):
            s = np.bincount(lab, weights=w * xy[:, dim], minlength=k)
            centres[ok, dim] = s[ok] / sw[ok]
    return centres, lab


def _longest_poly(geom: Geom) -> Geom:
    parts = _polys_of(geom, 0.0)
    if not parts:
        return shapely.Polygon()
    return max(parts, key=lambda p: p.area)
