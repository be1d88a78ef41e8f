"""A poster rendered: the pages to PNG or PDF bytes, checked for missing glyphs, and named."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.text import Text
from sqlalchemy import Engine

from maps.poster.data import (
    PosterData,
    load_poster_data,
)
from maps.poster.draw import _Sheet
from maps.poster.style import (
    _RENDER_LOCK,
    DEFAULT_ZONE,
    HALO_GID,
    MEDIA_TYPES,
    PNG_DPI,
    RC,
    Fonts,
    GlyphMissing,
    PaperSize,
    PosterFormat,
    check_glyphs,
    register_fonts,
)

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
    if data.overlay_department is None:
        return (f"{name}网格划分图_{size.value}_第{data.plan.version}版.{fmt.value}",
                f"poster_plan{data.plan.id}_{data.code}_{size.value}.{fmt.value}")
    dept = re.sub(r'[\\/:*?"<>|\s]+', "_", data.overlay_department)
    return (f"{name}网格划分图_{dept}_{size.value}_第{data.plan.version}版.{fmt.value}",
            f"poster_plan{data.plan.id}_{data.code}_overlay{data.overlay_id}_{size.value}"
            f".{fmt.value}")


def make_poster(engine: Engine, plan_id: int, area_code: str,
                size: PaperSize | str = PaperSize.A3,
                fmt: PosterFormat | str = PosterFormat.pdf, *,
                zone: str = DEFAULT_ZONE, overlay: str | None = None) -> Poster:
    """Read and render the poster of ``area_code`` under plan ``plan_id``; its dates are
    days in ``zone`` (GRIDMAP_TIMEZONE); ``overlay``: a department whose unit boundaries
    are drawn too."""
    size, fmt = PaperSize(size), PosterFormat(fmt)
    data = load_poster_data(engine, plan_id, area_code, zone=zone, overlay=overlay)
    filename, ascii_filename = poster_filename(data, size, fmt)
    return Poster(render_poster(data, size, fmt), filename, ascii_filename, MEDIA_TYPES[fmt])
