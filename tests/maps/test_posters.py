"""Partition posters of the demo plan: pages, pixels, embedded CJK font, text, routes, CLI.

Posters are rendered from a store of each backend; each PNG is saved under
``tests/artifacts/`` (look at them). The PDF is read with the small parser below: page
sizes from ``/MediaBox``, fonts from ``/BaseFont``, and text decoded through each font's
``/ToUnicode`` map (matplotlib writes Type 42 fonts, so the text is real text).
"""

from __future__ import annotations

import io
import re
import warnings
import zlib
from pathlib import Path
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import ARTIFACTS
from demo_plan import DemoStore
from fastapi.testclient import TestClient
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from typer.testing import CliRunner

from api.cli import app as cli_app
from gis.store import read_layer
from maps.poster import (
    FAMILY,
    FONT_DIRS,
    PAPER_MM,
    PNG_DPI,
    FontMissing,
    GlyphMissing,
    PaperSize,
    find_cjk_font,
    glyphs_strict,
    load_poster_data,
    make_poster,
    register_fonts,
    render_poster,
)

MM_PER_PT = 25.4 / 72
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- a small PDF reader ---------------------------------------------------------------------


def _objects(pdf: bytes) -> dict[int, bytes]:
    """Object number → its bytes (dictionary and raw stream)."""
    starts = [(int(m.group(1)), m.end()) for m in re.finditer(rb"(\d+) 0 obj\b", pdf)]
    out = {}
    for i, (num, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(pdf)
        out[num] = pdf[start:end]
    return out


def _stream(obj: bytes) -> bytes:
    match = re.search(rb"stream\r?\n", obj)
    assert match is not None
    raw = obj[match.end():obj.rindex(b"endstream")]
    return zlib.decompress(raw) if b"/FlateDecode" in obj[:match.start()] else raw


def _unescape(literal: bytes) -> bytes:
    """A PDF literal string's bytes (between the parentheses)."""
    out = bytearray()
    i = 0
    simple = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
    while i < len(literal):
        c = literal[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        nxt = literal[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif 0x30 <= nxt <= 0x37:
            digits = re.match(rb"[0-7]{1,3}", literal[i + 1:i + 4])
            assert digits is not None
            out.append(int(digits.group(0), 8) & 0xFF)
            i += 1 + len(digits.group(0))
        elif nxt in (10, 13):
            i += 2
        else:
            out.append(nxt)
            i += 2
    return bytes(out)


def _cmap(text: bytes) -> dict[int, str]:
    """A ToUnicode CMap: glyph code → text."""
    out: dict[int, str] = {}

    def uni(hexstr: bytes) -> str:
        return bytes.fromhex(hexstr.decode()).decode("utf-16-be")

    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dest in re.findall(
                rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*(\[.*?\]|<[0-9a-fA-F]+>)", block, re.S):
            first, last = int(lo, 16), int(hi, 16)
            if dest.startswith(b"["):
                for k, u in enumerate(re.findall(rb"<([0-9a-fA-F]+)>", dest)):
                    out[first + k] = uni(u)
            else:
                base = int(dest[1:-1], 16)
                for k in range(last - first + 1):
                    out[first + k] = chr(base + k)
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        for code, u in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            out[int(code, 16)] = uni(u)
    return out


class PdfDoc:
    """Pages (size in points, text blocks) and the font names of a PDF."""

    def __init__(self, pdf: bytes) -> None:
        assert pdf.startswith(b"%PDF-")
        objs = _objects(pdf)
        self.fonts = sorted({m.decode() for m in re.findall(rb"/BaseFont /(\S+)", pdf)})
        font_maps: dict[bytes, dict[int, str]] = {}
        for name, num in re.findall(rb"/(F\d+) (\d+) 0 R", pdf):
            tounicode = re.search(rb"/ToUnicode (\d+) 0 R", objs[int(num)])
            if tounicode:
                font_maps[name] = _cmap(_stream(objs[int(tounicode.group(1))]))
        self.pages: list[tuple[tuple[float, float], list[str]]] = []
        for obj in objs.values():
            head = obj.split(b"stream", 1)[0]
            if not re.search(rb"/Type /Page\b", head):
                continue
            box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", head)
            contents = re.search(rb"/Contents (\d+) 0 R", head)
            assert box and contents
            self.pages.append(((float(box.group(1)), float(box.group(2))),
                               self._blocks(_stream(objs[int(contents.group(1))]), font_maps)))

    @staticmethod
    def _blocks(content: bytes, font_maps: dict[bytes, dict[int, str]]) -> list[str]:
        blocks, current, font = [], "", b""
        token = re.compile(rb"/(F\d+)\s+[\d.]+\s+Tf|\(((?:\\.|[^\\)])*)\)|\bBT\b|\bET\b", re.S)
        for m in token.finditer(content):
            if m.group(1):
                font = m.group(1)
            elif m.group(0) == b"BT":
                current = ""
            elif m.group(0) == b"ET":
                blocks.append(current)
            else:
                raw = _unescape(m.group(2))
                table = font_maps.get(font, {})
                current += "".join(table.get(int.from_bytes(raw[i:i + 2], "big"), "\ufffd")
                                   for i in range(0, len(raw) - 1, 2))
        return blocks

    def text(self, page: int | None = None) -> str:
        pages = self.pages if page is None else [self.pages[page]]
        return "".join("".join(blocks) for _, blocks in pages)


# --- fixtures -------------------------------------------------------------------------------


def _town_and_community(store: DemoStore) -> tuple[str, str]:
    """The town with the most grids and the community with the most grids."""
    villages = store.grids["village_code"].value_counts()
    towns = store.grids["village_code"].map(store.area_parents).value_counts()
    return str(towns.index[0]), str(villages.index[0])


def _render(store: DemoStore, code: str, size: str, fmt: str) -> bytes:
    """Render through make_poster, failing on any warning about glyphs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = make_poster(store.engine, store.plan_id, code, size, fmt)
    glyphs = [str(w.message) for w in caught if "lyph" in str(w.message)]
    assert glyphs == [], glyphs
    if fmt == "png":
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"poster-{store.backend}-{code}-{size}.png").write_bytes(made.content)
    return made.content


def _area_grids(store: DemoStore, code: str) -> list[tuple[str, str]]:
    """(code, 四至) of every grid in town or village ``code``."""
    grids = store.grids
    in_area = [v == code or store.area_parents.get(v) == code for v in grids["village_code"]]
    return [(str(c), str(b)) for c, b in zip(grids[in_area]["code"],
                                            grids[in_area]["boundary_text"], strict=True)]


def _check_png(png: bytes, size: PaperSize) -> None:
    image = Image.open(io.BytesIO(png))
    long_mm, short_mm = PAPER_MM[size]
    dpi = PNG_DPI[size]
    want = sorted((long_mm / 25.4 * dpi, short_mm / 25.4 * dpi))
    got = sorted(image.size)
    assert all(abs(g - w) < 1 for g, w in zip(got, want, strict=True)), (image.size, want)
    grey = np.asarray(image.convert("L"), dtype=float)
    assert grey.std() > 20, "the poster is blank"
    assert (grey < 250).mean() > 0.25, "too little is drawn"
    colours = np.asarray(image.convert("RGB"))[::8, ::8].reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 50, "the grids are not filled in colours"


def _check_pdf(pdf: bytes, size: PaperSize, store: DemoStore, code: str) -> PdfDoc:
    doc = PdfDoc(pdf)
    long_pt, short_pt = (v / MM_PER_PT for v in PAPER_MM[size])
    for (w, h), _ in doc.pages:
        assert abs(max(w, h) - long_pt) < 0.5 and abs(min(w, h) - short_pt) < 0.5, (w, h)
    assert doc.fonts, "no font in the PDF"
    assert all("NotoSansCJK" in name for name in doc.fonts), doc.fonts
    assert any(name.endswith("NotoSansCJKsc-Regular") for name in doc.fonts), doc.fonts
    assert any(name.endswith("NotoSansCJKsc-Bold") for name in doc.fonts), doc.fonts
    assert pdf.count(b"/FontFile2") + pdf.count(b"/FontFile3") >= 2, "fonts not embedded"
    name = store.area_names[code]
    first = doc.text(0)
    assert f"{name}网格划分图" in first
    assert "网格一览表" in first and "图例" in first and "比例尺" in first and "北" in first
    text = doc.text()
    assert "\ufffd" not in text
    for grid_code, boundary in _area_grids(store, code):
        assert grid_code in text, grid_code
        assert boundary in text, boundary
    return doc


# --- posters --------------------------------------------------------------------------------


def test_font_is_the_projects_noto_cjk() -> None:
    fonts = register_fonts()
    assert fonts.regular.parent in FONT_DIRS and fonts.regular.name == "NotoSansCJK-Regular.ttc"
    found = font_manager.fontManager.findfont(
        font_manager.FontProperties(family=FAMILY), fallback_to_default=False)
    assert Path(found) == fonts.regular


def test_missing_font_says_to_run_setup(tmp_path: Path) -> None:
    with pytest.raises(FontMissing, match=r"scripts/setup\.sh.*fonts-noto-cjk"):
        find_cjk_font([tmp_path])


def test_missing_glyph_warning_is_an_error() -> None:
    fonts = register_fonts()
    fig = Figure()
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, "网格😀", fontproperties=fonts.props(12))
    with pytest.raises(GlyphMissing, match="glyph"), glyphs_strict(fonts):
        fig.savefig(io.BytesIO(), format="png")


def test_a_name_without_glyph_is_refused(store: DemoStore) -> None:
    town, _ = _town_and_community(store)
    data = load_poster_data(store.engine, store.plan_id, town)
    data.name = "白云😀街道"
    with pytest.raises(GlyphMissing, match="U\\+1F600"):
        render_poster(data, "A3", "png")


@pytest.mark.parametrize("which", ["town", "community"])
def test_a3_posters(store: DemoStore, which: str) -> None:
    town, community = _town_and_community(store)
    code = town if which == "town" else community
    _check_png(_render(store, code, "A3", "png"), PaperSize.A3)
    doc = _check_pdf(_render(store, code, "A3", "pdf"), PaperSize.A3, store, code)
    assert len(doc.pages) == 1, "the demo's table fits beside the map"
    subtitle = doc.text(0)
    assert f"方案第 {store.version} 版" in subtitle


@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_a0_town_poster(store: DemoStore) -> None:
    town, _ = _town_and_community(store)
    _check_png(_render(store, town, "A0", "png"), PaperSize.A0)
    _check_pdf(_render(store, town, "A0", "pdf"), PaperSize.A0, store, town)


@pytest.mark.parametrize("store", ["spatialite"], indirect=True)
def test_a_long_table_continues_on_more_pages(store: DemoStore) -> None:
    """With more grids than fit beside the map, the PDF continues the table; every row is
    printed once."""
    town, _ = _town_and_community(store)
    data = load_poster_data(store.engine, store.plan_id, town)
    grids = data.grids
    copies = [grids.assign(code=[f"{c[:-3]}{int(c[-3:]) + 100 * k:03d}" for c in grids["code"]])
              for k in range(5)]
    data.grids = gpd.GeoDataFrame(pd.concat(copies, ignore_index=True), crs=grids.crs)
    pdf = render_poster(data, "A3", "pdf")
    doc = PdfDoc(pdf)
    assert len(doc.pages) >= 2
    assert "网格一览表（续）" in doc.text(1)
    assert f"第 1 页，共 {len(doc.pages)} 页" in doc.text(0)
    text = doc.text()
    for code in data.grids["code"]:
        assert text.count(code) >= 1, code
    png = render_poster(data, "A3", "png")
    _check_png(png, PaperSize.A3)


# --- route and CLI --------------------------------------------------------------------------


def test_route_serves_png_and_pdf(client: TestClient, store: DemoStore) -> None:
    town, community = _town_and_community(store)
    response = client.get(f"/plans/{store.plan_id}/posters/{community}.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG_SIGNATURE)
    name = f"{store.area_names[community]}网格划分图_A3_第{store.version}版.png"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=\"poster_plan")
    assert f"filename*=UTF-8''{quote(name, safe='')}" in disposition
    response = client.get(f"/plans/{store.plan_id}/posters/{town}.pdf", params={"size": "A3"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert f"{store.area_names[town]}网格划分图" in PdfDoc(response.content).text(0)


def test_route_refuses_areas_outside_the_plan(client: TestClient, store: DemoStore) -> None:
    tiny = read_layer(store.engine, store.tiny_territory_id, "admin_areas")
    elsewhere = next(c for c in tiny["code"] if c not in store.area_names)  # another territory
    district = next(iter(set(store.area_parents.values()) - set(store.area_parents)))
    for code in (elsewhere, district, "999999999"):
        response = client.get(f"/plans/{store.plan_id}/posters/{code}.png")
        assert response.status_code == 404, (code, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert "没有" in problem["detail"] and "has no" in problem["detail"], problem
    response = client.get("/plans/999999/posters/440111001.png")
    assert response.status_code == 404


def test_route_rejects_bad_size_and_format(client: TestClient, store: DemoStore) -> None:
    town, _ = _town_and_community(store)
    bad = client.get(f"/plans/{store.plan_id}/posters/{town}.png", params={"size": "B5"})
    assert bad.status_code == 422 and bad.json()["type"] == "/problems/validation-error"
    bad = client.get(f"/plans/{store.plan_id}/posters/{town}.svg")
    assert bad.status_code == 422 and bad.json()["type"] == "/problems/validation-error"


@pytest.mark.parametrize("store", ["spatialite"], indirect=True)
def test_cli_writes_the_poster(store: DemoStore, tmp_path: Path) -> None:
    _, community = _town_and_community(store)
    out = tmp_path / "poster.png"
    result = CliRunner().invoke(cli_app, [
        "poster", str(store.plan_id), community, "--size", "A3", "--format", "png",
        "--out", str(out), "--database-url", store.url])
    assert result.exit_code == 0, result.output
    _check_png(out.read_bytes(), PaperSize.A3)
    result = CliRunner().invoke(cli_app, [
        "poster", str(store.plan_id), "999999999", "--out", str(tmp_path / "x.pdf"),
        "--database-url", store.url])
    assert result.exit_code == 1 and not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("which", ["town", "community"])
def test_map_labels_are_text_in_the_pdf(store: DemoStore, which: str) -> None:
    """Grid serials, village names and road/river names on the map are real text in the PDF
    (searchable, copyable): each once, their white halo drawn under them as outlines."""
    town, community = _town_and_community(store)
    code = town if which == "town" else community
    data = load_poster_data(store.engine, store.plan_id, code)
    blocks = PdfDoc(_render(store, code, "A3", "pdf")).pages[0][1]
    serials = [str(c)[-3:] for c in data.grids["code"]]
    for serial in set(serials):
        assert blocks.count(serial) == serials.count(serial), (serial, blocks.count(serial))
    names = {str(n) for n in data.barriers["name"].dropna()} | {
        str(n) for n in data.villages["name"]}
    # Upright street names are stacked one character a line: one block per line.
    labels = [b for b in blocks if b in names or "".join(b.split()) in names]
    assert labels, "no village, road or river name is text"
    if which == "town":
        assert set(labels) & {str(n) for n in data.villages["name"]}, "no village name"
    assert set(labels) & {str(n) for n in data.barriers["name"].dropna()}, "no road or river"


def _street_area(store: DemoStore) -> str:
    """The town holding the most inferred streets and a grid crossing a river."""
    from gis.plans import read_lines

    lines = read_lines(store.engine, store.plan_id, kind="inferred_street")
    crossing = {store.area_parents[v] for v, f in zip(
        store.grids["village_code"], store.grids["flags"], strict=True)
        if "crosses_barrier" in f}
    towns = lines["village_code"].map(store.area_parents).value_counts()
    return str(next(t for t in towns.index if t in crossing))


def test_inferred_streets_are_thin_dashed_lines_under_the_grid_lines(
        store: DemoStore) -> None:
    """The plan's inferred streets are drawn (dashed, thinner than any road, under the grid
    lines, unlabelled) and in the legend; a grid crossing a river says so in the table."""
    from matplotlib.collections import LineCollection

    from maps.poster import ROAD_STYLES, _Sheet

    town = _street_area(store)
    data = load_poster_data(store.engine, store.plan_id, town)
    assert len(data.streets) > 0
    sheet = _Sheet(data, PaperSize.A3, register_fonts())
    fig, _ = sheet.page_one()
    drawn = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "inferred-streets"]
    assert len(drawn) == 1
    streets = drawn[0]
    assert isinstance(streets, LineCollection)
    assert len(streets.get_segments()) == sum(
        len(shapely.get_parts(g)) for g in data.streets.geometry)
    _offset, dashes = streets.get_linestyle()[0]
    assert dashes is not None and len(dashes) >= 2, "the streets must be dashed"
    assert streets.get_linewidth()[0] < min(w for _, w, _, _ in ROAD_STYLES.values()) * sheet.k
    grid_lines = [c for c in streets.axes.collections
                  if isinstance(c, LineCollection) and c.get_zorder() == 5]
    assert grid_lines and streets.get_zorder() < grid_lines[0].get_zorder()
    map_texts = " ".join(t.get_text() for t in streets.axes.texts)
    assert "巷道" not in map_texts, "inferred streets are never labelled"
    pdf = PdfDoc(_render(store, town, "A3", "pdf"))
    text = pdf.text()
    assert "推测巷道（数据中无此路）" in text          # the legend
    assert "跨越河流/山脊/铁路" in text               # the crossing grid's note in the table
    _check_png(_render(store, town, "A3", "png"), PaperSize.A3)


# --- a department's overlay on request ----------------------------------------------------


def _upload_beats(client: TestClient, store: DemoStore, tmp_path: Path) -> gpd.GeoDataFrame:
    """The villages' grids, shifted 120 m east, as the 公安 overlay (WGS84 GeoJSON)."""
    metric = store.grids.to_crs(store.metric_epsg).dissolve("village_code").reset_index()
    units = gpd.GeoDataFrame({"code": "JW" + metric["village_code"],
                              "name": [f"第{i + 1}警务区" for i in range(len(metric))]},
                             geometry=metric.geometry.translate(120, 0),
                             crs=store.metric_epsg).to_crs(4326)
    path = tmp_path / "beats.geojson"
    units.to_file(path, driver="GeoJSON", engine="pyogrio")
    answer = client.post(f"/territories/{store.territory_id}/overlays",
                         files=[("files", (path.name, path.read_bytes()))],
                         data={"department": "公安", "replace": "true"})
    assert answer.status_code == 201, answer.text
    return units


def test_posters_draw_an_overlay_on_request(client: TestClient, store: DemoStore,
                                           tmp_path: Path) -> None:
    """overlay=公安 (route) and --overlay 公安 (CLI): the department's unit boundaries drawn
    dash-dotted, in the legend and the summary, the units named; an unknown one is a 404."""
    from matplotlib.collections import LineCollection

    from maps.poster import _Sheet

    units = _upload_beats(client, store, tmp_path)
    try:
        town, community = _town_and_community(store)
        data = load_poster_data(store.engine, store.plan_id, town, overlay="公安")
        assert data.overlay is not None and data.overlay_department == "公安"
        assert set(data.overlay["code"]) <= set(units["code"]) and len(data.overlay) > 0
        fig, _ = _Sheet(data, PaperSize.A3, register_fonts()).page_one()
        drawn = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "overlay-units"]
        assert len(drawn) == 1 and isinstance(drawn[0], LineCollection)
        assert len(drawn[0].get_segments()) == sum(
            len(shapely.get_parts(shapely.boundary(g))) for g in data.overlay.geometry)
        plain = client.get(f"/plans/{store.plan_id}/posters/{town}.pdf")
        answer = client.get(f"/plans/{store.plan_id}/posters/{town}.pdf",
                            params={"overlay": "公安"})
        assert answer.status_code == 200, answer.text
        assert quote("网格划分图_公安_A3", safe="") in answer.headers["content-disposition"]
        text, before = PdfDoc(answer.content).text(0), PdfDoc(plain.content).text(0)
        assert "公安单元界" in text and "公安部门网格" in text
        assert "公安单元界" not in before
        assert any(str(n) in text for n in data.overlay["name"]), "no unit is named"
        png = client.get(f"/plans/{store.plan_id}/posters/{community}.png",
                         params={"overlay": "公安"})
        assert png.status_code == 200 and png.content.startswith(PNG_SIGNATURE)
        assert png.content != client.get(
            f"/plans/{store.plan_id}/posters/{community}.png").content
        missing = client.get(f"/plans/{store.plan_id}/posters/{town}.png",
                             params={"overlay": "没有的部门"})
        assert missing.status_code == 404 and "没有的部门" in missing.json()["detail"]
        out = tmp_path / "p.png"
        result = CliRunner().invoke(cli_app, [
            "poster", str(store.plan_id), community, "--format", "png", "--out", str(out),
            "--overlay", "公安", "--database-url", store.url])
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == png.content
    finally:
        assert client.delete(
            f"/territories/{store.territory_id}/overlays/公安").status_code == 204
