"""A fake but realistic Chinese district: the demo and benchmark territory.

:func:`generate` builds a district shaped like Guangzhou's Baiyun district
(centred near 113.30 E, 23.25 N), deterministic by seed and scalable from about
10,000 to 1,500,000 households:

* an **urban** part of streets (街道) and communities (社区) on a warped street
  lattice: primary arterials every 1-1.5 km, secondary roads every ~500 m,
  tertiary/residential roads every 150-250 m, service lanes and footways inside
  compounds (小区) of 6-33 floor buildings, urban villages (城中村), parks,
  schools, hospitals, markets, commercial blocks, an industrial park and a
  campus;
* a **rural** part of towns (镇) and villages (村) with scattered hamlets
  (自然村) of 1-3 floor houses, a river with its tributaries and a reservoir,
  ridges over the hills, country roads and a scenic area;
* a railway crossing the district.

Everything is built in the metric CRS EPSG:4547 (CGCS2000 3-degree
Gauss-Kruger, CM 114E) and returned in EPSG:4326.  Every admin polygon nests
exactly in its parent: the communities/villages of a town tile it and the towns
tile the district.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely
import shapely.affinity
import shapely.ops
from pyproj import Transformer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from data import names as nm

__all__ = ["LAYERS", "DemoTerritory", "generate", "generate_province"]

LAYERS = (
    "admin_areas",
    "roads",
    "water",
    "ridges",
    "railways",
    "buildings",
    "facilities",
    "dedicated_areas",
)

CENTER_LONLAT = (113.30, 23.25)
METRIC_CRS = "EPSG:4547"
WGS84 = "EPSG:4326"
DISTRICT_CODE = "440111"
DISTRICT_SHORT = "白云"
DISTRICT_NAME = "白云示范区"

# Array aliases are loose on purpose: numpy and shapely stubs do not narrow well.
FArr = npt.NDArray[Any]  # float arrays
IArr = npt.NDArray[Any]  # integer arrays
GArr = Any  # arrays of shapely geometries
Geom = Any  # a shapely geometry

# Road classes (OSM highway values) and the distance from a road's centreline to
# the nearest building wall (half the road width plus a setback).
PRIMARY, SECONDARY, TERTIARY, RESIDENTIAL, SERVICE, FOOTWAY = range(6)
ROAD_CLASSES = ("primary", "secondary", "tertiary", "residential", "service", "footway")
SETBACK = np.array([27.0, 21.0, 15.0, 10.0, 7.0, 3.0])
RURAL_SETBACK = np.array([20.0, 16.0, 11.0, 8.0, 6.0, 3.0])

# Building uses.
RES, COM, IND, PUB = range(4)
USES = ("residential", "commercial", "industrial", "public")

# Urban block types.
(
    SLAB,
    TOWER,
    UVILLAGE,
    COMMERCIAL,
    PARK,
    SCHOOL,
    MARKET,
    HOSPITAL,
    PUBLIC,
    INDUSTRIAL,
    CAMPUS,
    MEGA,
) = range(12)

# Household bands of residential buildings (lo, hi) and their floors (lo, hi).
_KIND_REGULAR, _KIND_UV, _KIND_MEGA, _KIND_NONRES = range(4)
_HH_BOUNDS = np.array([[20, 200], [20, 40], [501, 1100], [0, 0]])
_FLOOR_BOUNDS = np.array([[6, 33], [6, 9], [32, 55], [1, 60]])

HH_PER_STREET = 42_000
HH_PER_VILLAGE = 430
VILLAGES_PER_TOWN = 24
RURAL_DENSITY = 350.0  # households per km2 over the whole rural area
MIN_RURAL_AREA = 36e6  # m2: room for a mountain village wider than 5 km
MEGA_PER_100K = 2.4
GRID = 0.01  # rural admin polygons are snapped to 1 cm before the coverage is cleaned


# ---------------------------------------------------------------------------
# Public API


@dataclass
class DemoTerritory:
    """A generated territory: one GeoDataFrame per layer, all in EPSG:4326."""

    layers: dict[str, gpd.GeoDataFrame]
    seed: int
    households: int

    def write(self, path: Path | str) -> Path:
        """Write every layer into one GeoPackage (replacing ``path``); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        for name in LAYERS:
            gdf = self.layers[name]
            pyogrio.write_dataframe(gdf, path, layer=name, driver="GPKG")
        return path


#: The districts of a multi-district demo territory: codes 4401xx and short names (a
#: district past the list is called 示范N).
PROVINCE_DISTRICTS = ("白云", "天河", "海珠", "荔湾", "越秀", "番禺", "花都", "南沙", "从化",
                      "增城", "黄埔", "萝岗")
#: Where a multi-district territory is centred (the central meridian of its Gauss–Krüger
#: zone, so that each district alone falls in the same zone as the whole), and the gap
#: between two of its districts (m).
PROVINCE_CENTER = (114.0, 23.25)
PROVINCE_GAP_M = 3_000.0


def generate_province(districts: int, households: int = 60_000, seed: int = 7, *,
                      progress: bool = False) -> DemoTerritory:
    """A territory of ``districts`` demo districts of about ``households`` households each
    (district k: seed ``seed + k``, code ``4401{11 + k}``), side by side on a lattice with
    :data:`PROVINCE_GAP_M` between them; deterministic by seed. Each district is what
    :func:`generate` makes, under its own code and names."""
    if not 1 <= districts <= 99 - 11:
        raise ValueError("districts must be between 1 and 88")
    gens = []
    for k in range(districts):
        short = PROVINCE_DISTRICTS[k] if k < len(PROVINCE_DISTRICTS) else f"示范{k + 1}"
        gens.append(_build(households, seed + k, (f"4401{11 + k:02d}", short), progress))
    cols = math.ceil(math.sqrt(districts))
    rows = math.ceil(districts / cols)
    width = max(g.district.bounds[2] - g.district.bounds[0] for g in gens) + PROVINCE_GAP_M
    height = max(g.district.bounds[3] - g.district.bounds[1] for g in gens) + PROVINCE_GAP_M
    layers: dict[str, list[gpd.GeoDataFrame]] = {}
    for k, gen in enumerate(gens):
        gen.center = PROVINCE_CENTER
        gen.offset = ((k % cols - (cols - 1) / 2) * width, ((rows - 1) / 2 - k // cols) * height)
        for name, gdf in gen.assemble().items():
            layers.setdefault(name, []).append(gdf)
    merged = {name: gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                                     crs=frames[0].crs) for name, frames in layers.items()}
    total = int(merged["buildings"]["households"].sum())
    return DemoTerritory(layers=merged, seed=int(seed), households=total)


def generate(households: int = 60_000, seed: int = 7, *, progress: bool = False) -> DemoTerritory:
    """Generate a demo district of about ``households`` households (±5%), deterministic by seed."""
    gen = _build(households, seed, None, progress)
    layers = gen.assemble()
    total = int(layers["buildings"]["households"].sum())
    return DemoTerritory(layers=layers, seed=int(seed), households=total)


def _build(households: int, seed: int, district: tuple[str, str] | None,
           progress: bool) -> _Gen:
    """A district generated stage by stage (its layers made by ``assemble()``)."""
    if households < 5_000:
        raise ValueError("households must be at least 5,000")
    gen = _Gen(int(households), int(seed), district)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("urban street lattice", gen.urban_lattice),
        ("urban streets", gen.urban_streets),
        ("district outline, rivers, ridges, railway", gen.natural_features),
        ("urban buildings and communities", gen.urban_buildings),
        ("rural towns and villages", gen.rural_admin),
        ("rural roads and facilities", gen.rural_roads),
        ("rural houses", gen.rural_houses),
        ("dedicated areas", gen.dedicated),
    ]
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task("demo territory", total=len(stages))
        for label, stage in stages:
            bar.update(task, description=f"{gen.short} {label}")
            stage()
            bar.advance(task)
    return gen


# ---------------------------------------------------------------------------
# Geometry helpers


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


def _rects(cx: FArr, cy: FArr, w: FArr, h: FArr, theta: FArr) -> GArr:
    """Rotated rectangles (vectorised)."""
    c, s = np.cos(theta), np.sin(theta)
    du = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    dv = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    lx = du[None, :] * w[:, None]
    ly = dv[None, :] * h[:, None]
    x = cx[:, None] + lx * c[:, None] - ly * s[:, None]
    y = cy[:, None] + lx * s[:, None] + ly * c[:, None]
    out: GArr = shapely.polygons(np.stack([x, y], axis=-1))
    return out


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


def _extent(geom: Geom) -> float:
    """Largest distance between two vertices of a geometry."""
    hull = shapely.convex_hull(geom)
    xy = shapely.get_coordinates(hull)
    if len(xy) < 2:
        return 0.0
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    return float(d.max())


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


def _fit_total(rng: np.random.Generator, values: IArr, lo: IArr, hi: IArr, target: int) -> IArr:
    """Scale integer values to sum exactly to ``target`` within per-item bounds (when possible)."""
    total = int(values.sum())
    if total == 0 or len(values) == 0:
        return values.copy()
    out = np.clip(np.round(values * (target / total)), lo, hi).astype(np.int64)
    diff = target - int(out.sum())
    for _ in range(200):
        if diff == 0:
            break
        elig = np.flatnonzero(out < hi) if diff > 0 else np.flatnonzero(out > lo)
        if len(elig) == 0:
            break
        k = min(abs(diff), len(elig))
        pick = rng.choice(elig, size=k, replace=False)
        step = 1 if diff > 0 else -1
        out[pick] += step
        diff -= step * k
    return out


def _axis(rng: np.random.Generator, span: float) -> tuple[FArr, IArr, IArr, IArr]:
    """Positions and classes of the street lines along one axis of the lattice.

    Returns line positions, line classes, and for every interval between two
    lines the index of its secondary cell and of its primary superblock.
    """
    pos = [0.0]
    cls = [PRIMARY]
    sec: list[int] = []
    pri: list[int] = []
    x, s, p = 0.0, 0, 0
    while x < span:
        lp = rng.uniform(1000.0, 1500.0)
        ns = int(np.clip(round(lp / rng.uniform(430.0, 600.0)), 2, 3))
        fr = rng.uniform(0.8, 1.2, ns)
        for k, ls in enumerate(fr / fr.sum() * lp):
            nf = max(1, round(ls / rng.uniform(165.0, 240.0)))
            fw = rng.uniform(0.85, 1.15, nf)
            for m, w in enumerate(fw / fw.sum() * ls):
                x += w
                pos.append(x)
                sec.append(s)
                pri.append(p)
                if m < nf - 1:
                    cls.append(TERTIARY if rng.random() < 0.3 else RESIDENTIAL)
                elif k < ns - 1:
                    cls.append(SECONDARY)
                else:
                    cls.append(PRIMARY)
            s += 1
        p += 1
    arr = np.array(pos) - x / 2
    return (
        arr,
        np.array(cls, dtype=np.int64),
        np.array(sec, dtype=np.int64),
        np.array(pri, dtype=np.int64),
    )


def _bilinear(c00: FArr, c10: FArr, c11: FArr, c01: FArr, s: FArr, t: FArr) -> FArr:
    a = ((1 - s) * (1 - t))[..., None]
    b = (s * (1 - t))[..., None]
    c = (s * t)[..., None]
    d = ((1 - s) * t)[..., None]
    out: FArr = a * c00 + b * c10 + c * c11 + d * c01
    return out


# ---------------------------------------------------------------------------
# Block layouts (in a block's conservative metric frame u in [0, W], v in [0, H])


class _Layout:
    """Buildings and inner lanes of one block, in the block's (u, v) frame."""

    __slots__ = ("facilities", "floors", "hh", "kind", "lcls", "lines", "rects", "units", "use")

    def __init__(self) -> None:
        self.rects: list[FArr] = []
        self.use: list[IArr] = []
        self.floors: list[IArr] = []
        self.hh: list[IArr] = []
        self.units: list[IArr] = []
        self.kind: list[IArr] = []
        self.lines: list[tuple[float, float, float, float]] = []
        self.lcls: list[int] = []
        self.facilities: list[tuple[int, str]] = []  # (building index in block, kind)

    def count(self) -> int:
        return sum(len(r) for r in self.rects)

    def add_nonresidential(self, rects: FArr, use: int, floors: IArr) -> int:
        """Add buildings without households; return the index of the first one."""
        none = np.zeros(len(rects), dtype=np.int64)
        return self.add(rects, use, floors, none, none, _KIND_NONRES)

    def add(self, rects: FArr, use: int, floors: IArr, hh: IArr, units: IArr, kind: int) -> int:
        """Add buildings; return the index of the first one."""
        first = self.count()
        n = len(rects)
        if n:
            self.rects.append(rects)
            self.use.append(np.full(n, use, dtype=np.int64))
            self.floors.append(np.asarray(floors, dtype=np.int64))
            self.hh.append(np.asarray(hh, dtype=np.int64))
            self.units.append(np.asarray(units, dtype=np.int64))
            self.kind.append(np.full(n, kind, dtype=np.int64))
        return first

    def line(self, ua: float, va: float, ub: float, vb: float, cls: int) -> None:
        self.lines.append((ua, va, ub, vb))
        self.lcls.append(cls)


def _slots(
    u0: float, u1: float, v0: float, v1: float, fw: float, fh: float, gu: float, gv: float
) -> tuple[FArr, FArr, FArr]:
    """A regular grid of fw x fh footprints with gaps >= gu, gv filling a box.

    Returns the rectangles (n, 4: u0, u1, v0, v1) row by row and the u and v
    starts of the columns and rows.
    """
    wu, wv = u1 - u0, v1 - v0
    nu = int((wu + gu) // (fw + gu)) if wu >= fw else 0
    nv = int((wv + gv) // (fh + gv)) if wv >= fh else 0
    if nu < 1 or nv < 1:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0)
    us = (
        (u0 + np.arange(nu) * (fw + (wu - nu * fw) / (nu - 1)))
        if nu > 1
        else np.array([u0 + (wu - fw) / 2])
    )
    vs = (
        (v0 + np.arange(nv) * (fh + (wv - nv * fh) / (nv - 1)))
        if nv > 1
        else np.array([v0 + (wv - fh) / 2])
    )
    uu, vv = np.meshgrid(us, vs)
    uu, vv = uu.ravel(), vv.ravel()
    return np.column_stack([uu, uu + fw, vv, vv + fh]), us, vs


def _choose(rng: np.random.Generator, n: int, k: int) -> IArr:
    k = int(min(max(k, 0), n))
    out: IArr = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
    return out


def _residential(
    rng: np.random.Generator,
    lay: _Layout,
    box: tuple[float, float, float, float],
    target: float,
    tower: bool,
    W: float,
) -> None:
    """Slab (板楼) or point-tower (点式) compound meeting about ``target`` households."""
    u0, u1, v0, v1 = box
    if tower:
        fw = rng.uniform(20.0, 27.0)
        fh = fw * rng.uniform(0.8, 1.0)
        gu = gv = rng.uniform(22.0, 36.0)
        units = int(np.clip(round(fw * fh / rng.uniform(90.0, 110.0)), 4, 8))
        flo, fhi = 18, 33
    else:
        fw = min(rng.uniform(32.0, 64.0), u1 - u0)
        fh = rng.uniform(11.0, 16.0)
        gu, gv = rng.uniform(8.0, 18.0), rng.uniform(18.0, 34.0)
        units = max(2, round(fw * fh / rng.uniform(85.0, 110.0)))
        band = rng.choice(3, p=[0.25, 0.35, 0.4])
        flo, fhi = ((6, 9), (10, 18), (19, 33))[int(band)]
    rects, us, vs = _slots(u0, u1, v0, v1, fw, fh, gu, gv)
    n = len(rects)
    if n == 0 or target <= 0:
        return
    fhi = min(fhi, 200 // units)
    flo = min(flo, fhi)
    floors = rng.integers(flo, fhi + 1, n)
    hh = units * floors
    n_need = int(np.clip(round(target / hh.mean()), 1, n))
    if n_need < n:
        keep = _choose(rng, n, n_need)
        rects, floors = rects[keep], floors[keep]
    elif target > hh.sum():
        floors = np.clip(np.ceil(floors * target / hh.sum()), 6, fhi).astype(np.int64)
    lay.add(rects, RES, floors, units * floors, np.full(len(rects), units), _KIND_REGULAR)
    # A service lane through the middle row gap and a footway through a column gap.
    if len(vs) >= 2:
        k = (len(vs) - 1) // 2
        v = (vs[k] + fh + vs[k + 1]) / 2
        lay.line(0.0, v, W, v, SERVICE)
    if len(us) >= 2 and rng.random() < 0.6:
        k = (len(us) - 1) // 2
        u = (us[k] + fw + us[k + 1]) / 2
        lay.line(u, v0, u, v1, FOOTWAY)


def _layout_block(
    rng: np.random.Generator, btype: int, W: float, H: float, setbacks: FArr, target: float
) -> _Layout:
    """Buildings and lanes of one urban block (conservative metric frame W x H)."""
    lay = _Layout()
    left, right, bottom, top = setbacks
    u0, u1, v0, v1 = left, W - right, bottom, H - top
    wu, wv = u1 - u0, v1 - v0
    if wu < 25 or wv < 25:
        return lay
    box = (u0, u1, v0, v1)
    if btype in (SLAB, TOWER):
        _residential(rng, lay, box, target, btype == TOWER, W)
    elif btype == MEGA:
        fw = min(rng.uniform(55.0, 72.0), wu)
        fh = rng.uniform(22.0, 28.0)
        units = max(12, round(fw * fh / rng.uniform(85.0, 100.0)))
        nm_ = 2 if wu >= 2 * fw + 30 and rng.random() < 0.6 else 1
        us = (
            u0 + np.arange(nm_) * (wu - fw) / max(nm_ - 1, 1)
            if nm_ > 1
            else np.array([u0 + (wu - fw) / 2])
        )
        floors = np.maximum(np.ceil(520 / units), rng.integers(32, 46, nm_)).astype(np.int64)
        rects = np.column_stack([us, us + fw, np.full(nm_, v0), np.full(nm_, v0 + fh)])
        lay.add(rects, RES, floors, units * floors, np.full(nm_, units), _KIND_MEGA)
        lane = v0 + fh + 15.0
        lay.line(0.0, lane, W, lane, SERVICE)
        rest = target - float((units * floors).sum())
        if v1 - (lane + 15.0) > 40 and rest > 0:
            _residential(rng, lay, (u0, u1, lane + 15.0, v1), rest, True, W)
    elif btype == UVILLAGE:
        sw, sh = rng.uniform(10.0, 14.0), rng.uniform(10.0, 14.0)
        gap = rng.uniform(2.8, 4.0)
        rects, us, vs = _slots(u0, u1, v0, v1, sw, sh, gap, gap)
        n = len(rects)
        if n:
            keep = _choose(rng, n, round(target / 26.0))
            rects = rects[keep].copy()
            m = len(rects)
            rects[:, 1] = rects[:, 0] + (rects[:, 1] - rects[:, 0]) * rng.uniform(0.8, 1.0, m)
            rects[:, 3] = rects[:, 2] + (rects[:, 3] - rects[:, 2]) * rng.uniform(0.8, 1.0, m)
            floors = rng.integers(6, 10, m)
            units = rng.integers(3, 5, m)
            hh = np.clip(floors * units, 20, 40)
            lay.add(rects, RES, floors, hh, units, _KIND_UV)
            gu = (us[1] - us[0] - sw) if len(us) > 1 else 0.0
            for k in range(2, len(us) - 1, 3):
                u = us[k] + sw + gu / 2
                lay.line(u, 0.0, u, H, FOOTWAY)
            gv = (vs[1] - vs[0] - sh) if len(vs) > 1 else 0.0
            for k in range(3, len(vs) - 1, 4):
                v = vs[k] + sh + gv / 2
                lay.line(0.0, v, W, v, FOOTWAY)
    elif btype == COMMERCIAL:
        fw, fh = min(rng.uniform(40.0, 90.0), wu), min(rng.uniform(25.0, 55.0), wv)
        rects, _, _ = _slots(
            u0, u1, v0, v1, fw, fh, rng.uniform(20.0, 30.0), rng.uniform(20.0, 30.0)
        )
        rects = rects[_choose(rng, len(rects), int(rng.integers(1, 5)))]
        m = len(rects)
        big = fw * fh > 2500
        floors = rng.integers(2, 7, m) if big else rng.integers(5, 31, m)
        lay.add_nonresidential(rects, COM, floors)
    elif btype == PARK:
        uf, vf = W * rng.uniform(0.35, 0.65), H * rng.uniform(0.35, 0.65)
        lay.line(uf, 0.0, uf, H, FOOTWAY)
        lay.line(0.0, vf, W, vf, FOOTWAY)
        if uf - u0 > 30 and vf - v0 > 30:
            rect = np.array([[u0 + 6, u0 + 18, v0 + 6, v0 + 15]])
            lay.add_nonresidential(rect, PUB, rng.integers(1, 3, 1))
    elif btype == SCHOOL:
        vm = v0 + wv * 0.45
        fw, fh = min(rng.uniform(50.0, 70.0), wu), min(rng.uniform(13.0, 17.0), v1 - vm)
        rects, _, _ = _slots(
            u0, u1, vm, v1, fw, fh, rng.uniform(15.0, 25.0), rng.uniform(18.0, 25.0)
        )
        rects = rects[:3]
        m = len(rects)
        first = lay.add_nonresidential(rects, PUB, rng.integers(4, 7, m))
        if m:
            lay.facilities.append((first, "school"))
    elif btype == MARKET:
        fw, fh = min(rng.uniform(35.0, 55.0), wu), min(rng.uniform(25.0, 35.0), wv)
        ua = u0 + rng.uniform(0, wu - fw)
        first = lay.add_nonresidential(
            np.array([[ua, ua + fw, v0, v0 + fh]]), COM, rng.integers(1, 3, 1)
        )
        lay.facilities.append((first, "market"))
        if v1 - (v0 + fh + 20) > 40:
            _residential(rng, lay, (u0, u1, v0 + fh + 20, v1), target, False, W)
    elif btype == HOSPITAL:
        fw, fh = min(rng.uniform(45.0, 65.0), wu), min(rng.uniform(28.0, 40.0), wv / 2)
        ua = u0 + rng.uniform(0, wu - fw)
        first = lay.add_nonresidential(
            np.array([[ua, ua + fw, v0, v0 + fh]]), PUB, rng.integers(8, 21, 1)
        )
        lay.facilities.append((first, "hospital"))
        rects, _, _ = _slots(u0, u1, v0 + fh + 20, v1, min(30.0, wu), 14.0, 20.0, 20.0)
        rects = rects[:2]
        m = len(rects)
        lay.add_nonresidential(rects, PUB, rng.integers(4, 8, m))
    elif btype == PUBLIC:
        fw, fh = min(rng.uniform(30.0, 50.0), wu), min(rng.uniform(18.0, 28.0), wv)
        rects, _, _ = _slots(u0, u1, v0, v1, fw, fh, 25.0, 25.0)
        rects = rects[_choose(rng, len(rects), 2)]
        m = len(rects)
        lay.add_nonresidential(rects, PUB, rng.integers(4, 13, m))
    elif btype == INDUSTRIAL:
        fw, fh = min(rng.uniform(50.0, 110.0), wu), min(rng.uniform(25.0, 55.0), wv)
        gv = rng.uniform(16.0, 26.0)
        rects, _, vs = _slots(u0, u1, v0, v1, fw, fh, rng.uniform(14.0, 22.0), gv)
        keep = rng.random(len(rects)) < 0.9
        rects = rects[keep]
        m = len(rects)
        lay.add_nonresidential(rects, IND, rng.integers(1, 5, m))
        if len(vs) >= 2:
            v = (vs[0] + fh + vs[1]) / 2
            lay.line(0.0, v, W, v, SERVICE)
    elif btype == CAMPUS:
        fw, fh = min(rng.uniform(50.0, 80.0), wu), min(rng.uniform(14.0, 20.0), wv)
        rects, us, _ = _slots(
            u0, u1, v0, v1, fw, fh, rng.uniform(20.0, 30.0), rng.uniform(25.0, 40.0)
        )
        rects = rects[rng.random(len(rects)) < 0.75]
        m = len(rects)
        lay.add_nonresidential(rects, PUB, rng.integers(4, 9, m))
        if len(us) >= 2:
            u = (us[0] + fw + us[1]) / 2
            lay.line(u, 0.0, u, H, FOOTWAY)
    return lay


# ---------------------------------------------------------------------------
# The generator


class _Gen:
    """Builds the territory stage by stage in local metric coordinates (EPSG:4547 - offset)."""

    def __init__(self, households: int, seed: int, district: tuple[str, str] | None = None
                 ) -> None:
        self.rng = np.random.default_rng(seed)
        self.households = households
        #: The district's code and short name (区 follows it), and where its centre goes
        #: (lon/lat, and an offset in metres from it).
        self.code, self.short = district or (DISTRICT_CODE, DISTRICT_SHORT)
        self.name = DISTRICT_NAME if district is None else f"{self.short}示范区"
        self.center: tuple[float, float] = CENTER_LONLAT
        self.offset = (0.0, 0.0)
        rng = self.rng
        self.bank = nm.NameBank(rng)  # admin areas, hamlets
        self.road_bank = nm.NameBank(rng)  # roads
        self.bank.reserve(self.short)
        self.rural_hh = round(households * rng.uniform(0.12, 0.18))
        self.urban_hh = households - self.rural_hh
        # outputs, in local coordinates
        self.road_geoms: list[Geom] = []
        self.road_cls: list[int] = []
        self.road_names: list[str | None] = []
        self.water: list[tuple[Geom, str]] = []
        self.ridges: list[tuple[Geom, str]] = []
        self.rails: list[tuple[Geom, str]] = []
        self.facilities: list[tuple[Geom, str, str]] = []
        self.dedicated_rows: list[tuple[Geom, str, str]] = []
        self.bld_geoms: list[GArr] = []
        self.bld_cols: dict[str, list[IArr]] = {
            "households": [],
            "population": [],
            "floors": [],
            "use": [],
        }

    # -- naming -----------------------------------------------------------

    def _road_name(self, cls: int) -> str:
        stem = self.road_bank.stem()
        if cls == PRIMARY:
            return stem + ("大道" if self.rng.random() < 0.5 else "路")
        if cls == SECONDARY:
            return stem + "路"
        if cls == TERTIARY:
            return stem + ("街" if self.rng.random() < 0.5 else "路")
        return stem + ("巷" if self.rng.random() < 0.6 else "里")

    # -- stage 1: the urban street lattice and its blocks ----------------

    def urban_lattice(self) -> None:
        rng = self.rng
        est_area = self.urban_hh / 9000.0 * 1e6
        span = 2.4 * math.sqrt(est_area) + 4000.0
        xs, clsx, secx, prix = _axis(rng, span)
        ys, clsy, secy, priy = _axis(rng, span)
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        Xw, Yw = X.copy(), Y.copy()
        for _ in range(2):
            lam = rng.uniform(5000.0, 9000.0)
            Xw += rng.uniform(60.0, 160.0) * np.sin(
                2 * math.pi * Y / lam + rng.uniform(0, 2 * math.pi)
            )
            lam = rng.uniform(5000.0, 9000.0)
            Yw += rng.uniform(60.0, 160.0) * np.sin(
                2 * math.pi * X / lam + rng.uniform(0, 2 * math.pi)
            )
        alpha = rng.uniform(-0.25, 0.25)
        ca, sa = math.cos(alpha), math.sin(alpha)
        nodes = np.stack([ca * Xw - sa * Yw, sa * Xw + ca * Yw], axis=-1)
        NX, NY = len(xs), len(ys)
        self.nodes, self.NX, self.NY = nodes, NX, NY
        self.clsx, self.clsy, self.secx, self.secy, self.prix, self.priy = (
            clsx,
            clsy,
            secx,
            secy,
            prix,
            priy,
        )
        gi, gj = np.meshgrid(np.arange(NX - 1), np.arange(NY - 1), indexing="ij")
        bi, bj = gi.ravel(), gj.ravel()
        self.bi, self.bj = bi, bj
        c00, c10 = nodes[bi, bj], nodes[bi + 1, bj]
        c11, c01 = nodes[bi + 1, bj + 1], nodes[bi, bj + 1]
        self.corners = (c00, c10, c11, c01)

        def cross(a: FArr, b: FArr) -> FArr:
            out: FArr = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
            return out

        area = 0.5 * np.abs(cross(c11 - c00, c01 - c10))
        self.block_area = area
        e_b, e_t = c10 - c00, c11 - c01
        e_l, e_r = c01 - c00, c11 - c10
        lb, lt = np.hypot(*e_b.T), np.hypot(*e_t.T)
        ll, lr = np.hypot(*e_l.T), np.hypot(*e_r.T)
        sins = np.stack(
            [
                np.abs(cross(e_b, e_l)) / (lb * ll),
                np.abs(cross(e_b, e_r)) / (lb * lr),
                np.abs(cross(e_t, e_l)) / (lt * ll),
                np.abs(cross(e_t, e_r)) / (lt * lr),
            ]
        ).min(0)
        self.block_W = np.minimum(lb, lt) * sins / 1.04
        self.block_H = np.minimum(ll, lr) * sins / 1.04
        self.block_centroid = (c00 + c10 + c11 + c01) / 4
        # Edge classes: residential edges become compound-internal service roads sometimes.
        vcls = np.repeat(clsx[:, None], NY - 1, axis=1)
        hcls = np.repeat(clsy[None, :], NX - 1, axis=0)
        vcls[(vcls == RESIDENTIAL) & (rng.random(vcls.shape) < 0.2)] = SERVICE
        hcls[(hcls == RESIDENTIAL) & (rng.random(hcls.shape) < 0.2)] = SERVICE
        self.vcls, self.hcls = vcls, hcls
        sides = np.stack([vcls[bi, bj], vcls[bi + 1, bj], hcls[bi, bj], hcls[bi, bj + 1]], axis=1)
        self.block_sides = sides
        # Secondary cells (the future communities) and superblocks.
        nsy = int(secy.max()) + 1
        npy = int(priy.max()) + 1
        self.nsx, self.nsy = int(secx.max()) + 1, nsy
        self.block_cell = secx[bi] * nsy + secy[bj]
        self.block_super = prix[bi] * npy + priy[bj]
        # Block types and expected households.
        ncell = self.nsx * nsy
        nb = len(bi)
        uv_cell = rng.random(ncell) < 0.14
        on_primary = (sides == PRIMARY).any(1)
        p = np.zeros((nb, 9))
        # columns: SLAB TOWER UVILLAGE COMMERCIAL PARK SCHOOL MARKET HOSPITAL PUBLIC
        p[:, COMMERCIAL] = 0.05 + 0.12 * on_primary
        p[:, PARK] = 0.06
        p[:, SCHOOL] = 0.06
        p[:, MARKET] = 0.03
        p[:, HOSPITAL] = 0.012
        p[:, PUBLIC] = 0.025
        p[:, UVILLAGE] = 0.03
        p[:, TOWER] = 0.22
        uvb = uv_cell[self.block_cell]
        p[uvb] = 0.0
        p[uvb, UVILLAGE] = 0.78
        p[uvb, SLAB] = 0.07
        p[uvb, MARKET] = 0.05
        p[uvb, SCHOOL] = 0.05
        p[uvb, PARK] = 0.05
        p[~uvb, SLAB] = 1.0 - p[~uvb].sum(1)
        cum = np.cumsum(p / p.sum(1, keepdims=True), axis=1)
        btype = (rng.random(nb)[:, None] < cum).argmax(1).astype(np.int64)
        dens = rng.uniform(10_000.0, 25_000.0, nb)
        cap = np.zeros(nb)
        res = np.isin(btype, (SLAB, TOWER))
        cap[res] = area[res] * dens[res] / 1e6
        cap[btype == UVILLAGE] = area[btype == UVILLAGE] * rng.uniform(18_000, 26_000) / 1e6
        cap[btype == MARKET] = 0.35 * area[btype == MARKET] * dens[btype == MARKET] / 1e6
        small = (self.block_W < 90) | (self.block_H < 90)
        cap[small & res] *= 0.6
        self.block_type, self.block_cap = btype, cap
        self._select_cells()

    def _select_cells(self) -> None:
        """Grow the urban area cell by cell from the centre until it holds the urban households."""
        rng = self.rng
        nsx, nsy = self.nsx, self.nsy
        ncell = nsx * nsy
        cap = np.bincount(self.block_cell, weights=self.block_cap, minlength=ncell)
        cnt = np.bincount(self.block_cell, minlength=ncell)
        cen = (
            np.stack(
                [
                    np.bincount(self.block_cell, weights=self.block_centroid[:, d], minlength=ncell)
                    for d in range(2)
                ],
                axis=1,
            )
            / np.maximum(cnt, 1)[:, None]
        )
        theta = np.arctan2(cen[:, 1], cen[:, 0])
        rf = np.ones(ncell)
        for k in range(1, 4):
            rf += rng.uniform(0.0, 0.22) / k * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        aniso = rng.uniform(1.0, 1.35)
        key = np.hypot(cen[:, 0] / aniso, cen[:, 1]) / rf
        selected = np.zeros(ncell, dtype=bool)
        queued = np.zeros(ncell, dtype=bool)

        def neighbours(c: int) -> Iterable[int]:
            sx, sy = divmod(c, nsy)
            if sx > 0:
                yield c - nsy
            if sx < nsx - 1:
                yield c + nsy
            if sy > 0:
                yield c - 1
            if sy < nsy - 1:
                yield c + 1

        start = int(np.argmin(key))
        heap: list[tuple[float, int]] = [(float(key[start]), start)]
        queued[start] = True
        total = 0.0
        while heap and total < self.urban_hh:
            _, c = heapq.heappop(heap)
            selected[c] = True
            total += cap[c]
            for nb in neighbours(c):
                if not queued[nb]:
                    queued[nb] = True
                    heapq.heappush(heap, (float(key[nb]), nb))
        if total < self.urban_hh:
            raise RuntimeError("urban lattice too small")  # pragma: no cover
        # Fill holes: unselected cells not reachable from the lattice border.
        outside = np.zeros(ncell, dtype=bool)
        stack = [
            c
            for c in range(ncell)
            if not selected[c] and (c // nsy in (0, nsx - 1) or c % nsy in (0, nsy - 1))
        ]
        for c in stack:
            outside[c] = True
        while stack:
            c = stack.pop()
            for nb in neighbours(c):
                if not selected[nb] and not outside[nb]:
                    outside[nb] = True
                    stack.append(nb)
        selected |= ~outside
        # Industrial parks and a campus sit on the fringe, not next to each other.
        kinds = [INDUSTRIAL] * (1 + self.households // 700_000) + (
            [CAMPUS] if selected.sum() >= 8 else []
        )
        special: list[int] = []
        while heap and len(special) < len(kinds):
            _, c = heapq.heappop(heap)
            if not selected[c] and not any(nb in special for nb in neighbours(c)):
                special.append(c)
        btype = self.block_type
        for c, t in zip(special, kinds, strict=False):
            selected[c] = True
            btype[self.block_cell == c] = t
            self.block_cap[self.block_cell == c] = 0.0
        self.industrial_cells = [c for c, t in zip(special, kinds, strict=False) if t == INDUSTRIAL]
        self.campus_cell = special[-1] if len(special) == len(kinds) and kinds[-1] == CAMPUS else -1
        self.cell_selected = selected
        self.sel_blocks = np.flatnonzero(selected[self.block_cell])
        self.cell_neighbours = neighbours

    # -- stage 2: streets (街道) -----------------------------------------

    def urban_streets(self) -> None:
        rng = self.rng
        sb = self.sel_blocks
        cells: list[int] = np.flatnonzero(self.cell_selected).tolist()
        n_streets = max(2 if self.urban_hh >= 40_000 else 1, round(self.urban_hh / HH_PER_STREET))
        sup = self.block_super[sb]
        usup, inv = np.unique(sup, return_inverse=True)
        w = np.bincount(inv, weights=self.block_cap[sb] + 1.0)
        cnt = np.bincount(inv)
        cen: FArr = (
            np.stack([np.bincount(inv, weights=self.block_centroid[sb, d]) for d in range(2)], 1)
            / cnt[:, None]
        )
        n_streets = min(n_streets, len(usup))
        _, lab = _kmeans(rng, cen, w.astype(float), n_streets, 15)
        sup_street = dict(zip(usup.tolist(), lab.tolist(), strict=True))
        # street of each selected cell = street of its superblock
        cell_super = {int(c): int(s) for c, s in zip(self.block_cell[sb], sup, strict=True)}
        cell_street = {int(c): sup_street[cell_super[int(c)]] for c in cells}
        # Make every street connected (cell adjacency).
        for _ in range(20):
            changed = False
            for st in sorted(set(cell_street.values())):
                members = [c for c in cells if cell_street[c] == st]
                comps = self._components(members)
                if len(comps) <= 1:
                    continue
                comps.sort(key=len, reverse=True)
                for comp in comps[1:]:
                    for c in comp:
                        votes: dict[int, int] = {}
                        for nb in self.cell_neighbours(c):
                            if nb in cell_street and cell_street[nb] != st:
                                votes[cell_street[nb]] = votes.get(cell_street[nb], 0) + 1
                        if votes:
                            cell_street[c] = max(sorted(votes), key=lambda s: votes[s])
                            changed = True
            if not changed:
                break
        # renumber streets 0..k-1 ordered north to south, west to east
        sts: list[int] = sorted(set(cell_street.values()))
        scen: dict[int, Any] = {
            s: np.mean(
                [
                    self.block_centroid[self.block_cell == c].mean(0)
                    for c in cells
                    if cell_street[c] == s
                ],
                axis=0,
            )
            for s in sts
        }
        order = sorted(sts, key=lambda s: (-round(scen[s][1] / 1500.0), scen[s][0]))
        remap = {s: i for i, s in enumerate(order)}
        self.cell_street = {c: remap[s] for c, s in cell_street.items()}
        self.n_streets = len(order)
        self.block_street = np.full(len(self.block_cell), -1, dtype=np.int64)
        self.block_street[sb] = [self.cell_street[int(c)] for c in self.block_cell[sb]]
        self.urban_poly = shapely.union_all(self._quads(sb), grid_size=None)

    def _components(self, members: list[int]) -> list[list[int]]:
        mset = set(members)
        seen: set[int] = set()
        comps: list[list[int]] = []
        for c in members:
            if c in seen:
                continue
            comp, stack = [], [c]
            seen.add(c)
            while stack:
                x = stack.pop()
                comp.append(x)
                for nb in self.cell_neighbours(x):
                    if nb in mset and nb not in seen:
                        seen.add(nb)
                        stack.append(nb)
            comps.append(comp)
        return comps

    def _quads(self, blocks: IArr) -> GArr:
        c00, c10, c11, c01 = (c[blocks] for c in self.corners)
        ring = np.stack([c00, c10, c11, c01, c00], axis=1)
        out: GArr = shapely.polygons(ring)
        return out

    # -- stage 3: district outline and natural features ------------------

    def natural_features(self) -> None:
        rng = self.rng
        U = self.urban_poly
        a_u = U.area
        r_u = math.sqrt(a_u / math.pi)
        cu = np.array(U.centroid.coords[0])
        _ux0, _uy0, _ux1, uy1 = U.bounds
        a_r = max(self.rural_hh / RURAL_DENSITY * 1e6, MIN_RURAL_AREA)
        rb = math.sqrt((a_r + 0.5 * a_u) / math.pi)
        e = rng.uniform(1.05, 1.3)
        a, b = rb * e, rb / e
        bcx = cu[0] + rng.uniform(-0.12, 0.12) * a
        bcy = cu[1] - 0.5 * r_u + b
        blob = _blob(rng, bcx, bcy, a, b)
        rural = shapely.difference(blob, U)
        parts = _polys_of(rural)
        big = max(p.area for p in parts)
        R = shapely.union_all([p for p in parts if p.area >= max(0.3e6, 0.02 * big)])
        self.R = R
        self.district = shapely.union_all([U, R])
        shapely.prepare(self.R)
        self.u_simple = U.simplify(50.0)
        self.blob_b = b
        # Ridges along the hills in the north.
        wm = float(np.clip(0.22 * b, 700.0, 1800.0))
        self.mountain_width = wm
        ridge_y = bcy + 0.5 * b
        xr = np.linspace(bcx - 0.62 * a, bcx + 0.62 * a, 60)
        yr = ridge_y + 0.06 * b * np.sin(2 * math.pi * (xr - bcx) / (0.9 * a) + rng.uniform(0, 6.3))
        yr += 0.02 * b * np.sin(2 * math.pi * (xr - bcx) / (0.23 * a) + rng.uniform(0, 6.3))
        ridge = _longest_part(
            shapely.intersection(shapely.LineString(np.column_stack([xr, yr])), R)
        )
        ridge_names = list(nm.RIDGES)
        rng.shuffle(ridge_names)
        ridges = [ridge]
        n_extra = int(a_r > 200e6) + int(a_r > 600e6)
        for _ in range(n_extra):
            for _try in range(30):
                px = rng.uniform(bcx - 0.8 * a, bcx + 0.8 * a)
                py = rng.uniform(bcy - 0.2 * b, bcy + 0.6 * b)
                if not shapely.contains_xy(R, px, py) or U.distance(shapely.Point(px, py)) < 3000:
                    continue
                ang = rng.uniform(0, 2 * math.pi)
                half = 0.2 * rb
                pa = np.array([px - half * math.cos(ang), py - half * math.sin(ang)])
                pb = np.array([px + half * math.cos(ang), py + half * math.sin(ang)])
                cut = _longest_part(
                    shapely.intersection(shapely.LineString(_wiggle(rng, pa, pb, 0.05 * half)), R)
                )
                if cut.length > 0.2 * rb and shapely.distance(cut, U) > 2000:
                    ridges.append(cut)
                    break
        for k, rg in enumerate(ridges):
            self.ridges.append((rg, ridge_names[k % len(ridge_names)]))
        self.ridge_geoms = ridges
        # The river flows west to east between the city and the hills.
        top = float(np.min(yr)) - wm
        gap = max(top - uy1, 600.0)
        y0 = uy1 + max(0.4 * gap, 300.0)
        amp = min(0.25 * (y0 - uy1), 350.0)
        xv = np.linspace(bcx - 1.6 * a, bcx + 1.6 * a, 240)
        yv = y0 + amp * (
            0.7 * np.sin(2 * math.pi * xv / rng.uniform(2500, 4500) + rng.uniform(0, 6.3))
            + 0.3 * np.sin(2 * math.pi * xv / rng.uniform(700, 1300) + rng.uniform(0, 6.3))
        )
        river_full = shapely.LineString(np.column_stack([xv, yv]))
        self.river_full = river_full
        river_name = str(rng.choice(nm.RIVERS))
        river = shapely.intersection(river_full, self.district)
        width = float(np.clip(25.0 + 25.0 * math.sqrt(a_r / 100e6), 30.0, 90.0))
        self.river_width = width
        body = shapely.intersection(
            shapely.buffer(river_full, width / 2, cap_style="flat"), self.district
        )
        for p in _polys_of(body, 100.0):
            self.water.append((p, river_name))
        for ln in _lines_of(river, 10.0):
            self.water.append((ln, river_name))
        # Railways: one north-south through the city; a second east-west in big districts.
        dx0, dy0, dx1, dy1 = self.district.bounds
        ys_ = np.linspace(dy0 - 2000, dy1 + 2000, 120)
        x_r = cu[0] + rng.uniform(-0.3, 0.3) * r_u + rng.uniform(-0.25, 0.25) * (ys_ - cu[1])
        x_r += (
            0.03
            * (dy1 - dy0)
            * np.sin(2 * math.pi * ys_ / rng.uniform(8000, 15000) + rng.uniform(0, 6.3))
        )
        rails = [shapely.LineString(np.column_stack([x_r, ys_]))]
        if self.households >= 400_000:
            xs_ = np.linspace(dx0 - 2000, dx1 + 2000, 120)
            y_r = cu[1] + rng.uniform(-0.3, 0.3) * r_u + rng.uniform(-0.2, 0.2) * (xs_ - cu[0])
            rails.append(shapely.LineString(np.column_stack([xs_, y_r])))
        self.rail_geoms: list[Geom] = []
        for k, rl in enumerate(rails):
            for ln in _lines_of(shapely.intersection(rl, self.district), 50.0):
                self.rails.append((ln, nm.RAILWAYS[k]))
                self.rail_geoms.append(ln)
        self.rail_buffer = shapely.buffer(shapely.union_all(self.rail_geoms), 30.0)
        shapely.prepare(self.rail_buffer)
        # Tributaries (涌) from the hills down to the river, a reservoir at the head of the first.
        n_trib = int(np.clip(1 + a_r / 120e6, 1, 7))
        creeks = list(nm.CREEKS)
        rng.shuffle(creeks)
        self.tribs: list[Geom] = []
        ridge_xy = shapely.get_coordinates(ridge)
        self.reservoir = shapely.Polygon()
        for t in range(n_trib):
            k = int(
                rng.integers(
                    len(ridge_xy) // 5, max(len(ridge_xy) * 4 // 5, len(ridge_xy) // 5 + 1)
                )
            )
            start = ridge_xy[k] + np.array([rng.uniform(-200, 200), -0.55 * wm])
            if not shapely.contains_xy(R, *start):
                continue
            tx = start[0] + rng.uniform(-0.3, 0.3) * gap
            end_pt = shapely.line_interpolate_point(
                river_full, river_full.project(shapely.Point(tx, y0))
            )
            end = np.array(end_pt.coords[0])
            line: Geom = shapely.LineString(
                _wiggle(rng, start, end, 0.08 * float(np.hypot(*(end - start))), 120.0)
            )
            if self.reservoir.is_empty:
                scale = float(np.clip(math.sqrt(a_r / 100e6), 1.0, 2.5))
                ra = min(rng.uniform(300, 500) * scale, 0.6 * wm)
                rb_ = min(rng.uniform(150, 250) * scale, 0.35 * wm)
                res = shapely.affinity.rotate(
                    _blob(rng, start[0], start[1], ra, rb_, rough=0.15, n=90), rng.uniform(-30, 30)
                )
                res = _longest_poly(shapely.intersection(res, R))
                if (
                    not res.is_empty
                    and shapely.distance(res, U) > 500
                    and shapely.distance(res, self.rail_buffer) > 300
                ):
                    self.reservoir = res
                    self.water.append((res, str(rng.choice(nm.RESERVOIRS))))
                    line = shapely.difference(line, res)
            clipped_line = shapely.intersection(line, self.district)
            name = creeks[t] if t < len(creeks) else self.bank.stem() + "涌"
            for ln in _lines_of(clipped_line, 50.0):
                self.water.append((ln, name))
                self.tribs.append(ln)

    # -- addresses (after all stages; an RNG of their own keeps the territory unchanged) --

    def _addresses(self, bld: GArr, village_of: IArr, villages: list[str], hh: IArr
                   ) -> dict[str, Any]:
        """Addresses of the buildings: the nearest named road within reach, house numbers
        along it (odd on the left, even on the right, growing with the distance from the
        road's start, roughly one per 10 m as door plates go); the residential buildings of
        one urban block share a compound (小区) with one door number and building numbers
        (栋); rural houses away from named roads are numbered within their village."""
        rng = np.random.default_rng(self.households * 7919 + len(villages))
        bank = nm.NameBank(rng)
        n = len(bld)
        cen: GArr = shapely.centroid(bld)
        road: list[str | None] = [None] * n
        number: list[int | None] = [None] * n
        named = [(g, nm_) for g, nm_ in zip(self.road_geoms, self.road_names, strict=True)
                 if nm_]
        parts: list[Geom] = []
        part_name: list[str] = []
        part_offset: list[float] = []
        by_name: dict[str, list[Geom]] = {}
        for g, nm_ in named:
            by_name.setdefault(nm_, []).append(g)
        for nm_, geoms in by_name.items():
            merged = shapely.line_merge(shapely.union_all(geoms))
            pieces = _lines_of(merged)
            # One reference along the whole road: its pieces in order along its main
            # direction, each starting where the previous ends.
            xy = np.concatenate([shapely.get_coordinates(p) for p in pieces])
            axis = xy[-1] - xy[0] if len(xy) > 1 else np.array([1.0, 0.0])
            norm = float(np.hypot(*axis)) or 1.0
            axis = axis / norm
            order = sorted(range(len(pieces)),
                           key=lambda k: float(shapely.get_coordinates(pieces[k])[0] @ axis))
            offset = 0.0
            for k in order:
                piece = pieces[k]
                a, b = shapely.get_coordinates(piece)[[0, -1]]
                if float((b - a) @ axis) < 0:
                    piece = shapely.reverse(piece)
                parts.append(piece)
                part_name.append(nm_)
                part_offset.append(offset)
                offset += float(piece.length) + 50.0
        urban_n = len(self.urban_bld_block)
        if parts:
            tree = shapely.STRtree(np.array(parts, dtype=object))
            reach = np.where(np.arange(n) < urban_n, 90.0, 70.0)
            idx = tree.query_nearest(cen, max_distance=float(reach.max()), all_matches=False)
            pt_i, part_i = idx
            dist = shapely.distance(cen[pt_i], np.array(parts, dtype=object)[part_i])
            ok = dist <= reach[pt_i]
            pt_i, part_i = pt_i[ok], part_i[ok]
            s_along = np.empty(len(pt_i))
            side = np.empty(len(pt_i), dtype=np.int64)
            for j, (b, p) in enumerate(zip(pt_i.tolist(), part_i.tolist(), strict=True)):
                line = parts[p]
                d = float(line.project(cen[b]))
                a = line.interpolate(max(d - 1.0, 0.0))
                c = line.interpolate(min(d + 1.0, line.length))
                cross = (c.x - a.x) * (cen[b].y - a.y) - (c.y - a.y) * (cen[b].x - a.x)
                s_along[j] = d + part_offset[p]
                side[j] = 1 if cross > 0 else 2  # left odd, right even
            names_arr = np.array(part_name, dtype=object)[part_i]
            for nm_ in np.unique(names_arr).tolist():
                for sd in (1, 2):
                    m = np.flatnonzero((names_arr == nm_) & (side == sd))
                    m = m[np.argsort(s_along[m], kind="stable")]
                    last = -1
                    for j in m.tolist():
                        base = 2 * int(s_along[j] // 20.0) + sd
                        num = max(base, last + 2)
                        last = num
                        road[int(pt_i[j])] = nm_
                        number[int(pt_i[j])] = num
        compound: list[str | None] = [None] * n
        building_no: list[str | None] = [None] * n
        # Compounds: urban blocks with at least two residential buildings.
        block = np.asarray(self.urban_bld_block)
        res = np.asarray(hh[:urban_n]) > 0
        for b in np.unique(block[res]).tolist():
            members = np.flatnonzero((block == b) & res)
            if len(members) < 2:
                continue
            name = bank.stem() + str(rng.choice(nm.COMPOUND_SUFFIXES))
            with_door = [int(i) for i in members if road[int(i)] is not None]
            if with_door:
                # The door: the member nearest the road it faces; the others share it.
                gate = min(with_door, key=lambda i: int(number[i] or 0))
                for i in members.tolist():
                    if road[i] is None or road[i] == road[gate]:
                        road[i], number[i] = road[gate], number[gate]
            seq = sorted(members.tolist(), key=lambda i: (-cen[i].y, cen[i].x))
            for k, i in enumerate(seq, start=1):
                compound[i] = name
                building_no[i] = str(k)
        # Rural houses away from named roads: numbered within their village.
        count: dict[int, int] = {}
        house_number: list[str | None] = [None] * n
        for i in range(n):
            if number[i] is not None:
                house_number[i] = str(number[i])
            elif i >= urban_n and village_of[i] >= 0:
                v = int(village_of[i])
                count[v] = count.get(v, 0) + 1
                house_number[i] = str(count[v])
        address: list[str | None] = []
        for i in range(n):
            head = villages[int(village_of[i])] if village_of[i] >= 0 else ""
            if house_number[i] is None:
                address.append(None)
                continue
            text = head + (road[i] or "") + f"{house_number[i]}号"
            if compound[i]:
                text += f"{compound[i]}{building_no[i]}栋"
            address.append(text)
        return {"address": address, "road": road, "house_number": house_number,
                "compound": compound, "building_no": building_no}

    # -- stage 4: urban buildings, communities, roads -------------------

    def urban_buildings(self) -> None:
        rng = self.rng
        sb = self.sel_blocks
        btype = self.block_type
        quads = self._quads(sb)
        clear = ~shapely.intersects(quads, shapely.buffer(self.rail_buffer, 60.0))
        roomy = clear & (self.block_W[sb] >= 110) & (self.block_H[sb] >= 110)
        # Each street gets at least a school, a market and a hospital (clear of the railway).
        for st in range(self.n_streets):
            mine = sb[(self.block_street[sb] == st) & roomy]
            for ft in (SCHOOL, MARKET, HOSPITAL):
                if (btype[mine] == ft).any():
                    continue
                cand = mine[np.isin(btype[mine], (SLAB, TOWER, UVILLAGE, PARK, COMMERCIAL, PUBLIC))]
                if len(cand):
                    b = int(rng.choice(cand))
                    btype[b] = ft
                    if ft != MARKET:
                        self.block_cap[b] = 0.0
        # Mega towers (> 500 households) in roomy blocks away from the railway.
        n_mega = max(1, math.ceil(MEGA_PER_100K * self.households / 100_000))
        resb = np.isin(btype[sb], (SLAB, TOWER))
        big = (self.block_W[sb] >= 120) & (self.block_H[sb] >= 120)
        for mask in (
            resb & roomy & big,
            resb & roomy,
            resb & clear,
            np.isin(btype[sb], (SLAB, TOWER, UVILLAGE)) & clear,
        ):
            cand = sb[mask]
            if len(cand):
                break
        btype[rng.choice(cand, size=min(n_mega, len(cand)), replace=False)] = MEGA
        # Lay out every block.
        blk: list[IArr] = []
        rect_l: list[FArr] = []
        use_l: list[IArr] = []
        fl_l: list[IArr] = []
        hh_l: list[IArr] = []
        un_l: list[IArr] = []
        kind_l: list[IArr] = []
        lines: list[tuple[int, float, float, float, float, int]] = []
        facs: list[tuple[int, int, str]] = []  # (block, global building index, kind)
        nbld = 0
        for b in sb.tolist():
            W, H = float(self.block_W[b]), float(self.block_H[b])
            lay = _layout_block(
                rng,
                int(btype[b]),
                W,
                H,
                SETBACK[self.block_sides[b]] * 1.08,
                float(self.block_cap[b]),
            )
            n = lay.count()
            if n:
                r = np.concatenate(lay.rects)
                r[:, :2] /= W
                r[:, 2:] /= H
                rect_l.append(r)
                blk.append(np.full(n, b, dtype=np.int64))
                use_l.append(np.concatenate(lay.use))
                fl_l.append(np.concatenate(lay.floors))
                hh_l.append(np.concatenate(lay.hh))
                un_l.append(np.concatenate(lay.units))
                kind_l.append(np.concatenate(lay.kind))
                for idx, fkind in lay.facilities:
                    facs.append((b, nbld + idx, fkind))
            for (ua, va, ub, vb), c in zip(lay.lines, lay.lcls, strict=True):
                lines.append((b, ua / W, va / H, ub / W, vb / H, c))
            nbld += n
        bb = np.concatenate(blk)
        rr = np.concatenate(rect_l)
        c00, c10, c11, c01 = (c[bb] for c in self.corners)
        s = np.stack([rr[:, 0], rr[:, 1], rr[:, 1], rr[:, 0], rr[:, 0]], axis=1)
        t = np.stack([rr[:, 2], rr[:, 2], rr[:, 3], rr[:, 3], rr[:, 2]], axis=1)
        ring = _bilinear(c00[:, None], c10[:, None], c11[:, None], c01[:, None], s, t)
        geoms: GArr = shapely.polygons(ring)
        use: IArr = np.concatenate(use_l)
        floors: IArr = np.concatenate(fl_l)
        hh: IArr = np.concatenate(hh_l)
        units: IArr = np.concatenate(un_l)
        kind: IArr = np.concatenate(kind_l)
        # Drop what the railway runs over.
        keep: IArr = np.asarray(~shapely.intersects(self.rail_buffer, geoms))
        newidx = np.cumsum(keep) - 1
        facs = [(b, int(newidx[i]), k) for b, i, k in facs if keep[i]]
        bb, geoms, use, floors, hh, units, kind = (
            x[keep] for x in (bb, geoms, use, floors, hh, units, kind)
        )
        # Households: exactly the urban share.
        res: IArr = hh > 0
        lo, hi = _HH_BOUNDS[kind[res], 0], _HH_BOUNDS[kind[res], 1]
        hh[res] = _fit_total(rng, hh[res], lo, hi, self.urban_hh)
        fb = _FLOOR_BOUNDS[kind[res]]
        floors[res] = np.clip(np.round(hh[res] / np.maximum(units[res], 1)), fb[:, 0], fb[:, 1])
        pop = np.round(hh * rng.uniform(2.3, 3.2, len(hh))).astype(np.int64)
        self._add_buildings(geoms, hh, pop, floors, use)
        self.urban_bld_block = bb
        self.urban_bld_hh = hh
        # Inner lanes of the compounds.
        if lines:
            la = np.array([x[:5] for x in lines])
            lb_ = la[:, 0].astype(np.int64)
            c00, c10, c11, c01 = (c[lb_] for c in self.corners)
            s = la[:, [1, 3]]
            t = la[:, [2, 4]]
            pts = _bilinear(c00[:, None], c10[:, None], c11[:, None], c01[:, None], s, t)
            lg: GArr = shapely.linestrings(pts)
            for g, (_, _, _, _, _, c) in zip(lg.tolist(), lines, strict=True):
                self._add_road(g, c, None)
        # Urban facilities.
        self._urban_communities(bb, hh)
        streets = self.street_names
        hosp_n = 0
        school_n: dict[int, int] = {}
        for b, i, fkind in facs:
            st = int(self.block_street[b])
            pt = shapely.centroid(geoms[i])
            base = streets[st].removesuffix("街道")
            if fkind == "school":
                school_n[st] = school_n.get(st, 0) + 1
                k = school_n[st]
                name = (
                    f"{base}第{nm.chinese_number(k - k // 3)}小学"
                    if k % 3
                    else f"{base}第{nm.chinese_number(k // 3)}中学"
                )
            elif fkind == "hospital":
                hosp_n += 1
                name = (
                    f"{self.short}区人民医院"
                    if hosp_n == 1
                    else f"{base}社区卫生服务中心"
                    if hosp_n % 2
                    else f"{self.bank.stem()}医院"
                )
            else:
                name = f"{base}{self.bank.stem()}农贸市场"
            self.facilities.append((pt, fkind, name))
        self._urban_roads()

    def _add_buildings(self, geoms: GArr, hh: IArr, pop: IArr, floors: IArr, use: IArr) -> None:
        self.bld_geoms.append(geoms)
        self.bld_cols["households"].append(hh.astype(np.int64))
        self.bld_cols["population"].append(pop.astype(np.int64))
        self.bld_cols["floors"].append(floors.astype(np.int64))
        self.bld_cols["use"].append(use.astype(np.int64))

    def _add_road(self, geom: Geom, cls: int, name: str | None) -> None:
        self.road_geoms.append(geom)
        self.road_cls.append(cls)
        self.road_names.append(name)

    def _urban_communities(self, bld_block: IArr, hh: IArr) -> None:
        """Communities: secondary cells, big ones split, small ones merged; then the streets."""
        sb = self.sel_blocks
        nblocks = len(self.block_cell)
        block_hh = np.bincount(bld_block, weights=hh, minlength=nblocks)
        comm = np.full(nblocks, -1, dtype=np.int64)
        comm[sb] = self.block_cell[sb]
        next_id = int(self.nsx * self.nsy)
        # Split big cells in two along the middle lattice line of their longer side.
        cells = np.flatnonzero(self.cell_selected)
        for c in cells.tolist():
            mine = sb[self.block_cell[sb] == c]
            tot = block_hh[mine].sum()
            if tot <= 6000:
                continue
            bi, bj = self.bi[mine], self.bj[mine]
            ni, nj = len(np.unique(bi)), len(np.unique(bj))
            along, n_along = (bi, ni) if ni >= nj else (bj, nj)
            if n_along < 2:
                continue
            mid = np.sort(np.unique(along))[n_along // 2]
            part = mine[along >= mid]
            if min(block_hh[part].sum(), tot - block_hh[part].sum()) < 1500:
                continue
            comm[part] = next_id
            next_id += 1
        comm_street: dict[int, int] = {}
        for b in sb.tolist():
            comm_street[int(comm[b])] = int(self.block_street[b])
        chh: dict[int, float] = {}
        for c_, h in zip(comm[sb].tolist(), block_hh[sb].tolist(), strict=True):
            chh[c_] = chh.get(c_, 0.0) + h
        # adjacency between communities through shared block edges
        grid = np.full((self.NX - 1, self.NY - 1), -1, dtype=np.int64)
        grid[self.bi[sb], self.bj[sb]] = comm[sb]
        adj: dict[int, set[int]] = {c_: set() for c_ in chh}
        for a_, b_ in ((grid[:-1, :], grid[1:, :]), (grid[:, :-1], grid[:, 1:])):
            m = (a_ >= 0) & (b_ >= 0) & (a_ != b_)
            for x, y in zip(a_[m].tolist(), b_[m].tolist(), strict=True):
                adj[x].add(y)
                adj[y].add(x)
        # Merge communities under 1,500 households into a neighbour of the same street.
        while True:
            small = [
                c_
                for c_ in sorted(chh)
                if chh[c_] < 1500 and any(comm_street[n] == comm_street[c_] for n in adj[c_])
            ]
            if not small:
                break
            c_ = min(small, key=lambda x: (chh[x], x))
            into = min(
                (n for n in adj[c_] if comm_street[n] == comm_street[c_]), key=lambda x: (chh[x], x)
            )
            comm[comm == c_] = into
            chh[into] += chh.pop(c_)
            for n in adj.pop(c_):
                if n != into:
                    adj[n].discard(c_)
                    adj[n].add(into)
                    adj[into].add(n)
            adj[into].discard(c_)
            comm_street.pop(c_)
        # Names and codes.
        self.street_names = [self.bank.stem() + "街道" for _ in range(self.n_streets)]
        self.community_rows: list[tuple[Geom, int, str]] = []
        street_polys: list[list[Geom]] = [[] for _ in range(self.n_streets)]
        per_street: dict[int, list[tuple[Geom, int]]] = {}
        for c_ in sorted(chh):
            blocks = sb[comm[sb] == c_]
            poly = shapely.union_all(self._quads(blocks))
            per_street.setdefault(comm_street[c_], []).append((poly, c_))
        self.urban_comm_polys: list[tuple[Geom, int, str, int]] = []  # geom, street, name, hh
        for st in range(self.n_streets):
            items = per_street.get(st, [])
            items.sort(key=lambda it: (-round(it[0].centroid.y / 400.0), it[0].centroid.x))
            for poly, c_ in items:
                name = self.bank.stem() + "社区"
                self.urban_comm_polys.append((poly, st, name, int(chh[c_])))
                street_polys[st].append(poly)
        self.street_polys = [shapely.union_all(ps) for ps in street_polys]

    def _urban_roads(self) -> None:
        """The lattice roads bordering at least one urban block, merged into runs."""
        NX, NY = self.NX, self.NY
        sel = np.zeros((NX - 1, NY - 1), dtype=bool)
        sel[self.bi[self.sel_blocks], self.bj[self.sel_blocks]] = True
        vex = np.zeros((NX, NY - 1), dtype=bool)
        vex[1:] |= sel
        vex[:-1] |= sel
        hexist = np.zeros((NX - 1, NY), dtype=bool)
        hexist[:, 1:] |= sel
        hexist[:, :-1] |= sel
        names: dict[tuple[int, ...], str] = {}
        arterials = list(nm.ARTERIALS)
        self.rng.shuffle(arterials)

        def name_for(key: tuple[int, ...], cls: int) -> str | None:
            if cls in (SERVICE, FOOTWAY):
                return None
            if key not in names:
                if cls == PRIMARY and arterials:
                    names[key] = arterials.pop()
                else:
                    names[key] = self._road_name(cls)
            return names[key]

        for axis in (0, 1):
            exist = vex if axis == 0 else hexist.T
            ecls = self.vcls if axis == 0 else self.hcls.T
            line_cls = self.clsx if axis == 0 else self.clsy
            sec = self.secy if axis == 0 else self.secx
            pri = self.priy if axis == 0 else self.prix
            for i in range(exist.shape[0]):
                row_e, row_c = exist[i], ecls[i]
                j = 0
                n = len(row_e)
                while j < n:
                    if not row_e[j]:
                        j += 1
                        continue
                    c = int(row_c[j])
                    lc = int(line_cls[i])
                    key: tuple[int, ...]
                    if lc in (PRIMARY, SECONDARY):
                        key = (axis, i)
                    elif c == TERTIARY:
                        key = (axis, i, int(pri[j]))
                    else:
                        key = (axis, i, int(pri[j]), int(sec[j]))
                    k = j
                    while k + 1 < n and row_e[k + 1] and int(row_c[k + 1]) == c:
                        if c in (RESIDENTIAL, TERTIARY) and lc not in (PRIMARY, SECONDARY):
                            nxt = (
                                (axis, i, int(pri[k + 1]))
                                if c == TERTIARY
                                else (axis, i, int(pri[k + 1]), int(sec[k + 1]))
                            )
                            if nxt != key:
                                break
                        k += 1
                    pts = self.nodes[i, j : k + 2] if axis == 0 else self.nodes[j : k + 2, i]
                    self._add_road(shapely.LineString(pts), c, name_for(key, c))
                    j = k + 1

    # -- stage 5: rural towns and villages -------------------------------

    def _rho(self, pts: GArr) -> FArr:
        """Relative density of rural households at points."""
        d_u = shapely.distance(pts, self.u_simple)
        d_r = shapely.distance(pts, self.river_full)
        d_m = np.min(np.stack([shapely.distance(pts, r) for r in self.ridge_geoms]), axis=0)
        wm = self.mountain_width
        mount = np.clip((d_m - wm) / (0.6 * wm), 0.0, 1.0) * 0.92 + 0.08
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        noise = np.zeros(len(pts))
        for kx, ky, ph in self.noise_waves:
            noise += np.sin(kx * x + ky * y + ph)
        rho = (1 + 2.0 * np.exp(-d_u / 2500.0)) * (1 + 0.6 * np.exp(-d_r / 1200.0)) * mount
        rho *= np.exp(0.3 * noise)
        excl = (d_r < self.river_width / 2 + 120) | (d_u < 150)
        if self.tribs:
            excl |= shapely.distance(pts, shapely.union_all(self.tribs)) < 80
        if not self.reservoir.is_empty:
            excl |= shapely.distance(pts, self.reservoir) < 120
        excl |= shapely.distance(pts, shapely.union_all(self.rail_geoms)) < 120
        rho[excl] = 0.0
        out: FArr = rho
        return out

    def rural_admin(self) -> None:
        rng = self.rng
        R = self.R
        self.noise_waves = [
            (math.cos(t) * 2 * math.pi / lam, math.sin(t) * 2 * math.pi / lam, rng.uniform(0, 6.3))
            for t, lam in zip(rng.uniform(0, math.pi, 4), rng.uniform(2000, 6000, 4), strict=True)
        ]
        # Hamlets (自然村): centres and households.
        mean = 55.0
        n_h = max(4, round(self.rural_hh / mean))
        sizes = np.clip(np.exp(rng.normal(math.log(45.0), 0.6, n_h)), 8, 260)
        sizes = sizes * self.rural_hh / sizes.sum()
        hh = np.floor(sizes).astype(np.int64)
        rem = self.rural_hh - int(hh.sum())
        hh[np.argsort(-(sizes - hh), kind="stable")[:rem]] += 1
        hh = np.maximum(hh, 1)
        over = int(hh.sum()) - self.rural_hh
        while over > 0:
            i = int(np.argmax(hh))
            hh[i] -= 1
            over -= 1
        R_in = shapely.buffer(R, -120.0)
        shapely.prepare(R_in)
        x0, y0, x1, y1 = R.bounds
        cell = 320.0
        pts_x: list[FArr] = []
        pts_y: list[FArr] = []
        used = np.zeros(0, dtype=np.int64)
        have = 0
        rho_max = 3.0 * 1.6 * math.exp(1.2)
        for _ in range(60):
            if have >= n_h:
                break
            m = int(max(4000, 12 * (n_h - have)))
            x, y = rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)
            ok = shapely.contains_xy(R_in, x, y)
            x, y = x[ok], y[ok]
            rho = self._rho(shapely.points(x, y))
            ok = rng.random(len(x)) * rho_max < rho
            x, y = x[ok], y[ok]
            key = np.floor(x / cell).astype(np.int64) * 1_000_003 + np.floor(y / cell).astype(
                np.int64
            )
            _, first = np.unique(key, return_index=True)
            first = np.sort(first)
            x, y, key = x[first], y[first], key[first]
            new = ~np.isin(key, used)
            x, y, key = x[new], y[new], key[new]
            take = min(len(x), n_h - have)
            pts_x.append(x[:take])
            pts_y.append(y[:take])
            used = np.concatenate([used, key[:take]])
            have += take
        hx, hy = np.concatenate(pts_x), np.concatenate(pts_y)
        if len(hx) < n_h:  # pragma: no cover - the rural area is always big enough
            extra = hh[len(hx) :].sum()
            hh = hh[: len(hx)]
            hh[np.argsort(hh)[: int(extra)] % len(hh)] += 1
        self.h_xy = np.column_stack([hx, hy])
        self.h_hh = hh
        # Every hamlet's Voronoi cell in the rural area, cut by the river. Towns and villages
        # are unions of these cells, so their boundaries run between hamlets, never through
        # one, and villages do not straddle the river.
        try:
            sides = _polys_of(shapely.ops.split(R, self.river_full), 1.0)
        except Exception:  # pragma: no cover - split can fail on degenerate input
            sides = [R]
        river_zone = shapely.buffer(self.river_full, 1.0)
        h_pts: GArr = shapely.points(self.h_xy)
        nh = len(self.h_xy)
        pieces: list[tuple[Geom, int]] = []
        for g, o in self._voronoi(self.h_xy, R):
            if shapely.intersects(g, self.river_full):
                for side in sides:
                    pieces += [(p, o) for p in _polys_of(shapely.intersection(g, side), 0.01)]
            else:
                pieces.append((g, o))
        cells = np.empty(nh, dtype=object)
        for o, g in self._resolve_orphans(pieces, self.h_xy, river_zone):
            cells[o] = g
        # Towns: weighted k-means of the hamlets.
        n_vil = max(2, round(self.rural_hh / HH_PER_VILLAGE))
        n_towns = max(1, round(n_vil / VILLAGES_PER_TOWN))
        _, town_lab = _kmeans(rng, self.h_xy, hh.astype(float), n_towns, 12)
        town_lab = self._contiguous(town_lab, cells, None)
        # Villages: k-means of the hamlets of each town on each side of the river.
        side_of = self._locate(h_pts, sides)
        vil_lab = np.full(nh, -1, dtype=np.int64)
        n_lab = 0
        for t in np.unique(town_lab).tolist():
            for sd in np.unique(side_of[town_lab == t]).tolist():
                sel = np.flatnonzero((town_lab == t) & (side_of == sd))
                k = max(1, round(hh[sel].sum() / HH_PER_VILLAGE))
                _, lab = _kmeans(rng, self.h_xy[sel], hh[sel].astype(float), k, 2)
                vil_lab[sel] = n_lab + lab
                n_lab += k
        vil_lab = self._contiguous(vil_lab, cells, town_lab)
        vil_geoms: list[Geom] = []
        vil_town: list[int] = []
        for v in np.unique(vil_lab).tolist():
            members = np.flatnonzero(vil_lab == v)
            vil_geoms.append(shapely.union_all(cells[members]))
            vil_town.append(int(town_lab[members[0]]))
        vil_geoms = list(shapely.set_precision(np.array(vil_geoms, dtype=object), GRID))
        vil_town_a = np.array(vil_town, dtype=np.int64)
        # Villages need households: merge those with (almost) none into a neighbour.
        vil_geoms, vil_town_a = self._merge_small_villages(vil_geoms, vil_town_a, h_pts, hh)
        vil_geoms, vil_town_a = self._ensure_wide_village(vil_geoms, vil_town_a)
        # Snapping may have pushed a village a few mm into the city: cut it with the exact
        # urban polygon (whose vertices the communities share).
        cut = shapely.difference(np.array(vil_geoms, dtype=object), self.urban_poly)
        vil_geoms = [shapely.union_all(_polys_of(g, 1.0)) for g in cut]
        self.vil_geoms, self.vil_town = vil_geoms, vil_town_a
        self.h_vil = self._locate(h_pts, vil_geoms)
        # Towns are the union of their villages (exact tiling).
        tids = sorted(set(vil_town_a.tolist()))
        self.town_geoms = [
            shapely.union_all(
                [g for g, t in zip(vil_geoms, vil_town_a.tolist(), strict=True) if t == ti],
                grid_size=GRID,
            )
            for ti in tids
        ]
        remap = {t: i for i, t in enumerate(tids)}
        self.vil_town = np.array([remap[t] for t in vil_town_a.tolist()], dtype=np.int64)
        self.h_town = self.vil_town[self.h_vil]

    def _contiguous(self, lab: IArr, cells: GArr, group: IArr | None) -> IArr:
        """Relabel cells so that every label's union is one polygon where possible.

        A detached part of a label goes to the neighbouring label (of the same group)
        that shares the longest boundary with it.
        """
        lab = lab.copy()
        tree = shapely.STRtree(cells)
        inner: GArr = shapely.point_on_surface(cells)
        for _ in range(6):
            changed = False
            for lb in np.unique(lab).tolist():
                idx = np.flatnonzero(lab == lb)
                parts = _polys_of(shapely.union_all(cells[idx]), 0.0)
                if len(parts) <= 1:
                    continue
                parts.sort(key=lambda p: p.area, reverse=True)
                for part in parts[1:]:
                    members = idx[shapely.within(inner[idx], part)]
                    nb = tree.query(part, predicate="dwithin", distance=0.5)
                    nb = nb[lab[nb] != lb]
                    if group is not None:
                        nb = nb[group[nb] == group[idx[0]]]
                    if len(nb) == 0 or len(members) == 0:
                        continue
                    shared = shapely.length(
                        shapely.intersection(part.boundary, shapely.buffer(cells[nb], 0.5))
                    )
                    lab[members] = lab[nb[int(np.argmax(shared))]]
                    changed = True
            if not changed:
                break
        return lab

    def _voronoi(self, seeds: FArr, region: Geom) -> list[tuple[Geom, int]]:
        """Voronoi cells of seeds clipped to a region, as (piece, seed index)."""
        if len(seeds) == 1:
            return [(p, 0) for p in _polys_of(region, 0.01)]
        x0, y0, x1, y1 = region.bounds
        env = shapely.box(x0 - 5000, y0 - 5000, x1 + 5000, y1 + 5000)
        vor = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=env, ordered=True)
        cells = shapely.get_parts(vor)
        out: list[tuple[Geom, int]] = []
        for i, cpoly in enumerate(cells.tolist()):
            for p in _polys_of(shapely.intersection(cpoly, region), 0.01):
                out.append((p, i))
        return out

    def _resolve_orphans(
        self, pieces: list[tuple[Geom, int]], seeds: FArr, river_zone: Geom | None
    ) -> list[tuple[int, Geom]]:
        """Give every piece cut off from its seed to the neighbour it shares most boundary with.

        Pieces of owner -1 have no seed and always go to a neighbour.  Returns
        (owner, geometry) for every surviving owner.
        """
        if not pieces:
            return []
        geoms = np.array([p for p, _ in pieces], dtype=object)
        owner = np.array([o for _, o in pieces], dtype=np.int64)
        n = len(pieces)
        seeded = np.zeros(n, dtype=bool)
        for o in np.unique(owner[owner >= 0]).tolist():
            idx = np.flatnonzero(owner == o)
            sx, sy = seeds[o]
            hit = idx[shapely.contains_xy(geoms[idx], sx, sy)]
            seeded[hit[0] if len(hit) else idx[np.argmax(shapely.area(geoms[idx]))]] = True
        tree = shapely.STRtree(geoms)
        resolved = seeded.copy()
        for _ in range(50):
            todo = np.flatnonzero(~resolved)
            if len(todo) == 0:
                break
            progress = False
            for i in todo.tolist():
                nbrs = tree.query(geoms[i], predicate="dwithin", distance=0.5)
                nbrs = nbrs[(nbrs != i) & resolved[nbrs]]
                if len(nbrs) == 0:
                    continue
                ring = shapely.boundary(geoms[i])
                shared = shapely.intersection(ring, shapely.buffer(geoms[nbrs], 0.5))
                score = shapely.length(shared)
                if river_zone is not None:
                    score = score - 0.95 * shapely.length(shapely.intersection(shared, river_zone))
                score = score + 1e-3 * (owner[nbrs] == owner[i])
                j = int(nbrs[int(np.argmax(score))])
                owner[i] = owner[j]
                resolved[i] = True
                progress = True
            if not progress:
                resolved[todo] = True
        out: list[tuple[int, Geom]] = []
        for o in np.unique(owner).tolist():
            g = shapely.union_all(geoms[owner == o])
            if not g.is_empty:
                out.append((o, g))
        return out

    def _locate(self, pts: GArr, polys: list[Geom]) -> IArr:
        """Index of the polygon holding each point (nearest when on no polygon)."""
        arr = np.array(polys, dtype=object)
        tree = shapely.STRtree(arr)
        out = np.full(len(pts), -1, dtype=np.int64)
        pi, gi = tree.query(pts, predicate="intersects")
        out[pi] = gi
        miss = np.flatnonzero(out < 0)
        if len(miss):
            out[miss] = tree.query_nearest(pts[miss], all_matches=False)[1]
        return out

    def _merge_small_villages(
        self, geoms: list[Geom], town: IArr, h_pts: GArr, hh: IArr
    ) -> tuple[list[Geom], IArr]:
        for _ in range(len(geoms)):
            where = self._locate(h_pts, geoms)
            vhh = np.bincount(where, weights=hh, minlength=len(geoms))
            order = np.argsort(vhh, kind="stable")
            done = True
            for i in order.tolist():
                if vhh[i] >= 60:
                    break
                tree = shapely.STRtree(np.array(geoms, dtype=object))
                hits = tree.query(geoms[i], predicate="dwithin", distance=0.5)
                nbrs = [j for j in hits.tolist() if j != i and town[j] == town[i]]
                if not nbrs:
                    continue
                ring = shapely.boundary(geoms[i])
                score = [
                    shapely.intersection(ring, shapely.buffer(geoms[j], 0.5)).length for j in nbrs
                ]
                j = nbrs[int(np.argmax(score))]
                geoms[j] = shapely.union_all([geoms[j], geoms[i]], grid_size=GRID)
                del geoms[i]
                town = np.delete(town, i)
                done = False
                break
            if done:
                break
        return geoms, town

    def _ensure_wide_village(self, geoms: list[Geom], town: IArr) -> tuple[list[Geom], IArr]:
        """Make sure one village is wider than 5 km (a mountain village, long service radius)."""
        ext = [_extent(g) for g in geoms]
        for _ in range(40):
            best = int(np.argmax(ext))
            if ext[best] > 5300.0:
                break
            arr = np.array(geoms, dtype=object)
            hits = shapely.STRtree(arr).query(geoms[best], predicate="dwithin", distance=0.5)
            nbrs = [j for j in hits.tolist() if j != best and town[j] == town[best]]
            if not nbrs:  # pragma: no cover - a town always has several villages here
                break
            cands = [shapely.union_all([geoms[best], geoms[j]], grid_size=GRID) for j in nbrs]
            cext = [_extent(c) for c in cands]
            k = int(np.argmax(cext))
            j = nbrs[k]
            geoms[best] = cands[k]
            ext[best] = cext[k]
            del geoms[j]
            del ext[j]
            town = np.delete(town, j)
        return geoms, town

    # -- stage 6: rural roads and facility buildings ---------------------

    def rural_roads(self) -> None:
        rng = self.rng
        U, R = self.urban_poly, self.R
        h_xy, h_hh = self.h_xy, self.h_hh
        n_v = len(self.vil_geoms)
        n_t = len(self.town_geoms)
        # Village centres and town seats.
        vil_centre = np.full(n_v, -1, dtype=np.int64)
        order = np.lexsort((-h_hh, self.h_vil))
        first = np.unique(self.h_vil[order], return_index=True)
        vil_centre[first[0]] = order[first[1]]
        town_seat = np.full(n_t, -1, dtype=np.int64)
        for ti in range(n_t):
            mine = np.flatnonzero(self.h_town == ti)
            if len(mine) == 0:
                continue
            c = np.array(self.town_geoms[ti].centroid.coords[0])
            scale = 0.35 * math.sqrt(self.town_geoms[ti].area)
            score = h_hh[mine] * np.exp(-np.hypot(*(h_xy[mine] - c).T) / scale)
            town_seat[ti] = mine[int(np.argmax(score))]
        self.vil_centre, self.town_seat = vil_centre, town_seat
        # Names of towns and villages.
        self.town_names = [self.bank.stem() + "镇" for _ in range(n_t)]
        self.vil_names = [self.bank.stem() + "村" for _ in range(n_v)]
        # Urban boundary nodes on arterials: where the country roads start.
        sel = np.zeros((self.NX + 1, self.NY + 1), dtype=bool)
        sel[self.bi[self.sel_blocks] + 1, self.bj[self.sel_blocks] + 1] = True
        s4 = np.stack([sel[:-1, :-1], sel[1:, :-1], sel[:-1, 1:], sel[1:, 1:]])
        bnd = s4.any(0) & ~s4.all(0)
        arterial = (self.clsx[:, None] <= SECONDARY) | (self.clsy[None, :] <= SECONDARY)
        ii, jj = np.nonzero(bnd & arterial)
        net_pts = [self.nodes[ii, jj]]
        new_lines: list[tuple[Geom, int, str | None]] = []

        def connect(p: FArr, pool: FArr, cls: int, name: str | None, amp: float) -> FArr:
            d = np.hypot(*(pool - p).T)
            q = pool[int(np.argmin(d))]
            if float(d.min()) < 30:
                return np.zeros((0, 2))
            xy = _wiggle(rng, q, p, min(amp * float(d.min()), 250.0))
            new_lines.append((shapely.LineString(xy), cls, name))
            return xy

        # Town seats to the city (secondary "公路"), nearest first.
        seats = [int(s) for s in town_seat if s >= 0]
        d_u = shapely.distance(shapely.points(h_xy[seats]), self.u_simple)
        pool = np.concatenate(net_pts)
        for s in [seats[i] for i in np.argsort(d_u, kind="stable")]:
            xy = connect(h_xy[s], pool, SECONDARY, self.road_bank.stem() + "公路", 0.05)
            pool = np.concatenate([pool, xy])
        # One highway leaves the district to the north.
        if seats:
            s = seats[int(np.argmax(h_xy[seats, 1]))]
            far = h_xy[s] + np.array([rng.uniform(-0.3, 0.3), 1.0]) * 3 * self.blob_b
            new_lines.append(
                (
                    shapely.LineString(_wiggle(rng, h_xy[s], far, 300.0, 300.0)),
                    SECONDARY,
                    self.road_bank.stem() + "公路",
                )
            )
        # Village centres to the network of their town (tertiary).
        for ti in range(n_t):
            vs = [v for v in range(n_v) if self.vil_town[v] == ti and vil_centre[v] >= 0]
            if not vs:
                continue
            seat = town_seat[ti]
            d = np.hypot(*(h_xy[vil_centre[vs]] - h_xy[seat]).T)
            tpool = pool
            for k in np.argsort(d, kind="stable").tolist():
                v = vs[k]
                c = vil_centre[v]
                if c == seat:
                    continue
                xy = connect(
                    h_xy[c], tpool, TERTIARY, self.vil_names[v].removesuffix("村") + "路", 0.06
                )
                tpool = np.concatenate([tpool, xy])
        # Hamlets: grow a tree per town, always linking the hamlet nearest to the
        # network so far (residential for big hamlets, service lanes for small ones).
        main = shapely.segmentize(np.array([g for g, _, _ in new_lines], dtype=object), 60.0)
        main_xy = shapely.get_coordinates(main)
        linked = np.zeros(len(h_xy), dtype=bool)
        linked[vil_centre[vil_centre >= 0]] = True
        linked[town_seat[town_seat >= 0]] = True
        vil_count: dict[int, int] = {}
        for ti in range(n_t):
            hs = np.flatnonzero((self.h_town == ti) & ~linked)
            if len(hs) == 0:
                continue
            hxy = h_xy[hs]
            x0, y0 = hxy.min(0) - 4000
            x1, y1 = hxy.max(0) + 4000
            near = main_xy[
                (main_xy[:, 0] > x0)
                & (main_xy[:, 0] < x1)
                & (main_xy[:, 1] > y0)
                & (main_xy[:, 1] < y1)
            ]
            if len(near) == 0:
                near = main_xy
            dmin = np.full(len(hs), np.inf)
            best = np.zeros((len(hs), 2))
            todo = np.ones(len(hs), dtype=bool)

            def update(pts: FArr, dmin: FArr = dmin, best: FArr = best, hxy: FArr = hxy) -> None:
                for lo in range(0, len(pts), 2048):
                    chunk = pts[lo : lo + 2048]
                    d = np.hypot(
                        hxy[:, None, 0] - chunk[None, :, 0], hxy[:, None, 1] - chunk[None, :, 1]
                    )
                    k = d.argmin(1)
                    dk = d[np.arange(len(hxy)), k]
                    better = dk < dmin
                    dmin[better] = dk[better]
                    best[better] = chunk[k[better]]

            update(near)
            for _ in range(len(hs)):
                k = int(np.argmin(np.where(todo, dmin, np.inf)))
                todo[k] = False
                hi = int(hs[k])
                if dmin[k] >= 25:
                    xy = _wiggle(rng, best[k], hxy[k], min(0.06 * float(dmin[k]), 80.0), 80.0)
                    if h_hh[hi] >= 60:
                        v = int(self.h_vil[hi])
                        vil_count[v] = vil_count.get(v, 0) + 1
                        name = (
                            self.vil_names[v].removesuffix("村")
                            + nm.chinese_number(vil_count[v])
                            + "巷"
                        )
                        new_lines.append((shapely.LineString(xy), RESIDENTIAL, name))
                    else:
                        new_lines.append((shapely.LineString(xy), SERVICE, None))
                    seg = shapely.get_coordinates(shapely.segmentize(shapely.LineString(xy), 50.0))
                    update(seg)
        # Clip to the rural area (the city has its own streets) and keep.
        geoms = np.array([g for g, _, _ in new_lines], dtype=object)
        clipped = shapely.intersection(shapely.difference(geoms, U), self.district)
        if not self.reservoir.is_empty:
            clipped = shapely.difference(clipped, shapely.buffer(self.reservoir, 10.0))
        self.rural_road_geoms: list[Geom] = []
        self.rural_road_cls: list[int] = []
        for g, (_, rc, rname) in zip(clipped.tolist(), new_lines, strict=True):
            for ln in _lines_of(g, 10.0):
                self._add_road(ln, rc, rname)
                self.rural_road_geoms.append(ln)
                self.rural_road_cls.append(rc)
        # Obstacles for rural buildings: roads, water, railway.
        rg = np.array(self.rural_road_geoms, dtype=object)
        obst = list(shapely.buffer(rg, RURAL_SETBACK[np.array(self.rural_road_cls)]))
        obst += [shapely.buffer(self.river_full, self.river_width / 2 + 15.0)]
        obst += [shapely.buffer(t, 12.0) for t in self.tribs]
        if not self.reservoir.is_empty:
            obst.append(shapely.buffer(self.reservoir, 20.0))
        obst.append(self.rail_buffer)
        self.obstacles = obst
        # Facilities of the towns and villages, each in its own building.
        tree = shapely.STRtree(np.array(obst, dtype=object))
        self.rural_fac_geoms: list[Geom] = []
        R_in = shapely.buffer(R, -40.0)
        shapely.prepare(R_in)
        for ti in range(n_t):
            seat = int(town_seat[ti])
            if seat < 0:
                continue
            tname = self.town_names[ti].removesuffix("镇")
            for kind, name, dims, floors in (
                ("school", f"{tname}中心小学", (60.0, 18.0), 4),
                ("hospital", f"{tname}镇卫生院", (40.0, 20.0), 4),
                ("market", f"{tname}农贸市场", (40.0, 30.0), 2),
            ):
                self._rural_facility(seat, kind, name, dims, floors, tree, R_in)
        for v in range(n_v):
            vc = int(vil_centre[v])
            if vc < 0 or vc in town_seat or rng.random() > 0.3:
                continue
            self._rural_facility(
                vc, "school", self.vil_names[v] + "小学", (40.0, 14.0), 3, tree, R_in
            )

    def _rural_facility(
        self,
        hamlet: int,
        kind: str,
        name: str,
        dims: tuple[float, float],
        floors: int,
        tree: shapely.STRtree,
        R_in: Geom,
    ) -> None:
        rng = self.rng
        c = self.h_xy[hamlet]
        r_h = 22.0 * math.sqrt(2.6 * self.h_hh[hamlet] / math.pi) + 20.0
        theta = rng.uniform(-0.3, 0.3)
        for attempt in range(40):
            ang = rng.uniform(0, 2 * math.pi)
            d = r_h + 25.0 + 12.0 * attempt
            p = c + d * np.array([math.cos(ang), math.sin(ang)])
            poly = _rects(
                p[:1], p[1:], np.array([dims[0]]), np.array([dims[1]]), np.array([theta])
            )[0]
            if not shapely.contains(R_in, poly) or len(tree.query(poly, predicate="intersects")):
                continue
            if any(shapely.intersects(poly, shapely.buffer(g, 10.0)) for g in self.rural_fac_geoms):
                continue
            self.rural_fac_geoms.append(poly)
            self._add_buildings(
                np.array([poly], dtype=object),
                np.zeros(1, dtype=np.int64),
                np.zeros(1, dtype=np.int64),
                np.array([floors]),
                np.array([PUB]),
            )
            self.facilities.append((shapely.centroid(poly), kind, name))
            return

    # -- stage 7: rural houses ------------------------------------------

    def rural_houses(self) -> None:
        rng = self.rng
        h_xy, h_hh = self.h_xy, self.h_hh
        nh = len(h_xy)
        centre = np.zeros(nh, dtype=bool)
        centre[self.vil_centre[self.vil_centre >= 0]] = True
        seat = np.zeros(nh, dtype=bool)
        seat[self.town_seat[self.town_seat >= 0]] = True
        multi = np.where(seat, 0.45, np.where(centre, 0.15, 0.0))
        n_houses = np.maximum(1, np.ceil(h_hh / (1 + 2 * multi))).astype(np.int64)
        pitch = rng.uniform(19.0, 25.0, nh)
        theta = rng.uniform(-0.35, 0.35, nh)
        radius = np.sqrt(2.6 * n_houses / math.pi) + 1.5  # in pitches
        # Lattice offsets sorted by distance from the hamlet centre.
        kmax = math.ceil(radius.max()) + 1
        ga, gb = np.meshgrid(np.arange(-kmax, kmax + 1), np.arange(-kmax, kmax + 1))
        a, b = ga.ravel().astype(float), gb.ravel().astype(float)
        dist = np.hypot(a, b)
        o = np.argsort(dist + rng.uniform(0, 0.01, len(dist)), kind="stable")
        a, b, dist = a[o], b[o], dist[o]
        cnt = np.searchsorted(dist, radius, side="right")
        h_idx = np.repeat(np.arange(nh), cnt)
        starts = np.cumsum(cnt) - cnt
        k = np.arange(int(cnt.sum())) - np.repeat(starts, cnt)
        ca, cb, cd = a[k], b[k], dist[k]
        n = len(k)
        p_ = pitch[h_idx]
        jit = rng.uniform(-1.0, 1.0, (n, 2))
        lu, lv = ca * p_ + jit[:, 0], cb * p_ + jit[:, 1]
        th = theta[h_idx]
        cx = h_xy[h_idx, 0] + lu * np.cos(th) - lv * np.sin(th)
        cy = h_xy[h_idx, 1] + lu * np.sin(th) + lv * np.cos(th)
        w = rng.uniform(8.5, np.minimum(14.0, p_ - 6.0))
        d = rng.uniform(7.5, np.minimum(12.0, p_ - 7.0))
        # Irregular hamlet outlines: a per-hamlet harmonic distortion of distance.
        ph1, ph2 = rng.uniform(0, 6.3, nh), rng.uniform(0, 6.3, nh)
        am1, am2 = rng.uniform(0, 0.4, nh), rng.uniform(0, 0.25, nh)
        ang = np.arctan2(cb, ca)
        prio = cd * (
            1 + am1[h_idx] * np.cos(ang - ph1[h_idx]) + am2[h_idx] * np.cos(2 * ang - ph2[h_idx])
        )
        prio += rng.uniform(0, 1.2, n)
        # Inside the rural area, off the roads, water and railway.
        R_in = shapely.buffer(self.R, -32.0)
        shapely.prepare(R_in)
        ok = shapely.contains_xy(R_in, cx, cy)
        idx = np.flatnonzero(ok)
        houses = _rects(
            cx[idx], cy[idx], w[idx], d[idx], th[idx] + rng.uniform(-0.07, 0.07, len(idx))
        )
        obst = list(self.obstacles) + [shapely.buffer(g, 8.0) for g in self.rural_fac_geoms]
        tree = shapely.STRtree(np.array(obst, dtype=object))
        hit = np.unique(tree.query(houses, predicate="intersects")[0])
        good = np.ones(len(idx), dtype=bool)
        good[hit] = False
        idx, houses = idx[good], houses[good]
        # The first n_houses of each hamlet by priority.
        hsel = h_idx[idx]
        o = np.lexsort((prio[idx], hsel))
        idx, houses, hsel = idx[o], houses[o], hsel[o]
        first = np.searchsorted(hsel, np.arange(nh))
        rank = np.arange(len(hsel)) - first[hsel]
        keep = rank < n_houses[hsel]
        idx, houses, hsel = idx[keep], houses[keep], hsel[keep]
        # Neighbouring hamlets may overlap: drop the later house of each overlapping pair.
        tree2 = shapely.STRtree(houses)
        a_, b_ = tree2.query(houses, predicate="intersects")
        drop = np.unique(b_[a_ < b_])
        keep = np.ones(len(houses), dtype=bool)
        keep[drop] = False
        idx, houses, hsel = idx[keep], houses[keep], hsel[keep]
        # Households: 1 per house, the rest to houses of the same hamlet / village / anywhere.
        hh = np.ones(len(houses), dtype=np.int64)
        key = rng.random(len(houses)) - 2 * multi[hsel]
        deficit = h_hh - np.bincount(hsel, minlength=nh)
        deficit = np.maximum(deficit, 0)
        hh, deficit = _distribute(hh, hsel, deficit, key, 4)
        vil = self.h_vil[hsel]
        vdef = np.bincount(self.h_vil, weights=deficit, minlength=len(self.vil_geoms)).astype(
            np.int64
        )
        hh, vdef = _distribute(hh, vil, vdef, key, 4)
        left = int(vdef.sum())
        if left > 0:
            hh, _ = _distribute(
                hh, np.zeros(len(hh), dtype=np.int64), np.array([left]), key, 10_000
            )
        floors = np.where(hh >= 2, 3, rng.choice([1, 2, 3], size=len(hh), p=[0.25, 0.5, 0.25]))
        pop = np.round(hh * rng.uniform(2.8, 4.2, len(hh))).astype(np.int64)
        self._add_buildings(houses, hh, pop, floors.astype(np.int64), np.full(len(hh), RES))

    # -- stage 8: dedicated areas ----------------------------------------

    def dedicated(self) -> None:
        rng = self.rng
        sb = self.sel_blocks
        for k, cell in enumerate(self.industrial_cells):
            ind = sb[self.block_cell[sb] == cell]
            poly = shapely.union_all(self._quads(ind), grid_size=GRID)
            name = f"{self.short}工业园" if k == 0 else f"{self.bank.stem()}工业园"
            self.dedicated_rows.append((poly, name, "industrial"))
        if self.campus_cell >= 0:
            cam = sb[self.block_cell[sb] == self.campus_cell]
            name = str(rng.choice(nm.CAMPUS))
            poly = shapely.union_all(self._quads(cam), grid_size=GRID)
            self.dedicated_rows.append((poly, name, "campus"))
            blds = shapely.centroid(poly)
            self.facilities.append((blds, "school", name))
        # Scenic area on the main ridge, inside one town.
        ridge = self.ridge_geoms[0]
        zone = shapely.buffer(ridge, min(600.0, 0.45 * self.mountain_width))
        inter = [shapely.intersection(zone, t) for t in self.town_geoms]
        ti = int(np.argmax([g.area for g in inter]))
        poly = _longest_poly(inter[ti])
        if not poly.is_empty:
            self.dedicated_rows.append((poly, str(rng.choice(nm.SCENIC)), "scenic"))

    # -- assembling the layers -------------------------------------------

    def assemble(self) -> dict[str, gpd.GeoDataFrame]:
        tr = Transformer.from_crs(WGS84, METRIC_CRS, always_xy=True)
        ox, oy = tr.transform(*self.center)
        # Centre the district on the target point (and its offset from it).
        c = self.district.centroid
        dx, dy = ox - c.x + self.offset[0], oy - c.y + self.offset[1]

        def frame(geoms: Iterable[Geom], cols: dict[str, Any]) -> gpd.GeoDataFrame:
            arr = np.array(list(geoms), dtype=object)
            if len(arr):
                arr = shapely.transform(arr, lambda xy: xy + np.array([dx, dy]))
            gdf = gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(arr, crs=METRIC_CRS))
            return gdf.to_crs(WGS84)

        layers: dict[str, gpd.GeoDataFrame] = {}
        # Admin areas: communities and villages form one clean polygon coverage (shared
        # edges identical); towns and the district are unions of it.
        n_st = len(self.street_polys)
        low_geoms = [cg for cg, _, _, _ in self.urban_comm_polys] + list(self.vil_geoms)
        low_town = np.array(
            [st for _, st, _, _ in self.urban_comm_polys] + [n_st + int(t) for t in self.vil_town],
            dtype=np.int64,
        )
        low_names = [nm_ for _, _, nm_, _ in self.urban_comm_polys] + list(self.vil_names)
        clean = shapely.coverage_clean(  # type: ignore[attr-defined]
            np.array(low_geoms, dtype=object), gap_width=0.05, snapping_distance=0.02
        )
        town_names = list(self.street_names) + list(self.town_names)
        rows: list[tuple[Geom, str, str, str, str | None, str | None]] = [
            (
                shapely.coverage_union_all(clean),
                self.code,
                self.name,
                "district",
                None,
                None,
            )
        ]
        for ti, tname in enumerate(town_names):
            urban = ti < n_st
            tcode = (
                f"{self.code}{ti + 1:03d}" if urban else f"{self.code}{100 + ti - n_st:03d}"
            )
            idx = np.flatnonzero(low_town == ti).tolist()
            rows.append(
                (shapely.coverage_union_all(clean[idx]), tcode, tname, "town", self.code, None)
            )
            if not urban:
                cen = shapely.centroid(clean[idx])
                idx = [
                    idx[k]
                    for k in np.lexsort((shapely.get_x(cen), -np.round(shapely.get_y(cen) / 800.0)))
                ]
            for k, i in enumerate(idx):
                code = f"{tcode}{k + 1:03d}" if urban else f"{tcode}{200 + k:03d}"
                rows.append(
                    (clean[i], code, low_names[i], "village", tcode, "urban" if urban else "rural")
                )
        layers["admin_areas"] = frame(
            (r[0] for r in rows),
            {
                "code": [r[1] for r in rows],
                "name": [r[2] for r in rows],
                "level": [r[3] for r in rows],
                "parent_code": [r[4] for r in rows],
                "kind": [r[5] for r in rows],
            },
        )
        layers["roads"] = frame(
            self.road_geoms,
            {"class": [ROAD_CLASSES[c] for c in self.road_cls], "name": self.road_names},
        )
        layers["water"] = frame((g for g, _ in self.water), {"name": [n for _, n in self.water]})
        layers["ridges"] = frame((g for g, _ in self.ridges), {"name": [n for _, n in self.ridges]})
        layers["railways"] = frame((g for g, _ in self.rails), {"name": [n for _, n in self.rails]})
        cols = {k: np.concatenate(v) for k, v in self.bld_cols.items()}
        bld = np.concatenate(self.bld_geoms)
        village_of = np.full(len(bld), -1, dtype=np.int64)
        hits = shapely.STRtree(clean).query(shapely.centroid(bld), predicate="intersects")
        village_of[hits[0]] = hits[1]
        layers["buildings"] = frame(
            bld,
            {
                "households": cols["households"],
                "population": cols["population"],
                "floors": cols["floors"],
                "use": np.array(USES, dtype=object)[cols["use"]],
                **self._addresses(bld, village_of, low_names, cols["households"]),
            },
        )
        layers["facilities"] = frame(
            (g for g, _, _ in self.facilities),
            {
                "kind": [k for _, k, _ in self.facilities],
                "name": [n for _, _, n in self.facilities],
            },
        )
        # Each dedicated area lies in exactly one (cleaned) town.
        town_geoms = np.array([r[0] for r in rows if r[3] == "town"], dtype=object)
        dedicated: list[Geom] = []
        for g, _, _ in self.dedicated_rows:
            ti = int(np.argmax(shapely.area(shapely.intersection(town_geoms, g))))
            dedicated.append(_longest_poly(shapely.intersection(g, town_geoms[ti])))
        layers["dedicated_areas"] = frame(
            dedicated,
            {
                "name": [n for _, n, _ in self.dedicated_rows],
                "kind": [k for _, _, k in self.dedicated_rows],
            },
        )
        return layers


def _longest_poly(geom: Geom) -> Geom:
    parts = _polys_of(geom, 0.0)
    if not parts:
        return shapely.Polygon()
    return max(parts, key=lambda p: p.area)


def _distribute(values: IArr, group: IArr, deficit: IArr, key: FArr, cap: int) -> tuple[IArr, IArr]:
    """Add +1 to items of each group (lowest key first, up to ``cap``) until its deficit is met."""
    values = values.copy()
    deficit = deficit.astype(np.int64).copy()
    ngroups = len(deficit)
    for _ in range(cap):
        if deficit.sum() <= 0:
            break
        elig = np.flatnonzero((values < cap) & (deficit[group] > 0))
        if len(elig) == 0:
            break
        o = elig[np.lexsort((key[elig], group[elig]))]
        g = group[o]
        first = np.searchsorted(g, np.arange(ngroups))
        rank = np.arange(len(o)) - first[g]
        give = o[rank < deficit[g]]
        values[give] += 1
        deficit -= np.bincount(group[give], minlength=ngroups)
    return values, deficit


#: What the demo's events say, by category (Chinese, as a grid worker would write it).
EVENT_TEXTS = {
    "safety_hazard": ["楼道堆放杂物", "电动车违规充电", "消防通道被占用"],
    "dispute": ["邻里噪音纠纷", "停车位纠纷", "物业费纠纷"],
    "sanitation": ["垃圾未及时清运", "下水道堵塞", "绿化带垃圾堆积"],
    "municipal": ["路灯不亮", "井盖缺失", "人行道破损"],
    "livelihood": ["独居老人需要探访", "低保申请咨询", "自来水停水"],
    "other": ["流浪犬出没", "小广告乱贴", "共享单车乱停"],
}


def demo_events(grids: gpd.GeoDataFrame, n: int, seed: int, hours: float = 72.0
                ) -> dict[str, Any]:
    """``n`` events of the last ``hours`` hours at random points inside the given (WGS84)
    grids, more where more households live: columns lon, lat, category, source,
    description, reporter and age_h (hours before now), for the demo's command centre."""
    rng = np.random.default_rng(seed)
    weights = np.asarray(grids["households"], dtype=float) + 50.0
    pick = rng.choice(len(grids), size=n, p=weights / weights.sum())
    lon = np.empty(n)
    lat = np.empty(n)
    geoms = grids.geometry.to_numpy()
    for i, g in enumerate(pick):
        poly = geoms[g]
        x0, y0, x1, y1 = poly.bounds
        for _ in range(100):   # rejection sampling; the grid's inner point if unlucky
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if poly.contains(shapely.Point(x, y)):
                break
        else:
            x, y = poly.representative_point().coords[0]
        lon[i], lat[i] = x, y
    categories = rng.choice(list(EVENT_TEXTS), size=n, p=[0.2, 0.1, 0.3, 0.2, 0.1, 0.1])
    sources = rng.choice(["patrol", "citizen", "hotline", "sensor"], size=n,
                         p=[0.5, 0.2, 0.25, 0.05])
    texts = [EVENT_TEXTS[c][int(rng.integers(3))] for c in categories]
    reporters = [f"网格员{int(rng.integers(1, 99)):02d}" for _ in range(n)]
    return {"lon": lon, "lat": lat, "category": categories.astype(object),
            "source": sources.astype(object), "description": np.array(texts, dtype=object),
            "reporter": np.array(reporters, dtype=object),
            "age_h": np.sort(rng.uniform(0, hours, n))[::-1]}
