"""The look of a poster: paper sizes, formats, palette, line styles, and its CJK fonts."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from matplotlib import font_manager
from matplotlib.font_manager import FontProperties

from gis.errors import GridmapError


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
#: A department's unit boundaries drawn on request (gridmap poster --overlay).
OVERLAY_EDGE, OVERLAY_WIDTH, OVERLAY_DASH = "#1565c0", 1.6, (0, (6, 2, 1.5, 2))
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
