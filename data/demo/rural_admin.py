"""Stage 5 of the demo district: rural towns (镇) and villages (村) with their hamlets."""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.ops

from data.demo.common import GRID, HH_PER_VILLAGE, VILLAGES_PER_TOWN, FArr, GArr, Geom, IArr
from data.demo.geometry import _kmeans, _polys_of
from data.demo.urban_buildings import UrbanBuildings


def _extent(geom: Geom) -> float:
    """Largest distance between two vertices of a geometry."""
    hull = shapely.convex_hull(geom)
    xy = shapely.get_coordinates(hull)
    if len(xy) < 2:
        return 0.0
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    return float(d.max())


class RuralAdmin(UrbanBuildings):
    """Stage 5: rural households in hamlets, grouped into villages and towns."""

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
