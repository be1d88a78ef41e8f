"""CAD (DXF, a layer per village, GBK text) and Google Earth (KML) exports of the grid table."""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from gis.errors import CRSError
from gis.exports.options import Options, projected
from gis.exports.table import TABLE_FIELDS

#: Characters AutoCAD does not allow in a layer name.
_CAD_LAYER_BAD = re.compile(r'[<>/\\":;?*|=`,\x00-\x1f]+')


def cad_layer(village_code: str, village_name: str) -> str:
    """The DXF layer of a village's grids: ``<village code>_<village name>``."""
    return _CAD_LAYER_BAD.sub("_", f"{village_code}_{village_name}".strip("_ ")) or "grids"


#: The suffix of the layer that holds a village's code labels.
LABEL_LAYER_SUFFIX = "_编码"


def _dxf_escape(error: UnicodeError) -> tuple[str, int]:
    """A character GBK lacks, as AutoCAD's ``\\U+XXXX`` escape."""
    assert isinstance(error, UnicodeEncodeError)
    bad = error.object[error.start:error.end]
    return "".join(f"\\U+{ord(ch):04X}" for ch in bad), error.end


codecs.register_error("gridmap-dxf", _dxf_escape)


def write_dxf(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
              options: Options) -> None:
    """AutoCAD DXF (R2000, through GDAL): each grid's rings as closed polylines on a layer
    per village (:func:`cad_layer`), its code as a text label (GDAL's LABEL style, an
    MTEXT centred inside the grid) on the village's ``_编码`` layer. Text is GBK (code page
    ANSI_936, what AutoCAD in China reads); a character GBK lacks is a ``\\U+XXXX`` escape."""
    frame = projected(table, options.crs)
    geoms = frame.geometry.to_numpy()
    layers = [cad_layer(str(v), str(n or "")) for v, n in zip(
        frame["village_code"], frame["village_name"], strict=True)]
    heights = np.clip(np.sqrt(shapely.area(geoms)) / 12.0,
                      *((1e-5, 2e-4) if options.crs.is_geographic else (1.0, 20.0)))
    anchors = shapely.point_on_surface(geoms)
    styles = [f'LABEL(f:"Arial",t:"{code}",s:{h:.6g}g,p:5,c:#000000)'
              for code, h in zip(frame["code"], heights, strict=True)]
    cad = gpd.GeoDataFrame({
        "Layer": layers + [layer + LABEL_LAYER_SUFFIX for layer in layers],
        "OGR_STYLE": [None] * len(layers) + styles,
    }, geometry=[*geoms, *anchors], crs=frame.crs)
    pyogrio.set_gdal_config_options({"DXF_WRITE_HATCH": "NO"})  # polygons as polylines
    plain = path.with_suffix(".utf8.dxf")
    pyogrio.write_dataframe(cad, plain, driver="DXF")
    text = plain.read_text(encoding="utf-8").replace(
        "$DWGCODEPAGE\n  3\nANSI_1252", "$DWGCODEPAGE\n  3\nANSI_936", 1)
    path.write_bytes(text.encode("gbk", errors="gridmap-dxf"))
    plain.unlink()


def write_kml(table: gpd.GeoDataFrame, path: Path, meta: dict[str, Any],
              options: Options) -> None:
    """KML 2.2 for Google Earth and 奥维 (always WGS84, as KML is): a folder per village, a
    placemark per grid (id = code, ``<name>`` = the grid's name), the other fields as
    ExtendedData, 8 decimals."""
    if not options.crs.is_wgs84:
        raise CRSError(f"crs={options.crs.label}: KML is WGS84 longitude/latitude by its "
                       "standard; leave crs out (or use wgs84) KML 只能是 WGS84")
    ns = "http://www.opengis.net/kml/2.2"
    root = ET.Element("kml", xmlns=ns)
    doc = ET.SubElement(root, "Document")
    ET.SubElement(doc, "name").text = str(meta.get("title", "网格 grids"))
    style = ET.SubElement(doc, "Style", id="grid")
    line = ET.SubElement(style, "LineStyle")
    ET.SubElement(line, "color").text = "ff7f00e4"
    ET.SubElement(line, "width").text = "2"
    ET.SubElement(ET.SubElement(style, "PolyStyle"), "color").text = "227f00e4"
    fields = [f for f in TABLE_FIELDS if f in table]
    folders: dict[str, ET.Element] = {}

    def ring(parent: ET.Element, tag: str, coords: Any) -> None:
        box = ET.SubElement(ET.SubElement(parent, tag), "LinearRing")
        ET.SubElement(box, "coordinates").text = " ".join(
            f"{x:.8f},{y:.8f}" for x, y in np.asarray(coords)[:, :2])

    for record, geom in zip(table[fields].to_dict("records"), table.geometry, strict=True):
        village = f"{record.get('village_name') or ''} {record.get('village_code')}".strip()
        if village not in folders:
            folders[village] = ET.SubElement(doc, "Folder")
            ET.SubElement(folders[village], "name").text = village
        mark = ET.SubElement(folders[village], "Placemark", id=str(record["code"]))
        ET.SubElement(mark, "name").text = str(record.get("name") or record["code"])
        ET.SubElement(mark, "description").text = (
            f"{record['code']} · {record.get('households')} 户 · "
            f"{record.get('boundary_text') or ''}")
        ET.SubElement(mark, "styleUrl").text = "#grid"
        data = ET.SubElement(mark, "ExtendedData")
        for field in fields:
            if field == "name":  # the placemark's <name> (readers fold the two together)
                continue
            value = record[field]
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                value = ""
            ET.SubElement(ET.SubElement(data, "Data", name=field), "value").text = str(value)
        polygons = list(geom.geoms) if isinstance(geom, shapely.MultiPolygon) else [geom]
        parent = ET.SubElement(mark, "MultiGeometry") if len(polygons) > 1 else mark
        for polygon in polygons:
            shape = ET.SubElement(parent, "Polygon")
            ring(shape, "outerBoundaryIs", polygon.exterior.coords)
            for hole in polygon.interiors:
                ring(shape, "innerBoundaryIs", hole.coords)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
