"""How a poster's pages are laid out: page and panels, header, footer, side panel, table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import shapely
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from pyproj import CRS

from gis.names import flag_text, plan_status_name
from gis.times import local_text
from maps.poster.data import (
    PosterData,
)
from maps.poster.style import (
    AREA_EDGE,
    HALO_GID,
    MM_PER_PT,
    MUTED,
    PAPER_MM,
    PORTRAIT_GAIN,
    SIDE_SHARE,
    TEXT_COLOUR,
    Fonts,
    PaperSize,
)


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


class _Layout:
    """The pages of one poster laid out (first page: map, side panel and table; then the
    table's rest); the map itself is :class:`maps.poster.draw._Sheet`'s."""

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
        if d.overlay is not None and d.overlay_department is not None:
            lines.append(f"{d.overlay_department}部门网格 {len(d.overlay)} 个单元（蓝色点划线，"
                         "单元名称标在其内）")
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

    def draw_map(self, fig: Figure, rect: Rect) -> list[Any]:
        """The map in ``rect``; returns the legend's handles (drawn by the subclass)."""
        raise NotImplementedError
