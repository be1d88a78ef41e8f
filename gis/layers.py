"""The reader's old module name, kept for what outside the repository still uses it only.

Pickles of a territory made before gis/layers.py was split (e.g. /work/proto/demo_*.pkl)
name ``gis.layers.Territory``, and scratch scripts import it or ``read_territory`` from
here. Code in the repository imports :mod:`gis.contract` and :mod:`gis.io` (a test holds
it to that); drop this module once nothing outside needs it.
"""

from __future__ import annotations

from gis.contract import Repair, Territory
from gis.io.territory import read_territory

__all__ = ["Repair", "Territory", "read_territory"]
