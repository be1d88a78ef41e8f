"""Block layouts: the buildings and inner lanes of one urban block, in the block's frame."""

from __future__ import annotations

import numpy as np

from data.demo.common import (
    _KIND_MEGA,
    _KIND_NONRES,
    _KIND_REGULAR,
    _KIND_UV,
    CAMPUS,
    COM,
    COMMERCIAL,
    FOOTWAY,
    HOSPITAL,
    IND,
    INDUSTRIAL,
    MARKET,
    MEGA,
    PARK,
    PUB,
    PUBLIC,
    RES,
    SCHOOL,
    SERVICE,
    SLAB,
    TOWER,
    UVILLAGE,
    FArr,
    IArr,
)

# Every layout is in a block's conservative metric frame u in [0, W], v in [0, H].


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
