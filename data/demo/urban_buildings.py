"""Stage 4 of the demo district: urban buildings, facilities, communities (社区) and roads."""

from __future__ import annotations

import math

import numpy as np
import shapely

from data import names as nm
from data.demo.common import (
    _FLOOR_BOUNDS,
    _HH_BOUNDS,
    COMMERCIAL,
    FOOTWAY,
    HOSPITAL,
    MARKET,
    MEGA,
    MEGA_PER_100K,
    PARK,
    PRIMARY,
    PUBLIC,
    RESIDENTIAL,
    SCHOOL,
    SECONDARY,
    SERVICE,
    SETBACK,
    SLAB,
    TERTIARY,
    TOWER,
    UVILLAGE,
    FArr,
    GArr,
    Geom,
    IArr,
)
from data.demo.layouts import _layout_block
from data.demo.natural import NaturalFeatures


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


def _bilinear(c00: FArr, c10: FArr, c11: FArr, c01: FArr, s: FArr, t: FArr) -> FArr:
    a = ((1 - s) * (1 - t))[..., None]
    b = (s * (1 - t))[..., None]
    c = (s * t)[..., None]
    d = ((1 - s) * t)[..., None]
    out: FArr = a * c00 + b * c10 + c * c11 + d * c01
    return out


class UrbanBuildings(NaturalFeatures):
    """Stage 4: the urban blocks laid out, communities drawn, urban roads named."""

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
