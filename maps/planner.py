"""The planner's map of a plan: a light folium page whose grids and layers are fetched by URL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import folium
from branca.element import CssLink, Element, Figure, JavascriptLink, MacroElement
from jinja2 import Template

from gis.settings import Settings
from maps.overlays import LAYERS

#: Leaflet from /static (vendored), never a CDN: the page works offline.
LOCAL_JS = [("leaflet", "/static/vendor/leaflet/leaflet.js")]
LOCAL_CSS = [("leaflet_css", "/static/vendor/leaflet/leaflet.css")]
#: The page's own script and style.
PLANNER_JS = "/static/planner.js"
PLANNER_CSS = "/static/planner.css"
#: Display simplification of the grids (metres): shared edges stay shared, and at the
#: zoom where one pixel is 2 m nothing visible moves.
SIMPLIFY_M = 2.0
#: Buildings are fetched (by bbox) only from this zoom on.
BUILDINGS_MIN_ZOOM = 16
STATUS_NAMES = {"draft": "草稿", "published": "已发布", "archived": "已归档"}


class LocalMap(folium.Map):
    """A folium map that loads Leaflet from the vendored copy (no jQuery, Bootstrap or
    awesome-markers: nothing on the page uses them)."""

    default_js = LOCAL_JS
    default_css = LOCAL_CSS
    #: More of the page's own files, loaded after planner.js/css (the editor's).
    extra_css: tuple[str, ...] = ()
    extra_js: tuple[str, ...] = ()

    def render(self, **kwargs: Any) -> Any:
        done = super().render(**kwargs)
        # After Leaflet's, so that the page's own style wins.
        header = self.get_root().header  # type: ignore[attr-defined]
        header.add_child(CssLink(PLANNER_CSS), name="planner_css")
        header.add_child(JavascriptLink(PLANNER_JS), name="planner_js")
        for i, url in enumerate(self.extra_css):
            header.add_child(CssLink(url), name=f"extra_css_{i}")
        for i, url in enumerate(self.extra_js):
            header.add_child(JavascriptLink(url), name=f"extra_js_{i}")
        return done


class _Start(MacroElement):
    """``GridmapPlanner.start(map, config)`` once folium has made the map."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        GridmapPlanner.start({{ this._parent.get_name() }}, {{ this.config }});
        {% endmacro %}
    """)

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "GridmapPlanner"
        # "</" cannot end the inline script early.
        self.config = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")


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
    band: tuple[int, int] = (300, 500)
    #: Where to look first: (min lon, min lat, max lon, max lat), in the display system.
    bounds: tuple[float, float, float, float] | None = None
    #: The system the overlays are drawn in: ``wgs84``, ``gcj02`` or ``bd09``.
    display: str = "wgs84"
    basemap_url: str = ""
    basemap_attribution: str = ""
    #: The draft's edit generation (the ETag an edit names in If-Match).
    edit_version: int = 0

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
    for key, name in LAYERS.items():
        specs.append({"key": key, "name": name,
                      "url": f"/territories/{page.territory_id}/layers/{key}?{query}",
                      "minZoom": BUILDINGS_MIN_ZOOM if key == "buildings" else 0})
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
        "status": STATUS_NAMES.get(page.status, page.status), "nGrids": page.n_grids,
        "band": list(page.band), "display": page.display,
        "gridsUrl": f"/plans/{page.plan_id}/grids?simplify={simplify:g}"
                    f"&display={page.display}",
        "layers": layer_specs(page),
        "links": links,
    }


def planner_html(page: PlannerPage, *, simplify: float = SIMPLIFY_M,
                 extra_config: dict[str, Any] | None = None,
                 extra_js: tuple[str, ...] = (), extra_css: tuple[str, ...] = ()) -> str:
    """The planner map's HTML: folium's Leaflet map, local scripts, a small config.

    ``extra_config``, ``extra_js`` and ``extra_css`` make the same page the editor's
    (``maps/editor.py``)."""
    figure = Figure(title=page.title)
    fmap = LocalMap(location=[35.0, 105.0], zoom_start=5, tiles=None, control_scale=True,
                    prefer_canvas=True, max_zoom=20)
    fmap.extra_js, fmap.extra_css = extra_js, extra_css
    figure.add_child(fmap)
    if page.basemap_url:
        folium.TileLayer(tiles=page.basemap_url, attr=page.basemap_attribution or "底图",
                         name="底图", max_zoom=20, max_native_zoom=18).add_to(fmap)
    if page.bounds is not None:
        x0, y0, x1, y1 = page.bounds
        fmap.fit_bounds([[y0, x0], [y1, x1]])
    root = fmap.get_root()
    assert isinstance(root, Figure)
    # No favicon request (it would be a 404 in the console).
    root.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    config = {**planner_config(page, simplify), **(extra_config or {})}
    # Ask for the grids first thing, while Leaflet and the page's script load.
    url = json.dumps(config["gridsUrl"])
    root.header.add_child(Element(
        f"<script>window.GRIDMAP_PREFETCH = {{url: {url}, response: fetch({url})}};</script>"),
        name="prefetch")
    fmap.add_child(_Start(config))
    html: str = figure.render()
    return html.replace("<html>", '<html lang="zh-CN">', 1)
