"""GDAL's OGC API – Features driver (through pyogrio), run in a child process by the tests.

pyogrio holds the GIL while GDAL fetches pages, so a server in a thread of the
same process could never answer; the tests call these in a spawned process.
"""

from __future__ import annotations

import os
from typing import Any

import geopandas as gpd
import pyogrio


def _local() -> None:
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def list_layers(url: str) -> list[tuple[str, str]]:
    _local()
    return [(str(name), str(kind)) for name, kind in pyogrio.list_layers(url)]


def read(url: str, layer: str, **kwargs: Any) -> gpd.GeoDataFrame:
    _local()
    return pyogrio.read_dataframe(url, layer=layer, **kwargs)
