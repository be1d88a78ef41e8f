"""The fabric's streets: arterials on a warped lattice, communities and towns, the river,
and the minor streets of each community (full-length one way, staggered the other way)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import shapely

from data import names as nm
from data.fabric.common import MINOR, MINOR_P, WIDTHS, Building, Density, FArr, Geom, Street


class Streets:
    """The generator's first stage: its state, the arterials and the minor streets."""

    def __init__(self, rng: np.random.Generator, spec: Density, households: int,
                 withhold: float, river: bool, scale: float = 1.0) -> None:
        self.rng, self.spec, self.target, self.scale = rng, spec, households, scale
        self.withhold_share, self.with_river = withhold, river
        self.bank = nm.NameBank(rng)
        self.road_bank = nm.NameBank(rng)
        self.streets: list[Street] = []
        self.buildings_: list[Building] = []
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
        self.streets.append(Street(geom, cls, width, name, minor, community))

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
