"""The command-centre big screen's HTML page (一屏观全局), from maps/templates/screen.html."""

from __future__ import annotations

import functools
import html
import json
from typing import Any

from maps.assets import TEMPLATES

#: How often the page asks for new figures (seconds); the answer is 304 when nothing changed.
POLL_SECONDS = 5
#: Metres the grids are simplified by for the screen (shared edges kept).
SIMPLIFY_M = 3


@functools.cache
def _template() -> str:
    return (TEMPLATES / "screen.html").read_text(encoding="utf-8")


def grids_url(plan_id: int, basemap_crs: str) -> str:
    """Where the page fetches the plan's grids: simplified, and shifted into the basemap's
    system when it is not WGS84 (``display=``, served by /plans/{id}/grids)."""
    url = f"/plans/{plan_id}/grids?simplify={SIMPLIFY_M}"
    return url if basemap_crs == "wgs84" else f"{url}&display={basemap_crs}"


def _json_for_html(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can close it)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def screen_page(title: str, config: dict[str, Any]) -> str:
    """The full-screen page; ``config`` goes to screen.js (territory, plan, URLs, basemap)."""
    return (_template().replace("{{title}}", html.escape(title))
            .replace("{{config}}", _json_for_html(config)))


def no_plan_page(territory_name: str | None) -> str:
    """What the screen shows while there is nothing to show: a plan must be published."""
    where = f"{html.escape(territory_name)}尚无" if territory_name else "尚无"
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        "<title>指挥中心大屏</title>"
        '<link rel="stylesheet" href="/static/screen.css"></head>'
        '<body class="screen"><div class="empty-state"><h1>网格化服务管理指挥中心</h1>'
        f"<p>{where}已发布的网格方案。请先发布一个方案"
        "（POST /plans/{id}/publish），大屏即可显示。</p>"
        "<p class=\"en\">No published plan yet: publish a plan to show the screen.</p>"
        "</div></body></html>")
