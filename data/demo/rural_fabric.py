"""Stages 6-8 of the demo district: rural roads, facilities, houses and dedicated areas."""

from __future__ import annotations

import math

import numpy as np
import shapely

from data import names as nm
from data.demo.common import (
    GRID,
    PUB,
    RES,
    RESIDENTIAL,
    RURAL_SETBACK,
    SECONDARY,
    SERVICE,
    TERTIARY,
    FArr,
    GArr,
    Geom,
    IArr,
)
from data.demo.geometry import _lines_of, _longest_poly, _wiggle
from data.demo.rural_admin import RuralAdmin


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


class RuralFabric(RuralAdmin):
    """Stages 6-8: country roads and facilities, rural houses, dedicated areas."""

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
