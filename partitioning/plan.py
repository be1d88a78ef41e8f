"""A plan as a value: blocks assigned to grids, the grid table, the moved grids' metrics redone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.band import DEFAULT_BAND
from gis.errors import EditRefused, GridLocked, msg
from partitioning import boundaries, quality
from partitioning.blocks import PRECISION_M, STRONG_KINDS, adjacency, dissolve
from partitioning.flags import CROSSING_M, band_flag
from partitioning.regions import Graph

#: The stored columns of a grid row an edit may change (``gis.plans.GRID_FIELDS`` + locked).
ROW_FIELDS = ("code", "name", "village_code", "kind", "households", "households_estimated",
              "population", "area_m2", "compactness", "barrier_share", "radius_m",
              "boundary_text", "flags", "locked")

@dataclass
class Neighbourhood:
    """What an edit needs to know of a plan, around the grids it touches.

    ``blocks``: every block of the villages the edit concerns (``block_no``,
    ``village_code``, ``households``, ``population``, ``grid_code``). ``grids``: the
    rows (:data:`ROW_FIELDS`) of every grid of those villages and of the grids around
    them, two rings deep (so that the 四至 of a neighbour can be redone). ``barriers``:
    :func:`partitioning.blocks.barrier_lines` around them; ``villages``: admin polygons
    (``code``, ``name``). All frames in one CRS (WGS84 in the service: outlines are
    unions of the stored blocks, so shared edges stay shared); areas, lengths and
    contiguity are computed in ``metric_crs``. ``used_codes``: every grid code any plan
    of the territory ever had (new serials never reuse one).
    """

    blocks: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    barriers: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    metric_crs: Any
    band: tuple[int, int] = DEFAULT_BAND
    dedicated_start: int = 901
    used_codes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # A plan made before estimates were counted holds none.
        for name in ("blocks", "grids"):
            frame = getattr(self, name)
            if "households_estimated" not in frame:
                setattr(self, name, frame.assign(households_estimated=0))


@dataclass
class EditResult:
    """An edit's outcome: blocks that change grid, the touched grids' new rows, and what
    disappeared. ``grids`` (in the neighbourhood's CRS) has :data:`ROW_FIELDS`,
    ``flag_reason`` (a reshaped grid's new one; the others keep theirs), ``barrier_inside_m``
    (recomputed for reshaped grids; kept, or None when the neighbourhood did not carry it)
    and ``reshaped`` (its blocks, hence its outline, changed)."""

    op: str
    assignment: dict[int, str]
    previous: dict[int, str]
    grids: gpd.GeoDataFrame
    removed: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def touched(self) -> list[str]:
        return [str(c) for c in self.grids["code"]]


def refuse(zh: str, en: str) -> EditRefused:
    return EditRefused(msg(zh, en))


class Plan:
    """A plan around the grids an edit touches, as a value: the neighbourhood's grid table
    and a mutable block → grid assignment (``label``; ``before`` as it was), with what the
    edits ask of it (members, contiguity, the graph of some blocks, what moved). The
    metrics of the grids whose blocks moved are recomputed by :func:`finish`."""

    def __init__(self, hood: Neighbourhood) -> None:
        self.h = hood
        self.blocks = hood.blocks.reset_index(drop=True)
        self.label = self.blocks["grid_code"].astype(object).to_numpy().copy()
        self.before = self.label.copy()
        self.pos = {int(b): i for i, b in enumerate(self.blocks["block_no"])}
        rows = hood.grids.reset_index(drop=True)
        self.rows = rows if rows.geometry.name == "geometry" else rows.rename_geometry("geometry")
        self.row_of = {str(c): i for i, c in enumerate(self.rows["code"])}
        self._metric: np.ndarray | None = None
        self._adj: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def row(self, code: str) -> pd.Series:
        if code not in self.row_of:
            raise refuse(f"本方案没有网格 {code}", f"the plan has no grid {code}")
        return self.rows.iloc[self.row_of[code]]

    def unlocked(self, codes: Iterable[str]) -> None:
        locked = [c for c in codes if bool(self.row(c)["locked"])]
        if locked:
            raise GridLocked(msg(f"网格 {'、'.join(sorted(locked))} 已锁定，先解锁再修改",
                                 f"grid {', '.join(sorted(locked))} is locked: unlock it "
                                 "before editing"))

    def metric(self) -> np.ndarray:
        if self._metric is None:
            # Snapped back to the engine's 1 mm grid: a round trip through WGS84 moves a
            # vertex by far less, but enough for two blocks' shared edge to stop being
            # shared exactly (the adjacency would lose the pair).
            self._metric = shapely.set_precision(
                self.blocks.geometry.to_crs(self.h.metric_crs).to_numpy(), PRECISION_M)
        return self._metric

    def adjacency(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Block pairs (positions) of one village sharing a boundary: a, b, length, strength."""
        if self._adj is None:
            blocks_m = gpd.GeoDataFrame({"village_code": self.blocks["village_code"]},
                                        geometry=self.metric(), crs=self.h.metric_crs)
            barriers = self.h.barriers.to_crs(self.h.metric_crs) if len(self.h.barriers) \
                else self.h.barriers
            if "strength" not in barriers:
                barriers = barriers.assign(strength=np.zeros(len(barriers)))
            adj = adjacency(blocks_m, barriers)
            self._adj = (adj["a"].to_numpy(), adj["b"].to_numpy(), adj["length"].to_numpy(),
                         adj["strength"].to_numpy())
        return self._adj

    def members(self, code: str, label: np.ndarray | None = None) -> np.ndarray:
        return np.flatnonzero((self.label if label is None else label) == code)

    def graph(self, nodes: np.ndarray) -> Graph:
        a, b, length, strength = self.adjacency()
        local = np.full(len(self.blocks), -1)
        local[nodes] = np.arange(len(nodes))
        keep = (local[a] >= 0) & (local[b] >= 0)
        return Graph(households=self.blocks["households"].to_numpy()[nodes].astype(float),
                     area=shapely.area(self.metric()[nodes]), a=local[a[keep]],
                     b=local[b[keep]], length=length[keep], strength=strength[keep])

    def parts(self, nodes: np.ndarray) -> int:
        if len(nodes) == 0:
            return 0
        return len(self.graph(nodes).components(np.arange(len(nodes))))

    def check_contiguous(self, codes: Iterable[str], verb: str) -> None:
        """Refuse when a grid would be empty or in more pieces than before (one at most
        for a new grid): an edit never breaks a grid apart."""
        for code in codes:
            after = self.members(code)
            if len(after) == 0:
                raise refuse(f"{verb}会使网格 {code} 没有地块；要去掉它请用合并",
                             f"the {verb_en(verb)} would leave grid {code} without blocks; "
                             "merge it instead")
            before = self.members(code, self.before)
            n_after, n_before = self.parts(after), self.parts(before)
            if n_after > max(1, n_before):
                raise refuse(f"{verb}会使网格 {code} 不再连通（分成 {n_after} 块）",
                             f"the {verb_en(verb)} would break grid {code} into {n_after} "
                             "disconnected parts")

    def changed(self) -> dict[int, str]:
        moved = np.flatnonzero(self.label != self.before)
        nos = self.blocks["block_no"].to_numpy()
        return {int(nos[i]): str(self.label[i]) for i in moved}

    def previous(self) -> dict[int, str]:
        moved = np.flatnonzero(self.label != self.before)
        nos = self.blocks["block_no"].to_numpy()
        return {int(nos[i]): str(self.before[i]) for i in moved}


_VERBS = {"移动": "move", "合并": "merge", "拆分": "split", "重画边界": "reshape"}


def verb_en(verb: str) -> str:
    return _VERBS.get(verb, verb)


def band_flags(kind: str, households: int, n_parts: int, band: tuple[int, int]
               ) -> tuple[list[str], str]:
    """Flags and reason of a grid an edit reshaped: out of the band, in several parts."""
    lo, hi = band
    flags: list[str] = []
    reasons: list[str] = []
    flag = band_flag(kind, households, band)
    if flag == "below_min":
        flags.append(flag)
        reasons.append(f"户数 {households}，低于下限 {lo} ({households} households, under "
                       f"the minimum {lo})")
    elif flag == "above_max":
        flags.append(flag)
        reasons.append(f"户数 {households}，高于上限 {hi} ({households} households, over "
                       f"the maximum {hi})")
    if n_parts > 1:
        flags.append("noncontiguous")
        reasons.append(f"分成 {n_parts} 块 (in {n_parts} parts)")
    return flags, "; ".join(reasons)


def finish(work: Plan, op: str, reshaped: dict[str, dict[str, Any]],
            updated: dict[str, dict[str, Any]], removed: Sequence[str], summary: str
            ) -> EditResult:
    """The rows of the grids whose blocks changed (``reshaped``: code → fixed fields such as
    name, kind, village_code, locked), of those with other fields changed (``updated``),
    and the 四至 of their unlocked neighbours where it changes."""
    h = work.h
    rows = work.rows.set_index(work.rows["code"].astype(str), drop=False)
    rows = rows.drop(index=[c for c in removed if c in rows.index])
    hh = work.blocks["households"].to_numpy()
    pop = work.blocks["population"].to_numpy()
    est = work.blocks["households_estimated"].fillna(0).to_numpy() \
        if "households_estimated" in work.blocks else np.zeros(len(hh), dtype=np.int64)
    geoms = work.blocks.geometry.to_numpy()
    new_rows: dict[str, dict[str, Any]] = {}
    for code, fixed in reshaped.items():
        idx = work.members(code)
        base = dict(rows.loc[code]) if code in rows.index else {}
        base.update(fixed)
        outline = shapely.make_valid(dissolve(geoms[idx]))
        base.update(code=code, households=int(hh[idx].sum()), population=int(pop[idx].sum()),
                    households_estimated=int(est[idx].sum()), geometry=outline, reshaped=True)
        new_rows[code] = base
    for code, fields in updated.items():
        if code in new_rows:
            new_rows[code].update(fields)
            continue
        base = dict(rows.loc[code])
        base.update(fields, reshaped=False)
        base["flag_reason"] = _reason(base)
        new_rows[code] = base
    # Every grid of the neighbourhood as it is after the edit.
    shapes: dict[str, Any] = dict(zip(rows.index, rows.geometry.to_numpy(), strict=True))
    shapes.update({code: row["geometry"] for code, row in new_rows.items()})
    all_codes = np.array(list(shapes), dtype=object)
    all_geoms = gpd.GeoSeries(list(shapes.values()), crs=h.blocks.crs) \
        .to_crs(h.metric_crs).to_numpy()
    pos = {c: i for i, c in enumerate(all_codes)}
    shaped = np.array([pos[c] for c in reshaped], dtype=np.int64)
    if len(shaped):
        g = all_geoms[shaped]
        shape = quality.shape_figures(g)
        for i, (code, parts) in enumerate(zip(reshaped, shapely.get_num_geometries(g),
                                              strict=True)):
            row = new_rows[code]
            flags, reason = band_flags(str(row["kind"]), int(row["households"]), int(parts),
                                       h.band)
            row.update({k: float(v[i]) for k, v in shape.items()}, flags=flags,
                       flag_reason=reason)
        inside, crossed = strong_crossings(g, h)
        for code, metres, names in zip(reshaped, inside, crossed, strict=True):
            row = new_rows[code]
            row["barrier_inside_m"] = round(float(metres), 1)
            # A river, ridge, railway or a department's unit boundary named as a barrier
            # running through the reshaped grid: it says so, as the engine's grids do.
            if metres > CROSSING_M and row["kind"] == "comprehensive" \
                    and "rural_village" not in row["flags"]:
                what = "、".join(names) if names else "a river, ridge or railway"
                row["flags"] = [*row["flags"], "crosses_barrier"]
                row["flag_reason"] = "; ".join(
                    r for r in (row["flag_reason"],
                                f"crosses {what}: {metres:.0f} m of it inside the grid") if r)
        # 四至 and barrier share of the reshaped grids and the 四至 of their neighbours.
        neighbours_of = touching(all_geoms, shaped)
        redo = np.unique(np.concatenate([shaped, neighbours_of])).astype(np.int64)
        texts, share = _sides(all_geoms, all_codes, redo, shaped, h)
        for i in shaped:
            new_rows[all_codes[i]].update(boundary_text=texts[i],
                                          barrier_share=round(float(share[i]), 4))
        for i in np.setdiff1d(neighbours_of, shaped):
            code = str(all_codes[i])
            row = rows.loc[code]
            if bool(row["locked"]) or texts[i] == row["boundary_text"] or code in new_rows:
                continue
            base = dict(row)
            base.update(boundary_text=texts[i], reshaped=False)
            base["flag_reason"] = _reason(base)
            new_rows[code] = base
    extra = ("flag_reason", "barrier_inside_m", "reshaped")
    frame = pd.DataFrame([{k: r.get(k) for k in (*ROW_FIELDS, *extra)}
                          for r in new_rows.values()], columns=[*ROW_FIELDS, *extra])
    frame["flags"] = [list(f) if f is not None else [] for f in frame["flags"]]
    frame["flag_reason"] = frame["flag_reason"].fillna("")
    frame["locked"] = frame["locked"].fillna(False).astype(bool)
    out = gpd.GeoDataFrame(frame, geometry=[r["geometry"] for r in new_rows.values()],
                           crs=h.blocks.crs)
    return EditResult(op, work.changed(), work.previous(), out, list(removed), summary)


def _reason(row: dict[str, Any]) -> str:
    """The stored reason of a grid an edit did not reshape (its flags are unchanged)."""
    reason = row.get("flag_reason")
    return reason if isinstance(reason, str) else ""


def strong_crossings(geoms: np.ndarray, h: Neighbourhood
                     ) -> tuple[np.ndarray, list[list[str]]]:
    """Metres of river, ridge, railway or named overlay boundary inside each of ``geoms``
    (metric) and not along its boundary, from the given lines around (rivers drawn only as
    areas count none: the engine's centre lines are not kept), and the names of those
    lines running through each."""
    none: tuple[np.ndarray, list[list[str]]] = (np.zeros(len(geoms)), [[] for _ in geoms])
    barriers = h.barriers
    if not len(barriers) or not len(geoms) or "kind" not in barriers:
        return none
    cls = barriers["class"].astype(str) if "class" in barriers else \
        pd.Series("", index=barriers.index)
    strong = barriers[barriers["kind"].isin(STRONG_KINDS).to_numpy()
                      & ~cls.isin(["riverbank", "centreline"]).to_numpy()]
    if strong.empty:
        return none
    strong = strong.to_crs(h.metric_crs)
    lines = strong.geometry.to_numpy()
    inside, _ = quality.barrier_inside(geoms, lines, strong["kind"].to_numpy())
    names = strong["name"].to_numpy(dtype=object) if "name" in strong else \
        np.full(len(strong), None, dtype=object)
    gi, li = shapely.STRtree(lines).query(
        shapely.buffer(geoms, -quality.INSIDE_TOLERANCE_M), predicate="intersects")
    crossed: list[set[str]] = [set() for _ in geoms]
    for g, n in zip(gi.tolist(), names[li].tolist(), strict=True):
        if isinstance(n, str) and n:
            crossed[g].add(n)
    return inside, [sorted(c) for c in crossed]


def touching(geoms: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Positions of the grids sharing an edge (or a point) with any of ``which``."""
    tree = shapely.STRtree(geoms)
    _, hit = tree.query(geoms[which], predicate="dwithin", distance=0.5)
    return np.setdiff1d(np.unique(hit), which)


def _sides(geoms: np.ndarray, grid_codes: np.ndarray, redo: np.ndarray, shaped: np.ndarray,
           h: Neighbourhood) -> tuple[np.ndarray, np.ndarray]:
    """四至 of the grids ``redo`` and barrier share of ``shaped`` (positions in ``geoms``)."""
    barriers = h.barriers.to_crs(h.metric_crs) if len(h.barriers) else h.barriers
    segments, texts = boundaries.sides(geoms, grid_codes, barriers, redo)
    # Barrier share: barriers and village boundaries, as the engine counts it.
    mine = segments[np.isin(segments["grid"].to_numpy(), shaped)].reset_index(drop=True)
    village_lines = shapely.boundary(h.villages.to_crs(h.metric_crs).geometry.to_numpy()) \
        if len(h.villages) else np.array([], dtype=object)
    kinds = boundaries.followed_kinds(mine, barriers, village_lines, h.metric_crs)
    share, _ = quality.barrier_shares(mine, kinds.astype(str), len(geoms))
    return texts, share


def next_codes(village: str, n: int, used: Iterable[str], dedicated_start: int = 901
               ) -> list[str]:
    """``n`` new comprehensive codes of ``village``: serials after the highest any plan of
    the territory ever used, so that a retired code never comes back."""
    serials = [int(c[len(village):]) for c in used
               if c.startswith(village) and len(c) == len(village) + 3
               and c[len(village):].isdigit() and int(c[len(village):]) < dedicated_start]
    start = max(serials, default=0) + 1
    if start + n - 1 >= dedicated_start:
        raise refuse(f"村（社区）{village} 的网格序号已用到 {start - 1}，没有新的序号可用",
                     f"village {village} has used serials up to {start - 1}; no new "
                     f"comprehensive serial below {dedicated_start} is left")
    return [f"{village}{s:03d}" for s in range(start, start + n)]


def updated(hood: Neighbourhood, result: EditResult) -> Neighbourhood:
    """The neighbourhood after ``result`` (what the store holds once the edit is written)."""
    blocks = hood.blocks.copy()
    if result.assignment:
        new = blocks["block_no"].map(result.assignment)
        blocks["grid_code"] = new.where(new.notna(), blocks["grid_code"])
    gone = set(result.removed) | set(result.touched)
    keep = hood.grids[~hood.grids["code"].isin(gone)]
    fresh = result.grids.drop(columns=["reshaped"])
    fresh = fresh[[c for c in fresh.columns if c in hood.grids.columns]]
    grids = gpd.GeoDataFrame(pd.concat([keep[list(fresh.columns)], fresh], ignore_index=True),
                             geometry="geometry", crs=hood.grids.crs)
    return Neighbourhood(blocks, grids, hood.barriers, hood.villages, hood.metric_crs,
                         hood.band, hood.dedicated_start,
                         hood.used_codes | frozenset(result.touched))
