"""Stage 3 of the demo district: its outline, rivers, reservoir, ridges and railway."""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.affinity

from data import names as nm
from data.demo.common import MIN_RURAL_AREA, RURAL_DENSITY, Geom
from data.demo.geometry import _blob, _lines_of, _longest_part, _longest_poly, _polys_of, _wiggle
from data.demo.urban_lattice import UrbanLattice


class NaturalFeatures(UrbanLattice):
    """Stage 3: the district outline around the city, rivers, ridges, railway."""

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
