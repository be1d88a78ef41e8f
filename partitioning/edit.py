"""Planner edits of grids (move, merge, split, reshape, lock, rename), validated on a plan value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
import shapely.ops

from partitioning import codes
from partitioning.params import PartitionParams
from partitioning.plan import EditResult, Neighbourhood, Plan, finish, next_codes, refuse
from partitioning.rebalance import rebalance
from partitioning.regions import Partitioner, choose_k

#: Operations and what each takes (besides the neighbourhood).
OPERATIONS = ("move", "merge", "split", "reshape", "lock", "unlock", "rename", "rebalance")


# --- the operations --------------------------------------------------------------------


def move(hood: Neighbourhood, blocks: Sequence[int], to: str) -> EditResult:
    """Blocks into grid ``to`` of their own village, from whichever grids hold them."""
    work = Plan(hood)
    target = work.row(to)
    missing = [b for b in blocks if int(b) not in work.pos]
    if missing:
        raise refuse(f"网格 {to} 所在村（社区）没有地块 {missing[:10]}；网格不能跨村（社区）",
                     f"blocks {missing[:10]} are not in the village of grid {to}; a grid "
                     "never spans two villages")
    idx = np.array(sorted({work.pos[int(b)] for b in blocks}), dtype=np.int64)
    village = work.blocks["village_code"].to_numpy()[idx]
    if (village != target["village_code"]).any():
        raise refuse(f"地块与网格 {to} 不在同一村（社区），网格不能跨村（社区）",
                     f"the blocks are not in grid {to}'s village; a grid never spans two "
                     "villages")
    idx = idx[work.label[idx] != to]
    if len(idx) == 0:
        raise refuse(f"这些地块已在网格 {to} 中", f"the blocks are already in grid {to}")
    sources = sorted({str(c) for c in work.label[idx]})
    work.unlocked([to, *sources])
    work.label[idx] = to
    work.check_contiguous([to, *sources], "移动")
    moved = int(work.blocks["households"].to_numpy()[idx].sum())
    summary = (f"{len(idx)} 个地块（{moved} 户）从 {'、'.join(sources)} 移入 {to}; "
               f"{len(idx)} blocks ({moved} households) moved from {', '.join(sources)} "
               f"to {to}")
    return finish(work, "move", {c: {} for c in [to, *sources]}, {}, [], summary)


def merge(hood: Neighbourhood, a: str, b: str) -> EditResult:
    """Two adjacent grids of one village into one, which keeps the larger one's code."""
    work = Plan(hood)
    if a == b:
        raise refuse("合并需要两个不同的网格", "a merge needs two different grids")
    ra, rb = work.row(a), work.row(b)
    if ra["village_code"] != rb["village_code"]:
        raise refuse(f"网格 {a} 与 {b} 不在同一村（社区），不能合并",
                     f"grids {a} and {b} are in different villages and cannot be merged")
    if ra["kind"] != rb["kind"]:
        raise refuse(f"网格 {a} 与 {b} 类型不同（综合/专属），不能合并",
                     f"grids {a} and {b} are of different kinds and cannot be merged")
    work.unlocked([a, b])
    ia, ib = work.members(a), work.members(b)
    ga = work.graph(np.concatenate([ia, ib]))
    local_a = np.zeros(len(ia) + len(ib), dtype=bool)
    local_a[: len(ia)] = True
    if not (local_a[ga.a] != local_a[ga.b]).any():
        raise refuse(f"网格 {a} 与 {b} 不相邻，不能合并",
                     f"grids {a} and {b} do not share a boundary and cannot be merged")
    ha, hb = int(ra["households"]), int(rb["households"])
    keep, gone = (a, b) if (ha, b) > (hb, a) else (b, a)
    work.label[work.members(gone)] = keep
    summary = (f"网格 {gone} 并入 {keep}（{ha + hb} 户）; grid {gone} merged into {keep} "
               f"({ha + hb} households)")
    return finish(work, "merge", {keep: {}}, {}, [gone], summary)


def split(hood: Neighbourhood, grid: str, k: int | None = None, seed: int = 0) -> EditResult:
    """A grid into ``k`` connected, balanced grids along barriers (the engine's bisection).

    ``k`` defaults to the count nearest the target that fits the band. The part with the
    most households keeps the code and name; the others get new serials in the village
    (reading order), never a code any plan of the territory used before.
    """
    work = Plan(hood)
    row = work.row(grid)
    if row["kind"] != "comprehensive":
        raise refuse(f"专属网格 {grid} 不能拆分", f"dedicated grid {grid} cannot be split")
    work.unlocked([grid])
    nodes = work.members(grid)
    lo, hi = hood.band
    params = PartitionParams(min_households=lo, max_households=hi,
                             target_households=(lo + hi) // 2, seed=seed)
    total = int(work.blocks["households"].to_numpy()[nodes].sum())
    if k is None:
        k = choose_k(total, params)[0]
        if k < 2:
            raise refuse(f"网格 {grid} 只有 {total} 户，拆分后达不到 {lo}–{hi}；如仍要拆分请给出 k",
                         f"grid {grid} has {total} households: split into band-sized grids "
                         f"of {lo}–{hi} it stays one; give k to split anyway")
    if k < 2 or k > len(nodes):
        raise refuse(f"网格 {grid} 有 {len(nodes)} 个地块，不能拆成 {k} 个网格",
                     f"grid {grid} has {len(nodes)} blocks and cannot be split into {k}")
    graph = work.graph(nodes)
    if len(graph.components(np.arange(len(nodes)))) > 1:
        raise refuse(f"网格 {grid} 本身不连通，不能拆分", f"grid {grid} is in several parts "
                     "already and cannot be split")
    part = Partitioner(graph, params, np.random.default_rng(seed))
    pieces = part.split(np.arange(len(nodes)), k)
    if len(pieces) < k:
        raise refuse(f"网格 {grid} 无法拆成 {k} 个连通网格",
                     f"grid {grid} cannot be split into {k} connected grids")
    hh = graph.households
    pieces = sorted(pieces, key=lambda p: -float(hh[p].sum()))
    centres = shapely.point_on_surface(np.array(
        [shapely.union_all(work.metric()[nodes[p]]) for p in pieces[1:]], dtype=object))
    order = codes.reading_order(shapely.get_x(centres), shapely.get_y(centres),
                                math.sqrt(float(graph.area.sum()) / k))
    village = str(row["village_code"])
    used = set(hood.used_codes) | {str(c) for c in work.rows["code"]}
    fresh = next_codes(village, k - 1, used, hood.dedicated_start)
    names = dict(zip(hood.villages["code"], hood.villages["name"], strict=True)) \
        if len(hood.villages) else {}
    reshaped: dict[str, dict[str, Any]] = {grid: {}}
    for new_code, p in zip(fresh, [pieces[1:][i] for i in order], strict=True):
        work.label[nodes[p]] = new_code
        serial = int(new_code[-3:])
        reshaped[new_code] = {"name": f"{names.get(village, village)}第{serial}网格",
                              "village_code": village, "kind": "comprehensive",
                              "locked": False, "flag_reason": ""}
    sizes = "、".join(str(int(hh[p].sum())) for p in pieces)
    summary = (f"网格 {grid} 拆为 {k} 个（{sizes} 户），新网格 {'、'.join(fresh)}; grid {grid} "
               f"split into {k} ({sizes} households), new grids {', '.join(fresh)}")
    return finish(work, "split", reshaped, {}, [], summary)


def reshape(hood: Neighbourhood, line: shapely.LineString,
            grids: Sequence[str] | None = None) -> EditResult:
    """A new boundary between two grids of one village, drawn as a line (not to be
    confused with the stable redraw of a whole plan, partitioning.redraw).

    The line (in the neighbourhood's CRS) must cut the two grids together into exactly
    two pieces (draw it across them, from edge to edge, once). Each block of the two
    grids goes to the piece holding the larger part of its area (so blocks are never
    cut: the new boundary follows block edges nearest the line), and each piece to the
    grid that already holds more of it. ``grids`` default to the two grids whose blocks
    the line crosses (a line inside one grid: that grid and the grid of its village
    nearest to the line).
    """
    work = Plan(hood)
    geoms = work.blocks.geometry.to_numpy()
    if grids is None:
        crossed = np.flatnonzero(shapely.intersects(geoms, line)
                                 & ~shapely.touches(geoms, line))
        found = sorted({str(c) for c in work.label[crossed]})
        if len(found) == 1:
            # A line inside one grid moves its boundary with the nearest grid of the
            # same village.
            village = work.row(found[0])["village_code"]
            others = [str(c) for c in dict.fromkeys(work.label)
                      if c != found[0] and work.row(str(c))["village_code"] == village]
            if others:
                near = [shapely.distance(line, shapely.union_all(geoms[work.members(c)]))
                        for c in others]
                found.append(others[int(np.argmin(near))])
        if len(found) != 2:
            raise refuse(f"线穿过 {len(found)} 个网格；重画边界需正好穿过两个相邻网格",
                         f"the line crosses {len(found)} grids; a reshaped boundary crosses "
                         "exactly two neighbouring grids (or name them)")
        grids = found
    if len(grids) != 2 or grids[0] == grids[1]:
        raise refuse("重画边界需要两个不同的网格", "a reshaped boundary needs two grids")
    a, b = str(grids[0]), str(grids[1])
    ra, rb = work.row(a), work.row(b)
    if ra["village_code"] != rb["village_code"]:
        raise refuse(f"网格 {a} 与 {b} 不在同一村（社区），网格不能跨村（社区）",
                     f"grids {a} and {b} are in different villages; a grid never spans "
                     "two villages")
    work.unlocked([a, b])
    idx = np.concatenate([work.members(a), work.members(b)])
    union = shapely.union_all(geoms[idx])
    pieces = shapely.get_parts(shapely.ops.split(union, line))
    pieces = pieces[shapely.area(pieces) > 0]
    if len(pieces) != 2:
        raise refuse(f"线把两个网格分成 {len(pieces)} 块；请画一条从边到边、只穿过一次的线",
                     f"the line cuts the two grids into {len(pieces)} pieces; draw it "
                     "across them once, from edge to edge, to make two")
    share0 = shapely.area(shapely.intersection(geoms[idx], pieces[0]))
    side0 = share0 * 2 >= shapely.area(geoms[idx])
    area = shapely.area(geoms[idx])
    in_a = work.label[idx] == a
    keep = float(area[in_a & side0].sum() + area[~in_a & ~side0].sum())
    swap = float(area[~in_a & side0].sum() + area[in_a & ~side0].sum())
    first, second = (a, b) if keep >= swap else (b, a)
    work.label[idx] = np.where(side0, first, second)
    if not (work.label[idx] != work.before[idx]).any():
        raise refuse("新边界没有改变任何地块的归属", "the line moves no block between the grids")
    work.check_contiguous([a, b], "重画边界")
    n = int((work.label[idx] != work.before[idx]).sum())
    summary = (f"重画 {a} 与 {b} 的边界，{n} 个地块换网格; boundary between {a} and {b} "
               f"reshaped, {n} blocks change grid")
    return finish(work, "reshape", {a: {}, b: {}}, {}, [], summary)


def lock(hood: Neighbourhood, grids: Sequence[str], locked: bool = True) -> EditResult:
    """Lock (or unlock) grids: a locked grid refuses every edit but unlock."""
    work = Plan(hood)
    change = [g for g in dict.fromkeys(grids) if bool(work.row(g)["locked"]) != locked]
    if not change:
        raise refuse(f"网格已{'锁定' if locked else '解锁'}",
                     f"the grids are already {'locked' if locked else 'unlocked'}")
    op = "lock" if locked else "unlock"
    summary = (f"{'锁定' if locked else '解锁'} {'、'.join(change)}; {op}ed {', '.join(change)}")
    return finish(work, op, {}, {g: {"locked": locked} for g in change}, [], summary)


def rename(hood: Neighbourhood, grid: str, name: str) -> EditResult:
    """A grid's name (its code never changes)."""
    work = Plan(hood)
    name = name.strip()
    if not name or len(name) > 200:
        raise refuse("网格名称须为 1–200 个字符", "a grid name has 1 to 200 characters")
    row = work.row(grid)
    work.unlocked([grid])
    if row["name"] == name:
        raise refuse(f"网格 {grid} 已叫 {name}", f"grid {grid} is already called {name}")
    summary = f"网格 {grid} 改名为 {name}; grid {grid} renamed {name}"
    return finish(work, "rename", {}, {grid: {"name": name}}, [], summary)


def apply_edit(hood: Neighbourhood, op: str, params: dict[str, Any]) -> EditResult:
    """One edit by name, with the parameters of the API's body (see docs/editing.md)."""
    if op == "move":
        return move(hood, list(params["blocks"]), str(params["to"]))
    if op == "merge":
        a, b = params["grids"]
        return merge(hood, str(a), str(b))
    if op == "split":
        return split(hood, str(params["grid"]), params.get("k"))
    if op == "reshape":
        given = params.get("grids")
        return reshape(hood, shapely.LineString(params["line"]),
                       None if given is None else [str(g) for g in given])
    if op in ("lock", "unlock"):
        return lock(hood, [str(g) for g in params["grids"]], op == "lock")
    if op == "rename":
        return rename(hood, str(params["grid"]), str(params["name"]))
    if op == "rebalance":
        given = params.get("grids")
        return rebalance(hood, params.get("village"),
                         None if given is None else [str(g) for g in given],
                         int(params.get("seed", 0)))
    raise refuse(f"未知的编辑操作 {op}", f"unknown edit operation {op!r}; use one of "
                 f"{', '.join(OPERATIONS)}")


