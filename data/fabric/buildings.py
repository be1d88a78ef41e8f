"""The fabric's buildings: each street block's slab rows, shops, tower compounds or school
behind a setback from its streets, and the households fitted to the total asked for."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import shapely

from data.demo.common import fit_total
from data.fabric.common import FLOOR_M, RIVER_SETBACK, Building, FArr, Geom
from data.fabric.streets import Streets


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


class Buildings(Streets):
    """The generator's second stage: buildings in the street blocks, households fitted."""

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
        """The block's building direction and the block rotated into it (rows along x),
        prepared."""
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
        frame = _rotate(poly, -theta, origin)
        shapely.prepare(frame)
        return theta, origin, frame

    def _frames(self, poly: Geom, min_area: float, aligned: bool
                ) -> Iterator[tuple[float, tuple[float, float], Geom]]:
        """:meth:`_frame` of each part of ``poly`` of at least ``min_area`` m², one by one
        (the random draws of a part's buildings come before the next part's frame)."""
        for part in shapely.get_parts(poly):
            if part.area >= min_area:
                yield self._frame(part, aligned)

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
        for theta, origin, frame in self._frames(poly, 600.0, aligned=shops):
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
        for theta, origin, frame in self._frames(poly, 900.0, aligned=False):
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
            self.buildings_.append(Building(g, use, floors, hh, kind, c))

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
