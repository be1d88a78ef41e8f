"""The index page: territories and their plans, with links to maps, exports, posters, screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

STATUS_NAMES = {"draft": "草稿", "published": "已发布", "archived": "已归档"}
#: Export formats as /plans/{id}/export.{fmt} spells them, with their names.
EXPORTS = (("gpkg", "GeoPackage"), ("shp.zip", "Shapefile"), ("geojson", "GeoJSON"),
           ("csv", "CSV"), ("xlsx", "Excel"))


@dataclass
class IndexPlan:
    id: int
    version: int
    status: str
    n_grids: int
    created: str


@dataclass
class IndexTerritory:
    id: int
    name: str
    #: (code, name) of each town/street, for the posters.
    towns: list[tuple[str, str]] = field(default_factory=list)
    plans: list[IndexPlan] = field(default_factory=list)


def _a(href: str, text: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<a href="{escape(href)}"{klass}>{escape(text)}</a>'


def _plan_row(plan: IndexPlan, towns: list[tuple[str, str]], published: int | None) -> str:
    p = plan.id
    maps = _a(f"/plans/{p}/map", "规划地图", "map-link")
    if plan.status == "draft":
        maps += " · " + _a(f"/plans/{p}/edit", "编辑", "edit-link")
    if published is not None and published != p:
        maps += " · " + _a(f"/plans/{published}/compare/{p}", "与已发布方案对比",
                           "compare-link")
    exports = " · ".join(_a(f"/plans/{p}/export.{fmt}", name) for fmt, name in EXPORTS)
    posters = " · ".join(_a(f"/plans/{p}/posters/{code}.pdf?size=A3", name)
                         for code, name in towns) or "（无街道/乡镇）"
    status = STATUS_NAMES.get(plan.status, plan.status)
    return (
        f'<tr class="plan-{escape(plan.status)}"><td>第{plan.version}版</td>'
        f"<td>{escape(status)}</td><td>{plan.n_grids}</td><td>{escape(plan.created)}</td>"
        f"<td>{maps}</td>"
        f"<td>{_a(f'/plans/{p}/grids', 'GeoJSON')} · {_a(f'/plans/{p}/report', '质量报告')}"
        f"</td><td>{exports}</td>"
        f"<td><details><summary>网格划分图 A3（{len(towns)}）</summary>{posters}</details>"
        "</td></tr>")


def _territory(t: IndexTerritory) -> str:
    head = (f'<section class="territory" id="territory-{t.id}"><h2>{escape(t.name)} '
            f'<small>区域编号 {t.id}</small></h2><p>'
            f"{_a(f'/screen?territory={t.id}', '指挥中心大屏（一屏观全局）')} · "
            f"{_a(f'/territories/{t.id}', '区域信息（JSON）')}</p>")
    if not t.plans:
        return head + "<p>尚无划分方案。</p></section>"
    published = next((p.id for p in t.plans if p.status == "published"), None)
    rows = "".join(_plan_row(p, t.towns, published) for p in t.plans)
    return (head + "<table><thead><tr><th>方案</th><th>状态</th><th>网格数</th>"
            "<th>创建时间</th><th>地图</th><th>数据</th><th>导出</th><th>张贴图</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></section>")


def index_html(territories: list[IndexTerritory]) -> str:
    """The whole page (no script; local style only)."""
    body = "".join(_territory(t) for t in territories) or (
        "<p>尚无区域。请先上传区域数据（POST /territories，见接口文档）。</p>")
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gridmap 网格化服务管理</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/index.css">
</head><body>
<header><h1>gridmap 网格化服务管理</h1>
<nav>{_a('/docs', '接口文档（API）')} · {_a('/ogc', 'OGC API – Features')} ·
{_a('/problems', '错误类型')}</nav></header>
<main>{body}</main>
</body></html>
"""
