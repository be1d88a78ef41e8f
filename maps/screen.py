"""The command-centre big screen's HTML page (一屏观全局), from maps/templates/screen.html."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from maps.pages import render
from maps.planner import ESCAPE_JS, LEAFLET_CSS, LEAFLET_JS

#: How often the page asks for new figures (seconds); the answer is 304 when nothing changed.
POLL_SECONDS = 5
#: Metres the grids are simplified by for the screen (shared edges kept).
SIMPLIFY_M = 3
CLUSTER_CSS = "/static/vendor/leaflet.markercluster/MarkerCluster.css"
CLUSTER_JS = "/static/vendor/leaflet.markercluster/leaflet.markercluster.js"
SCREEN_CSS = "/static/screen.css"
SCREEN_JS = "/static/screen.js"
#: The big screen's links to the event desk, and today's patrols (日双巡).
SCREEN_DESK_JS = "/static/screen-desk.js"


def grids_url(plan_id: int, basemap_crs: str) -> str:
    """Where the page fetches the plan's grids: simplified, and shifted into the basemap's
    system when it is not WGS84 (``display=``, served by /plans/{id}/grids)."""
    url = f"/plans/{plan_id}/grids?simplify={SIMPLIFY_M}"
    return url if basemap_crs == "wgs84" else f"{url}&display={basemap_crs}"


def overlay_specs(territory_id: int, departments: list[str], basemap_crs: str
                  ) -> list[dict[str, str]]:
    """The department grids the screen can switch on (多网融合): key, Chinese name, URL of the
    units (in the basemap's system), fetched only when switched on."""
    return [{"key": d, "name": f"部门网格 · {d}",
             "url": f"/territories/{territory_id}/overlays/{quote(d, safe='')}"
                    f"?display={basemap_crs}"} for d in departments]


def screen_page(title: str, config: dict[str, Any]) -> str:
    """The full-screen page; ``config`` goes to screen.js (territory, plan, URLs, basemap,
    the zone times are shown in)."""
    return render("screen.html", title=f"{title} · 网格化服务管理指挥中心",
                  territory_name=title, config=config,
                  styles=[LEAFLET_CSS, CLUSTER_CSS, SCREEN_CSS],
                  scripts=[LEAFLET_JS, CLUSTER_JS, ESCAPE_JS, SCREEN_JS, SCREEN_DESK_JS],
                  body_class="screen")


def no_plan_page(territory_name: str | None) -> str:
    """What the screen shows while there is nothing to show: a plan must be published."""
    return render("no_plan.html", title="指挥中心大屏", territory_name=territory_name,
                  styles=[SCREEN_CSS], body_class="screen")
