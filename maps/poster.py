"""Printable partition posters (网格划分图) of a town or a village/community: A3/A0, PNG and PDF."""

from __future__ import annotations

import functools
import io
import math
import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import shapely
from matplotlib import font_manager, patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import Text
from pyproj import CRS
from sqlalchemy import Engine, func, select

from gis import models
from gis.errors import GridmapError, NotFound
from gis.names import INFERRED_STREET_LABEL, flag_text, is_water_grid, plan_status_name
from gis.plans import PlanInfo, get_plan, read_grids, read_lines
from gis.store import read_layer, territory_row
from gis.times import local_text


class PaperSize(StrEnum):
    """The paper sizes a poster is made for (ISO 216)."""

    A3 = "A3"
    A0 = "A0"


class PosterFormat(StrEnum):
    """PNG (raster, the first page) or PDF (vector, fonts embedded, every page)."""

    png = "png"
    pdf = "pdf"


#: Paper in millimetres, landscape (width, height); portrait swaps them.
PAPER_MM = {PaperSize.A3: (420.0, 297.0), PaperSize.A0: (1189.0, 841.0)}
#: PNG resolution: 150 dpi on A3 (2480 × 1754 px); 100 dpi on A0 (4681 × 3311 px, about
#: 15 megapixels — print A0 from the PDF, which is vector).
PNG_DPI = {PaperSize.A3: 150, PaperSize.A0: 100}
MEDIA_TYPES = {PosterFormat.png: "image/png", PosterFormat.pdf: "application/pdf"}

#: Where the project's set-up (scripts/setup.sh: Debian package fonts-noto-cjk) puts the CJK
#: font; the first folder holding both collections is used.
FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/noto-cjk"),
             Path("/usr/share/fonts/google-noto-cjk"))
FONT_FILES = ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc")
#: The face of the collections used for every text (simplified Chinese glyph forms).
FAMILY = "Noto Sans CJK SC"

MM_PER_PT = 25.4 / 72
#: Portrait paper is used when the map's scale on it is this much larger than on landscape.
PORTRAIT_GAIN = 1.08
#: Share of the page width the side panel (summary, legend, table) takes: landscape, portrait.
SIDE_SHARE = {False: 0.335, True: 0.40}
LEVEL_NAMES = {"town": "街道/镇", "village": "社区/村"}
#: Soft fills; neighbouring grids never share one (greedy colouring of the adjacency graph).
PALETTE = ("#f6c9c4", "#c5daea", "#cfe8c6", "#e2d3e8", "#fde0b6", "#fbf5bf", "#e8dcc6",
           "#f9d9e8", "#c9ece6", "#dfe6c2", "#d6d0ef", "#f2e3d3")
#: How each road class is drawn: legend label, line width (pt on A3), colour, casing colour.
ROAD_STYLES: dict[str, tuple[str, float, str, str | None]] = {
    "motorway": ("高速公路", 3.2, "#e8875c", "#9c4a2a"),
    "trunk": ("快速路", 3.0, "#ee9a62", "#9c4a2a"),
    "primary": ("主干路", 2.6, "#f4b26b", "#a0642a"),
    "secondary": ("次干路", 2.2, "#f8d77a", "#a58b2e"),
    "tertiary": ("支路", 1.7, "#ffffff", "#8c8c8c"),
    "residential": ("街坊路", 1.3, "#ffffff", "#9a9a9a"),
    "unclassified": ("其他道路", 1.1, "#ffffff", "#9a9a9a"),
    "service": ("小区路/巷", 0.7, "#a0a0a0", None),
    "footway": ("步行道", 0.5, "#b8a68c", None),
}
#: Lines steeper than this (degrees) get their names written upright, one character a line.
VERTICAL_ANGLE = 60.0
#: The zone a poster's dates are in unless told (GRIDMAP_TIMEZONE's default).
DEFAULT_ZONE = "Asia/Shanghai"
#: The gid of a label's halo copy (white outlines under the label, not text of its own).
HALO_GID = "halo"
#: The style of a road whose class is not in :data:`ROAD_STYLES`.
OTHER_ROAD = "unclassified"
WATER_LINE, WATER_FILL, WATER_TEXT = "#4a90c8", "#b8daf2", "#1f5f99"
RAIL_COLOUR, RIDGE_COLOUR = "#3a3a3a", "#8b5a2b"
GRID_EDGE, VILLAGE_EDGE, AREA_EDGE = "#505050", "#7a2e8e", "#c0392b"
#: The inferred streets (推测巷道): thin, dashed, under the grid lines, never labelled (they
#: are not in the roads layer: a planner checks them on the ground).
STREET_COLOUR, STREET_WIDTH, STREET_DASH = "#8c6d8c", 0.45, (0, (2.4, 1.6))
TEXT_COLOUR, MUTED, ROAD_LABEL_COLOUR = "#1a1a1a", "#555555", "#3d3d3d"

#: matplotlib's settings while a poster is drawn: TrueType (Type 42) fonts in the PDF, so
#: the text stays text (searchable, extractable) and the glyphs are embedded. ``ps.fonttype``
#: 42 too: matplotlib's PDF backend sizes its font subsets by it (256 characters for Type 3),
#: and each subset costs a fontTools pass over the 19 MB CJK collection.
RC: Any = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.family": FAMILY,
           "axes.unicode_minus": False, "hatch.linewidth": 0.6, "path.simplify": True,
           "pdf.compression": 6}
_RENDER_LOCK = threading.Lock()


# --- fonts --------------------------------------------------------------------------------


class FontMissing(GridmapError):
    """The CJK font the posters need is not installed."""

    code = "font-missing"


class GlyphMissing(GridmapError):
    """A text to print has a character the CJK font has no glyph for."""

    code = "glyph-missing"


@dataclass(frozen=True)
class Fonts:
    """The registered CJK collections and the family every text uses."""

    regular: Path
    bold: Path
    family: str = FAMILY

    def props(self, size: float, *, bold: bool = False) -> FontProperties:
        return FontProperties(family=self.family, weight="bold" if bold else "normal",
                              size=size)


def find_cjk_font(dirs: Iterable[Path] = FONT_DIRS) -> tuple[Path, Path]:
    """The regular and bold Noto Sans CJK collections, or FontMissing saying how to get them."""
    searched = []
    for folder in dirs:
        regular, bold = (folder / name for name in FONT_FILES)
        searched.append(str(folder))
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise FontMissing(
        "海报需要中文字体 Noto Sans CJK，但没有安装：请运行 scripts/setup.sh（安装 Debian 软件包 "
        f"fonts-noto-cjk） / posters need the CJK font Noto Sans CJK ({', '.join(FONT_FILES)}),"
        f" not found in {', '.join(searched)}: run scripts/setup.sh, which installs the "
        "Debian package fonts-noto-cjk")


@functools.cache
def register_fonts() -> Fonts:
    """Register the CJK collections with matplotlib's font manager by path (once), and check
    that the family resolves to them."""
    regular, bold = find_cjk_font()
    for path in (regular, bold):
        font_manager.fontManager.addfont(str(path))
    for path, weight in ((regular, "normal"), (bold, "bold")):
        found = font_manager.fontManager.findfont(
            FontProperties(family=FAMILY, weight=weight), fallback_to_default=False)
        if Path(found).resolve() != path.resolve():
            raise FontMissing(f"matplotlib resolves {FAMILY} ({weight}) to {found}, not "
                              f"{path}; run scripts/setup.sh (fonts-noto-cjk)")
    return Fonts(regular, bold)


@functools.cache
def _charset(path: Path) -> frozenset[int]:
    """The code points the collection's simplified-Chinese face has glyphs for."""
    from fontTools.ttLib import TTCollection

    faces = TTCollection(str(path), lazy=True).fonts
    for face in faces:
        if face["name"].getDebugName(1) == FAMILY:
            return frozenset(face.getBestCmap())
    return frozenset(faces[0].getBestCmap())


def check_glyphs(texts: Iterable[str], fonts: Fonts) -> None:
    """GlyphMissing naming the first character of ``texts`` the font cannot draw."""
    have = _charset(fonts.regular) & _charset(fonts.bold)
    for text in texts:
        for char in text:
            if char not in "\n\t" and ord(char) not in have:
                raise GlyphMissing(
                    f"字体 {fonts.family} 没有“{char}”（U+{ord(char):04X}）的字形，出现在“{text}”"
                    f"中；海报不会用方框代替文字 / the font {fonts.family} has no glyph for "
                    f"U+{ord(char):04X} in {text!r}; posters never print empty boxes")


# --- what a poster shows ----------------------------------------------------------------


@dataclass
class PosterData:
    """Everything a poster of one town or village shows, in the territory's metric CRS."""

    plan: PlanInfo
    territory_name: str
    metric_epsg: int
    code: str
    name: str
    #: ``town`` or ``village``.
    level: str
    #: Names of the enclosing areas, outermost first (district, town).
    parents: list[str]
    area: Any
    #: The town's villages/communities (code, name); empty for a village poster.
    villages: gpd.GeoDataFrame
    #: The area's grids, by code (code, name, village_code, kind, households, population,
    #: boundary_text).
    grids: gpd.GeoDataFrame
    #: Roads, water, railways and ridges near the area (layer, class, name).
    barriers: gpd.GeoDataFrame
    made_on: date
    #: The zone the dates are written in (GRIDMAP_TIMEZONE).
    zone: str = "Asia/Shanghai"
    #: The plan's inferred streets near the area (name, width_m), clipped to the map.
    streets: gpd.GeoDataFrame | None = None

    @property
    def title(self) -> str:
        return f"{self.name}网格划分图"


def _read_barriers(engine: Engine, territory_id: int, window: Any) -> gpd.GeoDataFrame:
    """The territory's barrier lines (WGS84) meeting ``window`` (a WGS84 polygon)."""
    table = models.BarrierFeature.__table__
    envelope = func.ST_GeomFromText(shapely.to_wkt(window), models.SRID)
    query = select(table.c.layer, table.c["class"].label("class"), table.c.name,
                   func.ST_AsBinary(table.c.geom).label("wkb")).where(
        table.c.territory_id == territory_id,
        func.ST_Intersects(table.c.geom, envelope)).order_by(table.c.id)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=["layer", "class", "name", "wkb"])
    geoms = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    frame = frame.astype(object).where(frame.notna(), None)
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{models.SRID}")


def load_poster_data(engine: Engine, plan_id: int, area_code: str, *,
                     made_on: date | None = None, zone: str = DEFAULT_ZONE) -> PosterData:
    """Read what the poster of town or village ``area_code`` under plan ``plan_id`` shows.

    NotFound when the plan's territory has no such town or village, or the plan has no
    grids in it.
    """
    plan = get_plan(engine, plan_id)
    territory = territory_row(engine, plan.territory_id)
    admin = read_layer(engine, plan.territory_id, "admin_areas")
    match = admin[(admin["code"] == area_code) & admin["level"].isin(list(LEVEL_NAMES))]
    if match.empty:
        raise NotFound(
            f"方案 {plan_id} 所属区域“{territory.name}”没有代码为 {area_code} 的街道/镇或社区/村 / "
            f"the territory of plan {plan_id} ({territory.name}) has no town or "
            f"village/community with code {area_code}")
    area = match.iloc[0]
    level = str(area["level"])
    if level == "town":
        villages = admin[(admin["level"] == "village") & (admin["parent_code"] == area_code)]
        codes = set(villages["code"])
    else:
        villages = admin.iloc[0:0]
        codes = {area_code}
    prefix = area_code if all(c.startswith(area_code) for c in codes) else None
    grids = read_grids(engine, plan_id, town=prefix)
    grids = grids[grids["village_code"].isin(codes)].sort_values("code")
    if grids.empty:
        raise NotFound(
            f"方案 {plan_id} 在{area['name']}（{area_code}）没有网格 / plan {plan_id} has no "
            f"grids in {area_code}")
    parents: list[str] = []
    names = dict(zip(admin["code"], admin["name"], strict=True))
    up = dict(zip(admin["code"], admin["parent_code"], strict=True))
    parent = up.get(area_code)
    while parent and parent in names and len(parents) < 5:
        parents.insert(0, str(names[parent]))
        parent = up.get(parent)
    epsg = int(territory.metric_epsg)
    outline = shapely.union_all([area.geometry, *grids.geometry])
    x0, y0, x1, y1 = gpd.GeoSeries([outline], crs=4326).to_crs(epsg).total_bounds
    half = max(x1 - x0, y1 - y0) * 0.62
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    window_m = shapely.box(cx - half, cy - half, cx + half, cy + half)
    window = gpd.GeoSeries([window_m], crs=epsg).to_crs(4326).iloc[0]
    barriers = _read_barriers(engine, plan.territory_id, window).to_crs(epsg)
    barriers["geometry"] = shapely.clip_by_rect(barriers.geometry.to_numpy(), *window_m.bounds)
    barriers = barriers[~barriers.geometry.is_empty]
    streets = read_lines(engine, plan_id, kind="inferred_street",
                         bbox=tuple(shapely.bounds(window))).to_crs(epsg)
    streets["geometry"] = shapely.clip_by_rect(streets.geometry.to_numpy(), *window_m.bounds)
    streets = streets[~streets.geometry.is_empty]
    return PosterData(
        plan=plan, territory_name=str(territory.name), metric_epsg=epsg, code=area_code,
        name=str(area["name"]), level=level, parents=parents,
        area=gpd.GeoSeries([area.geometry], crs=4326).to_crs(epsg).iloc[0],
        villages=villages[["code", "name", "geometry"]].to_crs(epsg).reset_index(drop=True),
        grids=grids.to_crs(epsg).reset_index(drop=True),
        barriers=barriers.reset_index(drop=True),
        made_on=made_on or datetime.now(ZoneInfo(zone)).date(), zone=zone,
        streets=streets.reset_index(drop=True))


# --- geometry helpers ---------------------------------------------------------------------


def colour_grids(geoms: np.ndarray, n_colours: int = len(PALETTE)) -> list[int]:
    """A palette index per grid such that grids sharing a boundary differ (greedy, largest
    degree first, the least used free colour)."""
    n = len(geoms)
    neighbours: list[set[int]] = [set() for _ in range(n)]
    if n:
        a, b = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=0.5)
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            if i != j:
                neighbours[i].add(j)
    colours = [-1] * n
    used = [0] * n_colours
    for i in sorted(range(n), key=lambda k: (-len(neighbours[k]), k)):
        taken = [colours[j] for j in neighbours[i] if colours[j] >= 0]
        free = [c for c in range(n_colours) if c not in taken]
        pick = min(free or range(n_colours),
                   key=lambda c: (taken.count(c), used[c], c))
        colours[i] = pick
        used[pick] += 1
    return colours


def _estimated(grid: Any) -> bool:
    value = getattr(grid, "households_estimated", 0)
    return bool(value == value and value)   # (NaN: none)


def _flags_note(grid: Any) -> str:
    """A grid's flags in Chinese with their reason, for the table (empty when regular)."""
    flags = getattr(grid, "flags", None)
    if flags is None or (isinstance(flags, float) and flags != flags):
        return ""
    reason = getattr(grid, "flag_reason", "")
    return flag_text(list(flags), reason if isinstance(reason, str) else "")


def _polygon_path(geom: Any) -> MplPath:
    """A (multi)polygon as one matplotlib path, holes reversed so they stay empty."""
    paths = []
    for part in shapely.get_parts(shapely.orient_polygons(geom)):
        for ring in (part.exterior, *part.interiors):
            paths.append(MplPath(np.asarray(ring.coords)[:, :2], closed=True))
    return MplPath.make_compound_path(*paths) if paths else MplPath(np.zeros((1, 2)))


def _line_parts(geoms: Iterable[Any]) -> list[np.ndarray]:
    """Coordinates of every line part; polygons give their rings."""
    out: list[np.ndarray] = []
    for geom in geoms:
        if geom is None or geom.is_empty:
            continue
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            geom = geom.boundary
        for part in shapely.get_parts(geom):
            if part.geom_type in ("LineString", "LinearRing") and not part.is_empty:
                out.append(np.asarray(part.coords)[:, :2])
    return out


def _text_em(text: str) -> float:
    """Estimated width of one line of ``text`` in em (CJK full width, Latin/digits ~0.56)."""
    return sum(1.0 if ord(c) >= 0x2E80 else (0.56 if c.isdigit() else 0.62) for c in text)


#: Punctuation that never begins a line (it stays at the end of the line before).
NO_LINE_START = frozenset("，。、；：？！）」』”’%,.;:)")


def wrap(text: str, width_em: float) -> list[str]:
    """``text`` in lines about ``width_em`` wide; runs of digits/Latin stay whole and
    punctuation never begins a line."""
    lines: list[str] = []
    line = ""
    for token in re.findall(r"[0-9A-Za-z.\-/]+|.", text or ""):
        if line and _text_em(line + token) > width_em and token not in NO_LINE_START:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    if line or not lines:
        lines.append(line)
    return lines


def _nice_length(target: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``target``."""
    base = 10 ** math.floor(math.log10(target))
    return max(m * base for m in (1, 2, 5) if m * base <= target)


def _candidates(poly: Any, n: int = 36) -> Iterator[tuple[float, float, float]]:
    """Label positions inside ``poly``: the centre of its largest inscribed circle first,
    then points of a lattice, farthest from the boundary first; (x, y, room in metres)."""
    if poly.geom_type == "MultiPolygon":
        poly = max(shapely.get_parts(poly), key=lambda p: p.area)
    circle = shapely.maximum_inscribed_circle(poly)
    cx, cy = np.asarray(circle.coords)[0]
    yield float(cx), float(cy), float(circle.length)
    x0, y0, x1, y1 = poly.bounds
    step = math.sqrt(max(poly.area, 1.0) / n)
    xs, ys = np.meshgrid(np.arange(x0 + step / 2, x1, step), np.arange(y0 + step / 2, y1, step))
    px, py = xs.ravel(), ys.ravel()
    inside = shapely.contains_xy(poly, px, py)
    px, py = px[inside], py[inside]
    room = shapely.distance(poly.exterior, shapely.points(px, py))
    for k in np.argsort(-room):
        yield float(px[k]), float(py[k]), float(room[k])


# --- layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rect:
    """A rectangle on the page in millimetres from the lower left corner."""

    x: float
    y: float
    w: float
    h: float

    @property
    def top(self) -> float:
        return self.y + self.h


@dataclass(frozen=True)
class TableRow:
    """One grid's row of the table, wrapped."""

    code: str
    name: list[str]
    households: str
    boundary: list[str]

    @property
    def lines(self) -> int:
        return max(len(self.name), len(self.boundary), 1)


class _Sheet:
    """Draws the pages of one poster (first page: map and table; then the table's rest)."""

    def __init__(self, data: PosterData, size: PaperSize, fonts: Fonts) -> None:
        self.data, self.size, self.fonts = data, size, fonts
        long_side, short_side = PAPER_MM[size]
        self.s = long_side / 420.0           # lengths scale with the paper
        self.k = self.s ** 0.7               # text grows less, so A0 holds more
        self.margin = 11.0 * self.s
        self.gap = 6.0 * self.s
        x0, y0, x1, y1 = shapely.union_all([data.area, *data.grids.geometry]).bounds
        width, height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        # Portrait when the map comes out larger on it (a tall area), else landscape.
        scales = {}
        for portrait in (False, True):
            page_w = short_side if portrait else long_side
            page_h = long_side if portrait else short_side
            map_w = page_w * (1 - SIDE_SHARE[portrait]) - 2 * self.margin - self.gap
            map_h = page_h - self._chrome_h()
            scales[portrait] = min(map_w / width, map_h / height)
        self.portrait = scales[True] > PORTRAIT_GAIN * scales[False]
        self.page_w, self.page_h = ((short_side, long_side) if self.portrait
                                    else (long_side, short_side))
        self.side_w = self.page_w * SIDE_SHARE[self.portrait]
        self.fs_table = 6.4 * self.k
        self.halo_width = 2.2 * self.k
        self.rows = self._table_rows(self.side_w)
        # Continuation pages: as many frames as fit at 85% of the side panel's width or more,
        # spread over the page's width (rows wrapped again for that width).
        inner = self.page_w - 2 * self.margin
        self.per_page = max(1, int((inner + self.gap) // (0.85 * self.side_w + self.gap)))
        self.cont_w = (inner - (self.per_page - 1) * self.gap) / self.per_page
        self.cont_rows = self._table_rows(self.cont_w)

    # -- helpers

    def _text(self, ax: Axes, x: float, y: float, s: str, *, zorder: float,
              **kw: Any) -> Text:
        """A map label with a white halo: the halo is a copy of the text drawn as white
        outlines just under it, so the label itself stays real text (searchable and copyable
        in the PDF; a path effect on the label would turn it into outlines too)."""
        halo = ax.text(x, y, s, zorder=zorder - 0.001, **{**kw, "color": "white"})
        halo.set_path_effects([patheffects.Stroke(linewidth=self.halo_width,
                                                  foreground="white")])
        halo.set_gid(HALO_GID)
        return ax.text(x, y, s, zorder=zorder, **kw)

    def _chrome_h(self) -> float:
        """Height (mm) of the title block and footer: what the map cannot use."""
        title = self.margin + (24 * 1.3 + 9.5 * 1.6) * self.k * MM_PER_PT + 2.0 * self.s
        return title + self.margin * 0.7 + 6.5 * 1.8 * self.k * MM_PER_PT

    def figure(self) -> Figure:
        fig = Figure(figsize=(self.page_w / 25.4, self.page_h / 25.4), dpi=72,
                     facecolor="white")
        FigureCanvasAgg(fig)
        return fig

    def axes(self, fig: Figure, rect: Rect) -> Axes:
        return fig.add_axes((rect.x / self.page_w, rect.y / self.page_h,
                             rect.w / self.page_w, rect.h / self.page_h))

    def text(self, fig: Figure, x_mm: float, y_mm: float, s: str, size: float, *,
             bold: bool = False, **kw: Any) -> Text:
        return fig.text(x_mm / self.page_w, y_mm / self.page_h, s,
                        fontproperties=self.fonts.props(size, bold=bold),
                        color=kw.pop("color", TEXT_COLOUR), **kw)

    def pt_mm(self, pt: float) -> float:
        return pt * MM_PER_PT

    # -- header and footer

    def header(self, fig: Figure, title: str) -> float:
        """Title, subtitle and rule; returns the y (mm) below them."""
        d = self.data
        top = self.page_h - self.margin
        title_fs, sub_fs = 24 * self.k, 9.5 * self.k
        self.text(fig, self.page_w / 2, top, title, title_fs, bold=True, ha="center",
                  va="top")
        y = top - self.pt_mm(title_fs * 1.3)
        status = plan_status_name(d.plan.status)
        published = (f"，{local_text(d.plan.published_at, d.zone)[:10]} 发布"
                     if d.plan.published_at is not None else "")
        where = " · ".join([*d.parents, d.name])
        sub = (f"{where}    网格划分方案第 {d.plan.version} 版（{status}{published}，方案编号 "
               f"{d.plan.id}）    制图日期 {d.made_on:%Y年%m月%d日}")
        self.text(fig, self.page_w / 2, y, sub, sub_fs, ha="center", va="top", color=MUTED)
        y -= self.pt_mm(sub_fs * 1.6)
        fig.add_artist(Line2D([self.margin / self.page_w, 1 - self.margin / self.page_w],
                              [y / self.page_h] * 2, color=AREA_EDGE, lw=1.4 * self.k))
        return y - 2.0 * self.s

    def footer(self, fig: Figure) -> float:
        """Notes at the foot; returns the y (mm) above them."""
        fs = 6.5 * self.k
        y = self.margin * 0.7
        crs = CRS.from_epsg(self.data.metric_epsg).name
        note = (f"坐标系：{crs}（EPSG:{self.data.metric_epsg}）  网格编码：12 位社区/村代码 + 3 位"
                "序号（901 起为专属网格）  四至：网格东、南、西、北所至的道路、河流或相邻网格  "
                "制图：gridmap")
        self.text(fig, self.margin, y, note, fs, va="bottom", color=MUTED)
        return y + self.pt_mm(fs * 1.8)

    def page_number(self, fig: Figure, page: int, pages: int) -> None:
        more = f"第 {page} 页，共 {pages} 页" + ("（网格一览表续见下页）" if page < pages else "")
        self.text(fig, self.page_w - self.margin, self.margin * 0.7, more, 6.5 * self.k,
                  ha="right", va="bottom", color=MUTED)

    # -- the table

    def columns(self, width: float) -> list[tuple[str, float]]:
        """(heading, width in mm) of the table's columns in a frame ``width`` mm wide."""
        em = self.pt_mm(self.fs_table)
        pad = 1.6 * em
        code = _text_em("440111001001001") * em + pad
        name = 8.4 * em + pad
        households = 3.2 * em + pad
        return [("网格编码", code), ("网格名称", name), ("户数", households),
                ("四至", max(width - code - name - households, 8 * em))]

    def _table_rows(self, width: float) -> list[TableRow]:
        cols = self.columns(width)
        em = self.pt_mm(self.fs_table)
        name_em = (cols[1][1] - 1.6 * em) / em
        boundary_em = (cols[3][1] - 1.6 * em) / em
        # A grid holding estimated households is marked * (the summary says how many); a
        # flagged grid says why under its 四至 (跨越河流/山脊/铁路: which one, and why).
        return [TableRow(str(g.code), wrap(str(g.name or ""), name_em),
                         f"{int(g.households):,}" + ("*" if _estimated(g) else ""),
                         wrap(str(g.boundary_text or ""), boundary_em)
                         + (wrap("※" + _flags_note(g), boundary_em) if _flags_note(g) else []))
                for g in self.data.grids.itertuples()]

    def line_h(self) -> float:
        return self.pt_mm(self.fs_table * 1.32)

    def row_h(self, row: TableRow) -> float:
        return row.lines * self.line_h() + 0.55 * self.line_h()

    def header_h(self) -> float:
        return self.line_h() * 1.6

    def fit(self, rows: list[TableRow], height: float) -> int:
        """How many of ``rows`` fit in a frame ``height`` mm tall."""
        used, n = self.header_h(), 0
        for row in rows:
            used += self.row_h(row)
            if used > height:
                break
            n += 1
        return n

    def table(self, fig: Figure, rect: Rect, rows: list[TableRow]) -> None:
        ax = self.axes(fig, rect)
        ax.set_xlim(0, rect.w)
        ax.set_ylim(rect.h, 0)
        ax.set_axis_off()
        cols = self.columns(rect.w)
        em = self.pt_mm(self.fs_table)
        regular = self.fonts.props(self.fs_table)
        bold = self.fonts.props(self.fs_table, bold=True)
        lh = self.line_h()
        hh = self.header_h()
        ax.add_patch(Rectangle((0, 0), rect.w, hh, facecolor="#e9e4dc", edgecolor="none"))
        x = 0.0
        for heading, width in cols:
            ax.text(x + 0.8 * em, hh / 2, heading, fontproperties=bold, va="center",
                    ha="left", color=TEXT_COLOUR)
            x += width
        y = hh
        for i, row in enumerate(rows):
            h = self.row_h(row)
            if i % 2:
                ax.add_patch(Rectangle((0, y), rect.w, h, facecolor="#f6f3ee",
                                       edgecolor="none"))
            cells = (row.code, "\n".join(row.name), row.households, "\n".join(row.boundary))
            x = 0.0
            for (_, width), cell, right in zip(cols, cells, (False, False, True, False),
                                               strict=True):
                ax.text(x + width - 0.8 * em if right else x + 0.8 * em, y + 0.3 * lh, cell,
                        fontproperties=regular, va="top", ha="right" if right else "left",
                        linespacing=1.32, color=TEXT_COLOUR)
                x += width
            y += h
            ax.plot([0, rect.w], [y, y], color="#cfc8bc", lw=0.4 * self.k)
        ax.plot([0, rect.w], [hh, hh], color="#8a8276", lw=0.8 * self.k)
        ax.plot([0, rect.w], [0, 0], color="#8a8276", lw=0.8 * self.k)
        ax.plot([0, rect.w], [y, y], color="#8a8276", lw=0.8 * self.k)

    # -- pages

    def page_one(self) -> tuple[Figure, int]:
        """The poster: map, summary, legend and as many table rows as fit; how many fit."""
        fig = self.figure()
        below_title = self.header(fig, self.data.title)
        above_footer = self.footer(fig)
        body = Rect(self.margin, above_footer, self.page_w - 2 * self.margin,
                    below_title - above_footer)
        side = Rect(body.x + body.w - self.side_w, body.y, self.side_w, body.h)
        map_rect = Rect(body.x, body.y, body.w - self.side_w - self.gap, body.h)
        legend_handles = self.draw_map(fig, map_rect)
        y = self.summary(fig, side)
        y = self.legend(fig, side, y, legend_handles)
        fs = 9.5 * self.k
        self.text(fig, side.x, y, "网格一览表", fs, bold=True, va="top")
        y -= self.pt_mm(fs * 1.7)
        rect = Rect(side.x, side.y, side.w, y - side.y)
        n = self.fit(self.rows, rect.h)
        self.table(fig, Rect(rect.x, rect.top - self.header_h() - sum(
            self.row_h(r) for r in self.rows[:n]), rect.w,
            self.header_h() + sum(self.row_h(r) for r in self.rows[:n])), self.rows[:n])
        return fig, n

    def continuation_height(self) -> float:
        fig = self.figure()
        return self.header(fig, "") - self.footer(fig)

    def plan_pages(self, first: int) -> list[list[list[TableRow]]]:
        """The rest of the table (after ``first`` rows) cut into frames, frames into pages."""
        rest = self.cont_rows[first:]
        height = self.continuation_height()
        frames: list[list[TableRow]] = []
        while rest:
            n = max(1, self.fit(rest, height))
            frames.append(rest[:n])
            rest = rest[n:]
        per = self.per_page
        return [frames[i:i + per] for i in range(0, len(frames), per)]

    def continuation(self, frames: list[list[TableRow]], page: int, pages: int) -> Figure:
        fig = self.figure()
        top = self.header(fig, f"{self.data.name}网格一览表（续）")
        self.footer(fig)
        self.page_number(fig, page, pages)
        x = self.margin
        for rows in frames:
            h = self.header_h() + sum(self.row_h(r) for r in rows)
            self.table(fig, Rect(x, top - h, self.cont_w, h), rows)
            x += self.cont_w + self.gap
        return fig

    def pages(self, *, first_only: bool) -> Iterator[Figure]:
        first, n = self.page_one()
        more = self.plan_pages(n)
        total = 1 + len(more)
        if total > 1:
            self.page_number(first, 1, total)
        yield first
        if first_only:
            return
        for i, frames in enumerate(more, start=2):
            yield self.continuation(frames, i, total)

    # -- side panel

    def summary(self, fig: Figure, side: Rect) -> float:
        d = self.data
        fs = 8.2 * self.k
        grids = d.grids
        dedicated = int((grids["kind"] == "dedicated").sum())
        households, population = int(grids["households"].sum()), int(grids["population"].sum())
        lines = [f"网格 {len(grids)} 个（综合网格 {len(grids) - dedicated} 个，专属网格 "
                 f"{dedicated} 个）", f"户数 {households:,} 户，人口 {population:,} 人"]
        comprehensive = grids[grids["kind"] != "dedicated"]["households"]
        if len(comprehensive):
            lines.append(f"综合网格户数 {int(comprehensive.min())}–{int(comprehensive.max())} 户，"
                         f"平均 {comprehensive.mean():.0f} 户")
        estimated = int(grids["households_estimated"].fillna(0).sum()) \
            if "households_estimated" in grids else 0
        if estimated:
            lines.append(f"其中估算 {estimated:,} 户（无户数的住宅按建筑面积估算；表中户数带 * "
                         "的网格含估算）")
        if d.level == "town":
            lines.append(f"下辖社区/村 {len(d.villages)} 个：" + "、".join(d.villages["name"]))
        y = side.top
        self.text(fig, side.x, y, "概况", 9.5 * self.k, bold=True, va="top")
        y -= self.pt_mm(9.5 * self.k * 1.6)
        width_em = side.w / self.pt_mm(fs)
        for line in lines:
            for part in wrap(line, width_em):
                self.text(fig, side.x, y, part, fs, va="top")
                y -= self.pt_mm(fs * 1.45)
        return y - 2.0 * self.s

    def legend(self, fig: Figure, side: Rect, y: float, handles: list[Any]) -> float:
        fs = 9.5 * self.k
        self.text(fig, side.x, y, "图例", fs, bold=True, va="top")
        y -= self.pt_mm(fs * 1.5)
        legend = fig.legend(handles=handles, loc="upper left",
                            bbox_to_anchor=(side.x / self.page_w, y / self.page_h),
                            ncols=2, frameon=False, prop=self.fonts.props(7.4 * self.k),
                            borderaxespad=0, borderpad=0, handlelength=2.6,
                            columnspacing=1.6, labelspacing=0.55)
        box = legend.get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
        height_mm = box.height / fig.dpi * 25.4
        return y - height_mm - 4.0 * self.s

    # -- the map

    def draw_map(self, fig: Figure, rect: Rect) -> list[Any]:
        """The map in ``rect``; returns the legend's handles."""
        d = self.data
        geoms = d.grids.geometry.to_numpy()
        x0, y0, x1, y1 = shapely.union_all([d.area, *geoms]).bounds
        pad = 0.05 * max(x1 - x0, y1 - y0)
        x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
        # Fill the panel: widen the short side so metres per mm are the same both ways.
        if (x1 - x0) / (y1 - y0) < rect.w / rect.h:
            half = (y1 - y0) * rect.w / rect.h / 2
            cx = (x0 + x1) / 2
            x0, x1 = cx - half, cx + half
        else:
            half = (x1 - x0) * rect.h / rect.w / 2
            cy = (y0 + y1) / 2
            y0, y1 = cy - half, cy + half
        ax = self.axes(fig, rect)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_linewidth(1.0 * self.k)
            spine.set_color("#333333")
        self.m_per_pt = (x1 - x0) / (rect.w / MM_PER_PT)
        self.window = shapely.box(x0, y0, x1, y1)
        self.placed: list[Any] = []
        self.inner = self.data.area.buffer(3 * self.m_per_pt)
        k = self.k
        handles: list[Any] = []

        colours = colour_grids(geoms)
        kinds = d.grids["kind"].to_numpy()
        wet = np.array([is_water_grid(k, n) for k, n in zip(kinds, d.grids["name"],
                                                             strict=True)], dtype=bool)
        for geom, colour, kind, water in zip(geoms, colours, kinds, wet, strict=True):
            dedicated = kind == "dedicated"
            # A river or lake made a grid of its own is drawn as water, hatched.
            ax.add_patch(PathPatch(_polygon_path(geom),
                                   facecolor=WATER_FILL if water else PALETTE[colour],
                                   edgecolor="none", lw=0, zorder=1,
                                   hatch="///" if dedicated else None,
                                   hatchcolor=(WATER_LINE if water else "#9a8f80")
                                   if dedicated else None))
        handles.append(Patch(facecolor=PALETTE[0], edgecolor=GRID_EDGE, lw=0.5 * k,
                             label="综合网格（相邻网格不同色）"))
        if ((kinds == "dedicated") & ~wet).any():
            handles.append(Patch(facecolor=PALETTE[1], edgecolor=GRID_EDGE, lw=0.5 * k,
                                 hatch="///", hatchcolor="#9a8f80", label="专属网格"))
        if wet.any():
            handles.append(Patch(facecolor=WATER_FILL, edgecolor=GRID_EDGE, lw=0.5 * k,
                                 hatch="///", hatchcolor=WATER_LINE, label="水域专属网格"))

        handles += self.draw_barriers(ax)
        handles += self.draw_streets(ax)

        outside = self.window.difference(d.area)
        if not outside.is_empty:
            ax.add_patch(PathPatch(_polygon_path(outside), facecolor="white", alpha=0.55,
                                   edgecolor="none", zorder=4))
        ax.add_collection(LineCollection(_line_parts(geoms), colors=GRID_EDGE, lw=0.7 * k,
                                         zorder=5))
        handles.append(Line2D([], [], color=GRID_EDGE, lw=0.7 * k, label="网格界线"))
        if d.level == "town" and len(d.villages):
            ax.add_collection(LineCollection(
                _line_parts(d.villages.geometry), colors=VILLAGE_EDGE, lw=1.5 * k,
                linestyles=(0, (5, 2.5)), zorder=6))
            handles.append(Line2D([], [], color=VILLAGE_EDGE, lw=1.5 * k, ls=(0, (5, 2.5)),
                                  label="社区/村界"))
        ax.add_collection(LineCollection(_line_parts([d.area]), colors=AREA_EDGE,
                                         lw=6.0 * k, alpha=0.22, zorder=7))
        ax.add_collection(LineCollection(_line_parts([d.area]), colors=AREA_EDGE, lw=2.2 * k,
                                         zorder=7))
        handles.append(Line2D([], [], color=AREA_EDGE, lw=2.2 * k,
                              label="街道/镇界" if d.level == "town" else "社区/村界（本图范围）"))

        self.scale_bar(ax, rect)
        self.north_arrow(ax, rect)
        self.label_grids(ax)
        if d.level == "town":
            self.label_villages(ax)
        self.label_barriers(ax)
        return handles

    def draw_streets(self, ax: Axes) -> list[Any]:
        """The plan's inferred streets: thin dashed lines above the roads and under the grid
        lines and the mask outside the area; no labels."""
        streets = self.data.streets
        if streets is None or streets.empty:
            return []
        k = self.k
        ax.add_collection(LineCollection(_line_parts(streets.geometry), colors=STREET_COLOUR,
                                         lw=STREET_WIDTH * k, linestyles=STREET_DASH,
                                         zorder=3.8, gid="inferred-streets"))
        return [Line2D([], [], color=STREET_COLOUR, lw=STREET_WIDTH * k * 1.6, ls=STREET_DASH,
                       label=INFERRED_STREET_LABEL)]

    def draw_barriers(self, ax: Axes) -> list[Any]:
        b = self.data.barriers
        k = self.k
        handles: list[Any] = []
        water = b[b["layer"] == "water"]
        if len(water):
            polys = [g for g in water.geometry if g.geom_type in ("Polygon", "MultiPolygon")]
            lines = [g for g in water.geometry if g.geom_type not in ("Polygon", "MultiPolygon")]
            if polys:
                ax.add_collection(PatchCollection(
                    [PathPatch(_polygon_path(p)) for p in polys], facecolor=WATER_FILL,
                    edgecolor=WATER_LINE, lw=0.6 * k, zorder=2))
            if lines:
                ax.add_collection(LineCollection(_line_parts(lines), colors=WATER_LINE,
                                                 lw=2.0 * k, capstyle="round", zorder=2.2))
            handles.append(Patch(facecolor=WATER_FILL, edgecolor=WATER_LINE, lw=0.8 * k,
                                 label="河流/水域"))
        roads = b[b["layer"] == "roads"]
        classes = [c if c in ROAD_STYLES else OTHER_ROAD for c in roads["class"]]
        present = [c for c in reversed(ROAD_STYLES) if c in set(classes)]  # minor first
        for order, cls in enumerate(present):
            label, width, colour, casing = ROAD_STYLES[cls]
            parts = _line_parts(g for g, c in zip(roads.geometry, classes, strict=True)
                                if c == cls)
            z = 3 + order * 0.01
            if casing:
                ax.add_collection(LineCollection(parts, colors=casing, lw=(width + 0.9) * k,
                                                 capstyle="round", zorder=z))
            ax.add_collection(LineCollection(parts, colors=colour, lw=width * k,
                                             capstyle="round", zorder=z + 0.005))
        for cls in reversed(present):
            label, width, colour, casing = ROAD_STYLES[cls]
            effects = ([patheffects.Stroke(linewidth=(width + 0.9) * k, foreground=casing),
                        patheffects.Normal()] if casing else [])
            handles.append(Line2D([], [], color=colour, lw=width * k, label=label,
                                  path_effects=effects))
        rails = b[b["layer"] == "railways"]
        if len(rails):
            parts = _line_parts(rails.geometry)
            ax.add_collection(LineCollection(parts, colors=RAIL_COLOUR, lw=2.4 * k, zorder=3.5))
            ax.add_collection(LineCollection(parts, colors="white", lw=1.2 * k,
                                             linestyles=(0, (4, 4)), zorder=3.51))
            handles.append(Line2D([], [], color="white", lw=1.2 * k, ls=(0, (4, 4)),
                                  label="铁路", path_effects=[
                                      patheffects.Stroke(linewidth=2.4 * k,
                                                         foreground=RAIL_COLOUR),
                                      patheffects.Normal()]))
        ridges = b[b["layer"] == "ridges"]
        if len(ridges):
            ax.add_collection(LineCollection(_line_parts(ridges.geometry), colors=RIDGE_COLOUR,
                                             lw=1.3 * k, linestyles=(0, (6, 2, 1.5, 2)),
                                             zorder=3.6))
            handles.append(Line2D([], [], color=RIDGE_COLOUR, lw=1.3 * k,
                                  ls=(0, (6, 2, 1.5, 2)), label="山脊线"))
        return handles

    # -- labels

    def _box(self, x: float, y: float, w_pt: float, h_pt: float, angle: float = 0.0) -> Any:
        w, h = w_pt * self.m_per_pt, h_pt * self.m_per_pt
        box = shapely.box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        if angle:
            from shapely import affinity

            box = affinity.rotate(box, angle, origin=(x, y))
        return box

    def _free(self, box: Any, *, inside: bool = False) -> bool:
        """Whether ``box`` is on the map, clear of placed labels and (``inside``) centred in
        the area."""
        if not self.window.contains(box):
            return False
        if inside and not self.inner.contains(box.centroid):
            return False
        return not any(box.intersects(other) for other in self.placed)

    def label_grids(self, ax: Axes) -> None:
        """Each grid's serial (large) and full code (small) inside the grid, where it fits."""
        k = self.k
        big, small = 12.0 * k, 5.6 * k
        for g in self.data.grids.itertuples():
            code = str(g.code)
            serial = code[-3:] if len(code) > 3 else code
            chosen = None
            first = None
            for x, y, room in _candidates(g.geometry):
                room_pt = room / self.m_per_pt
                scale = min(1.0, room_pt / self._label_radius(serial, code, big, small))
                if first is None:
                    first = (x, y, scale)
                sb, ss = max(big * scale, 6.5 * k), max(small * scale, 4.2 * k)
                with_code = scale * small >= 4.2 * k
                w = max(_text_em(serial) * sb, _text_em(code) * ss if with_code else 0) * 1.05
                h = sb * 1.15 + (ss * 1.2 if with_code else 0)
                box = self._box(x, y, w, h)
                if self._free(box) and scale > 0.55:
                    chosen = (x, y, sb, ss, with_code, box)
                    break
                if room_pt < 0.4 * self._label_radius(serial, code, big, small):
                    break
            if chosen is None:
                assert first is not None
                x, y, scale = first
                sb = max(big * scale, 6.5 * k)
                ss = max(small * scale, 4.2 * k)
                with_code = scale * small >= 4.2 * k
                w = max(_text_em(serial) * sb, _text_em(code) * ss if with_code else 0)
                chosen = (x, y, sb, ss, with_code,
                          self._box(x, y, w, sb * 1.15 + (ss * 1.2 if with_code else 0)))
            x, y, sb, ss, with_code, box = chosen
            self.placed.append(box)
            offset = (ss * 0.62 * self.m_per_pt) if with_code else 0.0
            self._text(ax, x, y + offset, serial, fontproperties=self.fonts.props(sb, bold=True),
                       ha="center", va="center", color=TEXT_COLOUR, zorder=10)
            if with_code:
                self._text(ax, x,
                           y + offset - sb * 0.62 * self.m_per_pt - ss * 0.55 * self.m_per_pt,
                           code, fontproperties=self.fonts.props(ss), ha="center",
                           va="center", color=MUTED, zorder=10)

    @staticmethod
    def _label_radius(serial: str, code: str, big: float, small: float) -> float:
        w = max(_text_em(serial) * big, _text_em(code) * small)
        h = big * 1.15 + small * 1.2
        return math.hypot(w, h) / 2

    def label_villages(self, ax: Axes) -> None:
        fs = 10.5 * self.k
        for v in self.data.villages.itertuples():
            w, h = _text_em(str(v.name)) * fs * 1.05, fs * 1.3
            for x, y, room in _candidates(v.geometry, n=80):
                box = self._box(x, y, w, h)
                if room / self.m_per_pt < h / 2:
                    break
                if self._free(box):
                    self.placed.append(box)
                    self._text(ax, x, y, str(v.name),
                               fontproperties=self.fonts.props(fs, bold=True), ha="center",
                               va="center", color=VILLAGE_EDGE, zorder=9)
                    break

    def label_barriers(self, ax: Axes) -> None:
        """One label per named road, river, railway or ridge, along its longest piece."""
        b = self.data.barriers
        b = b[b["name"].notna() & (b["name"].astype(str).str.strip() != "")]
        if b.empty:
            return
        near = self.data.area.buffer(20 * self.m_per_pt)
        rank = {"railways": 0, "water": 1, "roads": 2, "ridges": 3}
        road_rank = {c: i for i, c in enumerate(ROAD_STYLES)}
        groups = []
        for (layer, name), group in b.groupby(["layer", "name"], sort=False):
            best = min((road_rank.get(str(c), len(road_rank)) for c in group["class"]),
                       default=len(road_rank))
            groups.append((rank.get(str(layer), 9), best, str(layer), str(name), group))
        groups.sort(key=lambda t: (t[0], t[1], t[3]))
        for _, _, layer, name, group in groups:
            geoms = [g.intersection(near) for g in group.geometry]
            polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")
                     and not g.is_empty]
            colour = WATER_TEXT if layer == "water" else (
                RIDGE_COLOUR if layer == "ridges" else ROAD_LABEL_COLOUR)
            fs = (7.6 if layer in ("water", "railways") else 6.8) * self.k
            if polys and self._label_area(ax, shapely.union_all(polys), name, fs, colour):
                continue
            lines = [g for g in geoms if g.geom_type not in ("Polygon", "MultiPolygon")]
            if lines:
                self._label_line(ax, shapely.union_all(lines), name, fs, colour)

    def _label_area(self, ax: Axes, poly: Any, name: str, fs: float, colour: str) -> bool:
        w, h = _text_em(name) * fs * 1.05, fs * 1.3
        for x, y, room in _candidates(poly, n=40):
            if room / self.m_per_pt < h / 2:
                return False
            box = self._box(x, y, w, h)
            if poly.buffer(h * self.m_per_pt).contains(box) and self._free(box, inside=True):
                self.placed.append(box)
                self._text(ax, x, y, name, fontproperties=self.fonts.props(fs), ha="center",
                           va="center", color=colour, zorder=9)
                return True
        return False

    def _label_line(self, ax: Axes, lines: Any, name: str, fs: float, colour: str) -> None:
        merged = shapely.line_merge(lines) if lines.geom_type == "MultiLineString" else lines
        pieces = [p for p in shapely.get_parts(merged) if p.geom_type == "LineString"]
        if not pieces:
            return
        piece = max(pieces, key=lambda p: p.length)
        length = _text_em(name) * fs * 1.08 * self.m_per_pt
        if piece.length < 1.25 * length:
            return
        for t in (0.5, 0.38, 0.62, 0.26, 0.74, 0.15, 0.85):
            mid = t * piece.length
            if mid - length / 2 < 0 or mid + length / 2 > piece.length:
                continue
            a, b = piece.interpolate(mid - length / 2), piece.interpolate(mid + length / 2)
            c = piece.interpolate(mid)
            angle = math.degrees(math.atan2(b.y - a.y, b.x - a.x))
            if angle > 90:
                angle -= 180
            elif angle <= -90:
                angle += 180
            upright = abs(angle) > VERTICAL_ANGLE and all(ord(ch) >= 0x2E80 for ch in name)
            if upright:  # a north-south street: characters stacked, as Chinese maps write
                box = self._box(c.x, c.y, fs * 1.25, len(name) * fs * 1.12)
            else:
                box = self._box(c.x, c.y, _text_em(name) * fs * 1.08, fs * 1.25, angle)
            if self._free(box, inside=True):
                self.placed.append(box)
                self._text(ax, c.x, c.y, "\n".join(name) if upright else name,
                           fontproperties=self.fonts.props(fs), ha="center", va="center",
                           rotation=0 if upright else angle, rotation_mode="anchor",
                           linespacing=1.0, color=colour, zorder=9)
                return

    # -- scale bar, north arrow

    def scale_bar(self, ax: Axes, rect: Rect) -> None:
        x0, x1 = ax.get_xlim()
        y0 = ax.get_ylim()[0]
        m_per_mm = (x1 - x0) / rect.w
        length = _nice_length(0.22 * (x1 - x0))
        bar_h = 1.6 * self.s * m_per_mm
        left = x0 + 6 * self.s * m_per_mm
        base = y0 + 7 * self.s * m_per_mm
        fs = 6.8 * self.k
        ratio = (x1 - x0) * 1000 / rect.w
        digits = 10 ** max(0, math.floor(math.log10(ratio)) - 1)
        ratio_text = (f"比例尺 1:{round(ratio / digits) * digits:,.0f}（按 {self.size.value} "
                      "原大打印）")
        unit, div = ("千米", 1000.0) if length >= 1000 else ("米", 1.0)
        text_w = _text_em(ratio_text) * fs * MM_PER_PT * m_per_mm
        panel = (left - 3 * self.s * m_per_mm, base - 5.5 * self.s * m_per_mm,
                 max(length + 12 * self.s * m_per_mm, text_w + 6 * self.s * m_per_mm),
                 bar_h + 13 * self.s * m_per_mm)
        self.placed.append(shapely.box(panel[0], panel[1], panel[0] + panel[2],
                                       panel[1] + panel[3]))
        ax.add_patch(Rectangle(
            panel[:2], panel[2], panel[3],
            facecolor="white", alpha=0.85, edgecolor="#999999", lw=0.5 * self.k, zorder=11))
        for i in range(4):
            ax.add_patch(Rectangle((left + i * length / 4, base), length / 4, bar_h,
                                   facecolor="#222222" if i % 2 == 0 else "white",
                                   edgecolor="#222222", lw=0.6 * self.k, zorder=12))
        for frac in (0.0, 0.5, 1.0):
            value = length * frac / div
            label = f"{value:g}" + (f" {unit}" if frac == 1.0 else "")
            ax.text(left + length * frac, base - 0.8 * self.s * m_per_mm, label,
                    fontproperties=self.fonts.props(fs), ha="center", va="top", zorder=12,
                    color=TEXT_COLOUR)
        ax.text(left, base + bar_h + 1.4 * self.s * m_per_mm, ratio_text,
                fontproperties=self.fonts.props(fs), ha="left", va="bottom", zorder=12,
                color=TEXT_COLOUR)

    def north_arrow(self, ax: Axes, rect: Rect) -> None:
        x0, x1 = ax.get_xlim()
        y1 = ax.get_ylim()[1]
        m_per_mm = (x1 - x0) / rect.w
        size = 13 * self.s * m_per_mm
        cx = x1 - 12 * self.s * m_per_mm
        top = y1 - 13 * self.s * m_per_mm
        tip, bottom, notch = (cx, top), top - size, top - size * 0.72
        half = size * 0.32
        self.placed.append(shapely.box(cx - 2 * half, bottom, cx + 2 * half,
                                       top + 6 * self.s * m_per_mm))
        ax.add_patch(Polygon([tip, (cx - half, bottom), (cx, notch)], closed=True,
                             facecolor="#222222", edgecolor="#222222", lw=0.6 * self.k,
                             zorder=12))
        ax.add_patch(Polygon([tip, (cx + half, bottom), (cx, notch)], closed=True,
                             facecolor="white", edgecolor="#222222", lw=0.6 * self.k,
                             zorder=12))
        self._text(ax, cx, top + 1.0 * self.s * m_per_mm, "北", zorder=12, ha="center",
                   va="bottom", fontproperties=self.fonts.props(11 * self.k, bold=True),
                   color=TEXT_COLOUR)


# --- rendering ----------------------------------------------------------------------------


def _all_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text() and t.get_gid() != HALO_GID]


@contextmanager
def glyphs_strict(fonts: Fonts) -> Iterator[None]:
    """Inside, matplotlib's "Glyph … missing from font(s)" warning raises GlyphMissing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*[Gg]lyph .* missing from")
        try:
            yield
        except UserWarning as exc:
            raise GlyphMissing(f"海报中有字体 {fonts.family} 无法显示的字符 / a character has no "
                               f"glyph in {fonts.family}: {exc}") from exc


def render_poster(data: PosterData, size: PaperSize | str = PaperSize.A3,
                  fmt: PosterFormat | str = PosterFormat.pdf) -> bytes:
    """The poster as PNG bytes (the first page, at :data:`PNG_DPI`) or PDF bytes (every
    page, vector, Type 42 fonts). GlyphMissing when a text has a character the font lacks:
    every text is checked against the font's character map first, and matplotlib's own
    warning is an error (:func:`glyphs_strict`), so nothing is printed as an empty box."""
    size, fmt = PaperSize(size), PosterFormat(fmt)
    fonts = register_fonts()
    buffer = io.BytesIO()
    with _RENDER_LOCK, glyphs_strict(fonts), matplotlib.rc_context(RC):
        sheet = _Sheet(data, size, fonts)
        if fmt is PosterFormat.png:
            fig = next(sheet.pages(first_only=True))
            check_glyphs(_all_texts(fig), fonts)
            fig.savefig(buffer, format="png", dpi=PNG_DPI[size],
                        metadata={"Title": data.title, "Software": "gridmap"})
        else:
            subject = f"{data.title}（方案 {data.plan.id} 第 {data.plan.version} 版）"
            with PdfPages(buffer, metadata={"Title": data.title, "Subject": subject,
                                            "Creator": "gridmap"}) as pdf:
                for fig in sheet.pages(first_only=False):
                    check_glyphs(_all_texts(fig), fonts)
                    pdf.savefig(fig)
    return buffer.getvalue()


@dataclass(frozen=True)
class Poster:
    """A rendered poster and what to call it."""

    content: bytes
    filename: str
    ascii_filename: str
    media_type: str


def poster_filename(data: PosterData, size: PaperSize | str, fmt: PosterFormat | str
                    ) -> tuple[str, str]:
    """(Chinese file name, ASCII fallback) of a poster."""
    size, fmt = PaperSize(size), PosterFormat(fmt)
    name = re.sub(r'[\\/:*?"<>|\s]+', "_", data.name)
    return (f"{name}网格划分图_{size.value}_第{data.plan.version}版.{fmt.value}",
            f"poster_plan{data.plan.id}_{data.code}_{size.value}.{fmt.value}")


def make_poster(engine: Engine, plan_id: int, area_code: str,
                size: PaperSize | str = PaperSize.A3,
                fmt: PosterFormat | str = PosterFormat.pdf, *,
                zone: str = DEFAULT_ZONE) -> Poster:
    """Read and render the poster of ``area_code`` under plan ``plan_id``; its dates are
    days in ``zone`` (GRIDMAP_TIMEZONE)."""
    size, fmt = PaperSize(size), PosterFormat(fmt)
    data = load_poster_data(engine, plan_id, area_code, zone=zone)
    filename, ascii_filename = poster_filename(data, size, fmt)
    return Poster(render_poster(data, size, fmt), filename, ascii_filename, MEDIA_TYPES[fmt])
