"""The workspace (/): territories and their plans with links to maps, exports, posters and the
screen, and the forms to upload, partition, publish, compare and redraw (workspace.js)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gis.names import FLAG_NAMES, PLAN_STATUS_NAMES
from maps.pages import render
from maps.workspace import COMMON_SCRIPTS, Me, nav

#: Export formats as /plans/{id}/export.{fmt} spells them, with their names.
#: The GBK Shapefile in CGCS2000 and the DXF (in the territory's Gauss–Krüger zone) are what
#: municipal offices' ArcGIS and AutoCAD take (docs/offices.md).
EXPORTS = (("gpkg", "GeoPackage"), ("shp.zip", "Shapefile"),
           ("shp.zip?encoding=gbk&crs=cgcs2000", "Shapefile (GBK·CGCS2000)"),
           ("geojson", "GeoJSON"), ("csv", "CSV"), ("xlsx", "Excel"), ("dxf", "CAD (DXF)"),
           ("kml", "KML"))


@dataclass
class IndexPlan:
    id: int
    version: int
    status: str
    n_grids: int
    #: When the plan was made, as the page shows it (in the server's zone).
    created: str
    #: Its note (the publish note once published).
    note: str = ""
    #: Grids by flag (crosses_barrier: 3, …), shown with the flags' Chinese names.
    flags: dict[str, int] = field(default_factory=dict)

    @property
    def flag_summary(self) -> list[tuple[str, int]]:
        """(Chinese name, grids) of each flag, the most frequent first."""
        return [(FLAG_NAMES.get(f, f), n) for f, n in sorted(
            self.flags.items(), key=lambda kv: (-kv[1], kv[0]))]


@dataclass
class IndexTerritory:
    id: int
    name: str
    #: (code, name) of each town/street, for the posters.
    towns: list[tuple[str, str]] = field(default_factory=list)
    plans: list[IndexPlan] = field(default_factory=list)

    @property
    def published(self) -> int | None:
        return next((p.id for p in self.plans if p.status == "published"), None)


def index_html(territories: list[IndexTerritory], zone_label: str, me: Me,
               defaults: dict[str, Any], timezone: dict[str, str]) -> str:
    """The whole page; ``zone_label`` names the zone the creation times are in, ``defaults``
    are the partition form's band."""
    return render("index.html", title="gridmap 网格化服务管理", territories=territories,
                  statuses=PLAN_STATUS_NAMES, exports=EXPORTS, zone_label=zone_label, me=me,
                  nav=nav(me), here="/", can_write=me.can("plans:write"), defaults=defaults,
                  config={"me": me.as_config(), "timezone": timezone},
                  styles=["/static/index.css", "/static/workspace.css"], body_class="ws",
                  scripts=[*COMMON_SCRIPTS, "/static/workspace.js"])
