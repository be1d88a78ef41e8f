"""The reader's options as users write them (--field-map, --crs), parsed for read_territory."""

from __future__ import annotations

import re

from gis.contract import LAYERS
from gis.errors import GridmapError


def parse_field_map(items: list[str] | None) -> dict[str, str]:
    """``["社区编码=code", "buildings.户数=households"]`` -> a field map."""
    out: dict[str, str] = {}
    for item in items or []:
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise GridmapError(f"field map entry {item!r} must look like SOURCE=TARGET")
        out[source.strip()] = target.strip()
    return out


def parse_crs_option(items: list[str] | None) -> str | dict[str, str] | None:
    """``["gcj02"]`` (every layer) or ``["buildings=gcj02", ...]`` (per layer)."""
    if not items:
        return None
    per_layer: dict[str, str] = {}
    overall: str | None = None
    for item in items:
        layer, sep, value = item.partition("=")
        if sep and re.fullmatch(r"[a-z_]+", layer) and layer in LAYERS:
            per_layer[layer] = value
        else:
            overall = item
    if overall is not None and not per_layer:
        return overall
    if overall is not None:
        return {**dict.fromkeys(LAYERS, overall), **per_layer}
    return per_layer
