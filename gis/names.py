"""Chinese names of the stored words people read: plan statuses, grid kinds, flags, line kinds."""

from __future__ import annotations

from collections.abc import Iterable

#: Plan statuses (gis.models.plans.PLAN_STATUSES), as the pages, the planner map and the posters
#: name them.
PLAN_STATUS_NAMES = {"draft": "草稿", "published": "已发布", "archived": "已归档"}
#: Grid kinds.
KIND_NAMES = {"comprehensive": "综合网格", "dedicated": "专属网格"}
#: Every flag a grid may carry (partitioning/flags.py FORCED, the band flags, the rest), as
#: the planner map (maps/static/planner.js FLAG_NAMES, kept equal by a test), the posters,
#: the exports and the index name it.
FLAG_NAMES = {
    "below_min": "户数低于下限",
    "above_max": "户数超过上限",
    "noncontiguous": "网格不连片",
    "village_below_min": "村（社区）户数不足下限",
    "part_below_min": "被分隔部分户数不足下限",
    "single_building": "单栋建筑户数超过上限",
    "block_over_max": "单个地块户数超过上限",
    "rural_village": "农村整村划为一格",
    "infeasible_band": "总户数无法分入区间",
    "infeasible_split": "无可行的区间内划分",
    "radius_split": "按服务半径切分",
    "crosses_barrier": "跨越河流/山脊/铁路",
    "building_split_by_boundary": "建筑被村（社区）界线分割",
}
#: Kinds of a plan's lines (gis.models.plans.LINE_KINDS).
LINE_KIND_NAMES = {"inferred_street": "推测巷道"}
#: What the legends say of an inferred street: it is drawn where no road was given.
INFERRED_STREET_LABEL = "推测巷道（数据中无此路）"
#: How the engine names a water grid (a river or lake of its own): "…水域专属网格".
WATER_GRID_SUFFIX = "水域专属网格"


def flag_names(flags: Iterable[str]) -> list[str]:
    """The flags in Chinese (an unknown flag as it is)."""
    return [FLAG_NAMES.get(str(f), str(f)) for f in flags if f]


def flag_text(flags: Iterable[str], reason: str | None = None) -> str:
    """The flags in Chinese, separated by "；", with the reason after them in brackets;
    empty for a regular grid."""
    names = flag_names(flags)
    if not names:
        return ""
    text = "；".join(names)
    return f"{text}（{reason.strip()}）" if reason and reason.strip() else text


def is_water_grid(kind: str | None, name: str | None) -> bool:
    """A dedicated grid of a river or lake (named "…水域专属网格" by the engine)."""
    return kind == "dedicated" and str(name or "").endswith(WATER_GRID_SUFFIX)


def plan_status_name(status: str) -> str:
    """A plan's status in Chinese (an unknown status as it is)."""
    return PLAN_STATUS_NAMES.get(status, status)
