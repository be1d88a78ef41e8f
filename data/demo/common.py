"""Constants and array aliases shared by the demo district's generator stages."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

LAYERS = (
    "admin_areas",
    "roads",
    "water",
    "ridges",
    "railways",
    "buildings",
    "facilities",
    "dedicated_areas",
)

CENTER_LONLAT = (113.30, 23.25)
METRIC_CRS = "EPSG:4547"
WGS84 = "EPSG:4326"
DISTRICT_CODE = "440111"
DISTRICT_SHORT = "白云"
DISTRICT_NAME = "白云示范区"

# Array aliases are loose on purpose: numpy and shapely stubs do not narrow well.
FArr = npt.NDArray[Any]  # float arrays
IArr = npt.NDArray[Any]  # integer arrays
GArr = Any  # arrays of shapely geometries
Geom = Any  # a shapely geometry

# Road classes (OSM highway values) and the distance from a road's centreline to
# the nearest building wall (half the road width plus a setback).
PRIMARY, SECONDARY, TERTIARY, RESIDENTIAL, SERVICE, FOOTWAY = range(6)
ROAD_CLASSES = ("primary", "secondary", "tertiary", "residential", "service", "footway")
SETBACK = np.array([27.0, 21.0, 15.0, 10.0, 7.0, 3.0])
RURAL_SETBACK = np.array([20.0, 16.0, 11.0, 8.0, 6.0, 3.0])

# Building uses.
RES, COM, IND, PUB = range(4)
USES = ("residential", "commercial", "industrial", "public")

# Urban block types.
(
    SLAB,
    TOWER,
    UVILLAGE,
    COMMERCIAL,
    PARK,
    SCHOOL,
    MARKET,
    HOSPITAL,
    PUBLIC,
    INDUSTRIAL,
    CAMPUS,
    MEGA,
) = range(12)

# Household bands of residential buildings (lo, hi) and their floors (lo, hi).
_KIND_REGULAR, _KIND_UV, _KIND_MEGA, _KIND_NONRES = range(4)
_HH_BOUNDS = np.array([[20, 200], [20, 40], [501, 1100], [0, 0]])
_FLOOR_BOUNDS = np.array([[6, 33], [6, 9], [32, 55], [1, 60]])

HH_PER_STREET = 42_000
HH_PER_VILLAGE = 430
VILLAGES_PER_TOWN = 24
RURAL_DENSITY = 350.0  # households per km2 over the whole rural area
MIN_RURAL_AREA = 36e6  # m2: room for a mountain village wider than 5 km
MEGA_PER_100K = 2.4
GRID = 0.01  # rural admin polygons are snapped to 1 cm before the coverage is cleaned
