"""Stages 1-2 of the demo district: the urban street lattice, its blocks and its streets (街道)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely

from data.demo.base import Start
from data.demo.common import (
    CAMPUS,
    COMMERCIAL,
    HH_PER_STREET,
    HOSPITAL,
    INDUSTRIAL,
    MARKET,
    PARK,
    PRIMARY,
    PUBLIC,
    RESIDENTIAL,
    SCHOOL,
    SECONDARY,
    SERVICE,
    SLAB,
    TERTIARY,
    TOWER,
    UVILLAGE,
    FArr,
    GArr,
    IArr,
)
from data.demo.geometry import _kmeans


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


class UrbanLattice(Start):
    """Stages 1-2: the warped street lattice, its blocks, and streets (街道) of them."""

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
