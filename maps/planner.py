"""The planner's map of a plan: a light page whose grids and layers are fetched by URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gis.band import DEFAULT_BAND
from gis.names import plan_status_name
from gis.settings import Settings
from maps.overlays import LAYERS, LINE_LAYERS
from maps.pages import render

#: Leaflet from /static (vendored), never a CDN: the page works offline.
LEAFLET_JS = "/static/vendor/leaflet/leaflet.js"
LEAFLET_CSS = "/static/vendor/leaflet/leaflet.css"
#: The page's own scripts and style: prefetch.js starts fetching the grids from the page's
#: head, before Leaflet loads; planner.js makes the map and draws them.
PREFETCH_JS = "/static/prefetch.js"
PLANNER_JS = "/static/planner.js"
#: The one HTML escape of the pages' scripts (window.gridmapEscape).
ESCAPE_JS = "/static/escape.js"
PLANNER_CSS = "/static/planner.css"
#: Display simplification of the grids (metres): shared edges stay shared, and at the
#: zoom where one pixel is 2 m nothing visible moves.
SIMPLIFY_M = 2.0
#: Buildings are fetched (by bbox) only from this zoom on.
BUILDINGS_MIN_ZOOM = 16
#: The Leaflet map before the territory's bounds are known: China, as a whole.
START_CENTER, START_ZOOM, MAX_ZOOM, BASEMAP_NATIVE_ZOOM = (35.0, 105.0), 5, 20, 18


@dataclass
class PlannerPage:
    """What the page needs to know; the geometry itself is fetched by the browser."""

    plan_id: int
    territory_id: int
    territory_name: str
    version: int
    status: str
    n_grids: int
    #: The household band (grids below, within, above it are coloured apart).
    band: tuple[int, int] = DEFAULT_BAND
    #: Where to look first: (min lon, min lat, max lon, max lat), in the display system.
    bounds: tuple[float, float, float, float] | None = None
    #: The system the overlays are drawn in: ``wgs84``, ``gcj02`` or ``bd09``.
    display: str = "wgs84"
    basemap_url: str = ""
    basemap_attribution: str = ""
    #: The basemap's label layer (天地图 cva_w/cia_w) and its ``{s}`` values.
    basemap_labels_url: str = ""
    basemap_subdomains: str = "abc"
    #: The draft's edit generation (the ETag an edit names in If-Match).
    edit_version: int = 0
    #: The departments whose grids the territory holds as overlays (多网融合).
    overlays: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.territory_name} 网格划分方案 第{self.version}版"


def display_system(settings: Settings) -> str:
    """The system overlays are drawn in: the basemap's when one is configured, else WGS84."""
    return settings.basemap_crs if settings.basemap_url else "wgs84"


def layer_specs(page: PlannerPage) -> list[dict[str, Any]]:
    """The overlays of the layer control: key, Chinese name, URL, from which zoom."""
    query = f"display={page.display}"
    specs: list[dict[str, Any]] = [
        {"key": "blocks", "name": "地块", "url": f"/plans/{page.plan_id}/blocks?{query}",
         "minZoom": 0}]
    # The plan's own lines (the streets its partition found between buildings).
    for kind, name in LINE_LAYERS.items():
        specs.append({"key": f"{kind}s", "name": name,
                      "url": f"/plans/{page.plan_id}/lines?kind={kind}&{query}",
                      "minZoom": 0})
    for key, name in LAYERS.items():
        specs.append({"key": key, "name": name,
                      "url": f"/territories/{page.territory_id}/layers/{key}?{query}",
                      "minZoom": BUILDINGS_MIN_ZOOM if key == "buildings" else 0})
    # Department grids: their units with the slivers against this plan's grids.
    for department in page.overlays:
        specs.append({"key": f"overlay:{department}", "name": f"部门网格 · {department}",
                      "url": f"/plans/{page.plan_id}/overlays/{quote(department, safe='')}"
                             f"/map?{query}", "minZoom": 0})
    return specs


def planner_config(page: PlannerPage, simplify: float = SIMPLIFY_M) -> dict[str, Any]:
    """The JSON the page's script starts from (URLs, band, names; no geometry)."""
    links = {"geojson": f"/plans/{page.plan_id}/grids",
             "xlsx": f"/plans/{page.plan_id}/export.xlsx",
             "index": "/"}
    # A draft is edited in place; any other plan is copied to a draft first.
    if page.status == "draft":
        links["edit"] = f"/plans/{page.plan_id}/edit"
    else:
        links["copy"] = f"/plans/{page.plan_id}/copy"
    return {
        "planId": page.plan_id, "territoryId": page.territory_id, "title": page.title,
        "status": plan_status_name(page.status), "nGrids": page.n_grids,
        "band": list(page.band), "display": page.display,
        "gridsUrl": f"/plans/{page.plan_id}/grids?simplify={simplify:g}"
                    f"&display={page.display}",
        "layers": layer_specs(page),
        "links": links,
    }


def map_config(page: PlannerPage) -> dict[str, Any]:
    """How planner.js makes the Leaflet map: start view, zoom limit, bounds, basemap."""
    bounds = None
    if page.bounds is not None:
        x0, y0, x1, y1 = page.bounds
        bounds = [[y0, x0], [y1, x1]]
    basemap = None
    if page.basemap_url:
        basemap = {"url": page.basemap_url, "attribution": page.basemap_attribution or "底图",
                   "maxZoom": MAX_ZOOM, "maxNativeZoom": BASEMAP_NATIVE_ZOOM,
                   "labels": page.basemap_labels_url or None,
                   "subdomains": page.basemap_subdomains}
    return {"center": list(START_CENTER), "zoom": START_ZOOM, "maxZoom": MAX_ZOOM,
            "bounds": bounds, "basemap": basemap}


def planner_html(page: PlannerPage, *, simplify: float = SIMPLIFY_M,
                 extra_config: dict[str, Any] | None = None,
                 extra_js: tuple[str, ...] = (), extra_css: tuple[str, ...] = (),
                 title: str | None = None, timezone: dict[str, str] | None = None) -> str:
    """The planner map's HTML (templates/planner.html): local scripts and a small config.

    ``extra_config``, ``extra_js``, ``extra_css`` and ``title`` make the same page the
    editor's (``maps/editor.py``); ``timezone`` is how the page shows times
    (:func:`gis.times.page_zone`)."""
    config = {**planner_config(page, simplify), "map": map_config(page),
              **({"timezone": timezone} if timezone else {}), **(extra_config or {})}
    return render("planner.html", title=title or page.title, config=config,
                  styles=[LEAFLET_CSS, PLANNER_CSS, *extra_css],
                  head_scripts=[PREFETCH_JS],
                  scripts=[LEAFLET_JS, ESCAPE_JS, PLANNER_JS, *extra_js])
