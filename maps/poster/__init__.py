"""Printable partition posters (网格划分图) of a town or a village/community: A3/A0, PNG and PDF."""

from maps.poster.data import PosterData, load_poster_data
from maps.poster.draw import _Sheet, colour_grids
from maps.poster.layout import Rect, TableRow, wrap
from maps.poster.render import (
    Poster,
    glyphs_strict,
    make_poster,
    poster_filename,
    render_poster,
)
from maps.poster.style import (
    DEFAULT_ZONE,
    FAMILY,
    FONT_DIRS,
    MEDIA_TYPES,
    PAPER_MM,
    PNG_DPI,
    ROAD_STYLES,
    FontMissing,
    Fonts,
    GlyphMissing,
    PaperSize,
    PosterFormat,
    check_glyphs,
    find_cjk_font,
    register_fonts,
)

__all__ = [
    "DEFAULT_ZONE", "FAMILY", "FONT_DIRS", "MEDIA_TYPES", "PAPER_MM", "PNG_DPI", "ROAD_STYLES",
    "FontMissing", "Fonts", "GlyphMissing", "PaperSize", "Poster", "PosterData", "PosterFormat",
    "Rect", "TableRow", "_Sheet", "check_glyphs", "colour_grids", "find_cjk_font",
    "glyphs_strict", "load_poster_data", "make_poster", "poster_filename", "register_fonts",
    "render_poster", "wrap",
]
