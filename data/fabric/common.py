"""What the street-first fabric's stages share: the layers, the CRS, street widths, the
densities, and a street and a building as the generator holds them (metric CRS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

LAYERS = ("admin_areas", "roads", "water", "buildings", "facilities")
METRIC_CRS = "EPSG:4547"
WGS84 = "EPSG:4326"
CENTER_LONLAT = (113.36, 23.13)
DISTRICT_CODE = "440188"
FArr = npt.NDArray[Any]
Geom = Any

#: Distance between the building lines on both sides of a street (m), by class.
WIDTHS = {"primary": (50.0, 60.0), "secondary": (36.0, 44.0), "tertiary": (20.0, 25.0),
          "residential": (14.0, 20.0), "service": (10.0, 14.0)}
MINOR = ("tertiary", "residential", "service")
MINOR_P = (0.25, 0.5, 0.25)
#: Buildings keep this far (m) from the river bank.
RIVER_SETBACK = 15.0
FLOOR_M = 3.0


@dataclass(frozen=True)
class Density:
    """How one kind of fabric is built."""

    slab_floors: tuple[int, int]
    tower_floors: tuple[int, int]
    #: Shares of street blocks that are slab rows, shops + slabs, tower compounds.
    block_mix: tuple[float, float, float]
    #: Expected households per km² of community land (sizes the lattice) and per community.
    hh_per_km2: float
    community_hh: int
    #: Distance between minor streets (m), both ways.
    block_m: tuple[float, float]


DENSITIES: dict[str, Density] = {
    "low": Density((4, 6), (18, 24), (0.80, 0.17, 0.03), 9_000.0, 3_000, (110.0, 170.0)),
    "mid": Density((6, 11), (18, 30), (0.62, 0.20, 0.18), 12_500.0, 4_500, (120.0, 190.0)),
    "high": Density((11, 18), (24, 33), (0.45, 0.15, 0.40), 15_000.0, 6_000, (140.0, 220.0)),
}


@dataclass
class Street:
    """A street: its centre line, class, width between building lines and name."""

    geom: Geom
    cls: str
    width: float
    name: str
    minor: bool
    community: int = -1


@dataclass
class Building:
    """A building: footprint, use, floors, households, kind and community (its index)."""

    geom: Geom
    use: str
    floors: int
    households: int
    kind: str  # slab, tower, shop, school
    community: int
