"""How a poster's map is drawn: grids, barriers, overlay units, labels, scale bar, north arrow."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import shapely
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as MplPath

from gis.names import INFERRED_STREET_LABEL, is_water_grid
from maps.poster.layout import (
    Rect,
    _Layout,
    _text_em,
)
from maps.poster.style import (
    AREA_EDGE,
    GRID_EDGE,
    MM_PER_PT,
    MUTED,
    OTHER_ROAD,
    OVERLAY_DASH,
    OVERLAY_EDGE,
    OVERLAY_WIDTH,
    PALETTE,
    RAIL_COLOUR,
    RIDGE_COLOUR,
    ROAD_LABEL_COLOUR,
    ROAD_STYLES,
    STREET_COLOUR,
    STREET_DASH,
    STREET_WIDTH,
    TEXT_COLOUR,
    VERTICAL_ANGLE,
    VILLAGE_EDGE,
    WATER_FILL,
    WATER_LINE,
    WATER_TEXT,
)

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


class _Sheet(_Layout):
    """Draws the pages of one poster (first page: map and table; then the table's rest)."""

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
        handles += self.draw_overlay(ax)
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
        self.label_overlay(ax)
        return handles

    def draw_overlay(self, ax: Axes) -> list[Any]:
        """A department's unit boundaries (on request): dash-dotted, above the village
        boundaries and under the area's edge."""
        units, dept = self.data.overlay, self.data.overlay_department
        if units is None or dept is None:
            return []
        k = self.k
        ax.add_collection(LineCollection(_line_parts(units.geometry), colors=OVERLAY_EDGE,
                                         lw=OVERLAY_WIDTH * k, linestyles=OVERLAY_DASH,
                                         zorder=6.5, gid="overlay-units"))
        return [Line2D([], [], color=OVERLAY_EDGE, lw=OVERLAY_WIDTH * k, ls=OVERLAY_DASH,
                       label=f"{dept}单元界")]

    def label_overlay(self, ax: Axes) -> None:
        """Each department unit's name where room is left (after grids, villages, lines)."""
        units = self.data.overlay
        if units is None:
            return
        area = self.data.area
        for name, code, geom in zip(units["name"], units["code"], units.geometry, strict=True):
            piece = geom.intersection(area)
            if piece.is_empty or piece.geom_type not in ("Polygon", "MultiPolygon"):
                continue
            self._label_area(ax, piece, str(name or code), 6.4 * self.k, OVERLAY_EDGE)

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
