"""Street-first synthetic city fabrics with their ground-truth streets, for the lines benchmark.

:func:`generate` builds a small district the way such a city is built, streets first,
deterministic by seed, in the territory layer contract (docs/data-format.md):

* **communities** (社区, level ``village``, 12-digit codes) of about 2,000–8,000
  households on a warped lattice of **arterials** (primary and secondary roads, always
  in the roads layer), grouped into one to three **towns** (街道) of one district;
* inside each community, **street blocks** bounded by **minor streets** (tertiary,
  residential and service, 10–25 m between building lines): full-length streets one way,
  staggered segments the other way (T-junctions, not a lattice), some slanted, now and
  then a curved one; these are the ground-truth streets;
* inside each street block, buildings behind a setback from the street: rows of low or
  mid-rise residential slabs (orientation per block, rows spaced by the sunlight rule,
  1–1.5× the building height; 2 flats per floor per unit, so a 6-storey slab of 3 units
  holds 36 households), tower compounds (point towers of 100–300 households), shops
  along the street (no households), one school per community, blocks laid out at a
  slant now and then;
* optionally a **river** crossing the district (and so some communities).

``withhold`` is the share of the minor streets (by count) left out of the roads layer:
they are returned apart as :attr:`Fabric.withheld`, the streets that are on the ground
but not in the data. ``points=True`` gives the buildings as address points (one per
building, with its households) instead of footprints; the footprints are always kept in
:attr:`Fabric.footprints`. The households of the buildings sum exactly to
``households``.

Everything is built in EPSG:4547 (CGCS2000 3° Gauss–Krüger, central meridian 114°E, the
zone ``gis`` picks for this place) and returned in WGS84.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import shapely
from pyproj import Transformer

from data import names as nm
from data.demo.common import fit_total

__all__ = ["DENSITIES", "LAYERS", "Fabric", "generate"]

LAYERS = ("admin_areas", "roads", "water", "buildings", "facilities")
METRIC_CRS = "EPSG:4547"
WGS84 = "EPSG:4326"
CENTER_LONLAT = (113.36, 23.13)
DISTRICT_CODE = "440188"
FArr = npt.NDArray[Any]
Geom = Any

#: Distance between the building lines on both sides of a street (m), by class.
WIDTHS = {"primary": (50.0, 60.0), "secondary": (36.0, 44.0), "tertiary": (20.0, 25.0),
          "residential": (14.0, 20.0), "service": (10.0, 14.0)}
MINOR = ("tertiary", "residential", "service")
MINOR_P = (0.25, 0.5, 0.25)
#: Buildings keep this far (m) from the river bank.
RIVER_SETBACK = 15.0
FLOOR_M = 3.0


@dataclass(frozen=True)
class Density:
    """How one kind of fabric is built."""

    slab_floors: tuple[int, int]
    tower_floors: tuple[int, int]
    #: Shares of street blocks that are slab rows, shops + slabs, tower compounds.
    block_mix: tuple[float, float, float]
    #: Expected households per km² of community land (sizes the lattice) and per community.
    hh_per_km2: float
    community_hh: int
    #: Distance between minor streets (m), both ways.
    block_m: tuple[float, float]


DENSITIES: dict[str, Density] = {
    "low": Density((4, 6), (18, 24), (0.80, 0.17, 0.03), 9_000.0, 3_000, (110.0, 170.0)),
    "mid": Density((6, 11), (18, 30), (0.62, 0.20, 0.18), 12_500.0, 4_500, (120.0, 190.0)),
    "high": Density((11, 18), (24, 33), (0.45, 0.15, 0.40), 15_000.0, 6_000, (140.0, 220.0)),
}


@dataclass
class Fabric:
    """A generated fabric: the territory's layers, its withheld streets and its footprints
    (all in WGS84), and what was asked and built."""

    layers: dict[str, gpd.GeoDataFrame]
    withheld: gpd.GeoDataFrame
    footprints: gpd.GeoDataFrame
    seed: int
    households: int
    density: str
    withhold: float
    points: bool
    river: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        kind = "points" if self.points else "footprints"
        river = "-river" if self.river else ""
        return f"{self.density}-{self.households // 1000}k-s{self.seed}-{kind}{river}"

    def write(self, path: Path | str) -> Path:
        """Write the territory's layers into one GeoPackage (replacing ``path``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        for name, gdf in self.layers.items():
            pyogrio.write_dataframe(gdf, path, layer=name, driver="GPKG")
        return path


def generate(seed: int = 1, *, households: int = 20_000, density: str = "mid",
             withhold: float = 2 / 3, points: bool = False, river: bool = False) -> Fabric:
    """A fabric of exactly ``households`` households; see the module docstring."""
    if density not in DENSITIES:
        raise ValueError(f"density must be one of {', '.join(DENSITIES)}, got {density!r}")
    if not 0.0 <= withhold <= 1.0:
        raise ValueError(f"withhold is a share in [0, 1], got {withhold}")
    if households < 1_000:
        raise ValueError("households must be at least 1,000")
    # A layout that cannot hold the households (a tiny fabric of a few towers) is laid
    # out again on a larger lattice, from a seed derived from the first.
    for attempt in range(4):
        rng = np.random.default_rng(seed if attempt == 0 else [seed, attempt])
        gen = _Gen(rng, DENSITIES[density], households, withhold, river,
                   scale=1.25 ** attempt)
        gen.lattice()
        gen.minor_streets()
        gen.buildings()
        try:
            gen.fit_households()
            break
        except ValueError:
            if attempt == 3:
                raise
    layers, withheld, footprints = gen.assemble(points)
    info = gen.info()
    return Fabric(layers=layers, withheld=withheld, footprints=footprints, seed=seed,
                  households=households, density=density, withhold=withhold, points=points,
                  river=river, info=info)


# ---------------------------------------------------------------------------


def _rotate(geoms: Any, theta: float, origin: tuple[float, float]) -> Any:
    """Geometries rotated by ``theta`` (radians, counter-clockwise) about ``origin``."""
    c, s = math.cos(theta), math.sin(theta)
    ox, oy = origin

    def fn(xy: FArr) -> FArr:
        x, y = xy[:, 0] - ox, xy[:, 1] - oy
        out: FArr = np.column_stack([ox + c * x - s * y, oy + s * x + c * y])
        return out

    return shapely.transform(geoms, fn)


def _edge_angle(poly: Geom) -> float:
    """Direction (radians) of the longest side of a polygon's minimum rotated rectangle."""
    rect = shapely.oriented_envelope(poly)
    xy = shapely.get_coordinates(rect)
    if len(xy) < 4:
        return 0.0
    a, b = xy[1] - xy[0], xy[2] - xy[1]
    d = a if math.hypot(*a) >= math.hypot(*b) else b
    return math.atan2(d[1], d[0])


@dataclass
class _Street:
    geom: Geom
    cls: str
    width: float
    name: str
    minor: bool
    community: int = -1


@dataclass
class _Building:
    geom: Geom
    use: str
    floors: int
    households: int
    kind: str  # slab, tower, shop, school
    community: int


class _Gen:
    def __init__(self, rng: np.random.Generator, spec: Density, households: int,
                 withhold: float, river: bool, scale: float = 1.0) -> None:
        self.rng, self.spec, self.target, self.scale = rng, spec, households, scale
        self.withhold_share, self.with_river = withhold, river
        self.bank = nm.NameBank(rng)
        self.road_bank = nm.NameBank(rng)
        self.streets: list[_Street] = []
        self.buildings_: list[_Building] = []
        self.schools: list[tuple[Geom, str]] = []
        self.communities: list[Geom] = []
        self.community_town: list[int] = []
        self.n_blocks = 0
        self.river_geom: Geom = None
        self.river_name = ""

    # -- arterials, communities, towns -----------------------------------------

    def lattice(self) -> None:
        rng, spec = self.rng, self.spec
        n = max(1, round(self.target / spec.community_hh))
        nx = max(1, math.ceil(math.sqrt(n)))
        ny = max(1, round(n / nx))
        # Below ~320 m the arterials' setbacks leave no room for a block of buildings.
        side = self.scale * max(
            320.0, math.sqrt(self.target / (nx * ny) / spec.hh_per_km2 * 1e6))
        w = rng.uniform(0.8, 1.2, nx)
        h = rng.uniform(0.8, 1.2, ny)
        xs = np.concatenate([[0.0], np.cumsum(w / w.mean() * side)])
        ys = np.concatenate([[0.0], np.cumsum(h / h.mean() * side)])
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        jitter = rng.uniform(-0.06, 0.06, (nx + 1, ny + 1, 2)) * side
        self.nodes = np.stack([gx, gy], axis=-1) + jitter
        self.nx, self.ny = nx, ny
        n_towns = 1 if nx * ny < 6 else (2 if nx * ny < 12 else 3)
        town_of_col = np.minimum((np.arange(nx) * n_towns) // nx, n_towns - 1)
        for i in range(nx):
            for j in range(ny):
                p = self.nodes
                quad = shapely.Polygon([p[i, j], p[i + 1, j], p[i + 1, j + 1], p[i, j + 1]])
                self.communities.append(quad)
                self.community_town.append(int(town_of_col[i]))
        town_edges = {i for i in range(1, nx) if town_of_col[i] != town_of_col[i - 1]}
        names = list(nm.ARTERIALS)
        rng.shuffle(names)
        k = 0
        for i in range(nx + 1):  # lines of constant i ("north–south")
            cls = "primary" if i in (0, nx) or i in town_edges or i % 2 == 0 else "secondary"
            name = names[k] if k < len(names) else self.road_bank.stem() + "大道"
            k += 1
            self._street(shapely.LineString(self.nodes[i, :]), cls, name, minor=False)
        for j in range(ny + 1):
            cls = "primary" if j in (0, ny) or j % 2 == 0 else "secondary"
            name = names[k] if k < len(names) else self.road_bank.stem() + "大道"
            k += 1
            self._street(shapely.LineString(self.nodes[:, j]), cls, name, minor=False)
        self.district = shapely.union_all(self.communities, grid_size=0.01)
        if self.with_river:
            x0, y0, x1, y1 = self.district.bounds
            yc = y0 + (y1 - y0) * rng.uniform(0.3, 0.7)
            t = np.linspace(0.0, 1.0, 80)
            amp = rng.uniform(40.0, 90.0)
            ph = rng.uniform(0, 2 * math.pi)
            x = x0 - 50 + t * (x1 - x0 + 100)
            y = yc + amp * np.sin(2 * math.pi * rng.uniform(1.0, 2.0) * t + ph)
            centre = shapely.LineString(np.column_stack([x, y]))
            width = rng.uniform(30.0, 50.0)
            self.river_geom = shapely.intersection(shapely.buffer(centre, width / 2),
                                                   self.district)
            self.river_name = self.bank.stem() + "涌"

    def _street(self, geom: Geom, cls: str, name: str, minor: bool, community: int = -1
                ) -> None:
        width = float(self.rng.uniform(*WIDTHS[cls]))
        self.streets.append(_Street(geom, cls, width, name, minor, community))

    # -- minor streets ------------------------------------------------------------

    def minor_streets(self) -> None:
        rng = self.rng
        for c, quad in enumerate(self.communities):
            xy = shapely.get_coordinates(quad)[:4]
            c00, c10, c11, c01 = xy[0], xy[1], xy[2], xy[3]

            def at(s: float, t: float, c00: FArr = c00, c10: FArr = c10, c11: FArr = c11,
                   c01: FArr = c01) -> FArr:
                out: FArr = ((1 - s) * (1 - t) * c00 + s * (1 - t) * c10 + s * t * c11
                             + (1 - s) * t * c01)
                return out

            width = float(np.linalg.norm(c10 - c00) + np.linalg.norm(c11 - c01)) / 2
            height = float(np.linalg.norm(c01 - c00) + np.linalg.norm(c11 - c10)) / 2
            # Full-length streets across the community (t = const, slightly slanted).
            k_h = max(1, round(height / rng.uniform(*self.spec.block_m)))
            cuts = np.sort((np.arange(1, k_h) + rng.uniform(-0.2, 0.2, k_h - 1)) / k_h)
            bands = [shapely.LineString([c00, c10])]
            curved = rng.random() < 0.4 and k_h > 1
            bend = int(rng.integers(k_h - 1)) if curved else -1
            for m, t in enumerate(cuts):
                t0, t1 = t + rng.uniform(-0.03, 0.03), t + rng.uniform(-0.03, 0.03)
                if m == bend:
                    s = np.linspace(0.0, 1.0, 40)
                    pts = np.array([at(si, t0 + (t1 - t0) * si) for si in s])
                    nrm = (c01 - c00) / max(height, 1.0)
                    pts += (rng.uniform(25.0, 45.0) * np.sin(np.pi * s))[:, None] * nrm
                    line = shapely.LineString(pts)
                else:
                    line = shapely.LineString([at(0.0, t0), at(1.0, t1)])
                bands.append(line)
                cls = str(rng.choice(MINOR, p=MINOR_P))
                self._street(line, cls, self._name(cls), minor=True, community=c)
            bands.append(shapely.LineString([c01, c11]))
            # Staggered segments between consecutive full-length streets (s = const).
            for lo, hi in itertools.pairwise(bands):
                k_v = max(1, round(width / rng.uniform(*self.spec.block_m)))
                pos = (np.arange(1, k_v) + rng.uniform(-0.25, 0.25, k_v - 1)) / k_v
                for s in pos:
                    if rng.random() < 0.12:  # a street that is not there: a larger block
                        continue
                    slant = rng.uniform(-0.05, 0.05) if rng.random() < 0.3 else 0.0
                    a, b = at(s - slant, -0.5), at(s + slant, 1.5)
                    probe = shapely.LineString([a, b])
                    pa, pb = shapely.intersection(probe, lo), shapely.intersection(probe, hi)
                    if pa.geom_type != "Point" or pb.geom_type != "Point":
                        continue
                    seg = shapely.LineString(np.vstack([shapely.get_coordinates(pa),
                                                        shapely.get_coordinates(pb)]))
                    cls = str(rng.choice(MINOR, p=MINOR_P))
                    self._street(seg, cls, self._name(cls), minor=True, community=c)

    def _name(self, cls: str) -> str:
        suffix = {"tertiary": "路", "residential": "街", "service": "巷"}[cls]
        return self.road_bank.stem() + suffix

    # -- blocks and buildings -----------------------------------------------------

    def buildings(self) -> None:
        rng = self.rng
        geoms = np.array([s.geom for s in self.streets], dtype=object)
        half = np.array([s.width / 2 for s in self.streets])
        corridors = shapely.buffer(geoms, half, cap_style="flat")
        corridor_all = shapely.union_all(corridors)
        # Flat caps leave the crossings' corners open: round ones at every street end.
        ends = shapely.buffer(shapely.boundary(geoms), half)
        keep_out = shapely.union_all([corridor_all, shapely.union_all(ends)])
        if self.river_geom is not None:
            keep_out = shapely.union(keep_out, shapely.buffer(self.river_geom, RIVER_SETBACK))
        self.keep_out = keep_out
        edges = shapely.union_all(np.concatenate(
            [geoms, shapely.get_parts(shapely.boundary(self.district))]), grid_size=0.01)
        faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
        faces = faces[shapely.area(faces) > 100.0]
        cidx = np.array([int(np.argmax(shapely.area(shapely.intersection(
            np.array(self.communities, dtype=object), f)))) for f in faces])
        self.n_blocks = len(faces)
        mix = np.array(self.spec.block_mix) / sum(self.spec.block_mix)
        school_done: set[int] = set()
        order = rng.permutation(len(faces))
        for b in order:
            face, c = faces[b], int(cidx[b])
            buildable = shapely.difference(face, keep_out)
            buildable = shapely.buffer(shapely.buffer(buildable, -1.0), 1.0)  # no needles
            if buildable.is_empty or buildable.area < 600.0:
                continue
            big = max(shapely.get_parts(buildable), key=lambda g: g.area)
            if c not in school_done and big.area > 9_000:
                school_done.add(c)
                self._school(big, c)
                continue
            kind = int(rng.choice(3, p=mix))
            if kind == 2:
                self._towers(buildable, c)
            else:
                self._slabs(buildable, c, shops=kind == 1)

    def _frame(self, poly: Geom, aligned: bool) -> tuple[float, tuple[float, float], Geom]:
        """The block's building direction and the block rotated into it (rows along x)."""
        rng = self.rng
        if aligned or rng.random() < 0.35:
            theta = _edge_angle(poly)
            theta = (theta + math.pi / 2) % math.pi - math.pi / 2
        else:
            theta = float(rng.normal(0.0, math.radians(6)))  # south-facing rows
        if rng.random() < 0.1:
            theta += float(rng.uniform(-0.5, 0.5))  # now and then a block at a slant
        c = shapely.centroid(poly)
        origin = (c.x, c.y)
        return theta, origin, _rotate(poly, -theta, origin)

    def _place_row(self, frame: Geom, v0: float, depth: float, lengths: Any, gap: Any
                   ) -> list[Geom]:
        """Rectangles of one row in the frame, left to right, each fully inside ``frame``."""
        x0, _, x1, _ = frame.bounds
        u = x0 + 0.5
        out = []
        length = float(lengths())
        while u + length <= x1:
            rect = shapely.box(u, v0, u + length, v0 + depth)
            if shapely.contains(frame, rect):
                out.append(rect)
                u += length + float(gap())
                length = float(lengths())
            else:
                u += 3.0
        return out

    def _slabs(self, poly: Geom, c: int, shops: bool) -> None:
        rng, spec = self.rng, self.spec
        for part in shapely.get_parts(poly):
            if part.area < 600.0:
                continue
            theta, origin, frame = self._frame(part, aligned=shops)
            shapely.prepare(frame)
            _, y0, _, y1 = frame.bounds
            v = y0 + 0.5
            placed: list[tuple[Geom, str, int, int, str]] = []
            if shops:
                depth = rng.uniform(12.0, 15.0)
                for r in self._place_row(frame, v, depth, lambda: rng.uniform(18.0, 36.0),
                                         lambda: rng.uniform(4.0, 8.0)):
                    placed.append((r, "commercial", int(rng.integers(1, 4)), 0, "shop"))
                v += depth + rng.uniform(12.0, 18.0)
            floors = int(rng.integers(spec.slab_floors[0], spec.slab_floors[1] + 1))
            while True:
                depth = rng.uniform(10.0, 13.0)
                if v + depth > y1:
                    break
                units: list[int] = []

                def length(units: list[int] = units) -> float:
                    units.append(int(rng.integers(2, 6)))
                    return units[-1] * rng.uniform(12.0, 14.0)

                row = self._place_row(frame, v, depth, length, lambda: rng.uniform(8.0, 14.0))
                for r, n_units in zip(row, units, strict=False):
                    placed.append((r, "residential", floors, floors * n_units * 2, "slab"))
                v += depth + max(12.0, rng.uniform(1.0, 1.5) * floors * FLOOR_M)
            self._add(placed, theta, origin, c)

    def _towers(self, poly: Geom, c: int) -> None:
        rng, spec = self.rng, self.spec
        for part in shapely.get_parts(poly):
            if part.area < 900.0:
                continue
            theta, origin, frame = self._frame(part, aligned=False)
            shapely.prepare(frame)
            x0, y0, x1, y1 = frame.bounds
            placed: list[tuple[Geom, str, int, int, str]] = []
            side = rng.uniform(22.0, 30.0)
            pitch_u = side + rng.uniform(25.0, 40.0)
            pitch_v = side + rng.uniform(30.0, 45.0)
            for v in np.arange(y0 + 0.5, y1 - side, pitch_v):
                for u in np.arange(x0 + 0.5 + rng.uniform(0, 8.0), x1 - side, pitch_u):
                    du, dv = rng.uniform(-3.0, 3.0, 2)
                    rect = shapely.box(u + du, v + dv, u + du + side,
                                       v + dv + side * rng.uniform(0.85, 1.1))
                    if not shapely.contains(frame, rect):
                        continue
                    floors = int(rng.integers(spec.tower_floors[0], spec.tower_floors[1] + 1))
                    hh = int(np.clip(floors * int(rng.integers(4, 9)), 100, 300))
                    placed.append((rect, "residential", floors, hh, "tower"))
            self._add(placed, theta, origin, c)

    def _school(self, poly: Geom, c: int) -> None:
        rng = self.rng
        theta, origin, frame = self._frame(poly, aligned=True)
        shapely.prepare(frame)
        _, y0, _, y1 = frame.bounds
        placed: list[tuple[Geom, str, int, int, str]] = []
        v = y0 + 0.5 + (y1 - y0) * 0.45  # the sports ground takes the lower half
        for _ in range(3):
            depth = rng.uniform(13.0, 16.0)
            if v + depth > y1:
                break
            for r in self._place_row(frame, v, depth, lambda: rng.uniform(45.0, 70.0),
                                     lambda: rng.uniform(10.0, 20.0)):
                placed.append((r, "public", int(rng.integers(4, 6)), 0, "school"))
            v += depth + rng.uniform(18.0, 25.0)
        if placed:
            self._add(placed, theta, origin, c)
            name = self.bank.stem() + "小学"
            self.schools.append((shapely.point_on_surface(poly), name))

    def _add(self, placed: list[tuple[Geom, str, int, int, str]], theta: float,
             origin: tuple[float, float], c: int) -> None:
        if not placed:
            return
        geoms = _rotate(np.array([p[0] for p in placed], dtype=object), theta, origin)
        for g, (_, use, floors, hh, kind) in zip(geoms, placed, strict=True):
            self.buildings_.append(_Building(g, use, floors, hh, kind, c))

    # -- households ---------------------------------------------------------------

    def fit_households(self) -> None:
        """Scale the residential buildings' households to sum exactly to the target,
        each within 0.8–1.25× its layout's count (towers within 100–300): some flats
        empty or merged, some units larger. Where the layout is further off, the
        floors are scaled first."""
        natural = sum(b.households for b in self.buildings_)
        if natural == 0:
            raise ValueError("the fabric has no dwellings: ask for more households")
        # Far more dwellings than asked (a small fabric on a lattice of at least 320 m):
        # leave some residential buildings out (lots not built), in a random order.
        res_idx = [i for i, b in enumerate(self.buildings_) if b.households > 0]
        drop: set[int] = set()
        total = natural
        for i in self.rng.permutation(res_idx) if total > 1.15 * self.target else []:
            if total <= 1.15 * self.target or len(drop) == len(res_idx) - 1:
                break
            drop.add(int(i))
            total -= self.buildings_[int(i)].households
        self.buildings_ = [b for i, b in enumerate(self.buildings_) if i not in drop]
        tower = np.array([b.kind == "tower" for b in self.buildings_])
        for attempt in range(6):
            hh = np.array([b.households for b in self.buildings_], dtype=np.int64)
            ratio = self.target / int(hh.sum())
            if attempt or not 0.85 <= ratio <= 1.18:
                for b in self.buildings_:
                    if b.households > 0:
                        f = max(2, round(b.floors * ratio))
                        b.households = max(1, round(b.households * f / b.floors))
                        if b.kind == "tower":
                            b.households = min(300, max(100, b.households))
                        b.floors = f
                hh = np.array([b.households for b in self.buildings_], dtype=np.int64)
            res = hh > 0
            lo = np.where(res, np.ceil(0.8 * hh), 0).astype(np.int64)
            hi = np.where(res, np.floor(1.25 * hh), 0).astype(np.int64)
            lo = np.where(tower, np.clip(lo, 100, 300), lo)
            hi = np.where(tower, np.clip(hi, 100, 300), hi)
            out = fit_total(self.rng, hh, lo, hi, self.target)
            if int(out.sum()) == self.target:
                for b, h in zip(self.buildings_, out, strict=True):
                    b.households = int(h)
                return
        raise ValueError(f"could not fit {self.target} households into the layout "
                         f"({natural} natural): try another seed or size")

    # -- layers -------------------------------------------------------------------

    def assemble(self, points: bool) -> tuple[dict[str, gpd.GeoDataFrame], gpd.GeoDataFrame,
                                             gpd.GeoDataFrame]:
        rng = self.rng
        tr = Transformer.from_crs(WGS84, METRIC_CRS, always_xy=True)
        ox, oy = tr.transform(*CENTER_LONLAT)
        cx, cy = shapely.centroid(self.district).coords[0]
        shift = np.array([ox - cx, oy - cy])

        def frame(geoms: list[Geom], cols: dict[str, Any]) -> gpd.GeoDataFrame:
            arr = np.array(geoms, dtype=object)
            if len(arr):
                arr = shapely.transform(arr, lambda xy: xy + shift)
            return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(arr, crs=METRIC_CRS)
                                    ).to_crs(WGS84)

        # Withhold an exact share of the minor streets (by count).
        minor = [i for i, s in enumerate(self.streets) if s.minor]
        n_out = round(self.withhold_share * len(minor))
        out_idx = set(np.asarray(minor)[rng.permutation(len(minor))[:n_out]].tolist())
        self.given_minor = [self.streets[i] for i in minor if i not in out_idx]
        self.withheld_minor = [self.streets[i] for i in sorted(out_idx)]
        roads = [s for i, s in enumerate(self.streets) if i not in out_idx]
        n_towns = max(self.community_town) + 1
        town_codes = [f"{DISTRICT_CODE}{t + 1:03d}" for t in range(n_towns)]
        town_names = [self.bank.stem() + "街道" for _ in range(n_towns)]
        rows: list[tuple[Geom, str, str, str, str | None, str | None]] = [
            (self.district, DISTRICT_CODE, self.bank.stem() + "区", "district", None, None)]
        for t in range(n_towns):
            members = [g for g, tt in zip(self.communities, self.community_town, strict=True)
                       if tt == t]
            rows.append((shapely.union_all(members, grid_size=0.01), town_codes[t],
                         town_names[t], "town", DISTRICT_CODE, None))
        serial = [0] * n_towns
        self.community_codes = []
        for g, t in zip(self.communities, self.community_town, strict=True):
            serial[t] += 1
            code = f"{town_codes[t]}{serial[t]:03d}"
            self.community_codes.append(code)
            rows.append((g, code, self.bank.stem() + "社区", "village", town_codes[t],
                         "urban"))
        layers: dict[str, gpd.GeoDataFrame] = {}
        layers["admin_areas"] = frame([r[0] for r in rows], {
            "code": [r[1] for r in rows], "name": [r[2] for r in rows],
            "level": [r[3] for r in rows], "parent_code": [r[4] for r in rows],
            "kind": [r[5] for r in rows]})
        layers["roads"] = frame([s.geom for s in roads], {
            "class": [s.cls for s in roads], "name": [s.name for s in roads]})
        if self.river_geom is not None and not self.river_geom.is_empty:
            parts = [p for p in shapely.get_parts(self.river_geom) if p.area > 100.0]
            layers["water"] = frame(parts, {"name": [self.river_name] * len(parts)})
        blds = self.buildings_
        hh = np.array([b.households for b in blds], dtype=np.int64)
        pop = np.round(hh * rng.uniform(2.5, 3.2, len(blds))).astype(np.int64)
        cols = {"households": hh, "population": pop,
                "floors": np.array([b.floors for b in blds], dtype=np.int64),
                "use": np.array([b.use for b in blds], dtype=object)}
        footprints = frame([b.geom for b in blds], {
            **cols, "kind": np.array([b.kind for b in blds], dtype=object),
            "community": np.array([self.community_codes[b.community] for b in blds],
                                  dtype=object)})
        if points:
            layers["buildings"] = frame([shapely.point_on_surface(b.geom) for b in blds],
                                        dict(cols))
        else:
            layers["buildings"] = frame([b.geom for b in blds], dict(cols))
        layers["facilities"] = frame([g for g, _ in self.schools], {
            "kind": ["school"] * len(self.schools), "name": [n for _, n in self.schools]})
        w = self.withheld_minor
        withheld = frame([s.geom for s in w], {
            "class": [s.cls for s in w], "name": [s.name for s in w],
            "width": np.round([s.width for s in w], 2),
            "community": [self.community_codes[s.community] for s in w]})
        return layers, withheld, footprints

    def info(self) -> dict[str, Any]:
        minor_len = sum(s.geom.length for s in self.streets if s.minor)
        out_len = sum(s.geom.length for s in self.withheld_minor)
        kinds: dict[str, int] = {}
        for b in self.buildings_:
            kinds[b.kind] = kinds.get(b.kind, 0) + 1
        comm_hh = np.bincount([b.community for b in self.buildings_],
                              weights=[b.households for b in self.buildings_],
                              minlength=len(self.communities))
        return {
            "communities": len(self.communities),
            "towns": max(self.community_town) + 1,
            "community_households": [int(h) for h in comm_hh],
            "area_km2": round(self.district.area / 1e6, 3),
            "street_blocks": self.n_blocks,
            "buildings": len(self.buildings_),
            "buildings_by_kind": dict(sorted(kinds.items())),
            "minor_streets": len(self.given_minor) + len(self.withheld_minor),
            "minor_streets_withheld": len(self.withheld_minor),
            "minor_street_km": round(minor_len / 1e3, 2),
            "minor_street_km_withheld": round(out_len / 1e3, 2),
            "arterial_km": round(sum(s.geom.length for s in self.streets
                                     if not s.minor) / 1e3, 2),
        }


