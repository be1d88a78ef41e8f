"""The editor page of a draft plan (the planner map plus edit tools) and the compare page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from maps.pages import render
from maps.planner import (
    ESCAPE_JS,
    LEAFLET_CSS,
    LEAFLET_JS,
    PLANNER_CSS,
    PlannerPage,
    planner_html,
)

EDITOR_JS = "/static/editor.js"
#: The coordinate systems of the basemap (GCJ-02, BD-09), shared with the workspace pages.
COMMON_JS = "/static/common.js"
EDITOR_CSS = "/static/editor.css"
COMPARE_JS = "/static/compare.js"
#: The editor draws grids unsimplified: an edit's answer (stored outlines) then meets its
#: untouched neighbours exactly.
EDITOR_SIMPLIFY_M = 0.0
#: The most blocks the editor fetches for one view (more: it asks to zoom in).
EDITOR_BLOCKS_LIMIT = 4_000
#: The compare page's grids, simplified as on the planner map.
COMPARE_SIMPLIFY_M = 2.0


def editor_config(page: PlannerPage, parent_id: int | None) -> dict[str, Any]:
    """What editor.js needs besides the planner map's config: the version and the URLs."""
    base = f"/plans/{page.plan_id}"
    return {
        "title": f"{page.title}（编辑）",
        "editor": {
            "version": page.edit_version,
            "planUrl": base,
            "editsUrl": f"{base}/edits",
            "undoUrl": f"{base}/undo",
            "redoUrl": f"{base}/redo",
            "lockedUrl": f"{base}/locked",
            "blocksUrl": f"{base}/blocks?display={page.display}&limit={EDITOR_BLOCKS_LIMIT}",
            "mapUrl": f"{base}/map",
            "compareUrl": f"/plans/{parent_id}/compare/{page.plan_id}" if parent_id else None,
            "parentId": parent_id,
        },
    }


def editor_html(page: PlannerPage, parent_id: int | None,
                timezone: dict[str, str] | None = None) -> str:
    """The planner map of a draft with the editor's tools (maps/static/editor.js)."""
    return planner_html(page, simplify=EDITOR_SIMPLIFY_M,
                        extra_config=editor_config(page, parent_id),
                        extra_js=(COMMON_JS, EDITOR_JS), extra_css=(EDITOR_CSS,),
                        title=f"{page.title}（编辑）", timezone=timezone)


@dataclass
class ComparePlan:
    """One side of the comparison."""

    plan_id: int
    title: str
    status: str


def compare_config(a: ComparePlan, b: ComparePlan, band: tuple[int, int], display: str,
                   bounds: tuple[float, float, float, float] | None,
                   overlays: tuple[str, ...] = ()) -> dict[str, Any]:
    def side(p: ComparePlan) -> dict[str, Any]:
        return {"id": p.plan_id, "title": p.title, "status": p.status,
                "gridsUrl": f"/plans/{p.plan_id}/grids?simplify={COMPARE_SIMPLIFY_M:g}"
                            f"&display={display}",
                "mapUrl": f"/plans/{p.plan_id}/map"}

    def aligned(p: ComparePlan, department: str) -> str:
        return (f"/plans/{p.plan_id}/overlays/{quote(department, safe='')}/proposal"
                f"?format=geojson&display={display}")

    # Department grids (多网融合): each one's aligned proposal against either plan, fetched
    # when switched on, with the households that change unit.
    return {"a": side(a), "b": side(b), "band": list(band), "display": display,
            "bounds": list(bounds) if bounds else None,
            "diffUrl": f"/plans/{a.plan_id}/diff/{b.plan_id}",
            "overlays": [{"department": d, "a": aligned(a, d), "b": aligned(b, d)}
                         for d in overlays]}


def compare_html(a: ComparePlan, b: ComparePlan, band: tuple[int, int], display: str,
                 bounds: tuple[float, float, float, float] | None,
                 overlays: tuple[str, ...] = ()) -> str:
    """Two synced maps side by side (plan a left, plan b right) and the diff between them."""
    return render("compare.html", title=f"方案对比：第 {a.plan_id} 号 → 第 {b.plan_id} 号",
                  a=a, b=b, config=compare_config(a, b, band, display, bounds, overlays),
                  styles=[LEAFLET_CSS, PLANNER_CSS, EDITOR_CSS],
                  scripts=[LEAFLET_JS, ESCAPE_JS, COMPARE_JS], body_class="gm-compare-page")
