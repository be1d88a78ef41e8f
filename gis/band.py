"""The household band of a grid: its one default (300–500, 400 aimed at) and the one rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: The urban standard: a comprehensive grid holds 300–500 households, 400 aimed at. Every
#: default of the band (settings, the engine's parameters, the CLI, the API, the pages)
#: comes from here.
MIN_HOUSEHOLDS = 300
MAX_HOUSEHOLDS = 500
TARGET_HOUSEHOLDS = 400
DEFAULT_BAND = (MIN_HOUSEHOLDS, MAX_HOUSEHOLDS)

#: The classes of :func:`classify`, as vector tiles' ``status`` carries them.
BELOW, IN_BAND, ABOVE, DEDICATED = "below", "in_band", "above", "dedicated"
CLASSES = (BELOW, IN_BAND, ABOVE, DEDICATED)


def classify(kind: str, households: float, band: tuple[int, int]) -> str:
    """``dedicated``, ``below``, ``in_band`` or ``above``: the one band rule (a dedicated
    grid is never held to the band; the band's ends are within it)."""
    if kind == DEDICATED:
        return DEDICATED
    if households < band[0]:
        return BELOW
    if households > band[1]:
        return ABOVE
    return IN_BAND


def classify_all(kinds: Iterable[str], households: Iterable[float], band: tuple[int, int]
                 ) -> list[str]:
    """:func:`classify` of each grid: what the pages colour a grid by (the GeoJSON's
    ``band_class``), so that no page carries a copy of the rule."""
    return [classify(str(k), float(h), band) for k, h in zip(kinds, households, strict=True)]


def in_band(households: Any, band: tuple[int, int]) -> Any:
    """Whether ``households`` (a number or an array) lies within the band, ends included:
    :func:`classify`'s ``in_band`` without the kind."""
    return (households >= band[0]) & (households <= band[1])


def classify_sql(kind: str, households: str, lo: str = ":lo", hi: str = ":hi") -> str:
    """:func:`classify` as an SQL ``CASE`` over the columns ``kind`` and ``households``,
    with the band's ends bound as ``lo`` and ``hi``."""
    return (f"CASE WHEN {kind} = '{DEDICATED}' THEN '{DEDICATED}' "
            f"WHEN {households} < {lo} THEN '{BELOW}' "
            f"WHEN {households} > {hi} THEN '{ABOVE}' ELSE '{IN_BAND}' END")
